"""Tabular modality: datasets, metrics with known answers, and the generated tests on a toy model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers import ADAPTERS
from pytest_vdbench.checks.metrics.tabular import column_pair_trends, column_shapes, tabular_report, tstr, uniform_baseline
from pytest_vdbench.data.tables import decode_rows, load_table

DATA = Path(__file__).parent.parent / "model_suites" / "tabular" / "data"
COLS = [
    {"name": "a", "kind": "continuous"},
    {"name": "b", "kind": "continuous"},
    {"name": "c", "kind": "discrete", "categories": ["no", "yes"]},
]


def correlated(n: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 2 * a + rng.normal(size=n) * 0.5
    return np.c_[a, b, (a > 0).astype(float)]


def test_load_table_encodes_categories_and_binary_flags(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("age,edu,flag\n30,BSc,0\n41,MSc,1\n25,BSc,1\n")
    table, cols = load_table(path)
    assert [c["kind"] for c in cols] == ["continuous", "discrete", "discrete"]
    assert cols[1]["categories"] == ["BSc", "MSc"] and cols[2]["categories"] == ["0", "1"]
    assert table.tolist() == [[30, 0, 0], [41, 1, 1], [25, 0, 1]]
    assert decode_rows(table, cols, 1) == [{"age": 30.0, "edu": "BSc", "flag": "0"}]
    _, forced = load_table(path, discrete=["age"])
    assert forced[0]["kind"] == "discrete"


@pytest.mark.parametrize(
    ("text", "message"), [("", "empty CSV"), ("a,b\n", "no data rows"), ("a,b\n1\n", "line 2 has a different number")]
)
def test_load_table_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_table(path)


def test_shipped_datasets_load() -> None:
    adult, cols = load_table(DATA / "adult_like.csv")
    assert adult.shape == (1500, 6) and {c["name"]: c["kind"] for c in cols}["income"] == "discrete"
    ehr, cols = load_table(DATA / "ehr_binary.csv")
    assert ehr.shape == (1500, 24) and all(c["kind"] == "discrete" for c in cols)


def test_identical_tables_score_one() -> None:
    real = correlated()
    assert column_shapes(real, real, COLS) == 1.0
    assert column_pair_trends(real, real, COLS) == 1.0


def test_shuffled_column_keeps_shapes_but_loses_trends() -> None:
    real = correlated()
    shuffled = real.copy()
    shuffled[:, 1] = np.random.default_rng(1).permutation(shuffled[:, 1])
    assert column_shapes(real, shuffled, COLS) == 1.0
    assert column_pair_trends(real, shuffled, COLS) < 0.8


def test_uniform_baseline_scores_below_a_resample() -> None:
    real = correlated()
    resample = correlated(seed=7)
    noise = uniform_baseline(real, COLS, 1000, seed=0)
    assert column_shapes(real, resample, COLS) > 0.9 > column_shapes(real, noise, COLS)
    assert column_pair_trends(real, resample, COLS) > column_pair_trends(real, noise, COLS) + 0.2


def test_tstr_on_real_data_matches_trtr() -> None:
    train, test = correlated(seed=0), correlated(n=400, seed=3)
    scores = tstr(train, test, correlated(seed=5), COLS, target=2)
    assert scores["trtr_accuracy"] > 0.9
    assert scores["tstr_ratio"] == pytest.approx(1.0, abs=0.05)
    noise = tstr(train, test, uniform_baseline(train, COLS, 1000), COLS, target=2)
    assert noise["tstr_accuracy"] < scores["tstr_accuracy"] - 0.2


def test_report_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match=r"expected \[rows, 3\]"):
        tabular_report(correlated(), np.zeros((5, 2)), COLS, None)


def tabular_manifest(fault: str = "none") -> dict[str, object]:
    return {
        "name": "toytab",
        "modality": "tabular",
        "adapter": "toy_tabular:ToyTabular",
        "options": {"fault": fault},
        "image": {"context": str(ADAPTERS)},
        "resources": {"cpus": 1, "memory": "512m"},
        "cases": [
            {"id": "adult", "dataset": str(DATA / "adult_like.csv"), "target": "income", "seed": 0, "params": {"rows": 400}}
        ],
        "expect": {"shape": [400, 6], "dtype": "float64"},
    }


@pytest.mark.parametrize(("fault", "outcome"), [("none", {"passed": 7}), ("uniform", {"passed": 6, "failed": 1})])
def test_generated_tabular_tests(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], fault: str, outcome: dict[str, int]
) -> None:
    result = pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(write_suite(tabular_manifest(fault))),
        "--vdbench-runtime",
        "process",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        "-v",
    )
    result.assert_outcomes(skipped=1, **outcome)  # test_build: no image under the process runtime
    result.stdout.fnmatch_lines(["*test_fit[[]adult[]] PASSED*"])
    if fault == "uniform":
        result.stdout.fnmatch_lines(["*test_quality[[]adult[]] FAILED*", "*does not beat the uniform-random baseline*"])
