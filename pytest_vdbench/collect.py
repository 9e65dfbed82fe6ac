"""Collection nodes: a manifest file holds one module-like node per variant serving ``suite``.

``VdbenchSession.pytest_collect_file`` returns a ``ManifestFile`` for each selected manifest (the
shape of pytest's ``doc/en/example/nonpython``), so pytest itself resolves ids such as
``model_suites/video/x.yaml::x-tiny::test_generate[fox]``, ``--lf``, ``--deselect`` and ``-k``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from pytest_vdbench.checks import suite
from pytest_vdbench.manifest import ModelSpec

__all__ = ["ManifestFile", "VariantModule"]


class ManifestFile(pytest.File):
    """One manifest; its children are the model's variants."""

    def __init__(self, *, specs: tuple[ModelSpec, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = specs

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

    Subclassing ``pytest.Module`` (and serving an existing module object through the public
    ``obj`` attribute, so nothing imports the YAML file) gives the generated tests everything real
    test functions have: fixtures, ``benchmark``, marks, ``-k``.
    """

    def __init__(self, *, spec: ModelSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.obj = suite
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
