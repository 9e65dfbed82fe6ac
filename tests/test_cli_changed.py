"""``vdbench changed`` maps a git diff to the models it touches; the example workflow uses it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from pytest_vdbench.tools.cli import main


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for args in (["new", "alpha"], ["new", "beta"], ["new", "gamma", "--modality", "tabular"]):
        assert main(args) == 0
    (tmp_path / "README.md").write_text("project\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    git(tmp_path, "checkout", "-q", "-b", "pr")
    return tmp_path


def changed(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["changed", "--base", "main", *args]) == 0
    return capsys.readouterr().out.strip()


def test_context_manifest_and_dataset_changes_map_to_models(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert changed(capsys) == ""  # nothing changed: nothing printed, the workflow skips the suite
    (repo / "README.md").write_text("other\n")
    assert changed(capsys) == ""
    module = repo / "containers" / "alpha" / "alpha_adapter.py"
    module.write_text(module.read_text() + "\n# tweak\n")
    assert changed(capsys) == "--vdbench-model=alpha"
    data = repo / "model_suites" / "tabular" / "data" / "gamma.csv"
    data.write_text(data.read_text() + "30,40.0,A,0,no\n")
    git(repo, "commit", "-q", "-am", "alpha and gamma")
    assert changed(capsys, "--committed") == "--vdbench-model=alpha --vdbench-model=gamma"
    manifest = repo / "model_suites" / "video" / "beta.yaml"
    manifest.write_text(manifest.read_text().replace("rounds: 3", "rounds: 2"))
    assert changed(capsys, "--committed") == "--vdbench-model=alpha --vdbench-model=gamma"  # beta is not committed yet
    assert changed(capsys, "--format", "json") == '["alpha", "beta", "gamma"]'


def test_a_broken_manifest_still_maps_by_its_name(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = repo / "model_suites" / "video" / "beta.yaml"
    manifest.write_text(manifest.read_text().replace("resources:", "resourses:"))
    assert changed(capsys, "--format", "names") == "beta"


def test_unknown_base_is_an_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["changed", "--base", "no-such-ref"]) == 1
    assert "vdbench: error: git diff --name-only no-such-ref...HEAD:" in capsys.readouterr().err


def test_example_workflow_validates_then_runs_only_changed_models() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "vdbench.yml").read_text())
    steps = workflow["jobs"]["validate"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "vdbench validate --strict --format github" in runs and "vdbench changed --committed --base" in runs
    conformance = workflow["jobs"]["conformance"]
    assert conformance["if"] == "needs.validate.outputs.models != ''"
    run = "\n".join(step.get("run", "") for step in conformance["steps"])
    assert "pytest --vdbench ${{ needs.validate.outputs.models }}" in run
    assert 'vdbench ab "$model" --base-ref "$base"' in run  # then each changed model timed against the base branch
    assert workflow[True]["pull_request"]["paths"] == ["model_suites/**", "containers/**"]  # YAML 1.1 reads `on` as True
