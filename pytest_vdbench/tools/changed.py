"""``vdbench changed``: which models a git change touches (their manifest, build context or datasets)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from pytest_vdbench.manifest import ManifestError, discover_manifests, load_manifest

__all__ = ["GitError", "changed_files", "changed_models"]


class GitError(Exception):
    """git failed (not a repository, unknown base ref); the message carries git's own words."""


def _git(root: Path, *args: str) -> list[str]:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return [line for line in done.stdout.splitlines() if line]


def changed_files(root: Path, base: str, *, working_tree: bool = True) -> list[Path]:
    """Files changed since the merge base of ``base`` and HEAD (and, with ``working_tree``, uncommitted
    and untracked ones), as absolute paths."""
    top = Path(_git(root, "rev-parse", "--show-toplevel")[0])
    names = set(_git(root, "diff", "--name-only", f"{base}...HEAD"))
    if working_tree:
        names.update(_git(root, "diff", "--name-only", "HEAD"))
        names.update(_git(root, "ls-files", "--others", "--exclude-standard"))
    return sorted((top / name).resolve() for name in names)


_NAME = re.compile(r"^name:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)


def changed_models(changed: Iterable[Path], suites: Iterable[Path], root: Path) -> list[str]:
    """Names of the models whose manifest, build context or case datasets contain a changed path.

    A manifest that does not validate still maps by its own path and ``name:`` line (so a broken
    model is run, and fails, rather than being left out).
    """
    paths = [p.resolve() for p in changed]
    found: list[str] = []
    for manifest in discover_manifests(list(suites)):
        try:
            specs = load_manifest(manifest, root)
        except ManifestError:
            match = _NAME.search(manifest.read_text(encoding="utf-8", errors="replace"))
            if match and manifest in paths:
                found.append(match.group(1))
            continue
        owned = {manifest}
        folders = {s.context_dir for s in specs}
        owned.update(s.resolve(c.dataset) for s in specs for c in s.manifest.cases if c.dataset)
        if any(p in owned or any(p.is_relative_to(f) for f in folders) for p in paths):
            found.append(specs[0].name)
    return sorted(set(found))
