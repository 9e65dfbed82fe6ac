"""The slurm runtime without a cluster: batch scripts, sbatch arguments, GPU memory mapping, registry names.

The launchers apptainer and pyxis are only rendered here (no such launcher on the test cluster);
docker and podman also run for real in test_slurm_cluster.py.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import toy_manifest
from pytest_vdbench.manifest import load_manifest
from pytest_vdbench.protocols import PROTOCOLS
from pytest_vdbench.runtime import StartupError
from pytest_vdbench.runtime.plan import ContainerPlan, container_plan
from pytest_vdbench.runtime.registry import Registry, parse_registry
from pytest_vdbench.runtime.slurm import SlurmOptions, gpu_constraint, sbatch_args, time_limit
from pytest_vdbench.runtime.slurm_job import LAUNCHERS, JobFiles, OciCli, render_script

REF = "127.0.0.1:5077/vdbench/toy@sha256:" + "a" * 64


def spec_of(tmp_path: Path, **overrides: Any) -> Any:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy_manifest("toy", **overrides), sort_keys=False))
    return load_manifest(path, tmp_path)[0]


def container(tmp_path: Path, **overrides: Any) -> ContainerPlan:
    spec = spec_of(tmp_path, **overrides)
    protocol = PROTOCOLS.get(spec.manifest.protocol)
    return container_plan(spec, REF, protocol=protocol, unix_socket=False, labels={"org.vdbench.run": "r1"})


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_every_launcher_renders_a_script_bash_accepts(tmp_path: Path, launcher: str) -> None:
    script = render_script(
        container(tmp_path, resources={"gpus": 1, "memory": "1g"}, requires={"gpu": True}),
        LAUNCHERS[launcher],
        JobFiles("/shared/run"),
    )
    assert script.startswith("#!/bin/bash\n")
    assert "trap 'finish TERM' TERM INT" in script and "EVENTS=/shared/run/job-$SLURM_JOB_ID.events" in script
    checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert ("not tested" in script.splitlines()[1]) is (launcher in ("apptainer", "pyxis"))


def run_function(tmp_path: Path, c: ContainerPlan, function: str = "vd_run") -> list[str]:
    """The argv ``vd_run`` would exec, with a stand-in launcher binary that prints its arguments."""
    stub = tmp_path / "argv"
    stub.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    stub.chmod(0o755)
    functions = OciCli(str(stub)).functions(c)
    env = "ADDR=10.0.0.7 PORT=40001 NAME=vdbench-toy-17 SLURM_JOB_ID=17 CUDA_VISIBLE_DEVICES=0,1"
    out = subprocess.run(["bash", "-c", f"{env}\n{functions}\n{function}"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_docker_and_podman_run_the_container_hardened_limited_and_labelled(tmp_path: Path) -> None:
    argv = run_function(tmp_path, container(tmp_path, resources={"cpus": 1.5, "memory": "300m", "pids": 64}))
    pairs = list(itertools.pairwise(argv))
    for flag, value in [
        ("--memory", str(300 * 2**20)),
        ("--memory-swap", str(300 * 2**20)),  # = memory: exceeding it is an OOM kill
        ("--cpus", "1.5"),
        ("--pids-limit", "64"),
        ("--user", "10001:10001"),
        ("--cap-drop", "ALL"),
        ("--security-opt", "no-new-privileges"),
        ("--label", "org.vdbench.run=r1"),
        ("--label", "org.vdbench.slurm.job=17"),
        ("-p", "10.0.0.7:40001:8080"),  # the node's address and the job's free port
        ("-e", "CUDA_VISIBLE_DEVICES=0,1"),
        ("--name", "vdbench-toy-17"),
    ]:
        assert (flag, value) in pairs, (flag, value)
    assert "--read-only" in argv
    assert argv[argv.index(REF) + 1 :] == [
        "python",
        "-m",
        "pytest_vdbench.adapter",
        "serve",
        "toy:ToyVideo",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]


def test_required_env_passes_by_name_never_by_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "secret-value")
    c = container(tmp_path, requires={"env": ["HF_TOKEN"]})
    argv = run_function(tmp_path, c)
    assert ("-e", "HF_TOKEN") in list(itertools.pairwise(argv))
    assert "secret-value" not in render_script(c, LAUNCHERS["docker"], JobFiles("/shared"))


def test_manifest_values_reach_the_container_literally_not_as_shell(tmp_path: Path) -> None:
    hostile = "$(touch pwned) `id` ; rm -rf / \"'"
    argv = run_function(tmp_path, container(tmp_path, env={"NOTE": hostile}))
    assert f"NOTE={hostile}" in argv
    assert not (tmp_path / "pwned").exists()


def test_gpus_go_to_docker_only_where_the_nvidia_driver_is(tmp_path: Path) -> None:
    gpu = LAUNCHERS["docker"].functions(container(tmp_path, resources={"gpus": 2}, requires={"gpu": True}))
    assert '[ -e /dev/nvidiactl ] && [ -n "${SLURM_JOB_GPUS:-}" ]' in gpu and '--gpus "device=$SLURM_JOB_GPUS"' in gpu
    assert LAUNCHERS["docker"].functions(container(tmp_path)).startswith("GPU_ARGS=()\n")


def test_apptainer_runs_the_docker_image_on_the_node_network_with_the_jobs_port(tmp_path: Path) -> None:
    text = LAUNCHERS["apptainer"].functions(container(tmp_path, resources={"gpus": 1}, requires={"gpu": True}))
    run = next(line for line in text.splitlines() if line.startswith("vd_run"))
    assert f"docker://{REF}" in run and " --nv " in run and "--containall" in run
    assert run.endswith('--port "$PORT" </dev/null; }')  # no port mapping: the server listens on the job's port
    assert '--env \'VDBENCH_OPTIONS={"fault": "none"}\'' in run


def test_pyxis_names_the_registry_with_a_hash_and_passes_the_env(tmp_path: Path) -> None:
    text = LAUNCHERS["pyxis"].functions(container(tmp_path))
    run = next(line for line in text.splitlines() if line.startswith("vd_run"))
    assert "--container-image=127.0.0.1:5077#vdbench/toy@sha256:" in run
    assert "--container-env=HOME,PYTHONDONTWRITEBYTECODE,VDBENCH_OPTIONS" in run and "export HOME=/tmp" in run
    assert run.endswith('--port "$PORT" </dev/null; }')


def options(**kw: Any) -> SlurmOptions:
    return SlurmOptions(registry=Registry("127.0.0.1", 5077), run_dir=Path("/shared"), **kw)


def test_sbatch_arguments_carry_limits_gpus_time_and_the_run_in_the_comment(tmp_path: Path) -> None:
    plan = container(tmp_path, resources={"cpus": 1.5, "memory": "1g", "gpus": 2, "gpu_memory": "12g"}, requires={"gpu": True})
    args = sbatch_args(
        plan,
        options(partition="gpu", gpu_constraints=((16 * 2**30, "gpumem16g"), (80 * 2**30, "a100"))),
        "vdbench run=r1",
        "/shared/job-%j.log",
    )
    assert args[:2] == ["sbatch", "--parsable"]
    for expected in [
        "--cpus-per-task=2",
        "--mem=1024M",
        "--gres=gpu:2",
        "--constraint=gpumem16g",
        "--partition=gpu",
        "--comment=vdbench run=r1",
        "--output=/shared/job-%j.log",
        "--job-name=vdbench-toy",
        f"--time={time_limit(plan)}",
    ]:
        assert expected in args
    assert "--gres" not in " ".join(sbatch_args(container(tmp_path), options(), "c", "l"))


def test_time_limit_bounds_every_test_of_the_model(tmp_path: Path) -> None:
    plan = container(tmp_path, timeouts={"startup": "60s", "generate": "30s"})  # 1 case, 2 rounds + 1 warmup
    assert plan.timeouts.deadline >= 60 + (2 + 1) * 30  # the plan's bound on the job's life
    assert time_limit(plan) == -(-(plan.timeouts.deadline + 300) // 60)


def test_gpu_memory_maps_to_the_smallest_constraint_that_fits() -> None:
    mapping = ((16 * 2**30, "gpumem16g"), (40 * 2**30, "a100_40g"), (80 * 2**30, "a100_80g"))
    assert gpu_constraint(20 * 2**30, mapping) == "a100_40g"
    assert gpu_constraint(16 * 2**30, mapping) == "gpumem16g"
    assert gpu_constraint(0, mapping) is None and gpu_constraint(8 * 2**30, ()) is None
    with pytest.raises(StartupError, match=r"more than any GPU in ini vdbench_slurm_gpu_constraints .*a100_80g"):
        gpu_constraint(120 * 2**30, mapping)


def test_registry_address_is_checked_and_names_images_under_its_prefix() -> None:
    registry = parse_registry("registry.hpc:5000/team/vd")
    assert registry.repository("vdbench/refvideo:0123abcd") == ("team/vd/vdbench/refvideo", "0123abcd")
    assert str(registry) == "registry.hpc:5000/team/vd"
    for bad in ["registry.hpc", "127.0.0.1:0", "host:99999", "http://h:5000"]:
        with pytest.raises(argparse.ArgumentTypeError, match="is not HOST:PORT"):
            parse_registry(bad)


def test_unreachable_registry_says_so_in_one_line() -> None:
    why = Registry("127.0.0.1", 1).unreachable()
    assert why is not None and "no registry answers at 127.0.0.1:1" in why and "\n" not in why


def test_bad_ini_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvdbench_slurm_gpu_constraints = 16g:gpumem16g\n")
    pytester.makepyfile(
        "from pytest_vdbench.options import slurm_options\ndef test_it(pytestconfig):\n    slurm_options(pytestconfig)\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*ini vdbench_slurm_gpu_constraints: '16g:gpumem16g' is not SIZE=FEATURE*"])
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--vdbench-slurm-launcher", "singularity", "-o", "vdbench_slurm_gpu_constraints="
    )
    result.stdout.fnmatch_lines(["*--vdbench-slurm-launcher 'singularity': valid launchers: docker, podman, apptainer, pyxis*"])
