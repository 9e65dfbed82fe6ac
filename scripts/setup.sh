#!/usr/bin/env bash
# Everything pytest-vdbench needs on a fresh Debian machine, idempotent: the package with its extras
# (torch pinned first: a bare 'torch' requirement would pull the multi-GB CUDA build), Debian's
# chromium for the report's browser test, a Docker engine, a throwaway PostgreSQL cluster on
# 127.0.0.1 for the results-store tests, the offline base images and the Slurm test cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
say() { echo "setup: $*"; }

say "python packages"
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[dev,store-pg,clip]'
say "chromium";   bash scripts/install-chromium.sh
say "docker";     bash scripts/start-docker.sh
say "postgresql"; bash scripts/start-postgres.sh
say "base images"
vdbench images bootstrap
say "slurm";      bash scripts/start-slurm.sh  # two slurmd nodes with fake GPUs, a registry on 127.0.0.1:5077, podman
say "ready: pytest --vdbench --vdbench-report=vdbench-report (the main job), bash scripts/test.sh (the tests)"
