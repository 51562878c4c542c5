# Sources of the expected values in this file:
# - DOMAIN.md section 3 test vector: n1 = n2 = 50, means 8 and 11, SD 5 each: d = -0.600,
#   g = -0.5954, SE = 0.2029, CI (-0.993, -0.198).
# - Borenstein M, Hedges LV, Higgins JPT, Rothstein HR. Introduction to Meta-Analysis. Wiley
#   2009, chapter 4 worked example: means 103 and 100, SDs 5.5 and 4.5, n 50 and 50:
#   S_within = 5.0249, d = 0.5970, V_d = 0.0418, SE_d = 0.2044, J = 0.9923, g = 0.5924,
#   V_g = 0.0411, SE_g = 0.2028 (printed to 4 decimals).
# - tests/analysis/reference/effect_size_expected.json, written by effect_size.R with R 4.2.2
#   (mean, sd, lm, confint) on continuous_data.csv: week-8 PHQ-9 of three unbalanced arms with
#   missing visits, and the ANCOVA difference over the pooled baseline SD.
# Closed-form statistics within 1e-6 of R; published values within half a unit of their last
# printed digit.

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.effect_size import (
    hedges_g,
    hedges_g_from_summary,
    model_adjusted_effect_size,
    pooled_sd,
    standardized_difference,
)
from analysis.results import Result

REF = Path(__file__).parent / "reference"
EXPECTED = json.loads((REF / "effect_size_expected.json").read_text())
TOL = 1e-6


@pytest.fixture(scope="module")
def long() -> pd.DataFrame:
    return pd.read_csv(REF / "continuous_data.csv")


@pytest.fixture(scope="module")
def week8(long) -> pd.DataFrame:
    return long[long["visit"] == "WEEK 8"]


@pytest.fixture(scope="module")
def baseline(long) -> pd.DataFrame:
    return long[long["visit"] == "BASELINE"]


def test_hedges_g_domain_test_vector():
    g = hedges_g_from_summary(
        mean_treatment=8, sd_treatment=5, n_treatment=50, mean_control=11, sd_control=5, n_control=50
    )
    assert g.cohen_d == pytest.approx(-0.600, abs=5e-4)
    assert g.estimate == pytest.approx(-0.5954, abs=5e-5)
    assert g.se == pytest.approx(0.2029, abs=5e-5)
    assert g.ci_low == pytest.approx(-0.993, abs=5e-4)
    assert g.ci_high == pytest.approx(-0.198, abs=5e-4)
    assert g.standardizer_label == "pooled within-arm SD of the outcome"


def test_hedges_g_against_published_worked_example_borenstein_2009_chapter_4():
    g = hedges_g_from_summary(
        mean_treatment=103, sd_treatment=5.5, n_treatment=50, mean_control=100, sd_control=4.5, n_control=50
    )
    assert g.standardizer == pytest.approx(5.0249, abs=5e-5)
    assert g.cohen_d == pytest.approx(0.5970, abs=5e-5)
    assert (g.se / g.correction) ** 2 == pytest.approx(0.0418, abs=5e-5)  # V_d
    assert g.se / g.correction == pytest.approx(0.2044, abs=5e-5)  # SE_d
    assert g.correction == pytest.approx(0.9923, abs=5e-5)
    assert g.estimate == pytest.approx(0.5924, abs=5e-5)
    assert g.se**2 == pytest.approx(0.0411, abs=5e-5)  # V_g
    assert g.se == pytest.approx(0.2028, abs=5e-5)


@pytest.mark.parametrize("arm", ["APP", "APPX"])
@pytest.mark.parametrize(("alpha", "key"), [(0.05, "hedges"), (0.10, "hedges90")])
def test_hedges_g_against_R_unbalanced_arms_with_missing_visits(week8, arm, alpha, key):
    exp = EXPECTED[arm][key]
    g = hedges_g(week8, outcome="phq9", arm="arm", treatment=arm, control="CTL", alpha=alpha)
    assert g.n == exp["n1"] + exp["n2"]
    assert g.raw_difference == pytest.approx(exp["mean1"] - exp["mean2"], abs=TOL)
    assert g.standardizer == pytest.approx(exp["pooled_sd"], abs=TOL)
    assert g.cohen_d == pytest.approx(exp["d"], abs=TOL)
    assert g.correction == pytest.approx(exp["J"], abs=TOL)
    assert g.estimate == pytest.approx(exp["g"], abs=TOL)
    assert g.se == pytest.approx(exp["se"], abs=TOL)
    assert g.ci_low == pytest.approx(exp["lower"], abs=TOL)
    assert g.ci_high == pytest.approx(exp["upper"], abs=TOL)
    assert any("missing value(s) left out" in n for n in g.notes)


@pytest.mark.parametrize("arm", ["APP", "APPX"])
def test_model_adjusted_effect_size_against_R_lm_over_pooled_baseline_sd(baseline, arm):
    exp = EXPECTED[arm]["ancova"]
    difference = Result(estimate=exp["difference"], ci_low=exp["lower"], ci_high=exp["upper"])
    es = model_adjusted_effect_size(
        baseline, baseline="phq9", arm="arm", treatment=arm, control="CTL", difference=difference
    )
    assert es.standardizer == pytest.approx(exp["pooled_baseline_sd"], abs=TOL)
    assert es.estimate == pytest.approx(exp["standardized"], abs=TOL)
    assert es.ci_low == pytest.approx(exp["standardized_lower"], abs=TOL)
    assert es.ci_high == pytest.approx(exp["standardized_upper"], abs=TOL)
    assert "baseline" in es.standardizer_label
    summary = standardized_difference(
        difference=exp["difference"],
        ci_low=exp["lower"],
        ci_high=exp["upper"],
        sd_treatment=exp["baseline_sd"][0],
        n_treatment=exp["baseline_n"][0],
        sd_control=exp["baseline_sd"][1],
        n_control=exp["baseline_n"][1],
    )
    assert summary.estimate == pytest.approx(es.estimate, abs=1e-12)


def test_pooled_sd_and_degenerate_inputs():
    assert pooled_sd(5.5, 50, 4.5, 50) == pytest.approx(25.25**0.5)
    with pytest.raises(ValueError, match="n_1"):
        pooled_sd(1.0, 1, 1.0, 1)
    with pytest.raises(ValueError, match="pooled SD is 0"):
        hedges_g_from_summary(
            mean_treatment=1, sd_treatment=0, n_treatment=5, mean_control=1, sd_control=0, n_control=5
        )
    with pytest.raises(ValueError, match="confidence limits"):
        model_adjusted_effect_size(
            pd.DataFrame({"b": [1.0, 2.0, 3.0, 4.0], "a": ["X", "X", "Y", "Y"]}),
            baseline="b",
            arm="a",
            treatment="X",
            control="Y",
            difference=Result(estimate=1.0),
        )


def test_hedges_g_refuses_an_arm_without_data(week8):
    with pytest.raises(ValueError, match="no observed"):
        hedges_g(week8, outcome="phq9", arm="arm", treatment="SHAM", control="CTL")
