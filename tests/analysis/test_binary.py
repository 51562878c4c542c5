# Sources of the expected values in this file:
# - DOMAIN.md section 3 test vector: 40/100 vs 25/100 gives RD 0.150 (0.020 to 0.273), NNT 7,
#   RR 1.60 (1.06 to 2.42) (three significant digits).
# - Newcombe RG. Interval estimation for the difference between independent proportions:
#   comparison of eleven methods. Stat Med 1998;17(8):873-890, Table II, method 10 (hybrid
#   score), examples (a), (b), (d)-(h), printed to 4 decimals.
# - tests/analysis/reference/binary_expected.json, written by binary.R beside it with R 4.2.2:
#   prop.test(correct = FALSE) Wilson limits, glm(binomial(link = "log")) risk ratios,
#   glm(binomial) odds ratios with confint.default, on binary_data.csv (three unbalanced arms,
#   missing outcomes).
# - Altman DG. Confidence intervals for the number needed to treat. BMJ 1998;317:1309-1312:
#   wording "NNTB x to infinity to NNTH y" when the interval of the difference spans 0.
# Closed-form statistics are compared within 1e-6 (absolute) with R; glm fits within 1e-6.

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.binary import (
    compare_binary,
    newcombe_difference,
    number_needed_to_treat,
    odds_ratios,
    risk_ratio,
    wilson_interval,
)
from analysis.results import Result

REF = Path(__file__).parent / "reference"
EXPECTED = json.loads((REF / "binary_expected.json").read_text())
TOL = 1e-6

# Newcombe (1998) Table II, method 10: (x1, n1, x2, n2) -> (lower, upper), 4 decimals.
NEWCOMBE_TABLE_II = {
    "a": ((56, 70, 48, 80), (0.0524, 0.3339)),
    "b": ((9, 10, 3, 10), (0.1705, 0.8090)),
    "d": ((5, 56, 0, 29), (-0.0381, 0.1926)),
    "e": ((0, 10, 0, 20), (-0.1611, 0.2775)),
    "f": ((0, 10, 0, 10), (-0.2775, 0.2775)),
    "g": ((10, 10, 0, 20), (0.6791, 1.0000)),
    "h": ((10, 10, 0, 10), (0.6075, 1.0000)),
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(REF / "binary_data.csv")


# --- published and DOMAIN.md vectors ---------------------------------------------------------


def test_domain_test_vector_risk_difference_nnt_and_risk_ratio():
    rd = newcombe_difference(40, 100, 25, 100)
    assert (round(rd.estimate, 3), round(rd.ci_low, 3), round(rd.ci_high, 3)) == (0.150, 0.020, 0.273)
    nnt = number_needed_to_treat(rd, outcome_is_favourable=True)
    assert nnt.rounded == 7
    assert nnt.kind == "NNTB"
    assert nnt.text == "NNTB 7 (95% CI 4 to 50)"
    rr = risk_ratio(40, 100, 25, 100)
    assert (round(rr.estimate, 2), round(rr.ci_low, 2), round(rr.ci_high, 2)) == (1.60, 1.06, 2.42)


@pytest.mark.parametrize("example", sorted(NEWCOMBE_TABLE_II))
def test_newcombe_against_published_worked_examples_newcombe_1998_table_ii(example):
    counts, (lower, upper) = NEWCOMBE_TABLE_II[example]
    rd = newcombe_difference(*counts)
    assert rd.ci_low == pytest.approx(lower, abs=5e-5)  # printed to 4 decimals
    assert rd.ci_high == pytest.approx(upper, abs=5e-5)


def test_newcombe_against_R_prop_test_wilson_limits():
    vec = EXPECTED["test_vector"]
    assert wilson_interval(40, 100) == pytest.approx(tuple(vec["wilson_1"]), abs=TOL)
    assert wilson_interval(25, 100) == pytest.approx(tuple(vec["wilson_2"]), abs=TOL)
    for ex in EXPECTED["newcombe_examples"]:
        rd = newcombe_difference(*ex["counts"])
        assert rd.estimate == pytest.approx(ex["estimate"], abs=TOL)
        assert rd.ci_low == pytest.approx(ex["lower"], abs=TOL)
        assert rd.ci_high == pytest.approx(ex["upper"], abs=TOL)


def test_risk_ratio_against_R_glm_log_binomial_test_vector():
    exp = EXPECTED["test_vector"]["rr"]
    rr = risk_ratio(40, 100, 25, 100)
    for field, key in [("estimate", "estimate"), ("se", "se"), ("ci_low", "lower"), ("ci_high", "upper")]:
        assert getattr(rr, field) == pytest.approx(exp[key], abs=TOL)
    assert rr.p_value == pytest.approx(exp["p"], abs=TOL)


def test_risk_ratio_with_no_events_has_no_interval():
    rr = risk_ratio(0, 10, 3, 10)
    assert rr.estimate == 0.0
    assert rr.ci_low is None
    assert "no events" in rr.notes[0]
    assert math.isinf(risk_ratio(3, 10, 0, 10).estimate)


@pytest.mark.parametrize(("events", "n"), [(-1, 10), (11, 10), (0, 0)])
def test_impossible_counts_are_refused(events, n):
    with pytest.raises(ValueError, match="events"):
        wilson_interval(events, n)


# --- NNT wording ---------------------------------------------------------------------------


def rd_of(estimate, low, high) -> Result:
    return Result(estimate=estimate, ci_low=low, ci_high=high)


def test_nnt_spanning_zero_is_worded_as_altman():
    # Altman 1998: a difference whose interval includes 0 gives "NNTB x to infinity to NNTH y"
    nnt = number_needed_to_treat(rd_of(0.05, -0.1, 0.2), outcome_is_favourable=True)
    assert nnt.text == "NNTB 20 (95% CI NNTB 5 to infinity to NNTH 10)"
    assert nnt.reciprocal_limits == pytest.approx((5.0, -10.0))


def test_nnt_of_harm_and_of_an_unfavourable_outcome():
    harm = number_needed_to_treat(rd_of(-0.2, -0.3, -0.1), outcome_is_favourable=True)
    assert harm.text == "NNTH 5 (95% CI 4 to 10)"
    # fewer deteriorations in the arm is a benefit
    fewer_bad = number_needed_to_treat(rd_of(-0.2, -0.3, -0.1), outcome_is_favourable=False)
    assert fewer_bad.text == "NNTB 5 (95% CI 4 to 10)"


def test_nnt_is_rounded_up_and_infinite_without_difference():
    assert number_needed_to_treat(rd_of(0.3, 0.1, 0.5), outcome_is_favourable=True).rounded == 4
    none = number_needed_to_treat(rd_of(0.0, -0.1, 0.1), outcome_is_favourable=True)
    assert none.rounded is None
    assert none.text == "NNT infinite (no difference) (95% CI NNTB 10 to infinity to NNTH 10)"
    with pytest.raises(ValueError, match="confidence limits"):
        number_needed_to_treat(Result(estimate=0.1), outcome_is_favourable=True)


# --- the committed data, three arms --------------------------------------------------------


@pytest.mark.parametrize("arm", ["APP", "APPX"])
def test_compare_binary_against_R_three_unbalanced_arms(data, arm):
    exp = EXPECTED["by_arm"][arm]
    result = compare_binary(
        data,
        outcome="response",
        arm="arm",
        reference="CTL",
        outcome_is_favourable=True,
        covariates=["baseline"],
    )
    c = result.comparison(arm)
    assert (c.events, c.n, c.events_reference, c.n_reference) == (
        exp["events"], exp["n"], exp["events_ref"], exp["n_ref"]
    )  # fmt: skip
    assert c.risk_difference.estimate == pytest.approx(exp["rd"]["estimate"], abs=TOL)
    assert c.risk_difference.ci_low == pytest.approx(exp["rd"]["lower"], abs=TOL)
    assert c.risk_difference.ci_high == pytest.approx(exp["rd"]["upper"], abs=TOL)
    for field, key in [("estimate", "estimate"), ("se", "se"), ("ci_low", "lower"), ("ci_high", "upper")]:
        assert getattr(c.risk_ratio, field) == pytest.approx(exp["rr"][key], abs=TOL)
    assert c.risk_ratio.p_value == pytest.approx(exp["rr"]["p"], abs=TOL)
    odds = EXPECTED["odds"]["baseline"][arm]
    for field, key in [("estimate", "estimate"), ("se", "se"), ("ci_low", "lower"), ("ci_high", "upper")]:
        assert getattr(c.odds_ratio, field) == pytest.approx(odds[key], abs=TOL)
    assert c.odds_ratio.p_value == pytest.approx(odds["p"], abs=TOL)
    prop = next(p for p in result.proportions if p.parameters["arm"] == arm)
    assert (prop.ci_low, prop.ci_high) == pytest.approx(tuple(exp["wilson"]), abs=TOL)


@pytest.mark.parametrize("arm", ["APP", "APPX"])
def test_newcombe_at_90_percent_against_R(data, arm):
    exp = EXPECTED["by_arm"][arm]["rd90"]
    c = compare_binary(
        data, outcome="response", arm="arm", reference="CTL", outcome_is_favourable=True, alpha=0.10
    ).comparison(arm)
    assert (c.risk_difference.ci_low, c.risk_difference.ci_high) == pytest.approx(
        (exp["lower"], exp["upper"]), abs=TOL
    )
    assert "90% CI" in c.nnt.text


@pytest.mark.parametrize(
    ("model", "covariates"),
    [("unadjusted", []), ("baseline", ["baseline"]), ("baseline_site", ["baseline", "site"])],
)
def test_odds_ratios_against_R_glm_binomial(data, model, covariates):
    results = odds_ratios(data, outcome="response", arm="arm", reference="CTL", covariates=covariates)
    assert [r.parameters["arm"] for r in results] == ["APP", "APPX"]
    for r in results:
        exp = EXPECTED["odds"][model][r.parameters["arm"]]
        assert r.estimate == pytest.approx(exp["estimate"], abs=TOL)
        assert r.se == pytest.approx(exp["se"], abs=TOL)
        assert r.ci_low == pytest.approx(exp["lower"], abs=TOL)
        assert r.ci_high == pytest.approx(exp["upper"], abs=TOL)
        assert r.p_value == pytest.approx(exp["p"], abs=TOL)
    assert ("adjusted for" in results[0].method) == bool(covariates)


def test_missing_outcomes_are_excluded_and_noted(data):
    result = compare_binary(data, outcome="response", arm="arm", reference="CTL", outcome_is_favourable=True)
    n_missing = int(data["response"].isna().sum())
    assert n_missing > 0
    assert result.notes == (f"{n_missing} row(s) with a missing outcome, arm or covariate were excluded",)
    assert sum(p.n for p in result.proportions) == len(data) - n_missing


def test_binary_frame_uses_our_column_names(data):
    frame = compare_binary(
        data, outcome="response", arm="arm", reference="CTL", outcome_is_favourable=True
    ).to_frame()
    assert list(frame.columns) == [
        "arm",
        "reference",
        "measure",
        "estimate",
        "ci_low",
        "ci_high",
        "p_value",
        "text",
    ]
    assert frame["measure"].tolist()[:4] == ["risk difference", "risk ratio", "odds ratio", "NNT"]


def test_non_binary_outcome_and_absent_reference_are_refused(data):
    with pytest.raises(ValueError, match="0/1"):
        compare_binary(data, outcome="baseline", arm="arm", reference="CTL", outcome_is_favourable=True)
    with pytest.raises(ValueError, match="reference arm"):
        compare_binary(data, outcome="response", arm="arm", reference="SHAM", outcome_is_favourable=True)


def test_an_arm_without_responders_is_noted_not_warned(data):
    frame = data.assign(response=data["response"].where(data["arm"] != "APPX", 0))
    result = compare_binary(frame, outcome="response", arm="arm", reference="CTL", outcome_is_favourable=True)
    c = result.comparison("APPX")
    assert c.events == 0
    assert c.risk_ratio.estimate == 0.0
    assert c.risk_difference.ci_low < c.risk_difference.estimate < c.risk_difference.ci_high
    assert c.nnt.kind == "NNTH"
    assert any("separation" in n for n in c.odds_ratio.notes)
