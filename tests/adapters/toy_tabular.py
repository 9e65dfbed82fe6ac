"""A tiny tabular model for the plugin's own tests: samples each column's marginal, or noise.

``options: {fault: uniform}`` makes it sample uniform noise over each column's range: a broken
generator whose samples carry nothing of the data. The quality test must fail it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_vdbench.adapter import ModelAdapter


class ToyTabular(ModelAdapter):
    def __init__(self, fault: str = "none", **options: Any) -> None:
        super().__init__(**options)
        self.fault = fault
        self.table: np.ndarray | None = None

    def fit(self, table: Any, columns: list[dict[str, Any]], **params: Any) -> None:
        self.table = np.asarray(table, dtype=np.float64)
        self.columns = columns

    def generate(self, prompt: str, **params: Any) -> Any:
        assert self.table is not None, "fit first"
        rng = np.random.default_rng(params.get("seed") or 0)
        rows = int(params.get("rows", 100))
        if self.fault == "uniform":
            low, high = self.table.min(axis=0), self.table.max(axis=0)
            out = rng.uniform(low, high, size=(rows, self.table.shape[1]))
            for j, col in enumerate(self.columns):
                if col["kind"] == "discrete":
                    out[:, j] = np.floor(out[:, j] + 0.5)
            return out
        # independent marginals: resample each column on its own
        return np.stack([rng.choice(self.table[:, j], rows) for j in range(self.table.shape[1])], axis=1)
