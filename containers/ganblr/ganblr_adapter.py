"""GANBLR and GANBLR++ (ganblr 0.1.3, TensorFlow) behind the vdbench adapter contract.

Tabular contract: ``fit(table, columns, target=..., epochs=..., batch_size=..., k=..., seed=...)``
trains on a float64 table whose discrete columns hold integer codes; ``generate("", seed=S,
rows=N)`` samples N rows in the same encoding and column order.

* GANBLR models discrete data only: continuous columns are cut into quantile bins for training and
  sampled back uniformly within their bin (seeded).
* GANBLR++ handles the numeric columns itself (its Dirichlet-mixture discretiser); the indices of
  the continuous columns are passed to it.
The target column (``target``, default the last discrete column) is GANBLR's class variable.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np

from pytest_vdbench.adapter import ModelAdapter

BINS = 8


def _seed_everything(seed: int) -> None:
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


class _GanblrBase(ModelAdapter):
    libraries = ("ganblr", "tensorflow-cpu", "numpy", "pgmpy", "scikit-learn")
    plus_plus = False

    def load(self) -> None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("VDBENCH_THREADS", "1")))
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.get_logger().setLevel("ERROR")
        self.model: Any = None
        self.columns: list[dict[str, Any]] = []

    def get_requirements(self) -> dict[str, Any]:
        return {"gpus": 0, "gpu_memory": 0, "memory": 1536 * 1024**2, "cpus": 1}

    def metadata(self) -> dict[str, Any]:
        return {"model": "GANBLR++" if self.plus_plus else "GANBLR", "paper": "Zhang et al., ICDM 2021 / GANBLR++ SDM 2022"}

    def fit(self, table: Any, columns: list[dict[str, Any]], **params: Any) -> None:
        from ganblr.models import GANBLR, GANBLRPP

        seed = int(params.get("seed") or 0)
        _seed_everything(seed)
        table = np.asarray(table, dtype=np.float64)
        self.columns = list(columns)
        names = [c["name"] for c in columns]
        target = params.get("target")
        if target is None:
            discrete = [i for i, c in enumerate(columns) if c["kind"] == "discrete"]
            if not discrete:
                raise ValueError("GANBLR needs a discrete target column: pass fit: {target: NAME}")
            self.target = discrete[-1]
        else:
            self.target = names.index(target)
        self.features = [i for i in range(len(columns)) if i != self.target]
        x = table[:, self.features]
        y = table[:, self.target].astype(int)
        continuous = [j for j, i in enumerate(self.features) if columns[i]["kind"] == "continuous"]
        kw = {
            "k": int(params.get("k", 0)),
            "batch_size": int(params.get("batch_size", 64)),
            "epochs": int(params.get("epochs", 2)),
            "warmup_epochs": int(params.get("warmup_epochs", 1)),
            "verbose": 0,
        }
        if self.plus_plus:
            self.model = GANBLRPP(numerical_columns=continuous, random_state=seed)
            self.model.fit(x, y, **kw)
            return
        self.edges: dict[int, np.ndarray] = {}
        x = x.copy()
        for j in continuous:  # GANBLR is discrete only: quantile bins, sampled back within the bin
            edges = np.unique(np.quantile(x[:, j], np.linspace(0, 1, BINS + 1)))
            self.edges[j] = edges
            x[:, j] = np.clip(np.searchsorted(edges, x[:, j], side="right") - 1, 0, len(edges) - 2)
        self.model = GANBLR()
        self.model.fit(x.astype(int), y, **kw)

    def generate(self, prompt: str, **params: Any) -> Any:
        if self.model is None:
            raise RuntimeError("generate() before fit(): the harness fits tabular models first")
        seed = int(params.get("seed") or 0)
        rows = int(params.get("rows", 500))
        _seed_everything(seed)
        sample = np.asarray(self.model.sample(rows), dtype=np.float64)
        x, y = sample[:, :-1], sample[:, -1]
        if not self.plus_plus:
            rng = np.random.default_rng(seed)
            for j, edges in self.edges.items():
                codes = np.clip(x[:, j].astype(int), 0, len(edges) - 2)
                x[:, j] = rng.uniform(edges[codes], edges[codes + 1])
        out = np.empty((rows, len(self.columns)), dtype=np.float64)
        out[:, self.features] = x
        out[:, self.target] = y
        return out


class Ganblr(_GanblrBase):
    """GANBLR: a generator that is a k-dependence Bayesian classifier, trained adversarially."""


class GanblrPP(_GanblrBase):
    """GANBLR++: GANBLR with Dirichlet-mixture discretisation of the numeric columns."""

    plus_plus = True
