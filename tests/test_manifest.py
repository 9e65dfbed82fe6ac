"""Manifest parsing: typed, frozen, variants merged; every error names file, line, key and value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from helpers import toy_manifest
from pytest_vdbench.manifest import ManifestError, discover_manifests, load_manifest, parse_bytes, parse_seconds


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, path.parent)
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "value"), [("512m", 512 * 2**20), ("2g", 2 * 2**30), ("1.5GiB", int(1.5 * 2**30)), (4096, 4096)]
)
def test_parse_bytes(text: str | int, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize(("text", "value"), [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("250ms", 0.25), (2, 2.0)])
def test_parse_seconds(text: str | int, value: float) -> None:
    assert parse_seconds(text) == value


@pytest.mark.parametrize("bad", ["lots", "-5", "5 parsecs", True])
def test_parse_bytes_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected a size|must not be negative"):
        parse_bytes(bad)


def test_variants_override_and_are_sorted(tmp_path: Path) -> None:
    doc = toy_manifest(
        variants={"tiny": {"resources": {"memory": "1g"}}, "full": {"requires": {"gpu": True}, "resources": {"gpus": 1}}}
    )
    specs = load_manifest(write(tmp_path, yaml.safe_dump(doc)), tmp_path)
    assert [s.id for s in specs] == ["toy-full", "toy-tiny"]
    full, tiny = specs
    assert tiny.manifest.resources.memory == 2**30
    assert tiny.manifest.resources.cpus == 1  # untouched keys are inherited
    assert full.manifest.resources.gpus == 1 and full.manifest.requires.gpu
    with pytest.raises(ValidationError):
        tiny.manifest.resources.memory = 5  # type: ignore[misc]  # frozen


def test_no_variants_gives_one_default(tmp_path: Path) -> None:
    (spec,) = load_manifest(write(tmp_path, yaml.safe_dump(toy_manifest())), tmp_path)
    assert spec.id == "toy" and spec.variant == "default"
    assert len(spec.manifest_sha256) == 64


def test_typo_key_names_file_line_key_and_suggests(tmp_path: Path) -> None:
    text = yaml.safe_dump(toy_manifest(), sort_keys=False).replace("resources:", "resourses:")
    path = write(tmp_path, text)
    line = text.splitlines().index("resourses:") + 1
    (problem,) = errors_of(path)
    assert problem.startswith(f"{path}:{line}: resourses: unknown key 'resourses'; did you mean 'resources'?")


def test_nested_typo_and_impossible_values(tmp_path: Path) -> None:
    doc = toy_manifest()
    doc["resources"] = {"cpus": 0, "memory": "2 zettabytes", "gpus": -1}
    doc["expect"] = {"range": [1, 0], "shape": [4, 0]}
    doc["timeouts"] = {"startup": "soon"}
    problems = "\n".join(errors_of(write(tmp_path, yaml.safe_dump(doc))))
    assert "resources.cpus: Input should be greater than 0 (got 0)" in problems
    assert "resources.memory: expected a size such as 512m, 2g or 1.5GiB, got '2 zettabytes'" in problems
    assert "resources.gpus: Input should be greater than or equal to 0 (got -1)" in problems
    assert "timeouts.startup: expected a duration such as 30s, 5m or 250ms, got 'soon'" in problems
    assert "expect.shape: dimensions must be positive, got [0]" in problems
    assert "expect.range: range low 1.0 is greater than high 0.0" in problems


def test_error_in_variant_points_into_the_variant(tmp_path: Path) -> None:
    doc = toy_manifest(variants={"tiny": {}, "full": {"resources": {"memroy": "1g"}}})
    (problem,) = errors_of(write(tmp_path, yaml.safe_dump(doc)))
    assert ": variants.full.resources.memroy: unknown key 'memroy'; did you mean 'memory'?" in problem


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    (problem,) = errors_of(write(tmp_path, "name: x\nmodality: [video\n"))
    assert problem.startswith(f"{tmp_path / 'm.yaml'}:") and "invalid YAML" in problem


def test_model_level_rules(tmp_path: Path) -> None:
    doc = toy_manifest(resources={"gpus": 1}, cases=[{"id": "a"}, {"id": "a"}])
    problems = "\n".join(errors_of(write(tmp_path, yaml.safe_dump(doc))))
    assert "case ids must be unique, repeated: ['a']" in problems


def test_gpu_without_requires(tmp_path: Path) -> None:
    (problem,) = errors_of(write(tmp_path, yaml.safe_dump(toy_manifest(resources={"gpus": 1}))))
    assert "resources.gpus > 0 needs requires.gpu: true" in problem


def test_tabular_case_needs_dataset(tmp_path: Path) -> None:
    (problem,) = errors_of(write(tmp_path, yaml.safe_dump(toy_manifest(modality="tabular"))))
    assert "tabular cases need a dataset: ['fox']" in problem


def test_case_expect_override(tmp_path: Path) -> None:
    doc = toy_manifest(cases=[{"id": "big", "params": {"frames": 8}, "expect": {"shape": [8, 3, 16, 16]}}])
    (spec,) = load_manifest(write(tmp_path, yaml.safe_dump(doc)), tmp_path)
    expect = spec.manifest.case_expect(spec.manifest.cases[0])
    assert expect.shape == [8, 3, 16, 16] and expect.dtype == "float32"


def test_discover_is_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for rel in ["b/z.yaml", "a/y.yml", "_drafts/x.yaml", ".hidden/w.yaml", "a/notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in discover_manifests([tmp_path])] == ["a/y.yml", "b/z.yaml"]


def test_bad_manifest_fails_its_test_with_one_line_per_problem(
    pytester: pytest.Pytester, write_suite: Callable[..., Path]
) -> None:
    text = yaml.safe_dump(toy_manifest(), sort_keys=False).replace("modality: video", "modality: audio")
    suite = write_suite(text, names=["broken"])
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ suite/broken.yaml: invalid manifest _*",
            "suite/broken.yaml:2: modality: Input should be 'video' or 'tabular' (got 'audio')",
        ]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_duplicate_model_names_rejected(pytester: pytest.Pytester, write_suite: Callable[..., Path]) -> None:
    suite = write_suite(toy_manifest(), toy_manifest(), names=["one", "two"])
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "-k", "manifest or requirements")
    result.assert_outcomes(passed=1, failed=1)  # one.yaml's model runs, two.yaml is the failing one
    result.stdout.fnmatch_lines(["suite/two.yaml:1: name: model name 'toy' is already used by *one.yaml"])
