"""cog.yaml models as they ship (``image: {cog: ...}``): the Dockerfile `cog build` would make, checked
without an engine; then, marked ``docker``, a real build whose apt step names a missing package."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import ROOT, containers, docker_or_skip
from pytest_vdbench.manifest import ManifestError, load_manifest
from pytest_vdbench.manifest.validate import validate_paths
from pytest_vdbench.runtime.cogyaml import (
    COG_DOCKERFILE,
    CogYamlError,
    base_for_python,
    cog_dockerfile,
    cog_yaml_problems,
    image_source,
    load_cog_yaml,
)
from pytest_vdbench.runtime.images import plan_image
from pytest_vdbench.tools.cli import installed_metrics

MP4 = ROOT / "containers" / "cog-mp4"


def cog_dir(tmp_path: Path, build: dict[str, Any] | None = None, **top: Any) -> Path:
    """A copy of containers/cog-mp4 with its cog.yaml's build keys replaced by ``build``."""
    target = tmp_path / "mymodel"
    shutil.copytree(MP4, target)
    cfg = yaml.safe_load((target / "cog.yaml").read_text())
    cfg["build"].update(build or {})
    cfg.update(top)
    (target / "cog.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return target


def manifest_doc(cog_yaml: str, **overrides: Any) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "model_suites" / "protocols" / "cog-mp4.yaml").read_text())
    doc["image"] = {"cog": cog_yaml}
    doc.update(overrides)
    return doc


def test_python_version_picks_the_base_or_lists_them() -> None:
    assert base_for_python("3.11") == "bookworm" and base_for_python("3.11.2") == "bookworm"
    assert base_for_python("3.9") == "bullseye"
    with pytest.raises(CogYamlError, match=r"no vdbench base has Python 3\.12; bases: bookworm \(Python 3\.11\), bullseye"):
        base_for_python("3.12")


def test_dockerfile_follows_cog_build(tmp_path: Path) -> None:
    cfg = load_cog_yaml(MP4 / "cog.yaml")
    text = cog_dockerfile(cfg, "bookworm")
    lines = text.splitlines()
    assert lines[1:3] == ["ARG BASE", "FROM ${BASE}"]
    apt = next(i for i, line in enumerate(lines) if "apt-get install" in line)
    pip = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install"))
    run = next(i for i, line in enumerate(lines) if "jq -e .apt" in line)
    copy = lines.index("COPY . /src")
    assert apt < pip < run < copy  # Cog's order: system packages, Python packages, run commands, the code
    assert "cog==0.23.1" in lines[pip] and "'imageio[ffmpeg]==2.38.2'" in lines[pip] and " jq" in lines[apt]
    assert 'COG_PREDICT_TYPE_STUB="predict.py:Predictor"' in text and "USER 10001" in text
    reqs = cog_dir(tmp_path, {"python_packages": [], "python_requirements": "requirements.txt"}, environment=["A=1"])
    text = cog_dockerfile(load_cog_yaml(reqs / "cog.yaml"), "bookworm")
    assert 'COPY ["requirements.txt", "/tmp/cog-requirements.txt"]' in text and "-r /tmp/cog-requirements.txt" in text
    assert 'A="1"' in text


@pytest.mark.parametrize(
    ("build", "top", "message"),
    [
        ({"python_version": "3.9"}, {}, r"cog==0\.23\.1 .* needs Python >= 3\.10"),
        ({"python_version": 3.1}, {}, r"python_version: .*YAML number; quote it"),
        ({"gpu": True}, {}, r"build\.gpu/cuda: vdbench builds cog\.yaml models for CPU only"),
        ({"python_requirements": "r.txt"}, {}, r"python_packages and build\.python_requirements"),
        ({"run": [{"command": "x", "mounts": [{"type": "secret"}]}]}, {}, r"mounts \(secrets\) are not supported"),
        ({"pre_install": ["x"]}, {}, r"build\.pre_install: Extra inputs are not permitted"),
        ({}, {"predict": None}, r"predict: required"),
    ],
)
def test_unbuildable_cog_yaml_is_refused_with_the_key(
    tmp_path: Path, build: dict[str, Any], top: dict[str, Any], message: str
) -> None:
    path = cog_dir(tmp_path, build, **top) / "cog.yaml"
    with pytest.raises(CogYamlError, match=message) as info:
        cfg = load_cog_yaml(path)
        cog_dockerfile(cfg, "bookworm", str(path))
    assert str(path) in str(info.value)


def test_content_hash_covers_cog_yaml(tmp_path: Path) -> None:
    model = cog_dir(tmp_path)
    (spec,) = load_manifest(_write(tmp_path, manifest_doc(str(model / "cog.yaml"))), tmp_path)

    def digest() -> str:
        base, dockerfile, generated, inputs = image_source(spec)
        assert (base, dockerfile) == ("bookworm", COG_DOCKERFILE)
        plan = plan_image(
            spec.context_dir, dockerfile, {}, "vdbench/base:bookworm", "sha256:base", generated=generated, inputs=inputs
        )
        assert plan.generated == ((COG_DOCKERFILE, generated[COG_DOCKERFILE]),)
        return plan.digest

    first = digest()
    cog = model / "cog.yaml"
    cog.write_text(cog.read_text() + "# a comment: the Dockerfile is the same, the hash is not\n")
    second = digest()
    cog.write_text(cog.read_text().replace("numpy==2.4.6", "numpy==2.4.5"))
    assert len({first, second, digest()}) == 3


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "suite" / f"{doc['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_manifest_rules_for_image_cog(tmp_path: Path) -> None:
    model = str(cog_dir(tmp_path) / "cog.yaml")
    (spec,) = load_manifest(_write(tmp_path, manifest_doc(model)), tmp_path)
    assert spec.cog_file == Path(model) and spec.context_dir == Path(model).parent
    bad = [
        (
            {k: v for k, v in manifest_doc(model, protocol="native", adapter="m:A").items() if k != "cog"},
            r"image\.cog builds a Cog model's image: set protocol: cog",
        ),
        ({**manifest_doc(model), "image": {"cog": model, "base": "bullseye"}}, "builds from cog.yaml alone"),
        ({**manifest_doc(model), "image": {"base": "bookworm"}}, r"give context \(a folder with a Dockerfile\) or cog"),
    ]
    for doc, message in bad:
        with pytest.raises(ManifestError, match=message):
            load_manifest(_write(tmp_path, doc), tmp_path)


def test_validate_reads_the_cog_yaml(tmp_path: Path) -> None:
    model = cog_dir(tmp_path, {"python_version": "3.12"})
    path = _write(tmp_path, manifest_doc(str(model / "cog.yaml")))
    (problem,) = validate_paths([path], tmp_path, installed_metrics(), cog_check=cog_yaml_problems).errors
    assert problem.key == "image.cog" and "no vdbench base has Python 3.12" in problem.message
    (model / "predict.py").rename(model / "other.py")
    (model / "cog.yaml").write_text((model / "cog.yaml").read_text().replace("'3.12'", "'3.11'"))
    (problem,) = validate_paths([path], tmp_path, installed_metrics(), cog_check=cog_yaml_problems).errors
    assert "predict: predict.py is not in" in problem.message
    shipped = ROOT / "model_suites" / "protocols" / "cog-mp4.yaml"
    assert not validate_paths([shipped], ROOT, installed_metrics(), cog_check=cog_yaml_problems).errors


@pytest.mark.docker
@pytest.mark.slow
def test_a_missing_system_package_fails_test_build_naming_it(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    docker_or_skip()
    model = cog_dir(pytester.path, {"system_packages": ["vdbench-no-such-package"]})
    doc = manifest_doc(str(model / "cog.yaml"), name="cogaptfail")
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-suite", str(write_suite(doc)), "-p", "no:cacheprovider", "-rfEs", timeout=600
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1 and "passed" not in outcomes, outcomes  # test_build fails, the rest skip
    result.stdout.fnmatch_lines(
        [
            "*FAILED*cogaptfail::test_build*",
            "*apt-get could not install cog.yaml build.system_packages [[]vdbench-no-such-package[]] on the bookworm base*",
        ]
    )
    assert containers("cogaptfail") == []


def test_compose_stages_the_generated_dockerfile(tmp_path: Path) -> None:
    from pytest_vdbench.tools.cli import main

    model = cog_dir(tmp_path)
    suite = _write(tmp_path, manifest_doc(str(model / "cog.yaml")))
    out = tmp_path / "deploy" / "docker-compose.yml"
    assert main(["compose", "--suite", str(suite), "--root", str(tmp_path), "-o", str(out)]) == 0
    build = yaml.safe_load(out.read_text())["services"]["cog-mp4"]["build"]
    assert build == {"context": "../mymodel", "dockerfile": COG_DOCKERFILE, "args": {"BASE": "vdbench/base:bookworm"}}
    staged = (model / COG_DOCKERFILE).read_text()
    assert staged == cog_dockerfile(load_cog_yaml(model / "cog.yaml"), "bookworm", f"{model / 'cog.yaml'} (image.cog in {suite})")
