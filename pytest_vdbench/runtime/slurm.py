"""The ``slurm`` runtime: every model's container runs as a Slurm job on the compute nodes.

``prepare`` builds the content-addressed image with the local Docker engine (as the docker
runtime does) and pushes it once per content hash to ``--vdbench-registry``; ``start`` renders the
model's batch script (``slurm_job``), submits it with ``sbatch --parsable`` and waits on three
things in turn: the job state (``squeue``, then ``scontrol`` once the job left the queue), the
rendezvous file the job writes into the shared run directory (node address and port), then the
protocol's HTTP readiness. Slurm allocates GPUs and CPUs, so the local resource ledger is not used.

Every job carries ``vdbench run=<testrun> proc=<process> model=<id>`` in ``--comment``: stop and
the session-end sweep ``scancel`` by it, so jobs end on pass, failure, timeout, Ctrl-C, SIGTERM and
after a crashed xdist worker; ``vdbench clean --slurm`` does the same after a hard kill.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.runtime import (
    BuildInfo,
    Endpoint,
    ReadyProbe,
    ResourceUsage,
    RuntimeContext,
    RuntimeUnavailable,
    StartupError,
    wait_ready,
)
from pytest_vdbench.runtime.plan import LABEL_RUN, LABEL_TESTRUN, ContainerPlan, container_plan
from pytest_vdbench.runtime.registry import Registry, RegistryError
from pytest_vdbench.runtime.slurm_job import LAUNCHERS, JobFiles, render_script

__all__ = ["SlurmInstance", "SlurmOptions", "SlurmRuntime", "cancel_jobs", "slurm_unavailable"]

TERMINAL = ("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "COMPLETED", "BOOT_FAIL", "DEADLINE", "PREEMPTED")
PULL_TIMEOUT = 1800.0  # an image pull on a node: bounded apart from timeouts.startup (first pulls are slow)
STOP_WAIT = 30.0  # how long stop() waits for a cancelled job to leave the queue (its trap removes the container)
COMMENT_TAG = "vdbench"


def _run(args: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def slurm_unavailable() -> str | None:
    """None when ``sinfo`` answers; otherwise why not, worded for a skip or an error."""
    if shutil.which("sbatch") is None:
        return "no Slurm client (sbatch) on PATH; install slurm-client or start the test cluster (scripts/start-slurm.sh)"
    try:
        out = _run(["sinfo", "-h", "-o", "%P"], timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15s: is slurmctld running? (scripts/start-slurm.sh)"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip() or out.stdout.strip()} (scripts/start-slurm.sh starts the test cluster)"
    return None


@dataclass(frozen=True)
class JobState:
    """One look at a job: ``PENDING``/``RUNNING``/... and Slurm's reason (``Resources``, ``None``)."""

    state: str
    reason: str
    node: str = ""

    def __str__(self) -> str:
        return f"{self.state} ({self.reason})" if self.reason and self.reason != "None" else self.state


def job_state(job: str) -> JobState | None:
    """From ``squeue`` while queued or running, from ``scontrol`` within MinJobAge after (no accounting)."""
    out = _run(["squeue", "-h", "-j", job, "-o", "%T|%r|%N"], timeout=15)
    line = out.stdout.strip()
    if out.returncode == 0 and line:
        state, reason, node = [*line.split("|"), "", ""][:3]
        return JobState(state, reason, node)
    out = _run(["scontrol", "show", "job", "-o", job], timeout=15)
    if out.returncode != 0:
        return None
    fields = dict(part.partition("=")[::2] for part in out.stdout.split())
    return JobState(fields.get("JobState", "UNKNOWN"), fields.get("Reason", ""), fields.get("NodeList", ""))


def cancel_jobs(match: str) -> list[str]:
    """``scancel`` every vdbench job whose comment has the word ``match`` (``run=<id>``; empty: all); returns their ids."""
    out = _run(["squeue", "-h", "--me", "-o", "%i|%k"], timeout=15)  # only this user's jobs
    rows = (line.partition("|") for line in out.stdout.splitlines())
    jobs = [job for job, _, comment in rows if comment.startswith(COMMENT_TAG + " ") and (not match or match in comment.split())]
    if jobs:
        _run(["scancel", *jobs])
    return jobs


def parse_constraints(raw: str) -> tuple[tuple[int, str], ...]:
    """``16g=gpumem16g 80g=a100_80g`` → sorted (bytes, feature); ValueError names the bad item."""
    from pytest_vdbench.manifest import parse_bytes

    pairs = []
    for item in raw.split():
        size, sep, feature = item.partition("=")
        if not sep or not feature:
            raise ValueError(f"{item!r} is not SIZE=FEATURE (e.g. 16g=gpumem16g)")
        try:
            pairs.append((int(parse_bytes(size)), feature))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{item!r}: {exc}") from None
    return tuple(sorted(pairs))


def gpu_constraint(gpu_memory: int, mapping: tuple[tuple[int, str], ...]) -> str | None:
    """The ``--constraint`` for GPUs with at least ``gpu_memory`` each: the smallest mapped size that fits."""
    if not gpu_memory or not mapping:
        return None
    for size, feature in mapping:
        if size >= gpu_memory:
            return feature
    biggest = mapping[-1]
    raise StartupError(
        f"resources.gpu_memory {gpu_memory} bytes is more than any GPU in ini vdbench_slurm_gpu_constraints "
        f"(largest: {biggest[0]} bytes = {biggest[1]}); add a SIZE=FEATURE entry for bigger GPUs"
    )


@dataclass(frozen=True)
class SlurmOptions:
    """The ``--vdbench-registry`` / ``--vdbench-slurm-*`` options and their ini keys, validated
    (read from pytest's config by ``pytest_vdbench.options.slurm_options``)."""

    registry: Registry | None
    run_dir: Path
    launcher: str = "docker"
    partition: str | None = None
    queue_timeout: float | None = None
    gpu_constraints: tuple[tuple[int, str], ...] = ()
    sbatch_args: tuple[str, ...] = field(default_factory=tuple)

    def problems(self) -> list[str]:
        """What keeps the run from starting, one line each: checked once, before any test."""
        if (reason := slurm_unavailable()) is not None:
            return [f"--vdbench-runtime slurm: {reason}"]
        found = []
        if self.registry is None:
            found.append(
                "--vdbench-runtime slurm needs --vdbench-registry HOST:PORT[/prefix] (ini vdbench_registry): "
                "the nodes pull images from it"
            )
        elif (why := self.registry.unreachable()) is not None:
            found.append(f"--vdbench-registry {self.registry}: {why}; start it (scripts/start-slurm.sh) or fix the address")
        if self.partition is not None:
            parts = _run(["sinfo", "-h", "-o", "%R"]).stdout.split()
            if self.partition not in parts:
                found.append(
                    f"--vdbench-slurm-partition {self.partition!r} (ini vdbench_slurm_partition): no such partition; "
                    f"sinfo lists: {', '.join(sorted(set(parts))) or 'none'}"
                )
        return found


def time_limit(plan: ContainerPlan) -> int:
    """``--time`` in minutes: the plan's deadline (startup + every case's calls and timed rounds) + 5 min."""
    return math.ceil((plan.timeouts.deadline + 300) / 60)


def sbatch_args(plan: ContainerPlan, opts: SlurmOptions, comment: str, log: str) -> list[str]:
    """The ``sbatch`` command line of one model's job (its script path is appended)."""
    r = plan.limits
    args = [
        "sbatch",
        "--parsable",
        f"--job-name=vdbench-{plan.model}",
        f"--comment={comment}",
        f"--output={log}",
        f"--cpus-per-task={math.ceil(r.cpus)}",
        f"--mem={math.ceil(r.memory / 2**20)}M",
        f"--time={time_limit(plan)}",
        "--ntasks=1",
        "--nodes=1",
    ]
    if r.gpus:
        args.append(f"--gres=gpu:{r.gpus}")
    constraint = gpu_constraint(r.gpu_memory, opts.gpu_constraints) if r.gpus else None
    if constraint:
        args.append(f"--constraint={constraint}")
    if opts.partition:
        args.append(f"--partition={opts.partition}")
    return [*args, *opts.sbatch_args]


class SlurmInstance:
    """One model's job: submitted, followed through the queue and readiness, cancelled on stop."""

    def __init__(
        self, spec: ModelSpec, script: str, args: list[str], files: JobFiles, queue_timeout: float, ready_probe: ReadyProbe
    ) -> None:
        self.spec = spec
        self.ready_probe = ready_probe
        self.script = script
        self.args = args
        self.files = files
        self.queue_timeout = queue_timeout
        self.job = ""
        self.endpoint = Endpoint("127.0.0.1", 0)
        self.startup_seconds = 0.0
        #: submit→ready split: queue (submit→job start), pull, container (start→ready)
        self.phases: dict[str, float] = {}
        self._final: ResourceUsage | None = None
        self._peak = 0
        self._cpu: list[tuple[float, float]] = []
        self._samples: list[int] = []
        self._gpu_peak: int | None = None
        self._gpu_util: list[float] = []
        self._last_usage_t = 0.0
        self._end_state: JobState | None = None

    # -- files the job writes --------------------------------------------------------------
    def events(self) -> dict[str, dict[str, Any]]:
        """The rendezvous file: the last event of each kind (start, pulled, running, exit, error)."""
        out: dict[str, dict[str, Any]] = {}
        try:
            text = Path(self.files.events(self.job)).read_text()
        except OSError:
            return out
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            out[str(event.get("event"))] = event
        return out

    def logs(self, tail: int = 200) -> str:
        try:
            lines = Path(self.files.log(self.job)).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    # -- start -----------------------------------------------------------------------------
    def start(self) -> None:
        t0, submitted = time.monotonic(), time.time()
        script = Path(self.files.run_dir) / f"{self.spec.id}-{uuid.uuid4().hex[:6]}.sh"
        script.write_text(self.script)
        out = _run([*self.args, str(script)])
        if out.returncode != 0:
            raise StartupError(f"sbatch refused the job of {self.spec.id}: {out.stderr.strip() or out.stdout.strip()}")
        self.job = out.stdout.strip().split(";")[0]
        running = self._wait_running(t0)
        self.endpoint = Endpoint(str(running["host"]), int(running["port"]))
        wait_ready(
            self.ready_probe(self.spec.manifest, self.endpoint),
            timeout=self.spec.manifest.timeouts.startup,
            alive=self.exited,
            logs=self.logs,
            what=f"Slurm job {self.job} of {self.spec.id}",
        )
        self.startup_seconds = time.monotonic() - t0
        events, ready = self.events(), time.time()
        start, pulled = float(events["start"]["t"]), float(events.get("pulled", running)["t"])
        self.phases = {"queue": max(0.0, start - submitted), "pull": pulled - start, "container": ready - pulled}
        self._read_usage()  # the CPU baseline: CPU % is measured from here

    def _wait_running(self, t0: float) -> dict[str, Any]:
        """Until the rendezvous says running; a failed or too-long-pending job raises with its state."""
        next_state = 0.0
        while True:
            events = self.events()
            if "running" in events:
                return events["running"]
            now = time.monotonic()
            if "exit" in events or "error" in events or now >= next_state:
                state = job_state(self.job)
                next_state = now + 0.5
                self._check_queued(state, events, now - t0)
            time.sleep(0.02)

    def _check_queued(self, state: JobState | None, events: dict[str, dict[str, Any]], waited: float) -> None:
        what = f"Slurm job {self.job} of {self.spec.id}"
        if state is None:
            raise StartupError(f"{what} is unknown to squeue and scontrol (purged after MinJobAge?)", self.logs())
        if state.state == "PENDING" and waited > self.queue_timeout:
            _run(["scancel", self.job])
            raise StartupError(
                f"{what} still {state} after {waited:.0f}s, past timeouts.queue {self.queue_timeout:g}s "
                "(raise timeouts.queue in the manifest or --vdbench-slurm-queue-timeout, or free the resources it waits for)",
                self.logs(),
            )
        if state.state in TERMINAL or "error" in events or "exit" in events:
            final = self._settled_state() if state.state not in TERMINAL else state
            step = "pulling its image" if "error" in events else "before its container was ready"
            raise StartupError(f"{what} ended {step}: {final}", self.logs())
        if "start" in events and "pulled" not in events and waited > PULL_TIMEOUT:
            _run(["scancel", self.job])
            raise StartupError(f"{what} did not pull its image within {PULL_TIMEOUT:g}s", self.logs())

    def _settled_state(self, wait: float = 5.0) -> JobState | None:
        """The job's state once Slurm has it terminal (the job's end takes a moment to be recorded)."""
        if self._end_state is not None:
            return self._end_state
        deadline = time.monotonic() + wait
        state = job_state(self.job)
        while state is not None and state.state not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.1)
            state = job_state(self.job)
        if state is not None and state.state in TERMINAL:
            self._end_state = state
        return state

    def exited(self) -> str | None:
        events = self.events()
        if "exit" not in events:
            return None
        e = events["exit"]
        why = "OOM-killed" if e.get("oom") else f"container exit code {e.get('exit_code')}"
        return f"{why}; job {self._settled_state()}"

    # -- measurements ----------------------------------------------------------------------
    def _read_usage(self) -> None:
        try:
            sample = json.loads(Path(self.files.usage(self.job)).read_text())
        except (OSError, ValueError):
            return
        t = float(sample.get("t") or 0)
        if t <= self._last_usage_t:
            return
        self._last_usage_t = t
        self._samples.append(int(sample["memory"]))
        self._peak = max(self._peak, int(sample.get("peak") or 0), int(sample["memory"]))
        if sample.get("cpu_ns") is not None:
            self._cpu.append((float(sample["cpu_ns"]) / 1e9, t))
        if sample.get("gpu_memory") is not None:  # the job's nvidia-smi reading (NVIDIA nodes only)
            self._gpu_peak = max(self._gpu_peak or 0, int(sample["gpu_memory"]))
            self._gpu_util.append(float(sample["gpu_util"]))

    def usage(self) -> ResourceUsage:
        if self._final is not None:
            return self._final
        self._read_usage()
        exit_event = self.events().get("exit")
        running, detail = exit_event is None, None
        if exit_event is not None:
            self._peak = max(self._peak, int(exit_event.get("peak") or 0))
            detail = f"Slurm job {self.job} {self._settled_state(2.0)}"
        cpu = None
        if len(self._cpu) >= 2 and self._cpu[-1][1] > self._cpu[0][1]:
            cpu = 100.0 * (self._cpu[-1][0] - self._cpu[0][0]) / (self._cpu[-1][1] - self._cpu[0][1])
        return ResourceUsage(
            peak_memory_bytes=self._peak or None,
            mean_memory_bytes=int(sum(self._samples) / len(self._samples)) if self._samples else None,
            cpu_percent=cpu,
            memory_limit_bytes=self.spec.manifest.resources.memory,
            oom_killed=bool(exit_event and exit_event.get("oom")),
            exit_code=exit_event.get("exit_code") if exit_event else None,
            running=running,
            samples=len(self._samples),
            gpu_memory_bytes=self._gpu_peak,
            gpu_utilization=sum(self._gpu_util) / len(self._gpu_util) if self._gpu_util else None,
            source="the job's reading of the container cgroup" + (" and nvidia-smi" if self._gpu_util else ""),
            detail=detail,
        )

    def stop(self) -> ResourceUsage:
        """scancel, then wait (bounded) until the job is gone: its TERM trap removes the container."""
        if self._final is not None:
            return self._final
        try:
            usage = self.usage() if self.job else ResourceUsage(running=False)
        except Exception:
            usage = ResourceUsage(running=False)
        if self.job:
            _run(["scancel", self.job])
            deadline = time.monotonic() + STOP_WAIT
            while time.monotonic() < deadline:
                state = job_state(self.job)
                if state is None or state.state in TERMINAL:
                    break
                time.sleep(0.1)
        usage.running = False
        self._final = usage
        return usage


class SlurmRuntime:
    """Build locally, push once per content hash, run each model as a Slurm job; sweep by run id."""

    name = "slurm"

    def __init__(self, context: RuntimeContext) -> None:
        import docker

        options = context.options.get("slurm")
        if not isinstance(options, SlurmOptions):
            raise RuntimeUnavailable("the slurm runtime needs its options (RuntimeContext.options['slurm'])")
        self.options = options
        self.protocols = context.protocols
        self.ready_probe = context.ready_probe
        self.client = docker.from_env()
        self.run_id = uuid.uuid4().hex[:12]
        self.testrun = context.testrun or self.run_id
        self.work_dir = context.work_dir
        self.timed_seconds = context.timed_seconds
        self.run_dir = options.run_dir / self.testrun
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._builds: dict[str, BuildInfo] = {}
        self._instances: list[SlurmInstance] = []

    def prepare(self, spec: ModelSpec) -> BuildInfo:
        if spec.id in self._builds:
            return self._builds[spec.id]
        from pytest_vdbench.runtime.docker import build_model_image

        info = build_model_image(self.client, spec, self.work_dir / "build-logs")
        assert info.image is not None and self.options.registry is not None
        t0 = time.monotonic()
        try:
            ref, pushed = self.options.registry.push_once(self.client, info.image, self.options.run_dir / "locks")
        except RegistryError as exc:
            raise RuntimeError(str(exc)) from None
        info.extra.update(registry_ref=ref, pushed=pushed, push_seconds=time.monotonic() - t0)
        self._builds[spec.id] = info
        return info

    def comment(self, spec: ModelSpec) -> str:
        return f"{COMMENT_TAG} run={self.testrun} proc={self.run_id} model={spec.id}"

    def start(self, spec: ModelSpec) -> SlurmInstance:
        from pytest_vdbench.runtime.host import hf_cache_dir

        if spec.manifest.sandbox.network == "none":
            raise RuntimeUnavailable(
                "network: none (sandbox) leaves the container unreachable from the login node; "
                "run sandboxed models with --vdbench-runtime docker"
            )
        info = self.prepare(spec)
        labels = {LABEL_RUN: self.run_id, LABEL_TESTRUN: self.testrun}
        protocol = self.protocols.get(spec.manifest.protocol)
        ref = str(info.extra["registry_ref"])
        plan = container_plan(
            spec,
            ref,
            protocol=protocol,
            unix_socket=False,
            labels=labels,
            hf_cache=str(hf_cache_dir()),
            timed_seconds=self.timed_seconds,
        )
        files = JobFiles(str(self.run_dir))
        script = render_script(plan, LAUNCHERS[self.options.launcher], files)
        args = sbatch_args(plan, self.options, self.comment(spec), files.log())
        queue = self.options.queue_timeout if self.options.queue_timeout is not None else spec.manifest.timeouts.queue
        instance = SlurmInstance(spec, script, args, files, queue, self.ready_probe)
        self._instances.append(instance)
        try:
            instance.start()
        except BaseException:
            instance.stop()
            raise
        return instance

    def close(self) -> None:
        for instance in self._instances:
            instance.stop()
        cancel_jobs(f"proc={self.run_id}")
        sweep_local(self.options.launcher, self.run_id)
        self.client.close()


def sweep_local(launcher: str, run_id: str) -> int:
    """Remove containers of ``run_id`` on this host's engine (the test cluster's nodes are this host)."""
    if launcher not in ("docker", "podman") or shutil.which(launcher) is None:
        return 0
    out = _run([launcher, "ps", "-aq", "--filter", f"label=org.vdbench.run={run_id}"])
    ids = out.stdout.split()
    if ids:
        _run([launcher, "rm", "-f", *ids])
    return len(ids)
