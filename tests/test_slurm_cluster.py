"""The slurm runtime on a real Slurm cluster (scripts/start-slurm.sh: nodes n1 + n2, 2 fake GPUs on n1).

Marked ``slurm``: they skip without the cluster, except in CI (VDBENCH_REQUIRE_SLURM=1), where a
missing cluster is a failure. Every test ends by checking that no job (squeue) and no container
of its models remains.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import REGISTRY, ROOT, default_sigint, slurm_jobs, slurm_or_skip, toy_manifest

pytestmark = [pytest.mark.slurm, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _cluster() -> None:
    slurm_or_skip()


def engine_containers(engine: str, model: str) -> list[str]:
    """Containers (any state) of ``model`` on this host's docker or podman."""
    out = subprocess.run(
        [engine, "ps", "-aq", "--filter", f"label=org.vdbench.model={model}"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def slurm_args(pytester: pytest.Pytester, suite: Path, *extra: str, launcher: str = "docker") -> list[str]:
    return [
        "--vdbench",
        "--vdbench-suite",
        str(suite),
        "--vdbench-runtime",
        "slurm",
        "--vdbench-registry",
        REGISTRY,
        "--vdbench-slurm-dir",
        str(pytester.path / "slurm-runs"),
        "--vdbench-slurm-launcher",
        launcher,
        "-p",
        "no:cacheprovider",
        "-rfEs",
        *extra,
    ]


def run_slurm(pytester: pytest.Pytester, suite: Path, *extra: str, launcher: str = "docker") -> pytest.RunResult:
    return pytester.runpytest_subprocess(*slurm_args(pytester, suite, *extra, launcher=launcher), timeout=900)


def failed_tests(result: pytest.RunResult) -> set[str]:
    names = (line.split(" ")[1].split("::")[-1] for line in result.outlines if line.startswith("FAILED "))
    return {name.split("[")[0].split("@")[0] for name in names}


def assert_nothing_left(*models: str) -> None:
    for model in models:
        assert slurm_jobs(model) == [], f"Slurm jobs of {model} left"
        for engine in ("docker", "podman"):
            assert engine_containers(engine, model) == [], f"{engine} containers of {model} left"


@pytest.mark.parametrize("launcher", ["docker", "podman"])
def test_toy_passes_every_generated_test_as_a_slurm_job(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], launcher: str
) -> None:
    model = f"sltoy-{launcher}"
    result = run_slurm(pytester, write_suite(toy_manifest(model)), "--vdbench-report", "r", launcher=launcher)
    result.assert_outcomes(passed=7)
    row = json.loads((pytester.path / "r" / "report.json").read_text())["models"][0]
    assert row["runtime"] == "slurm" and row["peak_memory_bytes"] and row["peak_memory_bytes"] < 512 * 2**20
    assert set(row["startup_phases"]) == {"queue", "pull", "container"}
    assert row["startup_seconds"] >= row["startup_phases"]["container"]
    assert_nothing_left(model)


@pytest.mark.parametrize("launcher", ["docker", "podman"])
def test_reference_and_tabular_models_pass_through_slurm(pytester: pytest.Pytester, launcher: str) -> None:
    suites = [ROOT / "model_suites" / "video" / "refvideo.yaml", ROOT / "model_suites" / "tabular" / "medgan.yaml"]
    args = slurm_args(pytester, suites[0], "--vdbench-suite", str(suites[1]), "--vdbench-report", "r", launcher=launcher)
    result = pytester.runpytest_subprocess(*args, timeout=1500)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()[-4000:]
    assert outcomes["passed"] == 19  # every generated test of both models: none skipped
    rows = {r["id"]: r for r in json.loads((pytester.path / "r" / "report.json").read_text())["models"]}
    assert {rows["refvideo"]["status"], rows["medgan"]["status"]} == {"ok"}
    assert rows["refvideo"]["runtime"] == "slurm" and rows["medgan"]["fit_seconds"]
    assert_nothing_left("refvideo", "medgan")


def gpu_toys(names: list[str], delay: float) -> list[dict[str, object]]:
    docs = []
    for name in names:
        doc = toy_manifest(name, resources={"cpus": 1, "memory": "512m", "gpus": 2}, options={"fault": "none", "delay": delay})
        doc["expect"]["budgets"] = {}  # generation is slowed on purpose
        doc["timeouts"] = {"startup": "60s", "generate": "30s", "queue": "5m"}
        doc["requires"] = {"gpu": True}
        docs.append(doc)
    return docs


def test_two_models_asking_both_gpus_queue_one_behind_the_other(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    pytest.importorskip("xdist")
    suite = write_suite(*gpu_toys(["gpua", "gpub"], delay=1.0))
    result = run_slurm(pytester, suite, "-n", "2", "--vdbench-report", "r")
    result.assert_outcomes(passed=14)
    rows = sorted(
        json.loads((pytester.path / "r" / "report.json").read_text())["models"], key=lambda r: r["startup_phases"]["queue"]
    )
    first, second = rows
    # 2 rounds + warmup + determinism + quality... at >= 1 s each: the second job waited for the GPUs
    assert second["startup_phases"]["queue"] > 3.0 > first["startup_phases"]["queue"]
    assert "queue" in (pytester.path / "r" / "report.md").read_text()
    events = sorted((pytester.path / "slurm-runs").glob("*/job-*.events"))
    gpus = {json.loads(line)["gpus"] for f in events for line in f.read_text().splitlines() if '"start"' in line}
    assert gpus == {"0,1"}  # Slurm's CUDA_VISIBLE_DEVICES for both GPUs of n1, handed to each container
    assert_nothing_left("gpua", "gpub")


def test_gpu_figures_come_from_nvidia_smi_on_the_node(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job samples its GPUs with nvidia-smi when the node has it: here a stand-in on PATH (no NVIDIA GPU
    on this machine) that answers 1500 MiB and 40 % for each GPU index the job asks about."""
    bin_dir = pytester.path / "fake-bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text(
        "#!/bin/bash\n"
        'ids=""; while [ $# -gt 0 ]; do [ "$1" = -i ] && ids=$2; shift; done\n'
        'echo "$ids" >> "$(dirname "$0")/asked"\n'
        'for i in ${ids//,/ }; do echo "1500, 40"; done\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")  # sbatch exports it to the job
    (doc,) = gpu_toys(["gpuseen"], delay=0.2)
    doc["resources"]["gpus"] = 1
    suite = write_suite(doc)
    result = run_slurm(pytester, suite, "--vdbench-report", "r")
    result.assert_outcomes(passed=7)
    (row,) = json.loads((pytester.path / "r" / "report.json").read_text())["models"]
    assert row["gpu_memory_bytes"] == 1500 * 2**20 and row["gpu_utilization"] == pytest.approx(40.0)
    asked = set((bin_dir / "asked").read_text().split())
    assert asked and asked <= {"0", "1"}  # the job's own GPU (SLURM_JOB_GPUS), one of n1's two
    assert_nothing_left("gpuseen")


def test_pending_past_the_queue_timeout_fails_health_with_state(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    pytest.importorskip("xdist")
    suite = write_suite(*gpu_toys(["pendinga", "pendingb"], delay=1.5))
    result = run_slurm(pytester, suite, "-n", "2", "--vdbench-slurm-queue-timeout", "3")
    assert failed_tests(result) == {"test_health"}
    result.stdout.fnmatch_lines(["*Slurm job * of pending* still PENDING (Resources) after *s, past timeouts.queue 3s*"])
    assert_nothing_left("pendinga", "pendingb")


def test_scancel_from_outside_fails_the_running_test_with_the_job_state(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    doc = toy_manifest("killedtoy", options={"fault": "none", "delay": 2.0})
    doc["expect"]["budgets"] = {}
    suite = write_suite(doc)
    cancelled: list[str] = []

    def cancel_once_running() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not cancelled:
            for events in (pytester.path / "slurm-runs").glob("*/job-*.events"):
                if '"running"' in events.read_text():
                    time.sleep(3.0)  # ready, and inside the first generations
                    job = events.name.split("-")[1].split(".")[0]
                    subprocess.run(["scancel", job], check=True)
                    cancelled.append(job)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=cancel_once_running, daemon=True)
    killer.start()
    result = run_slurm(pytester, suite)
    killer.join(5)
    assert cancelled, "the job never ran"
    assert failed_tests(result) & {"test_generate", "test_health"}
    result.stdout.fnmatch_lines([f"*Slurm job {cancelled[0]} CANCELLED*"])
    assert_nothing_left("killedtoy")


def test_oom_in_a_job_fails_the_budget_test_with_the_limit(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    doc = toy_manifest("oomjob", fault="memory", resources={"cpus": 1, "memory": "128m"})
    doc["expect"]["budgets"] = {}
    result = run_slurm(pytester, write_suite(doc))
    result.stdout.fnmatch_lines(["*OOM-killed at limit 128.0 MiB (resources.memory)*"])
    assert failed_tests(result) == {"test_budget"}
    assert_nothing_left("oomjob")


def test_sigint_to_pytest_leaves_no_job_and_no_container(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    doc = toy_manifest("sigtoy", options={"fault": "none", "delay": 3.0})
    suite = write_suite(doc)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *slurm_args(pytester, suite)],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 300
        while not any('"running"' in f.read_text() for f in (pytester.path / "slurm-runs").glob("*/job-*.events")):
            assert time.monotonic() < deadline and proc.poll() is None, "the job never ran"
            time.sleep(0.1)
        assert slurm_jobs("sigtoy")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "KeyboardInterrupt" in out
    assert_nothing_left("sigtoy")


def test_killed_xdist_worker_leaves_no_job(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    """A worker SIGKILLed with its model's job running: the controller cancels the run's jobs by --comment."""
    suite = write_suite(toy_manifest("slurmkilled"))
    pytester.makepyfile(
        test_kill="""
        import os, signal

        def test_worker_dies_mid_run(vdbench_run, vdbench_endpoint):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup can run in this process
        """
    )
    result = run_slurm(pytester, suite, "test_kill.py", "-k", "test_worker_dies", "-n", "1", "--max-worker-restart", "0")
    result.stdout.fnmatch_lines(
        ["*worker 'gw0' crashed while running*", "*removed 1 Slurm job(s) left by crashed xdist worker(s)*"]
    )
    deadline = time.monotonic() + 60  # scancel returns at once; the job's TERM trap removes its container
    while (slurm_jobs("slurmkilled") or engine_containers("docker", "slurmkilled")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert_nothing_left("slurmkilled")


def test_unreachable_registry_is_one_clear_line(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    args = slurm_args(pytester, write_suite(toy_manifest("regtoy")))
    args[args.index(REGISTRY)] = "127.0.0.1:1"
    result = pytester.runpytest_subprocess(*args, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: --vdbench-registry 127.0.0.1:1: no registry answers at 127.0.0.1:1 (ConnectionRefusedError: "
        "[Errno 111] Connection refused); start it (scripts/start-slurm.sh) or fix the address"
    ]


def test_nonexistent_partition_is_one_clear_line(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    result = pytester.runpytest_subprocess(
        *slurm_args(pytester, write_suite(toy_manifest("parttoy")), "--vdbench-slurm-partition", "nope"), timeout=120
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --vdbench-slurm-partition 'nope' (ini vdbench_slurm_partition): no such partition; sinfo lists: debug"]
    )
    assert slurm_jobs("parttoy") == []


def test_vdbench_clean_slurm_cancels_a_hard_killed_runs_jobs(tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves its jobs queued; `vdbench clean --slurm --run ID` cancels them, only them."""
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsleep 600\n")
    submit = ["sbatch", "--parsable", "--time=11", f"--output={tmp_path}/%j.log", "--mem=10M"]
    mine, other = (
        subprocess.run([*submit, f"--comment=vdbench {comment}", str(script)], capture_output=True, text=True, check=True)
        for comment in ("run=deadrun1 proc=p1 model=orphan", "run=otherrun proc=p2 model=bystander")
    )
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pytest_vdbench.tools.cli", "clean", "--slurm", "--run", "deadrun1"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == f"cancelled 1 vdbench Slurm job(s): {mine.stdout.strip()}"
        assert slurm_jobs("orphan") == [] and slurm_jobs("bystander") == [other.stdout.strip()]
    finally:
        subprocess.run(["scancel", mine.stdout.strip(), other.stdout.strip()], check=False)
