"""``vdbench new``: scaffold a model (image context, placeholder adapter, manifest) that runs as generated."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pytest_vdbench.manifest import Manifest, discover_manifests

__all__ = ["MODALITIES", "Scaffold", "ScaffoldError", "adapter_names", "name_pattern", "plan_scaffold", "write_scaffold"]

MODALITIES = ("video", "tabular")
TEMPLATES = Path(__file__).resolve().parent / "scaffold_templates"


class ScaffoldError(Exception):
    """The scaffold cannot be written as asked (bad name, files that exist); nothing was written."""


def name_pattern() -> str:
    """The manifest's ``name`` pattern, read from the schema (so the two cannot disagree)."""
    return str(Manifest.model_json_schema()["properties"]["name"]["pattern"])


def adapter_names(name: str) -> tuple[str, str]:
    """(module, class) for a model name: ``my-model`` -> (``my_model_adapter``, ``MyModel``)."""
    stem = re.sub(r"[^a-z0-9_]", "_", name)
    module = ("m_" if stem[0].isdigit() else "") + stem + "_adapter"
    parts = [p for p in re.split(r"[^a-zA-Z0-9]+", name) if p]
    cls = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    if cls[0].isdigit():
        cls = "Model" + cls
    return module, cls


@dataclass(frozen=True)
class Scaffold:
    """What ``vdbench new`` writes: path -> content."""

    name: str
    modality: str
    manifest: Path
    context: Path
    files: dict[Path, bytes]


def plan_scaffold(name: str, modality: str, root: Path, suite: Path | None = None) -> Scaffold:
    """Render the templates for ``name``; raise ScaffoldError if the name is bad or a file exists."""
    pattern = name_pattern()
    if not re.match(pattern, name):
        raise ScaffoldError(f"model name {name!r} must match {pattern} (lowercase letters, digits, '_', '.', '-')")
    if modality not in MODALITIES:
        raise ScaffoldError(f"unknown modality {modality!r}; valid: {', '.join(MODALITIES)}")
    root = root.resolve()
    suite_dir = (suite if suite is not None else root / "model_suites" / modality).resolve()
    context = root / "containers" / name
    manifest = suite_dir / f"{name}.yaml"
    module, cls = adapter_names(name)
    # image.context: the project's convention (relative to the root) when the suite lives under it,
    # else relative to the manifest (a leading '.' says so)
    if manifest.is_relative_to(root):
        context_ref = context.relative_to(root).as_posix()
    else:
        context_ref = Path(os.path.relpath(context, suite_dir)).as_posix()
        if not context_ref.startswith("."):
            context_ref = "./" + context_ref
    dataset_ref = f"data/{name}.csv"
    values = {"NAME": name, "MODULE": module, "CLASS": cls, "CONTEXT": context_ref, "DATASET": dataset_ref}
    source = TEMPLATES / modality
    files = {
        context / "Dockerfile": _render(source / "Dockerfile", values),
        context / f"{module}.py": _render(source / "adapter.py.tmpl", values),
        context / "requirements.txt": _render(source / "requirements.txt", values),
        manifest: _render(source / "manifest.yaml", values),
    }
    if modality == "tabular":
        files[suite_dir / dataset_ref] = (source / "example.csv").read_bytes()
    problems = [f"{path} already exists" for path in files if path.exists()]
    if context.exists() and not problems:
        problems.append(f"{context} already exists")
    suites = root / "model_suites"
    for other in discover_manifests([p for p in (suites, suite_dir) if p.is_dir()]):
        if other != manifest and _declared_name(other) == name:
            problems.append(f"model name {name!r} is already used by {other}")
    if problems:
        raise ScaffoldError("refusing to overwrite: " + "; ".join(problems) if "exists" in problems[0] else "; ".join(problems))
    return Scaffold(name, modality, manifest, context, files)


def write_scaffold(scaffold: Scaffold) -> list[Path]:
    """Write the planned files (new folders as needed); returns their paths."""
    for path, content in scaffold.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as fh:  # "x": never overwrite, even if a file appeared since planning
            fh.write(content)
    return list(scaffold.files)


def _render(template: Path, values: dict[str, str]) -> bytes:
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    return text.encode("utf-8")


_NAME_LINE = re.compile(r"^name:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)


def _declared_name(path: Path) -> str | None:
    try:
        match = _NAME_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return match.group(1) if match else None
