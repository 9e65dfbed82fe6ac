"""The container plan (runtime/plan.py): one pure function, rendered by docker, compose, k8s (and Slurm)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import toy_manifest
from pytest_vdbench.manifest import ModelSpec, load_manifest
from pytest_vdbench.protocols import PROTOCOLS, ready_probe
from pytest_vdbench.runtime import plan as plan_module
from pytest_vdbench.runtime.plan import (
    HF_CACHE_TARGET,
    LABEL_MODEL,
    SOCKET_PATH,
    ContainerPlan,
    Hardening,
    probe_script,
)
from pytest_vdbench.runtime.plan import container_plan as _container_plan


def container_plan(spec: ModelSpec, image: str, **kwargs: Any) -> ContainerPlan:
    """The plan with the built-in descriptor of the spec's protocol (what the session hands a runtime)."""
    return _container_plan(spec, image, protocol=PROTOCOLS.get(spec.manifest.protocol), **kwargs)


def spec_of(tmp_path: Path, variant: str = "default", **overrides: Any) -> ModelSpec:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(toy_manifest("toy", **overrides), sort_keys=False))
    return next(s for s in load_manifest(path, tmp_path) if s.variant == variant)


def test_limits_hardening_labels_and_timeouts(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path,
        resources={"cpus": 2.5, "memory": "3g", "shm": "128m", "pids": 300, "gpus": 1, "gpu_memory": "8g"},
        requires={"gpu": True},
    )
    plan = container_plan(spec, "img:1", labels={"org.vdbench.run": "r1"})
    lim = plan.limits
    assert (lim.cpus, lim.memory, lim.shm, lim.pids, lim.gpus, lim.gpu_memory) == (2.5, 3 << 30, 128 << 20, 300, 1, 8 << 30)
    assert lim.memswap == lim.memory  # no swap
    hard = plan.hardening
    assert hard.user_spec == "10001:10001" and hard.cap_drop == ("ALL",) and hard.security_opt == ("no-new-privileges",)
    assert hard.read_only_root and hard.tmpfs == (("/tmp", "size=1g"),)
    assert plan.labels_dict == {LABEL_MODEL: "toy", "org.vdbench.manifest": "m.yaml", "org.vdbench.run": "r1"}
    assert plan.image == "img:1" and plan.port == 8080 and plan.network == "bridge"
    # startup 20 s + (1 warm-up + 9 extra calls) x 10 s + timed rounds (30 s, and the round in flight: 10 s)
    assert plan.timeouts.startup == 20 and plan.timeouts.generate == 10 and plan.timeouts.deadline == 20 + 100 + 40
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.image = "other"  # type: ignore[misc]


def test_the_deadline_covers_the_adaptive_rounds_and_the_load_levels(tmp_path: Path) -> None:
    def deadline(timed_seconds: float | None = None, **overrides: Any) -> float:
        return container_plan(spec_of(tmp_path, **overrides), "img", timed_seconds=timed_seconds).timeouts.deadline

    fixed = 20 + (1 + 9) * 10  # startup, then the warm-up and the extra calls at the generate timeout
    assert deadline() == fixed + 30 + 10  # --vdbench-max-duration's default, plus the round in flight
    assert deadline(timed_seconds=120) == fixed + 120 + 10  # the run's --vdbench-max-duration
    assert deadline(timed_seconds=120, timing={"max_duration": "5s"}) == fixed + 5 + 10  # the manifest wins
    assert deadline(timing={"max_rounds": 2}) == fixed + 2 * 10  # two rounds cost less than 40 s
    load = {"concurrency": [1, 2, 4], "requests": 20, "duration": "15s"}
    assert deadline(load=load) == fixed + 40 + 3 * (15 + 10)  # each level stops at its duration, plus calls in flight


def test_command_env_and_readiness_per_protocol(tmp_path: Path) -> None:
    native = container_plan(spec_of(tmp_path, env={"A": "1"}, requires={"env": ["TOY_KEY"]}), "img")
    assert native.command == (
        "python",
        "-m",
        "pytest_vdbench.adapter",
        "serve",
        "toy:ToyVideo",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    )
    assert native.env_dict == {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "VDBENCH_OPTIONS": '{"fault": "none"}', "A": "1"}
    assert native.env_from_host == ("TOY_KEY",)  # a value never written into the plan
    assert (native.readiness.path, native.readiness.statuses, native.listen_port_arg) == ("/health/ready", (), True)
    cog = container_plan(spec_of(tmp_path, protocol="cog", adapter="predict.py:P", options={}, expect={}), "img")
    assert cog.port == 5000 and cog.command == ("python", "-m", "cog.server.http", "--host", "0.0.0.0")
    assert cog.env_dict["COG_PREDICT_TYPE_STUB"] == "predict.py:P" and cog.env_dict["PORT"] == "5000"
    assert (cog.readiness.path, cog.readiness.statuses) == ("/health-check", ("READY", "BUSY"))
    oip = container_plan(spec_of(tmp_path, protocol="oip-v2", adapter=None, options={}, expect={}), "img")
    assert oip.command is None and oip.readiness.path == "/v2/health/ready"
    own = container_plan(spec_of(tmp_path, protocol="oip-v2", adapter=None, options={}, command=["mlserver", "start", "/m"]), "i")
    assert own.command == ("mlserver", "start", "/m") and not own.listen_port_arg


def test_sandbox_weights_and_mounts(tmp_path: Path) -> None:
    boxed = container_plan(spec_of(tmp_path, sandbox={"network": "none"}), "img")
    assert boxed.network == "none" and boxed.command is not None and boxed.command[-2:] == ("--unix-socket", SOCKET_PATH)
    assert boxed.readiness.unix_socket == SOCKET_PATH and [m.name for m in boxed.mounts] == ["sockets"]
    assert container_plan(spec_of(tmp_path), "img", sandbox=True).network == "none"  # --vdbench-sandbox
    tcp = container_plan(spec_of(tmp_path), "img", sandbox=True, unix_socket=False)  # k8s: isolation by policy
    assert tcp.network == "none" and tcp.readiness.unix_socket is None and tcp.mounts == ()
    weights = {"gpu": False, "weights": [{"repo": "org/ckpt"}]}
    heavy = container_plan(spec_of(tmp_path, requires=weights), "img", hf_cache="/data/hub")
    (mount,) = heavy.mounts
    assert (mount.name, mount.source, mount.target, mount.read_only) == ("hf-cache", "/data/hub", HF_CACHE_TARGET, True)
    assert heavy.env_dict["HF_HUB_OFFLINE"] == "1" and heavy.env_dict["HF_HUB_CACHE"] == HF_CACHE_TARGET


def test_probe_script_checks_cog_status_and_unix_socket(tmp_path: Path) -> None:
    cog = container_plan(spec_of(tmp_path, protocol="cog", adapter="predict.py:P", options={}), "img").readiness
    script = probe_script(cog)
    assert "http://127.0.0.1:5000/health-check" in script and "('READY', 'BUSY')" in script
    assert "AF_UNIX" in probe_script(container_plan(spec_of(tmp_path, sandbox={"network": "none"}), "img").readiness)


# -- one hardening change, seen by every renderer ---------------------------------------------------
def _docker(spec: ModelSpec) -> str:
    pytest.importorskip("testcontainers")
    from pytest_vdbench.runtime.docker import DockerInstance

    instance = DockerInstance(spec, "img", "run", protocol=PROTOCOLS.get("native"), ready_probe=ready_probe)
    return repr({**instance.container._kwargs, "tmpfs": instance.container.tmpfs})


def _compose(spec: ModelSpec) -> str:
    from pytest_vdbench.tools.compose import service_for

    return repr(service_for(spec, spec.path.parent, 18080))


def _k8s(spec: ModelSpec) -> str:
    from pytest_vdbench.tools.k8s import resources_for

    return repr(resources_for(spec))


def _slurm(spec: ModelSpec) -> str:
    from pytest_vdbench.runtime.plan import container_plan
    from pytest_vdbench.runtime.slurm_job import LAUNCHERS, JobFiles, render_script

    ref = "127.0.0.1:5077/vdbench/toy@sha256:" + "0" * 64
    plan = container_plan(spec, ref, protocol=PROTOCOLS.get(spec.manifest.protocol), unix_socket=False)
    return "\n".join(render_script(plan, launcher, JobFiles("/shared")) for launcher in LAUNCHERS.values())


#: name -> render the spec through that target's public entry point, as text to search
RENDERERS: dict[str, Callable[[ModelSpec], str]] = {"docker": _docker, "compose": _compose, "k8s": _k8s, "slurm": _slurm}


@pytest.mark.parametrize("target", sorted(RENDERERS))
def test_one_hardening_change_reaches_every_renderer(target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of(tmp_path)
    before = RENDERERS[target](spec)
    assert "10001" in before and "20002" not in before
    changed = Hardening(user=20002, group=20002, tmpfs=(("/tmp", "size=77m"),))
    monkeypatch.setattr(plan_module, "DEFAULT_HARDENING", changed)
    after = RENDERERS[target](spec)
    assert "20002" in after and "10001" not in after, target
    assert "77m" in after or "77Mi" in after, target


def test_plan_is_the_only_place_hardening_is_written() -> None:
    """No renderer keeps its own copy of the user id or the protocols' health paths."""
    root = Path(plan_module.__file__).parent.parent
    for rel in ("runtime/docker.py", "tools/compose.py", "tools/k8s.py", "runtime/slurm.py", "runtime/slurm_job.py"):
        text = (root / rel).read_text()
        for literal in ("10001", "no-new-privileges", "/health/ready", "/health-check", "/v2/health"):
            assert literal not in text, f"{rel} holds its own {literal!r}"


def test_plan_type_is_what_renderers_take() -> None:
    from pytest_vdbench.runtime.docker import docker_run_kwargs

    assert "ContainerPlan" in str(docker_run_kwargs.__annotations__["plan"])
    assert ContainerPlan.__dataclass_params__.frozen  # type: ignore[attr-defined]
