"""The Slurm batch script of one model: a container description rendered through a launcher.

Pure functions, no Slurm and no engine: ``render_script`` renders the model's ``ContainerPlan``
(runtime/plan.py, the one plan docker, compose and k8s render too) as a bash batch script with one of
the ``LAUNCHERS`` (docker, podman: run for real in the tests; apptainer, pyxis: rendered only).

What the script does on the node, in order, each step appended as one JSON line to the
rendezvous file ``<run dir>/job-<id>.events`` (the harness reads it from the shared run dir):
``start`` (node, address, GPUs) → pull the image unless present → ``pulled`` → pick a free port,
start the container publishing the adapter there → ``running`` (host, port) → sample the
container's cgroup into ``job-<id>.usage`` every half second → ``exit`` (exit code, OOM flag,
peak memory). SIGTERM (``scancel``, ``--time``) runs the same ending and removes the container.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Protocol

from pytest_vdbench.runtime.plan import ContainerPlan

__all__ = ["LAUNCHERS", "JobFiles", "Launcher", "container_name", "render_script"]

STATE_FORMAT = "{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Pid}}"


@dataclass(frozen=True)
class JobFiles:
    """Where the job writes, in the shared run directory (``%j`` is Slurm's job id)."""

    run_dir: str

    def events(self, job: str = "$SLURM_JOB_ID") -> str:
        return f"{self.run_dir}/job-{job}.events"

    def usage(self, job: str = "$SLURM_JOB_ID") -> str:
        return f"{self.run_dir}/job-{job}.usage"

    def log(self, job: str = "%j") -> str:
        return f"{self.run_dir}/job-{job}.log"


def container_name(plan: ContainerPlan) -> str:
    return f"vdbench-{plan.model}"


def _q(value: object) -> str:
    return shlex.quote(str(value))


class Raw(str):
    """A shell word the script expands on the node (``"$PORT"``): rendered unquoted. Manifest values never are."""


def _argv(args: list[str]) -> str:
    return " ".join(a if isinstance(a, Raw) else _q(a) for a in args)


class Launcher(Protocol):
    """Renders the bash functions the script calls: ``vd_pull``, ``vd_run``, ``vd_stop``, ``vd_state``.

    ``vd_run`` runs in the background with the container attached (its output is the job log);
    ``vd_state`` prints ``EXIT_CODE OOM_KILLED PID`` once the container exists; ``vd_stop`` removes it.
    """

    @property
    def name(self) -> str: ...

    @property
    def tested(self) -> bool:
        """False: rendered and unit-tested only (no such launcher on the test cluster)."""
        ...

    def functions(self, c: ContainerPlan) -> str: ...


@dataclass(frozen=True)
class OciCli:
    """docker or podman on the node: same flags, the adapter published on the node's address."""

    name: str
    tested: bool = True

    def run_args(self, c: ContainerPlan) -> list[str]:
        args: list[str] = [self.name, "run", "--name", Raw('"$NAME"')]
        for key, value in sorted(c.labels):
            args += ["--label", f"{key}={value}"]
        args += ["--label", Raw('"org.vdbench.slurm.job=$SLURM_JOB_ID"')]
        lim, hard = c.limits, c.hardening
        args += ["--memory", str(lim.memory), "--memory-swap", str(lim.memswap), "--cpus", f"{lim.cpus:g}"]
        args += ["--shm-size", str(lim.shm), "--pids-limit", str(lim.pids), "--user", hard.user_spec]
        for cap in hard.cap_drop:
            args += ["--cap-drop", cap]
        for opt in hard.security_opt:
            args += ["--security-opt", opt]
        if hard.read_only_root:
            args.append("--read-only")
        for path, opts in hard.tmpfs:
            args += ["--tmpfs", f"{path}:{opts}"]
        for bind in _binds(c):
            args += ["-v", bind]
        for key, value in c.env:
            args += ["-e", f"{key}={value}"]
        for name in c.env_from_host:  # by name: the value never lands in the script file
            args += ["-e", name]
        args += ["-e", Raw('"CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-}"'), "-p", Raw(f'"$ADDR:$PORT:{c.port}"')]
        args += [Raw('"${GPU_ARGS[@]}"'), c.image]
        return args + list(c.command or ())

    def functions(self, c: ContainerPlan) -> str:
        run = _argv(self.run_args(c))
        gpus = (
            # real NVIDIA nodes: hand the job's GPUs (SLURM_JOB_GPUS: node indices) to the container;
            # without the driver (the test cluster's fake GPUs) only CUDA_VISIBLE_DEVICES is passed
            'GPU_ARGS=(); if [ -e /dev/nvidiactl ] && [ -n "${SLURM_JOB_GPUS:-}" ]; then '
            'GPU_ARGS=(--gpus "device=$SLURM_JOB_GPUS"); fi'
            if c.limits.gpus
            else "GPU_ARGS=()"
        )
        return "\n".join(
            [
                gpus,
                f"vd_pull() {{ {self.name} image inspect {_q(c.image)} >/dev/null 2>&1 || {self.name} pull -q {_q(c.image)}; }}",
                f"vd_run() {{ exec {run} </dev/null; }}",
                f'vd_stop() {{ {self.name} rm -f "$NAME" >/dev/null 2>&1; }}',
                f'vd_state() {{ {self.name} inspect -f {_q(STATE_FORMAT)} "$NAME" 2>/dev/null; }}',
            ]
        )


def _binds(c: ContainerPlan) -> list[str]:
    """The plan's host mounts as ``SOURCE:TARGET:ro|rw`` (docker -v, apptainer --bind, pyxis mounts)."""
    return [f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in c.mounts if m.source is not None]


#: apptainer and pyxis run the server as a child of the job (no engine to ask): stop and state by its pid
_HOST_PROCESS_FUNCTIONS = (
    'vd_stop() { [ -n "${CPID:-}" ] && kill "$CPID" 2>/dev/null; }',
    'vd_state() { [ -n "${CONTAINER_EXIT:-}" ] && echo "$CONTAINER_EXIT false $CPID"; }',
)


def _host_network_command(c: ContainerPlan) -> list[str]:
    """Apptainer and pyxis share the node's network: the server must listen on the job's $PORT."""
    command = list(c.command or ())
    if c.listen_port_arg and "--port" in command:
        command[command.index("--port") + 1] = Raw('"$PORT"')
    return command


def _host_network_env(c: ContainerPlan) -> dict[str, str]:
    env = c.env_dict
    if c.protocol == "cog":
        env["PORT"] = Raw('"$PORT"')
    return env


@dataclass(frozen=True)
class Apptainer:
    """``apptainer exec docker://IMAGE``: rendered and unit-tested only (no apptainer on the test cluster)."""

    name: str = "apptainer"
    tested: bool = False

    def functions(self, c: ContainerPlan) -> str:
        args = ["apptainer", "exec", "--containall", "--cleanenv", "--writable-tmpfs", "--no-home"]
        if c.limits.gpus:
            args.append("--nv")
        for bind in _binds(c):
            args += ["--bind", bind]
        for key, value in sorted(_host_network_env(c).items()):
            args += ["--env", Raw(f'"{key}=$PORT"') if isinstance(value, Raw) else f"{key}={value}"]
        args += [f"docker://{c.image}", *_host_network_command(c)]
        return "\n".join(
            [
                "vd_pull() { :; }  # apptainer converts docker://IMAGE at exec time (cached in APPTAINER_CACHEDIR)",
                f"vd_run() {{ exec {_argv(args)} </dev/null; }}",
                *_HOST_PROCESS_FUNCTIONS,
            ]
        )


@dataclass(frozen=True)
class Pyxis:
    """``srun --container-image`` (NVIDIA pyxis + enroot): rendered and unit-tested only."""

    name: str = "pyxis"
    tested: bool = False

    def image(self, ref: str) -> str:
        """pyxis names a registry with '#': ``host:port#repo@digest``."""
        host, sep, rest = ref.partition("/")
        return f"{host}#{rest}" if sep and (":" in host or "." in host) else ref

    def functions(self, c: ContainerPlan) -> str:
        env = _host_network_env(c)
        exports = " ".join(f"{k}={v if isinstance(v, Raw) else _q(v)}" for k, v in sorted(env.items()))
        args = ["srun", "--ntasks=1", f"--container-image={self.image(c.image)}", "--no-container-mount-home"]
        mounts = _binds(c)
        if mounts:
            args.append("--container-mounts=" + ",".join(mounts))
        args += [f"--container-env={','.join(sorted(env))}", *_host_network_command(c)]
        return "\n".join(
            [
                "vd_pull() { :; }  # enroot imports the image when srun starts the step",
                f"vd_run() {{ export {exports}; exec {_argv(args)} </dev/null; }}",
                *_HOST_PROCESS_FUNCTIONS,
            ]
        )


LAUNCHERS: dict[str, Launcher] = {
    "docker": OciCli("docker"),
    "podman": OciCli("podman"),
    "apptainer": Apptainer(),
    "pyxis": Pyxis(),
}

_BODY = r"""
now() { date +%s.%N; }
ev() { printf '{"event":"%s","t":%s%s}\n' "$1" "$(now)" "${2:+,$2}" >>"$EVENTS"; }  # one JSON line
ADDR=$(scontrol show node "${SLURMD_NODENAME:-}" -o 2>/dev/null | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p')
[ -n "$ADDR" ] || ADDR=$(hostname -i 2>/dev/null | cut -d' ' -f1)
ev start "\"node\":\"${SLURMD_NODENAME:-}\",\"host\":\"$ADDR\",\"gpus\":\"${CUDA_VISIBLE_DEVICES:-}\""
CPID="" SPID="" DONE=""
GPU_IDS=${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-}}
gpu_sample() {  # the job's GPUs (a Slurm GPU is the job's alone): used memory summed, utilisation averaged
    [ -n "$GPU_IDS" ] && command -v nvidia-smi >/dev/null || return 0
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -i "$GPU_IDS" 2>/dev/null |
        awk -F', *' '$1 ~ /^[0-9]+$/ {m += $1; u += $2; n++}
            END {if (n) printf ",\"gpu_memory\":%d,\"gpu_util\":%.1f", m * 1048576, u / n}'
}
sample() {  # the container's cgroup (v1 or v2), found once through its main process
    local pid="" cg mem peak cpu v1=1
    while [ -z "$pid" ] || [ "$pid" = 0 ]; do pid=$(vd_state | cut -d' ' -f3); sleep 0.2; done
    cg=$(sed -n 's/^[0-9]*:memory:\(.*\)/\1/p' "/proc/$pid/cgroup" 2>/dev/null)
    [ -n "$cg" ] || { v1=""; cg=$(sed -n 's/^0::\(.*\)/\1/p' "/proc/$pid/cgroup" 2>/dev/null); }
    while [ -d "/proc/$pid" ]; do
        if [ -n "$v1" ]; then
            mem=$(cat "/sys/fs/cgroup/memory$cg/memory.usage_in_bytes" 2>/dev/null)
            peak=$(cat "/sys/fs/cgroup/memory$cg/memory.max_usage_in_bytes" 2>/dev/null)
            cpu=$(cat "/sys/fs/cgroup/cpuacct$cg/cpuacct.usage" 2>/dev/null)
        else
            mem=$(cat "/sys/fs/cgroup$cg/memory.current" 2>/dev/null)
            peak=$(cat "/sys/fs/cgroup$cg/memory.peak" 2>/dev/null || echo "$mem")
            cpu=$(($(sed -n 's/^usage_usec //p' "/sys/fs/cgroup$cg/cpu.stat" 2>/dev/null || echo 0) * 1000))
        fi
        gpu=$(gpu_sample)
        if [ -n "$mem" ]; then
            printf '{"t":%s,"memory":%s,"peak":%s,"cpu_ns":%s%s}\n' \
                "$(now)" "$mem" "${peak:-$mem}" "${cpu:-null}" "$gpu" >"$USAGE.tmp"
            mv -f "$USAGE.tmp" "$USAGE"
        fi
        sleep 0.5
    done
}
finish() {  # $1: why the job ends (exited, TERM); writes the exit event, removes the container
    [ -n "$DONE" ] && return
    DONE=1
    local state code oom peak
    state=$(vd_state)
    code=${state%% *}; oom=$(echo "$state" | cut -d' ' -f2)
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    peak=$(sed -n 's/.*"peak":\([0-9]*\).*/\1/p' "$USAGE" 2>/dev/null)
    vd_stop
    ev exit "\"why\":\"$1\",\"exit_code\":${code:-null},\"oom\":${oom:-false},\"peak\":${peak:-null}"
    if [ "$1" = TERM ]; then exit 143; fi
    exit "${code:-1}"
}
trap 'finish TERM' TERM INT
if ! vd_pull >>"$EVENTS.pull" 2>&1; then
    ev error '"what":"pull"'
    cat "$EVENTS.pull" >&2
    exit 3
fi
ev pulled
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
vd_run &
CPID=$!
ev running "\"host\":\"$ADDR\",\"port\":$PORT"
sample &
SPID=$!
wait "$CPID"
CONTAINER_EXIT=$?
finish exited
"""


def render_script(c: ContainerPlan, launcher: Launcher, files: JobFiles, header: str = "") -> str:
    """The batch script of the plan ``c`` (its sbatch options come on sbatch's command line)."""
    lines = [
        "#!/bin/bash",
        f"# vdbench job: {c.model} with {launcher.name}"
        + ("" if launcher.tested else " (launcher not tested by pytest-vdbench)"),
        header,
        "set -u",
        f"EVENTS={_q(files.run_dir)}/job-$SLURM_JOB_ID.events",
        f"USAGE={_q(files.run_dir)}/job-$SLURM_JOB_ID.usage",
        f"NAME={_q(container_name(c))}-$SLURM_JOB_ID",
        launcher.functions(c),
    ]
    return "\n".join(line for line in lines if line) + _BODY
