"""Collection nodes: a manifest file holds one module-like node per variant serving ``suite``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_vdbench.checks import suite
from pytest_vdbench.manifest import ModelSpec

__all__ = ["ManifestFile", "VariantModule", "nodeid_for"]


def nodeid_for(path: Path, rootpath: Path) -> str:
    """``model_suites/video/x.yaml`` under the rootdir; a stable id for manifests outside it."""
    try:
        return path.relative_to(rootpath).as_posix()
    except ValueError:
        return f"vdbench/{path.parent.name}/{path.name}"


class ManifestFile(pytest.File):
    """One manifest; its children are the model's variants."""

    specs: tuple[ModelSpec, ...] = ()

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        # the checks of `vdbench validate` beyond the schema: a problem is this file's collection error
        from pytest_vdbench.checks.quality import metric_registry
        from pytest_vdbench.manifest.validate import check_specs

        problems = check_specs(self.specs, metric_registry(self.config), collection=True)
        for problem in problems:
            if problem.severity == "warning":
                self.warn(pytest.PytestWarning(problem.format(self.config.rootpath)))
        errors = [p.format(self.config.rootpath) for p in problems if p.severity == "error"]
        if errors:
            raise self.CollectError("\n".join([*errors, "(the same checks without pytest: vdbench validate PATH)"]))
        for spec in self.specs:
            yield VariantModule.from_parent(self, path=self.path, name=spec.id, nodeid=f"{self.nodeid}::{spec.id}", spec=spec)


class VariantModule(pytest.Module):
    """One (model, variant): ``suite``'s test functions, parametrized with this model's cases.

    Subclassing ``pytest.Module`` (and serving an existing module object) gives the generated
    tests everything real test functions have: fixtures, ``benchmark``, marks, ``-k``.
    """

    def __init__(self, *, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.add_marker(pytest.mark.vdbench)
        # every test of a model runs on one xdist worker, so its container starts once
        self.add_marker(pytest.mark.xdist_group(spec.id))

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        items = list(super().collect())
        if self.spec.manifest.modality != "tabular":  # only tabular models are fitted
            items = [i for i in items if i.name.split("[")[0] != "test_fit"]
        if self.spec.manifest.load is None:  # the throughput scenario is opt-in
            items = [i for i in items if i.name.split("[")[0] != "test_throughput"]
        return items

    def _getobj(self) -> ModuleType:
        # pytest.Module would import self.path (a YAML file); serve the suite module instead.
        return suite
