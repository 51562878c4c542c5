# Sources of the expected values in this file:
# - tests/analysis/reference/descriptive_expected.json, written by descriptive.R with R 4.2.2:
#   length, mean, sd, median, quantile(type = 7) and quantile(type = 6), min, max, table(), on
#   continuous_data.csv (three unbalanced arms; monotone dropout and intermittent missed visits).
# Tolerance 1e-9 (absolute): these are closed-form.

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.descriptive import describe, frequencies

REF = Path(__file__).parent / "reference"
EXPECTED = json.loads((REF / "descriptive_expected.json").read_text())
TOL = 1e-9
BANDS = ("minimal", "mild", "moderate", "moderately severe", "severe")


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return pd.read_csv(REF / "continuous_data.csv")


def test_describe_by_arm_and_visit_against_R(long):
    table = describe(long, value="phq9", arm="arm", visit="visit")
    assert len(table.rows) == len(EXPECTED["continuous"])
    for exp in EXPECTED["continuous"]:
        cell = table.cell(exp["arm"], exp["visit"])
        assert (cell.n, cell.n_missing) == (exp["n"], exp["n_missing"])
        for field in ("mean", "sd", "median", "q1", "q3", "min", "max"):
            assert getattr(cell, field) == pytest.approx(exp[field], abs=TOL), field
    assert "type 7" in table.method


def test_describe_quartiles_type_6_against_R(long):
    table = describe(long, value="phq9", arm="arm", visit="visit", quantile_method="weibull")
    for exp in EXPECTED["continuous"]:
        cell = table.cell(exp["arm"], exp["visit"])
        assert (cell.q1, cell.q3) == pytest.approx((exp["q1_type6"], exp["q3_type6"]), abs=TOL)


def test_missing_visits_are_counted_not_summarised(long):
    table = describe(long, value="phq9", arm="arm", visit="visit")
    week8 = table.cell("Total", "WEEK 8")
    assert week8.n + week8.n_missing == long["id"].nunique()
    assert week8.n_missing > table.cell("Total", "WEEK 4").n_missing  # monotone dropout accumulates


def test_describe_frame_order_and_columns(long):
    frame = describe(long, value="phq9", arm="arm", visit="visit").to_frame()
    assert list(frame.columns) == [
        "arm",
        "visit",
        "n",
        "n_missing",
        "mean",
        "sd",
        "median",
        "q1",
        "q3",
        "min",
        "max",
    ]
    assert frame["arm"].tolist()[:4] == ["CTL", "APP", "APPX", "Total"]
    assert frame["visit"].unique().tolist() == ["BASELINE", "WEEK 4", "WEEK 8"]


def test_describe_without_visit_or_pooled_row(long):
    table = describe(long[long["visit"] == "BASELINE"], value="phq9", arm="arm", pooled=None)
    assert [r.arm for r in table.rows] == ["CTL", "APP", "APPX"]
    assert table.rows[0].visit is None


def test_empty_and_single_value_cells():
    frame = pd.DataFrame({"arm": ["A", "A", "B"], "y": [float("nan"), float("nan"), 3.0]})
    table = describe(frame, value="y", arm="arm")
    a, b = table.cell("A"), table.cell("B")
    assert (a.n, a.n_missing) == (0, 2)
    assert math.isnan(a.mean)
    assert b.mean == 3.0
    assert math.isnan(b.sd)


def test_frequencies_against_R_table(long):
    table = frequencies(long, variable="severity", arm="arm", visit="visit", levels=BANDS)
    by_cell = {(r.arm, r.visit): r for r in table.rows}
    for exp in EXPECTED["categorical"]:
        row = by_cell[(exp["arm"], exp["visit"])]
        assert row.n_missing == exp["n_missing"]
        assert row.n == sum(exp["counts"])
        counts = {lv: (c, p) for lv, c, p in row.counts}
        for level, count, pct in zip(exp["levels"], exp["counts"], exp["percent"], strict=True):
            assert counts[level][0] == count
            assert counts[level][1] == pytest.approx(pct, abs=TOL)
        assert [lv for lv, _, _ in row.counts] == list(BANDS)  # empty levels are shown too


def test_frequencies_refuses_unknown_levels_and_a_clashing_pooled_label(long):
    with pytest.raises(ValueError, match="not among the levels"):
        frequencies(long, variable="severity", arm="arm", levels=("mild",))
    with pytest.raises(ValueError, match="pooled label"):
        frequencies(long, variable="sex", arm="arm", pooled="CTL")
    frame = frequencies(long, variable="sex", arm="arm", visit="visit").to_frame()
    assert list(frame.columns) == ["arm", "visit", "level", "count", "percent", "n", "n_missing"]
