"""Confinement: datasets, contexts and Dockerfiles resolve inside the project unless a folder is allowed.

Also special files in a build context (FIFO, socket, device) are refused instead of blocking the
planner. No Docker needed.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import ADAPTERS, toy_manifest
from pytest_vdbench.checks.metrics import builtin_registry
from pytest_vdbench.manifest import load_manifest
from pytest_vdbench.manifest.validate import validate_paths
from pytest_vdbench.runtime.cogyaml import cog_yaml_problems
from pytest_vdbench.tools.cli import main

CSV = "a,b\n1,2\n3,4\n"


@pytest.fixture(autouse=True)
def _no_allowance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VDBENCH_ALLOW_PATH", raising=False)


def project(tmp_path: Path, **overrides: Any) -> Path:
    """tmp_path/project with a copy of the toy context and one manifest; returns the manifest."""
    root = tmp_path / "project"
    (root / "ctx").mkdir(parents=True)
    for name in ("Dockerfile", "toy.py"):
        (root / "ctx" / name).write_text((ADAPTERS / name).read_text())
    manifest = root / "m.yaml"
    doc = toy_manifest("conf", image={"context": "./ctx", "base": "bookworm"}, **overrides)
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return manifest


def errors(manifest: Path, root: Path, allow: tuple[Path, ...] = ()) -> list[str]:
    report = validate_paths([manifest], root, builtin_registry(), allow, cog_check=cog_yaml_problems)
    return [p.format(root) for p in report.errors]


def with_dataset(tmp_path: Path, dataset: str) -> Path:
    doc = toy_manifest("conf")
    return project(tmp_path, cases=[{**doc["cases"][0], "dataset": dataset}])


def test_the_control_project_is_clean(tmp_path: Path) -> None:
    manifest = project(tmp_path)
    assert errors(manifest, manifest.parent) == []


def test_a_dataset_that_climbs_out_is_refused(tmp_path: Path) -> None:
    manifest = with_dataset(tmp_path, "../../../../../../../../etc/passwd")
    (line,) = errors(manifest, manifest.parent)
    assert line.startswith("m.yaml:") and "cases.0.dataset: case 'fox': /etc/passwd is outside the project" in line
    assert "--vdbench-allow-path=/etc" in line


def test_a_dataset_symlinked_out_is_refused_and_never_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(CSV)
    manifest = with_dataset(tmp_path, "data.csv")
    (manifest.parent / "data.csv").symlink_to(outside / "secret.csv")
    (line,) = errors(manifest, manifest.parent)
    assert f"{outside / 'secret.csv'} is outside the project" in line
    from pytest_vdbench.data.split import load_case_data

    spec = load_manifest(manifest, manifest.parent)[0]
    with pytest.raises(PermissionError, match="is outside the project"):
        load_case_data(spec, spec.manifest.cases[0])


def test_an_allowed_folder_is_accepted_by_validate_and_its_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.csv").write_text(CSV)
    manifest = with_dataset(tmp_path, str(outside / "data.csv"))
    assert errors(manifest, manifest.parent, (outside,)) == []
    assert main(["validate", str(manifest), "--root", str(manifest.parent)]) == 1
    assert "is outside the project" in capsys.readouterr().out
    assert main(["validate", str(manifest), "--root", str(manifest.parent), "--vdbench-allow-path", str(outside)]) == 0


def test_a_context_outside_the_project_is_refused(tmp_path: Path) -> None:
    manifest = project(tmp_path)
    doc = yaml.safe_load(manifest.read_text())
    doc["image"]["context"] = str(ADAPTERS)
    manifest.write_text(yaml.safe_dump(doc))
    (line,) = errors(manifest, manifest.parent)
    assert f"image.context: {ADAPTERS} is outside the project" in line
    assert errors(manifest, manifest.parent, (ADAPTERS,)) == []


def test_a_context_symlinked_out_is_refused(tmp_path: Path) -> None:
    manifest = project(tmp_path)
    (manifest.parent / "linked").symlink_to(ADAPTERS)
    doc = yaml.safe_load(manifest.read_text())
    doc["image"]["context"] = "./linked"
    manifest.write_text(yaml.safe_dump(doc))
    (line,) = errors(manifest, manifest.parent)
    assert f"image.context: {ADAPTERS} is outside the project" in line


def test_a_suite_outside_the_project_is_confined_to_its_own_folder(tmp_path: Path) -> None:
    manifest = project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert errors(manifest, elsewhere) == []  # ./ctx lies in the manifest's own folder
    doc = yaml.safe_load(manifest.read_text())
    doc["image"]["context"] = "../sibling"
    (tmp_path / "sibling").mkdir()
    manifest.write_text(yaml.safe_dump(doc))
    (line,) = errors(manifest, elsewhere)
    assert f"{tmp_path / 'sibling'} is outside the project {manifest.parent}" in line


def test_a_dockerfile_symlinked_out_of_its_context_is_refused(tmp_path: Path) -> None:
    manifest = project(tmp_path)
    ctx = manifest.parent / "ctx"
    (ctx / "Dockerfile").unlink()
    (ctx / "Dockerfile").symlink_to(ADAPTERS / "Dockerfile")
    (line,) = errors(manifest, manifest.parent)
    assert "image.dockerfile: Dockerfile 'Dockerfile' not found in the build context" in line
    from pytest_vdbench.runtime.images import plan_image

    with pytest.raises(FileNotFoundError, match="not found inside the image context"):
        plan_image(ctx, "Dockerfile", {}, "base", base_id="sha256:0")


def test_the_docker_runtime_refuses_an_outside_context_before_any_engine_call(tmp_path: Path) -> None:
    from pytest_vdbench.runtime.docker import build_model_image
    from pytest_vdbench.runtime.images import ImageBuildError

    manifest = project(tmp_path)
    doc = yaml.safe_load(manifest.read_text())
    doc["image"]["context"] = str(ADAPTERS)
    manifest.write_text(yaml.safe_dump(doc))
    spec = load_manifest(manifest, manifest.parent)[0]
    with pytest.raises(ImageBuildError, match="is outside the project"):
        build_model_image(None, spec, tmp_path / "logs")


def _plan_within(ctx: Path, seconds: float = 30.0) -> BaseException | None:
    """plan_image(ctx) in a thread: what it raised, or a failure if it blocks (a FIFO did, before)."""
    from pytest_vdbench.runtime.images import plan_image

    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            plan_image(ctx, "Dockerfile", {}, "base", base_id="sha256:0")
            raised.append(None)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"plan_image blocked for {seconds:g}s on {ctx}")
    return raised[0]


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    return ctx


def test_a_fifo_in_a_context_is_refused_not_waited_on(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    os.mkfifo(ctx / "pipe")
    exc = _plan_within(ctx)
    assert isinstance(exc, FileNotFoundError) and "pipe is a FIFO" in str(exc) and ".dockerignore" in str(exc)
    (ctx / ".dockerignore").write_text("pipe\n")
    assert _plan_within(ctx) is None  # ignored: never opened


def test_a_socket_in_a_context_is_refused(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(ctx / "s.sock"))
        exc = _plan_within(ctx)
    assert isinstance(exc, FileNotFoundError) and "s.sock is a socket" in str(exc)


def test_a_device_in_a_context_is_refused(tmp_path: Path) -> None:
    import stat

    ctx = _context(tmp_path)
    try:
        os.mknod(ctx / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device file needs root (CAP_MKNOD)")
    exc = _plan_within(ctx)
    assert isinstance(exc, FileNotFoundError) and "null is a device file" in str(exc)


def test_a_context_that_is_a_symlink_loop_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    exc = _plan_within(tmp_path / "a")
    assert isinstance(exc, FileNotFoundError) and "symlink loop" in str(exc)
