#!/usr/bin/env bash
# The project's own test suite: everything that needs no engine on both cores (pytest-xdist), then
# the Docker-marked tests one at a time (they share one engine and look for each other's leftovers).
# Extra arguments go to both runs, e.g. `bash scripts/test.sh -x`; so do the words of
# $VDBENCH_TEST_ARGS, which reach the runs .ci/run makes, e.g.
# `VDBENCH_TEST_ARGS=--random-order-seed=4711 .ci/run` (pytest-random-order, a dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a extra <<< "${VDBENCH_TEST_ARGS:-}"
pytest -q -ra -n 2 -m "not docker" "${extra[@]}" "$@"
pytest -q -ra -m docker "${extra[@]}" "$@"
