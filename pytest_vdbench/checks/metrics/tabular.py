"""Weight-free synthetic-data quality metrics (in the spirit of SDMetrics / SDGym), numpy only.

Tables use the encoding of :mod:`pytest_vdbench.data.tables` (discrete columns as integer codes).
Every score lies in [0, 1], higher is better; :func:`uniform_baseline` gives the floor each score
is compared with.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["column_pair_trends", "column_shapes", "tabular_report", "tstr", "uniform_baseline"]

Table = np.ndarray[Any, Any]
Columns = list[dict[str, Any]]
BINS = 10


def _codes(values: Table, k: int) -> Table:
    codes: Table = np.clip(np.rint(np.nan_to_num(values, nan=0.0)), 0, k - 1).astype(np.int64)
    return codes


def _tvd(p: Table, q: Table) -> float:
    return float(0.5 * np.abs(p - q).sum())


def _ks(a: Table, b: Table) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (max distance between empirical CDFs)."""
    a, b = np.sort(a[np.isfinite(a)]), np.sort(b[np.isfinite(b)])
    if not len(a) or not len(b):
        return 1.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def column_shapes(real: Table, synth: Table, columns: Columns) -> float:
    """Mean over columns of 1 - KS statistic (continuous) or 1 - total variation distance (discrete)."""
    scores = []
    for j, col in enumerate(columns):
        if col["kind"] == "discrete":
            k = len(col["categories"])
            p = np.bincount(_codes(real[:, j], k), minlength=k) / len(real)
            q = np.bincount(_codes(synth[:, j], k), minlength=k) / max(len(synth), 1)
            scores.append(1.0 - _tvd(p, q))
        else:
            scores.append(1.0 - _ks(real[:, j], synth[:, j]))
    return float(np.mean(scores))


def _binned(real: Table, synth: Table, j: int, col: dict[str, Any]) -> tuple[Table, Table, int]:
    """Codes for column j of both tables: categories, or quantile bins of the real column."""
    if col["kind"] == "discrete":
        k = len(col["categories"])
        return _codes(real[:, j], k), _codes(synth[:, j], k), k
    edges = np.unique(np.quantile(real[:, j], np.linspace(0, 1, BINS + 1)[1:-1]))
    return np.searchsorted(edges, real[:, j]), np.searchsorted(edges, np.nan_to_num(synth[:, j])), len(edges) + 1


def column_pair_trends(real: Table, synth: Table, columns: Columns) -> float:
    """Mean over column pairs of 1 - |corr_real - corr_synth| / 2 (both continuous) or contingency similarity."""
    scores = []
    for i, j in itertools.combinations(range(len(columns)), 2):
        ci, cj = columns[i], columns[j]
        if ci["kind"] == cj["kind"] == "continuous":
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.corrcoef(real[:, i], real[:, j])[0, 1]
                s = np.corrcoef(np.nan_to_num(synth[:, i]), np.nan_to_num(synth[:, j]))[0, 1]
            r, s = np.nan_to_num(r), np.nan_to_num(s)
            scores.append(1.0 - abs(float(r) - float(s)) / 2.0)
        else:
            ri, si, ki = _binned(real, synth, i, ci)
            rj, sj, kj = _binned(real, synth, j, cj)
            p = np.bincount(ri * kj + rj, minlength=ki * kj) / len(real)
            q = np.bincount(si * kj + sj, minlength=ki * kj) / max(len(synth), 1)
            scores.append(1.0 - _tvd(p, q))
    return float(np.mean(scores)) if scores else 1.0


def _features(table: Table, columns: Columns, target: int, stats: list[tuple[float, float]]) -> Table:
    parts = []
    for j, col in enumerate(columns):
        if j == target:
            continue
        if col["kind"] == "discrete":
            k = len(col["categories"])
            parts.append(np.eye(k)[_codes(table[:, j], k)])
        else:
            mean, std = stats[j]
            parts.append(((np.nan_to_num(table[:, j]) - mean) / std)[:, None])
    parts.append(np.ones((len(table), 1)))
    return np.concatenate(parts, axis=1)


def _fit_predict(x: Table, y: Table, k: int, x_test: Table, seed: int) -> Table:
    """Multinomial logistic regression by full-batch gradient descent with L2 (seeded, deterministic)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, (x.shape[1], k))
    onehot = np.eye(k)[y]
    for _ in range(300):
        logits = x @ w
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        w -= 0.5 * (x.T @ (p - onehot) / len(x) + 1e-3 * w)
    predicted: Table = np.argmax(x_test @ w, axis=1)
    return predicted


def tstr(real_train: Table, real_test: Table, synth: Table, columns: Columns, target: int, seed: int = 0) -> dict[str, float]:
    """Train-on-synthetic-test-on-real accuracy vs train-on-real (same classifier), and their ratio."""
    col = columns[target]
    discrete = col["kind"] == "discrete"
    k = len(col["categories"]) if discrete else 2
    median = float(np.median(real_train[:, target]))

    def y_of(table: Table) -> Table:
        if discrete:
            return _codes(table[:, target], k)
        labels: Table = (np.nan_to_num(table[:, target]) > median).astype(np.int64)  # continuous: above the median
        return labels

    stats = [(float(np.mean(real_train[:, j])), float(np.std(real_train[:, j]) or 1.0)) for j in range(len(columns))]
    x_test, y_test = _features(real_test, columns, target, stats), y_of(real_test)
    trtr = float(
        np.mean(_fit_predict(_features(real_train, columns, target, stats), y_of(real_train), k, x_test, seed) == y_test)
    )
    tstr_acc = float(np.mean(_fit_predict(_features(synth, columns, target, stats), y_of(synth), k, x_test, seed) == y_test))
    return {"tstr_accuracy": tstr_acc, "trtr_accuracy": trtr, "tstr_ratio": tstr_acc / trtr if trtr else 0.0}


def uniform_baseline(real: Table, columns: Columns, rows: int, seed: int = 0) -> Table:
    """A table of independent uniform values over each column's observed range or categories."""
    rng = np.random.default_rng(seed)
    out = np.empty((rows, len(columns)))
    for j, col in enumerate(columns):
        if col["kind"] == "discrete":
            out[:, j] = rng.integers(0, len(col["categories"]), rows)
        else:
            out[:, j] = rng.uniform(float(real[:, j].min()), float(real[:, j].max()), rows)
    return out


def tabular_report(
    real: Table, synth: Table, columns: Columns, target: int | None, *, test: Table | None = None, seed: int = 0
) -> dict[str, float]:
    """column_shapes, column_pair_trends and (with a target and a test split) the TSTR scores."""
    synth = np.asarray(synth, dtype=np.float64)
    if synth.ndim != 2 or synth.shape[1] != len(columns):
        raise ValueError(f"synthetic table has shape {list(synth.shape)}; expected [rows, {len(columns)}]")
    scores = {
        "column_shapes": column_shapes(real, synth, columns),
        "column_pair_trends": column_pair_trends(real, synth, columns),
    }
    if target is not None and test is not None and len(synth):
        scores.update(tstr(real, test, synth, columns, target, seed))
    return scores
