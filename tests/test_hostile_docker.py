"""Hostile manifests against the real docker runtime: one bad model fails alone, the rest run.

Marked ``docker``: they skip without an engine, except in CI (VDBENCH_REQUIRE_DOCKER=1).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import containers, docker_or_skip, toy_manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _engine() -> None:
    docker_or_skip()


def test_a_yaml_date_in_options_fails_that_model_at_once_and_the_next_model_runs(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    """Both models ask for every CPU of the host: a reservation leaked by the first blocks the second."""
    cpus = os.cpu_count() or 1
    bad = toy_manifest("a-dated", resources={"cpus": cpus, "memory": "512m"})
    good = toy_manifest("b-fine", resources={"cpus": cpus, "memory": "512m"})
    text = yaml.safe_dump(bad, sort_keys=False).replace("  fault: none\n", "  fault: none\n  since: 2024-01-01\n")
    assert "since: 2024-01-01" in text
    suite = write_suite(text, good, names=["a-dated", "b-fine"])
    refused = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "docker", "suite/a-dated.yaml::manifest"
    )  # fmt: skip
    refused.assert_outcomes(failed=1)  # validation fails that manifest's one test first, in one line
    refused.stdout.fnmatch_lines(["*a-dated.yaml:6: options.since: datetime.date(2024, 1, 1) (date) cannot be sent as JSON*"])
    # the runtime's own guard, for whatever a validator misses: switch the manifest check off
    pytester.makeconftest("import pytest_vdbench.manifest as m\nm.non_json = lambda value, loc: iter(())\n")
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "docker",
        "--vdbench-reserve-timeout", "60", "-p", "no:cacheprovider", "-p", "no:randomly", "-rfEs",
        timeout=600,
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*a-dated*options.since: datetime.date(2024, 1, 1) (date) cannot be sent*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, result.stdout.str()  # the first test names it; the rest skip
    assert outcomes.get("passed") == 8 and "error" not in outcomes  # b-fine: 7; a-dated: test_build
    assert "resources did not free up" not in result.stdout.str()
    assert containers("a-dated", "b-fine") == []


# --- image builds: bounded, never a half tag, never a re-pointed tag ---------------------------


@pytest.fixture
def engine_client() -> Iterator[Any]:
    import docker

    client = docker.from_env()
    yield client
    client.close()


def _tags(client: Any, repo: str) -> list[str]:
    return sorted(t for image in client.images.list(name=repo) for t in image.tags)


def _plan(client: Any, tmp_path: Path, dockerfile_tail: str) -> Any:
    from pytest_vdbench.runtime.bases import ensure_base
    from pytest_vdbench.runtime.images import plan_image

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n" + dockerfile_tail)
    (ctx / "nonce").write_text(uuid.uuid4().hex)  # a fresh hash: really built
    return plan_image(ctx, "Dockerfile", {}, ensure_base(client, "bookworm").tag, client=client)


def test_a_build_past_timeouts_build_fails_in_time_and_leaves_no_tag(engine_client: Any, tmp_path: Path) -> None:
    from pytest_vdbench.runtime.images import ImageBuildError, build_image

    plan = _plan(engine_client, tmp_path, 'RUN ["sleep", "120"]\n')
    start = time.monotonic()
    with pytest.raises(ImageBuildError, match=r"ran past its timeout of 3s \(timeouts.build"):
        build_image(engine_client, plan, "slow-build", tmp_path / "logs", lock_dir=tmp_path / "locks", timeout=3)
    assert time.monotonic() - start < 60  # bounded by the timeout (twice it at worst), not by the step
    assert _tags(engine_client, "vdbench/slow-build") == []


def test_a_failed_build_leaves_no_tag(engine_client: Any, tmp_path: Path) -> None:
    from pytest_vdbench.runtime.images import ImageBuildError, build_image

    plan = _plan(engine_client, tmp_path, 'RUN ["false"]\n')
    with pytest.raises(ImageBuildError):
        build_image(engine_client, plan, "failed-build", tmp_path / "logs", lock_dir=tmp_path / "locks")
    assert _tags(engine_client, "vdbench/failed-build") == []


def test_an_existing_tag_is_never_re_pointed(engine_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs that did not share a lock (different TMPDIR, before) both built one hash: the second
    build must keep the first image under the tag, not move the tag to its own image."""
    import pytest_vdbench.runtime.images as images

    plan = _plan(engine_client, tmp_path, 'ARG NONCE=a\nRUN ["sh", "-c", "echo $NONCE > /tmp/nonce"]\n')
    first = images.build_image(engine_client, plan, "repoint", tmp_path / "logs", lock_dir=tmp_path / "locks")
    # the other run's build: the same tag, but (nondeterministic builds, another engine cache) another image
    other = dataclasses.replace(plan, build_args=(("NONCE", uuid.uuid4().hex),))
    try:
        real = images._existing
        calls: list[str] = []

        def blind_once(client: Any, tag: str, log_path: Path) -> Any:  # the race: not there when looked for
            calls.append(tag)
            return None if len(calls) <= 2 else real(client, tag, log_path)

        monkeypatch.setattr(images, "_existing", blind_once)
        monkeypatch.setattr(images, "_same_hash", lambda *a: None)
        second = images.build_image(
            engine_client, other, "repoint", tmp_path / "logs2", lock_dir=tmp_path / "other-locks", timeout=600
        )
        assert engine_client.images.get(first.tag).id == first.image_id  # not re-pointed
        assert second.image_id == first.image_id and second.cached
        assert _tags(engine_client, "vdbench/repoint") == [first.tag]  # the second build's private tag is gone
    finally:
        engine_client.images.remove(first.tag, force=True)


def test_a_sigkilled_runs_container_ledger_and_work_folder_are_swept_by_the_next_run(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], tmp_path: Path
) -> None:
    """SIGKILL skips every cleanup; the next run (another process) removes what the dead one left,
    and only that: its own container is labelled with its host and pid."""
    import json
    import signal
    import subprocess
    import sys

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    suite = write_suite(toy_manifest("killed"))
    pytester.makepyfile(
        test_die="""
        import os, signal
        def test_die(vdbench_run, vdbench_endpoint):
            labels = vdbench_run.instance.container.get_wrapped_container().labels
            assert labels["org.vdbench.pid"] == str(os.getpid()) and labels["org.vdbench.host"]
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp)}
    args = ["--vdbench", "--vdbench-suite", str(suite), "--vdbench-runtime", "docker", "-p", "no:cacheprovider"]
    died = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "test_die.py", "-k", "test_die"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert died.returncode == -signal.SIGKILL, died.stdout.decode()[-2000:]
    assert containers("killed"), died.stdout.decode()[-3000:]
    leftovers = [p for p in tmp.iterdir() if p.name.startswith("vdbench-") and (p / "owner.json").exists()]
    ledgers = [p for p in tmp.glob("vdbench-ledger-*.json") if json.loads(p.read_text())]
    assert leftovers and ledgers
    again = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-k", "test_health"], cwd=pytester.path, env=env, capture_output=True, timeout=300
    )
    assert again.returncode == 0, again.stdout.decode()[-2000:]
    assert containers("killed") == []
    assert not any(p.exists() for p in leftovers) and not any(p.exists() for p in ledgers)
