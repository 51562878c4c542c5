"""ANCOVA against R: lm(chg ~ arm + base + site) and emmeans at the last visit.

Expected values: tests/analysis/reference/ancova_expected.json, written by ancova.R from the
CSVs that mmrm_data.py writes. R is not needed to run these tests.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.ancova import fit_ancova

REFERENCE = Path(__file__).parent / "reference"
EXPECTED = json.loads((REFERENCE / "ancova_expected.json").read_text())
DATASETS = list(EXPECTED)  # balanced, three_arms (unbalanced), monotone, intermittent

# Closed-form statistics: 1e-6 relative.
RTOL = 1e-6


def last_visit(name: str) -> pd.DataFrame:
    data = pd.read_csv(REFERENCE / f"mmrm_{name}.csv")
    return data[data["visit"] == data["visit"].max()]


def fit(name: str):
    return fit_ancova(
        last_visit(name),
        arm="arm",
        response="chg",
        reference_arm="control",
        covariates=("base", "site"),
        primary_arm="app",
    )


@pytest.mark.parametrize("name", DATASETS)
def test_ancova_against_R_lm_emmeans(name):
    expected = EXPECTED[name]
    result = fit(name)
    assert result.n == expected["n"]
    assert result.residual_df == expected["residual_df"]
    assert math.isclose(result.residual_sd, expected["residual_sd"], rel_tol=RTOL)
    ours = dict(zip(result.coefficient_names, result.coefficients, strict=True))
    for r_name, value in expected["coefficients"].items():
        key = (
            r_name
            if r_name in ("(Intercept)", "base")
            else r_name.replace("arm", "arm[", 1).replace("site", "site[", 1) + "]"
        )
        assert math.isclose(ours[key], value, rel_tol=RTOL), key
    for ours_d, ref in zip(result.differences, expected["differences"], strict=True):
        assert f"{ours_d.parameters['arm']} - control" == ref["contrast"]
        for field in ("estimate", "se", "df", "ci_low", "ci_high", "p_value"):
            assert math.isclose(getattr(ours_d, field), ref[field], rel_tol=RTOL), field
    for ours_m, ref in zip(result.lsmeans, expected["lsmeans"], strict=True):
        assert ours_m.parameters["arm"] == ref["arm"]
        for field in ("estimate", "se", "df", "ci_low", "ci_high"):
            assert math.isclose(getattr(ours_m, field), ref[field], rel_tol=RTOL), field


def test_missing_responses_are_left_out_and_noted():
    result = fit("monotone")
    data = last_visit("monotone")
    missing = int(data["chg"].isna().sum())
    assert missing > 0
    assert result.n == len(data) - missing
    assert any(f"{missing} participants" in n for n in result.notes)


def test_primary_and_frames():
    result = fit("three_arms")
    assert result.primary.parameters["arm"] == "app"
    assert list(result.to_frame()["arm"]) == ["app", "app_plus"]
    assert list(result.lsmeans_frame()["arm"]) == ["control", "app", "app_plus"]
    assert result.primary.n == int(last_visit("three_arms").dropna()["arm"].isin(["app", "control"]).sum())
    with pytest.raises(ValueError, match="primary_arm is required"):
        fit_ancova(last_visit("three_arms"), arm="arm", response="chg", reference_arm="control")
