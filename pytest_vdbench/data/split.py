"""The tabular modality in the harness: load and split a case's dataset (scoring: metrics.builtin_registry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_vdbench.manifest import Case, ModelSpec

__all__ = ["TabularData", "load_case_data"]


@dataclass(frozen=True)
class TabularData:
    """A case's dataset, split once with a fixed seed: the model sees only ``train``."""

    train: np.ndarray[Any, Any]
    test: np.ndarray[Any, Any]
    columns: list[dict[str, Any]]
    target: int | None


def load_case_data(spec: ModelSpec, case: Case) -> TabularData:
    """Load ``case.dataset`` (relative to the manifest) and hold out ``case.test_fraction`` of rows."""
    from pytest_vdbench.data.tables import load_table

    assert case.dataset is not None  # the manifest validator requires it for tabular models
    path = spec.resolve(case.dataset)
    if not path.is_file():
        raise FileNotFoundError(f"{spec.path}: cases[{case.id}].dataset: {path} does not exist")
    table, columns = load_table(path, discrete=case.discrete or None)
    names = [c["name"] for c in columns]
    target = None
    if case.target is not None:
        if case.target not in names:
            raise ValueError(f"{spec.path}: cases[{case.id}].target: no column {case.target!r} (columns: {', '.join(names)})")
        target = names.index(case.target)
    order = np.random.default_rng(0).permutation(len(table))  # the split never depends on the case seed
    n_test = max(1, round(len(table) * case.test_fraction))
    return TabularData(train=table[order[n_test:]], test=table[order[:n_test]], columns=columns, target=target)
