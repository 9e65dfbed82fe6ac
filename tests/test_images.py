"""Content-addressed image plans (no Docker) and real base/model builds (``docker`` marker)."""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from docker import DockerClient

from pytest_vdbench.runtime.bases import BASES, base_tag, ensure_base, find_recipe, pip_conf, recipe_hash
from pytest_vdbench.runtime.images import (
    BuildResult,
    DockerUnavailable,
    ImageBuildError,
    ImagePlan,
    build_image,
    connect_docker,
    image_repo,
    plan_image,
    write_context_tar,
)
from pytest_vdbench.tools.cli import main

FAKE_BASE_ID = "sha256:" + "a" * 64

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN pip install -q numpy
COPY .vdbench-sdk/ /opt/vdbench-sdk/
ENV PYTHONPATH=/opt/vdbench-sdk:/app
COPY app.py nonce.txt /app/
RUN python -c "import pytest_vdbench.adapter"
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "pkg").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "app.py").write_text("print('hi')\n")
    (ctx / "nonce.txt").write_text("")
    (ctx / "pkg" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    return ctx


def plan(ctx: Path, *, args: dict[str, str] | None = None, base_id: str = FAKE_BASE_ID) -> ImagePlan:
    return plan_image(ctx, "Dockerfile", args or {}, "vdbench/base:bookworm", base_id)


# --- hashing (no Docker) ------------------------------------------------------------------------


def test_hash_is_stable(context: Path) -> None:
    first = plan(context)
    assert plan(context).digest == first.digest
    assert first.tag("My Model/v1") == f"vdbench/my-model-v1:{first.digest[:16]}"
    assert first.files == ("Dockerfile", "app.py", "nonce.txt", "pkg", "pkg/weights.bin")


def test_hash_ignores_mtime_and_arg_order(context: Path) -> None:
    before = plan(context, args={"A": "1", "B": "2"}).digest
    os.utime(context / "app.py", (1, 1))
    assert plan(context, args={"B": "2", "A": "1"}).digest == before


@pytest.mark.parametrize(
    "change",
    ["edit a file", "add a file", "remove a file", "rename a file", "make a file executable", "edit the Dockerfile"],
)
def test_hash_changes_with_the_context(context: Path, change: str) -> None:
    before = plan(context).digest
    if change == "edit a file":
        (context / "pkg" / "weights.bin").write_bytes(b"\x00\x02" * 100)
    elif change == "add a file":
        (context / "extra.txt").write_text("x")
    elif change == "remove a file":
        (context / "app.py").unlink()
    elif change == "rename a file":
        (context / "pkg" / "weights.bin").rename(context / "pkg" / "weights2.bin")
    elif change == "make a file executable":
        (context / "app.py").chmod(0o755)
    else:
        (context / "Dockerfile").write_text(DOCKERFILE + "RUN true\n")
    assert plan(context).digest != before


def test_hash_changes_with_build_args_and_base_id(context: Path) -> None:
    digests = {
        plan(context).digest,
        plan(context, args={"EXTRA": "1"}).digest,
        plan(context, args={"EXTRA": "2"}).digest,
        plan(context, base_id="sha256:" + "b" * 64).digest,
    }
    assert len(digests) == 4


def test_hash_changes_with_the_dockerfile_name(context: Path) -> None:
    (context / "Other.Dockerfile").write_text(DOCKERFILE)
    assert (
        plan_image(context, "Other.Dockerfile", {}, "b", FAKE_BASE_ID).digest
        != plan_image(context, "Dockerfile", {}, "b", FAKE_BASE_ID).digest
    )


def test_dockerignore_excludes_files_from_hash_and_context(context: Path) -> None:
    (context / ".dockerignore").write_text("# comment\n*.log\npkg\n!pkg/keep.txt\n**/__pycache__\n")
    (context / "pkg" / "keep.txt").write_text("k")
    (context / "sub" / "__pycache__").mkdir(parents=True)
    (context / "sub" / "__pycache__" / "x.pyc").write_bytes(b"x")
    (context / "run.log").write_text("noise")
    first = plan(context)
    assert first.files == (".dockerignore", "Dockerfile", "app.py", "nonce.txt", "pkg/keep.txt", "sub")
    (context / "run.log").write_text("other noise")
    (context / "pkg" / "weights.bin").write_bytes(b"changed")
    assert plan(context).digest == first.digest
    (context / "pkg" / "keep.txt").write_text("changed")
    assert plan(context).digest != first.digest


def test_context_tar_stages_the_sdk(context: Path) -> None:
    buf = io.BytesIO()
    write_context_tar(plan(context), buf)
    with tarfile.open(fileobj=buf) as tar:
        names = set(tar.getnames())
    assert {"Dockerfile", "app.py", "pkg/weights.bin"} <= names
    assert ".vdbench-sdk/pytest_vdbench/__init__.py" in names
    assert ".vdbench-sdk/pytest_vdbench/adapter/server.py" in names
    assert not any(n.startswith(".vdbench-sdk/pytest_vdbench/images") for n in names)


def test_missing_dockerfile_is_named(context: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"'Nope\.Dockerfile' not found"):
        plan_image(context, "Nope.Dockerfile", {}, "b", FAKE_BASE_ID)


def test_image_repo_sanitizes_names() -> None:
    assert image_repo("CogVideoX_tiny") == "cogvideox_tiny"
    assert image_repo("a..b//c") == "a-b-c"
    with pytest.raises(ValueError, match="no character"):
        image_repo("///")


# --- base recipes (no Docker) ---------------------------------------------------------------------


def test_base_names_map_to_tags() -> None:
    assert base_tag("bookworm") == "vdbench/base:bookworm"
    assert base_tag("bullseye") == "vdbench/base:bullseye"
    assert base_tag("torch-cpu") == "vdbench/torch-cpu:bookworm"
    ref = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
    assert base_tag(ref) == ref
    assert find_recipe(ref) is None
    assert find_recipe("vdbench/base:bullseye") is BASES["bullseye"]


def test_recipe_hashes_differ_and_chain() -> None:
    hashes = {name: recipe_hash(recipe) for name, recipe in BASES.items()}
    assert len(set(hashes.values())) == len(BASES)
    assert recipe_hash(BASES["torch-cpu"]) == hashes["torch-cpu"]


def test_pip_conf_keeps_only_http_indexes() -> None:
    listed = (
        ":env:.index-url='https://mirror.example/simple'\n"
        "global.index-url='https://pypi.org/simple'\n"
        "global.extra-index-url='file:///opt/pypi/simple https://extra.example/simple'\n"
        "global.find-links='/opt/wheels'\n"
    )
    conf = pip_conf(listed)
    assert "index-url = https://mirror.example/simple" in conf
    assert "extra-index-url = https://extra.example/simple\n" in conf
    assert "file://" not in conf
    assert "/opt/wheels" not in conf
    assert pip_conf("global.extra-index-url='file:///opt/pypi/simple'\n") == (
        "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
    )


# --- real Docker ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_client() -> Iterator[DockerClient]:
    try:
        client = connect_docker()
    except DockerUnavailable as exc:
        if os.environ.get("VDBENCH_REQUIRE_DOCKER"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield client
    client.close()


@pytest.fixture(scope="module")
def bookworm(docker_client: DockerClient) -> str:
    result = ensure_base(docker_client, "bookworm")
    print(f"vdbench/base:bookworm: built={result.built} in {result.seconds:.1f}s {dict(result.steps)}")
    return result.tag


@pytest.mark.docker
def test_build_then_cached(docker_client: DockerClient, bookworm: str, context: Path, tmp_path: Path) -> None:
    (context / "nonce.txt").write_text(uuid.uuid4().hex)  # a fresh hash: the first build really builds
    the_plan = plan_image(context, "Dockerfile", {}, bookworm, client=docker_client)
    lines: list[str] = []
    first = build_image(docker_client, the_plan, "tiny-test", tmp_path / "logs", lines.append, lock_dir=tmp_path / "locks")
    try:
        assert not first.cached
        assert first.tag == the_plan.tag("tiny-test")
        assert first.size_bytes > 0 and first.build_seconds > 0
        assert first.log_path.is_file()
        assert any("import pytest_vdbench.adapter" in line for line in lines)
        second = build_image(docker_client, the_plan, "tiny-test", tmp_path / "logs", lock_dir=tmp_path / "locks")
        assert second.cached
        assert second.image_id == first.image_id
        image = docker_client.images.get(first.tag)
        assert image.labels["org.vdbench.hash"] == the_plan.digest
        assert image.labels["org.vdbench.model"] == "tiny-test"
    finally:
        docker_client.images.remove(first.tag, force=True)


@pytest.mark.docker
@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('RUN python -c "import vdbench_no_such_module"', "import vdbench_no_such_module"),
        ("FROMM nothing", "FROMM"),
    ],
    ids=["failing-run", "unknown-instruction"],
)
def test_broken_dockerfile_raises(
    docker_client: DockerClient, bookworm: str, context: Path, tmp_path: Path, bad_line: str, expected: str
) -> None:
    # No nonce: the tag never exists, so it always builds, and docker's cache keeps reruns quick and tidy.
    (context / "Dockerfile").write_text(DOCKERFILE + bad_line + "\n")
    the_plan = plan_image(context, "Dockerfile", {}, bookworm, client=docker_client)
    with pytest.raises(ImageBuildError) as info:
        build_image(docker_client, the_plan, "broken-test", tmp_path / "logs", lock_dir=tmp_path / "locks")
    message = str(info.value)
    assert "'broken-test'" in message
    assert expected in message
    assert str(tmp_path / "logs") in message
    assert info.value.log_path is not None and expected in info.value.log_path.read_text()


@pytest.mark.docker
def test_concurrent_builds_of_one_plan_build_once(
    docker_client: DockerClient, bookworm: str, context: Path, tmp_path: Path
) -> None:
    (context / "nonce.txt").write_text(uuid.uuid4().hex)
    the_plan = plan_image(context, "Dockerfile", {}, bookworm, client=docker_client)

    def build(_: int) -> BuildResult:
        return build_image(docker_client, the_plan, "tiny-race", tmp_path / "logs", lock_dir=tmp_path / "locks")

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(build, range(2)))
    try:
        assert sorted(r.cached for r in results) == [False, True]
        assert results[0].image_id == results[1].image_id
    finally:
        docker_client.images.remove(results[0].tag, force=True)


def test_cli_rejects_unknown_base(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["images", "bootstrap", "--base", "nope"]) == 1
    assert "unknown base 'nope'; known bases: bookworm, bullseye, torch-cpu" in capsys.readouterr().err


@pytest.mark.docker
def test_cli_bootstrap_and_list(docker_client: DockerClient, bookworm: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["images", "bootstrap", "--base", "bookworm"]) == 0
    assert "vdbench/base:bookworm" in capsys.readouterr().out
    assert main(["images", "list"]) == 0
    out = capsys.readouterr().out
    assert "vdbench/base:bookworm" in out
    assert "MB" in out
