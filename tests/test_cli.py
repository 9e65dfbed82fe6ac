"""The ``vdbench`` command line: subcommands, and CONTRIBUTING.md's manifest reference kept in sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT
from pytest_vdbench.manifest import Manifest
from pytest_vdbench.manifest.schema_doc import BEGIN, END, manifest_reference, replace_section
from pytest_vdbench.tools.cli import build_parser, main

CONTRIBUTING = ROOT / "CONTRIBUTING.md"


def test_contributing_manifest_reference_matches_the_schema() -> None:
    text = CONTRIBUTING.read_text()
    section = text[text.index(BEGIN) + len(BEGIN) + 1 : text.index(END)]
    assert section == manifest_reference(), (
        "CONTRIBUTING.md's manifest reference differs from the schema in manifest.py; "
        "regenerate it: vdbench schema --markdown --write CONTRIBUTING.md"
    )


def test_reference_documents_every_key() -> None:
    reference = manifest_reference()
    for name in Manifest.model_fields:
        assert f"| `{name}` |" in reference
    for section in ("`image`", "`resources`", "`timeouts`", "`expect`", "`expect.budgets`", "`cases[]`", "`requires.weights[]`"):
        assert f"### {section}" in reference
    assert "| `memory` | size | `2g` |" in reference and "| `startup` | duration | `120s` |" in reference


def test_schema_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "C.md"
    doc.write_text(f"intro\n{BEGIN}\nstale\n{END}\noutro\n")
    assert main(["schema", "--markdown", "--check", str(doc)]) == 1
    assert "out of date; run `vdbench schema --markdown --write" in capsys.readouterr().out
    assert main(["schema", "--markdown", "--write", str(doc)]) == 0
    assert main(["schema", "--check", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{END}\noutro\n") and "stale" not in text
    with pytest.raises(ValueError, match="markers not found"):
        replace_section("no markers", "x")
    capsys.readouterr()
    assert main(["schema", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Manifest"


def test_every_contributor_command_is_registered() -> None:
    help_text = build_parser().format_help()
    for command in ("images", "clean", "new", "validate", "compose", "changed", "schema"):
        assert command in help_text


def test_validate_without_suites_says_where_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 1
    assert "no model_suites/ here; run from the project root" in capsys.readouterr().err
    assert main(["validate", "missing.yaml"]) == 1
    assert "missing.yaml does not exist" in capsys.readouterr().err


def test_the_diffusers_kit_reference_is_generated_and_current(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_vdbench.tools.sdk_doc import diffusers_kit_markdown

    doc = (ROOT / "docs" / "diffusers-kit.md").read_text()
    fix = "vdbench schema --diffusers-kit > docs/diffusers-kit.md"
    assert doc == diffusers_kit_markdown(), f"docs/diffusers-kit.md is stale: {fix}"
    for attribute in ("title", "pipeline", "defaults", "grids", "weight_seed", "full_requirements"):
        assert f"| `{attribute}` |" in doc and "| **required** |" in doc
    for method in ("tiny_pipeline", "full_pipeline", "pipeline_args", "build_t5_tokenizer", "to_video"):
        assert f"`{method}(" in doc
    assert main(["schema", "--diffusers-kit"]) == 0 and capsys.readouterr().out == doc
