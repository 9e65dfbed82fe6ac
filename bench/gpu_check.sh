#!/usr/bin/env bash
# The GPU path, checked on a machine with an NVIDIA GPU (#18 item 7). NOT YET RUN ON A GPU.
#
# No Docker there; PyTorch is installed. At most 8 minutes in all (each step has its own timeout).
# Checks, each printed as PASS/FAIL with its figure:
#   1. NVML sees a known allocation: a CUDA tensor of 512 MiB held by a child process shows up in
#      NVML's per-process used memory within 5 % (above the CUDA context's own baseline);
#   2. the host probe (the ledger's GPU inventory) reports the real GPU's UUID, as nvidia-smi does;
#   3. a `requires.gpu: true` model is no longer skipped for lack of a GPU (process runtime);
#   4. refvideo's and a diffusers tiny variant's timings are VALID in the process runtime, and the
#      resource timeline carries GPU memory samples for the requires.gpu model.
# Usage: bash bench/gpu_check.sh   (from the repository root; writes under ${OUT:-/tmp/gpu-check})
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export TMPDIR="$OUT/tmp" && mkdir -p "$TMPDIR"
fails=0
step() { echo "== $*"; }
verdict() { if [ "$1" = 0 ]; then echo "PASS: $2"; else echo "FAIL: $2"; fails=$((fails + 1)); fi; }

step "install (no network expected: --no-deps, then an import check)"
timeout 120 pip install -q --no-deps -e . >"$OUT/pip.log" 2>&1 || echo "pip install -e . failed (see $OUT/pip.log); using PYTHONPATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "import pytest_vdbench.plugin, pynvml, torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
  || { echo "FAIL: the package or its dependencies (pynvml, pydantic, pytest-benchmark, ...) do not import"; exit 1; }

step "1. NVML reports a known allocation within 5 %"
timeout 120 python - <<'EOF'
import os, subprocess, sys, time
import pynvml
from pytest_vdbench.runtime.resources import gpu_usage_for_pids
SIZE = 512 * 1024**2
child = subprocess.Popen([sys.executable, "-c", """
import sys, torch
torch.zeros(1, device="cuda"); torch.cuda.synchronize()
print("context", flush=True); sys.stdin.readline()
x = torch.empty(%d, dtype=torch.uint8, device="cuda"); x.fill_(1); torch.cuda.synchronize()
print("held", flush=True); sys.stdin.readline()
""" % SIZE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "context"
time.sleep(0.5)
base, _ = gpu_usage_for_pids({child.pid})
child.stdin.write("\n"); child.stdin.flush()
assert child.stdout.readline().strip() == "held"
time.sleep(0.5)
held, util = gpu_usage_for_pids({child.pid})
child.stdin.write("\n"); child.stdin.flush(); child.wait(30)
grown = (held or 0) - (base or 0)
err = abs(grown - SIZE) / SIZE
print(f"NVML: context {base} B, with the tensor {held} B: +{grown / 2**20:.1f} MiB for a 512 MiB tensor ({100 * err:.1f} % off)")
sys.exit(0 if base is not None and err <= 0.05 else 1)
EOF
verdict $? "NVML sees the 512 MiB tensor within 5 %"

step "2. the host probe sees the GPU's UUID"
timeout 60 python - <<'EOF'
import subprocess, sys
from pytest_vdbench.runtime.host import probe_host
host = probe_host()
smi = subprocess.run(["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"], capture_output=True, text=True).stdout.split()
print("probe:", [(g.index, g.uuid, g.name, g.memory_total) for g in host.gpus], "nvidia-smi:", smi)
sys.exit(0 if host.gpus and sorted(g.uuid for g in host.gpus) == sorted(smi) else 1)
EOF
verdict $? "probe_host() GPU UUIDs equal nvidia-smi's"

step "3 + 4. refvideo, wan-tiny and a requires.gpu toy in the process runtime (VALID timings, not skipped)"
SUITE="$OUT/suite" && mkdir -p "$SUITE"
cp model_suites/video/refvideo.yaml model_suites/video/wan.yaml "$SUITE/"
cp -r model_suites/video/data "$SUITE/" 2>/dev/null || true
sed -i "s#context: containers/#context: $PWD/containers/#" "$SUITE"/*.yaml
cat >"$SUITE/gputoy.yaml" <<EOF
name: gputoy
modality: video
adapter: toy:ToyVideo
image: {context: $PWD/tests/adapters}
requires: {gpu: true}
resources: {gpus: 1, gpu_memory: 1g}
cases: [{id: fox, prompt: a fox, seed: 1, params: {frames: 4, height: 16, width: 16}}]
expect: {shape: [4, 3, 16, 16], dtype: float32, range: [0, 1]}
EOF
timeout 330 python -m pytest --vdbench --vdbench-suite "$SUITE" --vdbench-runtime process \
  --vdbench-model refvideo --vdbench-model wan-tiny --vdbench-model gputoy --vdbench-report "$OUT/report" \
  --vdbench-max-duration 10 -p no:cacheprovider -q -rfEs >"$OUT/pytest.log" 2>&1
tail -25 "$OUT/pytest.log"
timeout 30 python - "$OUT/report/report.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
rows = {r["id"]: r for r in doc["models"]}
ok = True
if "gputoy" in doc["skipped"]:
    print("gputoy skipped:", doc["skipped"]["gputoy"]); ok = False
for model, row in rows.items():
    for case, s in row["timings"]["generate"].items():
        print(f"{model}[{case}]: {s['verdict']} median {s['median']} s, ±{100 * (s['precision'] or 0):.1f} %, {s['rounds']} rounds {s['reason']}")
        ok &= s["verdict"] == "VALID" or model == "gputoy"
gpu = (rows.get("gputoy", {}).get("timeline") or {}).get("gpu_memory_bytes")
print("gputoy timeline GPU memory samples:", None if gpu is None else sum(v is not None for v in gpu))
sys.exit(0 if ok and "gputoy" in rows else 1)
EOF
verdict $? "a requires.gpu model runs (not skipped) and the CPU-side timings are VALID"

echo "== $fails check(s) failed; logs and report under $OUT"
exit "$fails"
