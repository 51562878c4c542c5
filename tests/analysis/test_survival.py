# Sources of the expected values in this file:
# - tests/analysis/reference/survival_expected.json, written by survival.R beside it with R 4.2.2
#   and survival 3.5-3 (Debian): survfit(conf.type = "log-log"), quantile.survfit,
#   summary(survfit, times, extend = TRUE), survdiff (with strata()), coxph(ties = "efron"),
#   cox.zph (the survival >= 3.0 algorithm, transform "km" by default).
# - Data: survival_data.csv (three unbalanced arms, weekly tied times, heavy censoring, a
#   stratum, CDISC CNSR), survival_aml.csv (survival::aml), survival_edge.csv (a curve that is
#   exactly 0.5 on a flat stretch and one that falls to 0).
# Acceptance tolerance for survival estimates: 1e-6 absolute.

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.survival import (
    cox_regression,
    event_from_cnsr,
    hazard_ratio_direction,
    kaplan_meier,
    logrank_test,
)

REF = Path(__file__).parent / "reference"
EXPECTED = json.loads((REF / "survival_expected.json").read_text())
TOL = 1e-6


def as_array(values) -> np.ndarray:
    values = np.atleast_1d(np.asarray(values, dtype=object))
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def assert_close(actual, expected, tol=TOL):
    a, b = as_array(actual), as_array(expected)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=tol)


@pytest.fixture(scope="module")
def main() -> pd.DataFrame:
    d = pd.read_csv(REF / "survival_data.csv")
    return d.assign(event=event_from_cnsr(d["cnsr"]))


@pytest.fixture(scope="module")
def aml() -> pd.DataFrame:
    return pd.read_csv(REF / "survival_aml.csv")


@pytest.fixture(scope="module")
def edge() -> pd.DataFrame:
    d = pd.read_csv(REF / "survival_edge.csv")
    return d.assign(event=event_from_cnsr(d["cnsr"]))


def dataset(name, main, aml, edge):
    if name in ("main", "main90"):
        return main, "aval", "event", "arm"
    if name == "aml":
        return aml, "time", "status", "x"
    return edge, "aval", "event", "arm"


# --- CNSR ----------------------------------------------------------------------------------


def test_event_from_cnsr_is_the_inverse_of_the_cdisc_flag():
    cnsr = pd.Series([0, 1, 0, 2, 1], name="CNSR")
    assert event_from_cnsr(cnsr).tolist() == [True, False, True, False, False]


@pytest.mark.parametrize("bad", [[0, None], [0, -1], [0, 0.5], [0, "x"]])
def test_event_from_cnsr_refuses_missing_negative_and_non_integer_flags(bad):
    with pytest.raises(ValueError, match="CNSR"):
        event_from_cnsr(pd.Series(bad, dtype=object))


def test_cnsr_passed_as_the_event_flag_is_refused(main):
    with pytest.raises(ValueError, match="event_from_cnsr"):
        kaplan_meier(main.rename(columns={"cnsr": "CNSR"}), time="aval", event="CNSR", arm="arm")


def test_swapping_cnsr_and_event_changes_the_estimate(main):
    # the conversion matters: using CNSR as if it were an event flag gives another curve
    right = kaplan_meier(main, time="aval", event="event").curves[0]
    wrong = kaplan_meier(main.assign(flag=main["cnsr"]), time="aval", event="flag").curves[0]
    assert right.n_events == int((main["cnsr"] == 0).sum())
    assert wrong.n_events == int((main["cnsr"] == 1).sum())


# --- Kaplan-Meier --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["main", "aml", "edge", "main90"])
def test_kaplan_meier_against_R_survfit_loglog(name, main, aml, edge):
    frame, time, event, arm = dataset(name, main, aml, edge)
    alpha = 0.10 if name == "main90" else 0.05
    km = kaplan_meier(frame, time=time, event=event, arm=arm, alpha=alpha)
    assert [c.arm for c in km.curves] == list(dict.fromkeys(frame[arm].astype(str)))
    for arm_label, exp in EXPECTED["km"][name].items():
        curve = km.curve(arm_label)
        assert_close(curve.time, exp["time"])
        assert list(curve.n_risk) == list(np.atleast_1d(exp["n_risk"]))
        assert list(curve.n_event) == list(np.atleast_1d(exp["n_event"]))
        assert list(curve.n_censor) == list(np.atleast_1d(exp["n_censor"]))
        assert_close(curve.survival, exp["surv"])
        assert_close(curve.std_err, exp["std_err"])
        assert_close(curve.ci_low, exp["lower"])
        assert_close(curve.ci_high, exp["upper"])


@pytest.mark.parametrize("name", ["main", "aml", "edge", "main90"])
def test_median_brookmeyer_crowley_against_R_quantile_survfit(name, main, aml, edge):
    frame, time, event, arm = dataset(name, main, aml, edge)
    alpha = 0.10 if name == "main90" else 0.05
    km = kaplan_meier(frame, time=time, event=event, arm=arm, alpha=alpha)
    for arm_label, exp in EXPECTED["median"][name].items():
        med = km.curve(arm_label).median
        assert_close([med.estimate, med.ci_low, med.ci_high], [exp["median"], exp["lower"], exp["upper"]])


def test_median_on_a_flat_stretch_at_one_half_is_its_midpoint(edge):
    # arm A's curve is exactly 0.5 from t = 5 to t = 9: R reports (5 + 9) / 2
    km = kaplan_meier(edge, time="aval", event="event", arm="arm")
    assert km.curve("A").median.estimate == pytest.approx(7.0, abs=TOL)


def test_median_not_reached_is_not_estimable(main):
    km = kaplan_meier(main, time="aval", event="event", arm="arm")
    med = km.curve("APPX").median
    assert math.isnan(med.estimate)
    assert med.text() == "not estimable (63 to not estimable)"
    assert any("not reached" in n for n in med.notes)
    assert km.curve("APP").median.text() == "56 (42 to 63)"
    assert med.to_dict()["estimate"] is None


def test_number_at_risk_against_R_summary_survfit(main):
    times = EXPECTED["at_risk"]["times"]
    km = kaplan_meier(main, time="aval", event="event", arm="arm", at_risk_times=times)
    for arm_label, exp in EXPECTED["at_risk"]["main"].items():
        curve = km.curve(arm_label)
        assert [t for t, _ in curve.at_risk] == exp["time"]
        assert [n for _, n in curve.at_risk] == exp["n_risk"]
    table = km.at_risk_frame()
    assert table.loc["CTL", 0.0] == 70


def test_kaplan_meier_frames_use_our_column_names(main):
    km = kaplan_meier(main, time="aval", event="event", arm="arm")
    assert list(km.to_frame().columns) == [
        "arm", "time", "n_risk", "n_event", "n_censor", "survival", "std_err", "ci_low", "ci_high"
    ]  # fmt: skip
    assert list(km.medians_frame().columns) == ["arm", "n", "n_events", "median", "ci_low", "ci_high", "text"]


def test_kaplan_meier_without_arm_is_one_curve(main):
    km = kaplan_meier(main, time="aval", event="event")
    assert [c.arm for c in km.curves] == ["all"]
    assert km.curves[0].n == len(main)


def test_missing_times_are_excluded_and_noted(main):
    frame = main.copy()
    frame.loc[:2, "aval"] = np.nan
    km = kaplan_meier(frame, time="aval", event="event", arm="arm")
    assert sum(c.n for c in km.curves) == len(main) - 3
    assert km.notes == ("3 row(s) with a missing value were excluded",)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("aval", -1.0, "non-negative"), ("event", 2, "event flag")],
)
def test_unusable_times_and_flags_are_refused(main, column, value, message):
    frame = main.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[0, column] = value
    with pytest.raises(ValueError, match=message):
        kaplan_meier(frame, time="aval", event="event", arm="arm")


def test_unknown_column_is_named(main):
    with pytest.raises(KeyError, match="'days'"):
        kaplan_meier(main, time="days", event="event")


# --- log-rank ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "subset", "strata"),
    [
        ("main", None, None),
        ("main_strat", None, "severity"),
        ("two_strat", "two", "severity"),
        ("aml", None, None),
    ],
)
def test_logrank_against_R_survdiff(name, subset, strata, main, aml):
    if name == "aml":
        result = logrank_test(aml, time="time", event="status", arm="x")
    else:
        frame = main[main["arm"] != "APPX"] if subset == "two" else main
        result = logrank_test(frame, time="aval", event="event", arm="arm", strata=strata)
    exp = EXPECTED["logrank"][name]
    assert list(result.groups) == exp["groups"]
    assert result.estimate == pytest.approx(exp["chisq"], abs=TOL)
    assert result.df == exp["df"]
    assert result.p_value == pytest.approx(exp["p"], abs=TOL)
    assert_close(result.observed, exp["observed"])
    assert_close(result.expected, exp["expected"])


def test_stratified_logrank_differs_from_unstratified(main):
    plain = logrank_test(main, time="aval", event="event", arm="arm")
    strat = logrank_test(main, time="aval", event="event", arm="arm", strata=["severity"])
    assert strat.strata == ("severity",)
    assert "stratified" in strat.method
    assert plain.estimate != pytest.approx(strat.estimate, abs=1e-3)


# --- Cox -----------------------------------------------------------------------------------


def cox_for(name, main, aml):
    if name == "aml":
        return cox_regression(
            aml, time="time", event="status", arm="x", reference="Maintained", event_is_favourable=False
        )
    kwargs = {"adjusted": {"covariates": ["baseline"]}, "stratified": {"strata": "severity"}}.get(name, {})
    return cox_regression(
        main, time="aval", event="event", arm="arm", reference="CTL", event_is_favourable=True, **kwargs
    )


@pytest.mark.parametrize("name", ["arm", "adjusted", "stratified", "aml"])
def test_cox_efron_against_R_coxph(name, main, aml):
    model = cox_for(name, main, aml)
    exp = EXPECTED["cox"][name]
    rows = [*model.hazard_ratios, *model.covariates]
    assert len(rows) == len(as_array(exp["hr"]))
    assert_close([r.estimate for r in rows], exp["hr"])
    assert_close([r.se for r in rows], exp["se"])
    assert_close([r.ci_low for r in rows], exp["lower"])
    assert_close([r.ci_high for r in rows], exp["upper"])
    assert_close([r.p_value for r in rows], exp["p"])
    assert model.log_likelihood == pytest.approx(exp["loglik"], abs=TOL)


@pytest.mark.parametrize("name", ["arm", "adjusted", "stratified", "aml"])
def test_ph_test_against_R_cox_zph_km_transform(name, main, aml):
    model = cox_for(name, main, aml)
    exp = EXPECTED["cox"][name]["zph"]
    assert [t.term for t in model.ph_tests][-1] == "GLOBAL"
    assert [t.df for t in model.ph_tests] == list(np.atleast_1d(exp["df"]))
    assert_close([t.chisq for t in model.ph_tests], exp["chisq"])
    assert_close([t.p_value for t in model.ph_tests], exp["p"])


@pytest.mark.parametrize("transform", ["identity", "rank", "log"])
def test_ph_test_against_R_cox_zph_other_transforms(transform, main):
    model = cox_regression(
        main,
        time="aval",
        event="event",
        arm="arm",
        reference="CTL",
        covariates=["baseline"],
        event_is_favourable=True,
        ph_transform=transform,
    )
    exp = EXPECTED["zph_transforms"][transform]
    assert [t.term for t in model.ph_tests] == ["arm", "baseline", "GLOBAL"]
    assert_close([t.chisq for t in model.ph_tests], exp["chisq"])
    assert_close([t.p_value for t in model.ph_tests], exp["p"])


def test_hazard_ratio_direction_depends_on_whether_the_event_is_wanted():
    # time to response: a higher hazard means responding sooner, which favours the arm
    assert hazard_ratio_direction(1.6, arm="APP", reference="CTL", event_is_favourable=True) == "APP"
    assert hazard_ratio_direction(0.6, arm="APP", reference="CTL", event_is_favourable=True) == "CTL"
    # time to dropout: a lower hazard favours the arm
    assert hazard_ratio_direction(0.6, arm="APP", reference="CTL", event_is_favourable=False) == "APP"
    assert hazard_ratio_direction(1.0, arm="APP", reference="CTL", event_is_favourable=False) == ""


def test_cox_labels_the_direction(main, aml):
    model = cox_for("arm", main, aml)
    assert model.hazard_ratio("APP").favours == "APP"  # HR 1.6 for time to response
    assert model.hazard_ratio("APPX").favours == "CTL"
    assert "HR > 1 favours" in model.direction
    death = cox_for("aml", main, aml)
    assert death.hazard_ratios[0].estimate > 1
    assert death.hazard_ratios[0].favours == "Maintained"
    assert "HR < 1 favours" in death.direction
    assert list(model.to_frame().columns) == [
        "term",
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "p_value",
        "favours",
    ]


def test_cox_refuses_an_absent_reference_and_text_covariates(main):
    with pytest.raises(ValueError, match="reference arm"):
        cox_regression(
            main, time="aval", event="event", arm="arm", reference="SHAM", event_is_favourable=True
        )
    with pytest.raises(ValueError, match="numeric"):
        cox_regression(
            main,
            time="aval",
            event="event",
            arm="arm",
            reference="CTL",
            covariates=["severity"],
            event_is_favourable=True,
        )


def test_an_arm_without_events_is_noted_not_warned(main):
    frame = main.assign(event=main["event"] & (main["arm"] != "APPX"))
    model = cox_regression(
        frame, time="aval", event="event", arm="arm", reference="CTL", event_is_favourable=True
    )
    assert any("did not converge" in n for n in model.notes)
    assert model.hazard_ratio("APPX").estimate < 1e-6
    km = kaplan_meier(frame, time="aval", event="event", arm="arm")
    assert km.curve("APPX").n_events == 0
    assert km.curve("APPX").median.text() == "not estimable (not estimable to not estimable)"
