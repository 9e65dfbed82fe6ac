"""The hooks through which other code extends pytest-vdbench (added in ``pytest_addhooks``).

Implement them in a ``conftest.py`` or in a plugin module (a ``pytest11`` entry point), like any
pytest hook. Each receives a registry once, at configure time, and the ``config`` (None when
``vdbench validate`` asks, outside pytest); take only the arguments you need::

    # my_plugin.py  (pyproject: [project.entry-points.pytest11] my-metric = "my_plugin")
    from pytest_vdbench.checks.metrics import MetricInfo

    class Brightness:
        metrics = (MetricInfo("brightness", "video", (0, 1), "none"),)

        def unavailable(self):
            return None

        def score(self, ctx):
            return {"brightness": float(ctx.output.mean())}

    def pytest_vdbench_add_metrics(registry):
        registry.add(Brightness())

After that ``expect.quality: {brightness: {min: 0.2}}`` validates, is scored by ``test_quality``,
compared across runs and shown in the report. ``vdbench validate`` sees metrics of installed
plugins (``pytest11`` entry points) too; a metric added only in a ``conftest.py`` is seen by
``pytest --vdbench`` alone. :mod:`pytest_vdbench.checks.metrics.clip` is a real plug-in written
this way (the ``vdbench-clip`` entry point).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy
import pytest

if TYPE_CHECKING:
    from pytest_vdbench.checks.metrics import MetricRegistry
    from pytest_vdbench.protocols import ProtocolRegistry
    from pytest_vdbench.runtime import RuntimeRegistry

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_vdbench_add_metrics(registry: MetricRegistry, config: pytest.Config | None) -> None:
    """Add quality metrics: ``registry.add(scorer)`` with a :class:`~pytest_vdbench.checks.metrics.Scorer`."""


@hookspec
def pytest_vdbench_add_runtimes(registry: RuntimeRegistry, config: pytest.Config | None) -> None:
    """Add container runtimes: ``registry.add(name, factory)``; ``--vdbench-runtime NAME`` selects one."""


@hookspec
def pytest_vdbench_add_protocols(registry: ProtocolRegistry, config: pytest.Config | None) -> None:
    """Add wire protocols: ``registry.add(descriptor)``; a manifest's ``protocol: NAME`` selects one."""
