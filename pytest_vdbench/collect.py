"""Collection nodes: a manifest file holds one module-like node per variant serving ``suite``
(or, when it fails validation, one ``InvalidManifest`` item that fails with the problems).

``VdbenchSession.pytest_collect_file`` returns a ``ManifestFile`` for each selected manifest (the
shape of pytest's ``doc/en/example/nonpython``), so pytest itself resolves ids such as
``model_suites/video/x.yaml::x-tiny::test_generate[fox]``, ``--lf``, ``--deselect`` and ``-k``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from pytest_vdbench.checks import suite
from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.manifest.validate import Problem

__all__ = ["InvalidManifest", "ManifestFile", "ManifestProblems", "VariantModule"]

#: the item of a manifest that fails validation: ``x.yaml::manifest`` (a variant named so is never
#: collected beside it: an invalid manifest yields no variants)
INVALID_ITEM = "manifest"
INVALID_PROPERTY = "vdbench_invalid_manifest"


class ManifestFile(pytest.File):
    """One manifest; its children are the model's variants, or one failing item when it is invalid."""

    def __init__(self, *, specs: tuple[ModelSpec, ...], problems: tuple[Problem, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = specs
        self.problems = problems  # found while loading: the schema's, a repeated model name

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        # the checks of `vdbench validate` beyond the schema
        from pytest_vdbench.checks.quality import metric_registry
        from pytest_vdbench.manifest.validate import check_specs
        from pytest_vdbench.runtime.cogyaml import cog_yaml_problems

        found = check_specs(self.specs, metric_registry(self.config), cog_check=cog_yaml_problems, collection=True)
        problems = [*self.problems, *found]
        shown_from = self.config.invocation_params.dir  # where `vdbench validate` would have been run
        for problem in problems:
            if problem.severity == "warning":
                self.warn(pytest.PytestWarning(problem.format(shown_from)))
        errors = [p for p in problems if p.severity == "error"]
        if errors:  # one failing test; the other manifests' tests still run
            lines = tuple(p.format(shown_from) for p in errors)
            yield InvalidManifest.from_parent(self, name=INVALID_ITEM, lines=lines, first_line=errors[0].line)
            return
        for spec in self.specs:
            yield VariantModule.from_parent(self, path=self.path, name=spec.id, nodeid=f"{self.nodeid}::{spec.id}", spec=spec)


class ManifestProblems(Exception):
    """Raised by :class:`InvalidManifest`: the manifest's ``file:line: key: message`` lines."""

    def __init__(self, lines: tuple[str, ...]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class InvalidManifest(pytest.Item):
    """A manifest that fails validation, as one test that fails with ``vdbench validate``'s lines.

    One contributor's broken manifest thus fails exactly one test instead of stopping the
    collection of every other model (pytest's ``doc/en/example/nonpython`` shape).
    """

    def __init__(self, *, lines: tuple[str, ...], first_line: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines = lines
        self.first_line = first_line
        self.add_marker(pytest.mark.vdbench)
        # for the report (user properties travel with the test's report to the xdist controller)
        self.user_properties.append((INVALID_PROPERTY, {"manifest": self._shown(), "problems": list(lines)}))

    def _shown(self) -> str:
        try:
            return self.path.relative_to(self.config.invocation_params.dir).as_posix()
        except ValueError:
            return self.path.as_posix()

    def runtest(self) -> None:
        raise ManifestProblems(self.lines)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ManifestProblems):
            return "\n".join([*excinfo.value.lines, f"(check it without pytest: vdbench validate {self._shown()})"])
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.first_line - 1 if self.first_line else None
        return self.path, line, f"{self._shown()}: invalid manifest"


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
