#!/usr/bin/env bash
# The project's own test suite: everything that needs no engine on both cores (pytest-xdist), then
# the Docker-marked tests one at a time (they share one engine and look for each other's leftovers).
# Extra arguments go to both runs, e.g. `bash scripts/test.sh -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
pytest -q -ra -n 2 -m "not docker" "$@"
pytest -q -ra -m docker "$@"
