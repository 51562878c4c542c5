"""The analysis plan runner on a simulated three-arm trial of the example protocol.

The datasets come from `trials.simulate.plan` through `analysis.datasets` (no database). The
estimators themselves are checked against R in their own tests; here the runner is checked to
apply them as the plan says (results equal to calling the estimator directly on data prepared
by hand), to keep arm-level numbers out of a blinded run, to mark the primary analysis once, to
stop the testing hierarchy at the first non-rejection, to keep the CONSORT counts consistent,
and to give the same bytes for the same data and seeds.
"""

import json
import math
import re
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

import analysis.sap as sap_module
from analysis.ancova import fit_ancova
from analysis.binary import newcombe_difference
from analysis.consort import ConsortError, consort_counts
from analysis.effect_size import hedges_g
from analysis.imputation import mi_ancova
from analysis.mmrm import fit_mmrm
from analysis.multiplicity import holm
from analysis.sap import (
    PrimaryAnalysisError,
    ResultsDocument,
    SapSpec,
    StrategySpec,
    frames_sha256,
    run_sap,
)
from analysis.survival import cox_regression, kaplan_meier, logrank_test
from protocols.sap_spec import sap_spec_of
from tests.analysis.sap_trial import TrialFrames, example_document, simulate

N = 240
SEED = 11
VISITS = ["W02", "W04", "W06", "W08", "W12"]
ARMS = ("CBT", "ATTN", "WAIT")
PRIMARY_ID = "PHQ9_CHG_W8.E1_PRIMARY.MMRM.CBT-ATTN.W08"
REL = 1e-9  # the runner and the direct call differ only in the order of the rows
REL_DF = 1e-6  # degrees of freedom and p-values of the MMRM (see _same)


@pytest.fixture(scope="module")
def trial() -> TrialFrames:
    return simulate(N, SEED)


@pytest.fixture(scope="module")
def spec() -> SapSpec:
    # The example plan with 5 imputations instead of 50, to keep the test fast.
    return replace(sap_spec_of(example_document()), imputations=5)


@pytest.fixture(scope="module")
def fast_spec(spec: SapSpec) -> SapSpec:
    """Without the slow sensitivity analyses (imputation, subgroups)."""
    return replace(spec, imputations=None, tipping_deltas=(), subgroups=(), without_prorating=False)


def sha(t: TrialFrames) -> str:
    return frames_sha256({"adsl": t.adsl, "adqs": t.adqs, "adtte": t.adtte})


def run(t: TrialFrames, spec: SapSpec, *, blinded: bool = False, **kw: Any) -> ResultsDocument:
    return run_sap(
        t.adsl,
        t.adqs,
        t.adtte,
        spec,
        blinded=blinded,
        input_sha256=sha(t),
        screening=t.screening,
        adqs_unprorated=t.adqs_unprorated,
        **kw,
    )


@pytest.fixture(scope="module")
def document(trial: TrialFrames, spec: SapSpec) -> ResultsDocument:
    return run(trial, spec)


@pytest.fixture(scope="module")
def blinded(trial: TrialFrames, spec: SapSpec) -> ResultsDocument:
    return run(trial, spec, blinded=True)


def permuted(t: TrialFrames) -> TrialFrames:
    relabel = {"CBT": "WAIT", "ATTN": "CBT", "WAIT": "ATTN"}
    return replace(
        t,
        adsl=t.adsl.assign(arm=t.adsl["arm"].map(relabel)),
        adqs=t.adqs.assign(arm=t.adqs["arm"].map(relabel)),
        adtte=t.adtte.assign(arm=t.adtte["arm"].map(relabel)),
    )


# --- reproducibility and the document's form -------------------------------------------------


def test_the_same_data_and_seed_give_a_byte_identical_results_json(
    trial: TrialFrames, spec: SapSpec, document: ResultsDocument
) -> None:
    again = simulate(N, SEED)  # derived afresh from the same seed
    assert sha(again) == sha(trial)
    text = run(again, spec).to_json()
    assert text == document.to_json()
    assert text.encode("utf-8") == document.to_json().encode("utf-8")


def test_the_json_is_canonical_and_carries_the_input_hash(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    text = document.to_json()
    assert text.endswith("}\n")
    assert "NaN" not in text
    assert "Infinity" not in text
    parsed = json.loads(text)
    assert json.dumps(parsed, sort_keys=True, indent=1, ensure_ascii=False) + "\n" == text
    assert parsed["input_sha256"] == sha(trial)
    assert len(parsed["input_sha256"]) == 64
    assert parsed["blinded"] is False
    fields = {"analysis_id", "endpoint", "estimand", "population", "method", "parameters", "n", "estimate"}
    fields |= {"se", "df", "ci_low", "ci_high", "p_value", "primary", "arm", "comparison", "notes"}
    for record in parsed["results"]:
        assert fields <= set(record)
    ids = [r["analysis_id"] for r in parsed["results"]]
    assert len(ids) == len(set(ids))
    # a not-estimable value is null, never NaN
    assert (
        parsed["results"][ids.index("PHQ9_CHG_W8.E1_PRIMARY.TIPPING_POINT.CBT-ATTN.W08")]["estimate"] is None
    )


def test_the_input_hash_changes_with_the_data(trial: TrialFrames) -> None:
    changed = trial.adqs.copy()
    changed.loc[changed.index[0], "aval"] = 27
    assert frames_sha256({"adsl": trial.adsl, "adqs": changed, "adtte": trial.adtte}) != sha(trial)


# --- the primary analysis --------------------------------------------------------------------


def test_exactly_one_result_is_primary_the_primary_estimands_mmrm_contrast_at_its_visit(
    document: ResultsDocument,
) -> None:
    primary = [r for r in document.results if r.primary]
    assert len(primary) == 1
    r = primary[0]
    assert r.analysis_id == PRIMARY_ID
    assert (r.estimand, r.endpoint, r.comparison, r.parameters["visit"]) == (
        "E1_PRIMARY",
        "PHQ9_CHG_W8",
        "CBT-ATTN",
        "W08",
    )
    assert document.primary == r
    # the same contrast at other visits, and of other estimands, is not primary
    assert not document.record("PHQ9_CHG_W8.E1_PRIMARY.MMRM.CBT-ATTN.W12").primary
    assert not document.record("PHQ9_CHG_W8.E1_HYPOTHETICAL.MMRM.CBT-ATTN.W08").primary


def _mmrm_data(t: TrialFrames, paramcd: str, drop_after: pd.Series | None = None) -> pd.DataFrame:
    a = t.adqs
    rows = a[(a["paramcd"] == paramcd) & (a["anl01fl"] == "Y") & a["avisit"].isin(VISITS) & (a["ady"] > 0)]
    rows = rows[rows["chg"].notna()].merge(t.adsl[["subject", "site", "severity_stratum"]], on="subject")
    if drop_after is not None:
        rows = rows[~(rows["ady"] > rows["subject"].map(drop_after))]
    return rows.assign(chg=rows["chg"].astype(float), base=rows["base"].astype(float))


def _fit(data: pd.DataFrame, reference: str = "ATTN", visit: str = "W08") -> Any:
    return fit_mmrm(
        data,
        subject="subject",
        visit="avisit",
        arm="arm",
        response="chg",
        reference_arm=reference,
        covariates=["site", "severity_stratum"],
        visit_covariates=["base"],
        visits=VISITS,
        primary_visit=visit,
        primary_arm="CBT",
    )


def _same(record: Any, result: Any, rel: float = REL) -> None:
    for name in ("estimate", "se", "df", "ci_low", "ci_high", "p_value"):
        expected = getattr(result, name)
        # The MMRM's Satterthwaite df come from a Hessian differenced from the gradient, which the
        # order of the rows moves by about 1e-9 (relative), and the p-value with them.
        tolerance = max(rel, REL_DF) if name in ("df", "p_value") else rel
        if expected is None:
            assert getattr(record, name) is None, name
        else:
            assert getattr(record, name) == pytest.approx(expected, rel=tolerance), name
    assert record.n == result.n


def test_the_primary_mmrm_equals_fit_mmrm_called_directly(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    fit = _fit(_mmrm_data(trial, "PHQ9TOT"))
    _same(document.record(PRIMARY_ID), fit.primary)
    for d in fit.differences:
        if d.parameters["arm"] == "CBT":
            _same(document.record(f"PHQ9_CHG_W8.E1_PRIMARY.MMRM.CBT-ATTN.{d.parameters['visit']}"), d)
    lsmean = next(m for m in fit.lsmeans if m.parameters == {"alpha": 0.05, "arm": "ATTN", "visit": "W04"})
    _same(document.record("PHQ9_CHG_W8.E1_PRIMARY.MMRM.LSMEAN.ATTN.W04"), lsmean)
    # another control arm: its own model
    waitlist = _fit(_mmrm_data(trial, "PHQ9TOT"), reference="WAIT")
    _same(document.record("PHQ9_CHG_W8.E2_VS_WAITLIST.MMRM.CBT-WAIT.W08"), waitlist.primary)


def test_the_hypothetical_strategy_drops_the_records_after_the_intercurrent_event(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    adsl = trial.adsl.set_index("subject")
    randomized = pd.to_datetime(adsl["randomized_on"])
    started = (pd.to_datetime(adsl["started_other_treatment_on"]) - randomized).dt.days
    changed = (pd.to_datetime(adsl["changed_other_treatment_on"]) - randomized).dt.days
    new_treatment = pd.concat([started, changed], axis=1).min(axis=1)
    assert new_treatment.notna().sum() > 5  # the simulation has such events
    fit = _fit(_mmrm_data(trial, "PHQ9TOT", drop_after=new_treatment))
    record = document.record("PHQ9_CHG_W8.E1_HYPOTHETICAL.MMRM.CBT-ATTN.W08")
    _same(record, fit.primary)
    assert record.estimate != document.record(PRIMARY_ID).estimate
    assert "intercurrent event NEW_TREATMENT: hypothetical strategy" in record.notes


def _at_w08(t: TrialFrames, paramcd: str = "PHQ9TOT") -> pd.DataFrame:
    data = _mmrm_data(t, paramcd)
    return data[data["avisit"] == "W08"]


def test_the_supportive_ancova_and_effect_sizes_equal_the_direct_calls(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    at = _at_w08(trial)
    ancova = fit_ancova(
        at,
        arm="arm",
        response="chg",
        reference_arm="ATTN",
        covariates=["base", "site", "severity_stratum"],
        primary_arm="CBT",
    )
    _same(document.record("PHQ9_CHG_W8.E1_PRIMARY.ANCOVA.CBT-ATTN.W08"), ancova.primary)
    g = hedges_g(at, outcome="chg", arm="arm", treatment="CBT", control="ATTN")
    record = document.record("PHQ9_CHG_W8.E1_PRIMARY.HEDGES_G.CBT-ATTN.W08")
    _same(record, g)
    assert record.statistics["cohen_d"] == pytest.approx(g.cohen_d, rel=REL)
    # model-adjusted: the MMRM difference over the pooled baseline SD of CBT and ATTN
    fas = trial.adsl[trial.adsl["fasfl"] == "Y"]
    sd = {a: fas.loc[fas["arm"] == a, "base_phq9"].dropna().astype(float) for a in ("CBT", "ATTN")}
    pooled = math.sqrt(
        ((len(sd["CBT"]) - 1) * sd["CBT"].var() + (len(sd["ATTN"]) - 1) * sd["ATTN"].var())
        / (len(sd["CBT"]) + len(sd["ATTN"]) - 2)
    )
    adjusted = document.record("PHQ9_CHG_W8.E1_PRIMARY.ADJUSTED_D.CBT-ATTN.W08")
    assert adjusted.estimate == pytest.approx(document.record(PRIMARY_ID).estimate / pooled, rel=1e-12)


def test_multiple_imputation_equals_mi_ancova_and_the_tipping_grid_starts_at_it(
    trial: TrialFrames, spec: SapSpec, document: ResultsDocument
) -> None:
    fas = trial.adsl[trial.adsl["fasfl"] == "Y"]
    a = trial.adqs
    rows = a[(a["paramcd"] == "PHQ9TOT") & (a["anl01fl"] == "Y")]
    base = rows[rows["ablfl"] == "Y"].set_index("subject")["aval"].astype(float)
    post = rows[rows["avisit"].isin(VISITS) & (rows["ady"] > 0)][["subject", "avisit", "chg"]]
    grid = pd.MultiIndex.from_product([fas["subject"], VISITS], names=["subject", "avisit"]).to_frame(
        index=False
    )
    data = grid.merge(post, how="left").merge(fas[["subject", "arm", "site", "severity_stratum"]])
    data = data.assign(chg=data["chg"].astype(float), base=data["subject"].map(base))
    res = mi_ancova(
        data,
        subject="subject",
        visit="avisit",
        arm="arm",
        response="chg",
        baseline="base",
        reference_arm="ATTN",
        seed=20250114,
        covariates=["site", "severity_stratum"],
        visits=VISITS,
        primary_visit="W08",
        primary_arm="CBT",
        n_imputations=spec.imputations or 0,
    )
    _same(document.record("PHQ9_CHG_W8.E1_PRIMARY.MI.CBT-ATTN.W08"), res.primary)
    at_zero = document.record("PHQ9_CHG_W8.E1_PRIMARY.TIPPING.CBT-ATTN.W08.D0.0")
    assert at_zero.estimate == pytest.approx(res.primary.estimate, rel=REL)
    shifts = [
        document.record(f"PHQ9_CHG_W8.E1_PRIMARY.TIPPING.CBT-ATTN.W08.D{d!r}") for d in spec.tipping_deltas
    ]
    assert [r.estimate for r in shifts] == sorted(r.estimate for r in shifts)  # CBT made worse step by step


def test_the_sensitivity_analysis_without_prorating_refits_on_the_unprorated_totals(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    unprorated = replace(trial, adqs=trial.adqs_unprorated)
    fit = _fit(_mmrm_data(unprorated, "PHQ9TOT"))
    record = document.record("PHQ9_CHG_W8.E1_PRIMARY.MMRM_UNPRORATED.CBT-ATTN.W08")
    _same(record, fit.primary)
    assert record.n is not None
    assert record.n <= (document.record(PRIMARY_ID).n or 0)


def test_subgroups_by_site_and_baseline_severity_refit_the_mmrm_within_each_level(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    data = _mmrm_data(trial, "PHQ9TOT")
    part = data[data["site"] == "LDS"]
    fit = fit_mmrm(
        part,
        subject="subject",
        visit="avisit",
        arm="arm",
        response="chg",
        reference_arm="ATTN",
        covariates=["severity_stratum"],
        visit_covariates=["base"],
        visits=VISITS,
        primary_visit="W08",
        primary_arm="CBT",
    )
    _same(document.record("PHQ9_CHG_W8.E1_PRIMARY.SUBGROUP.site.LDS.CBT-ATTN.W08"), fit.primary)
    for name, levels in (
        ("site", ("BRS", "LDS", "MAN")),
        ("baseline_severity", ("PHQ-9_0-14", "PHQ-9_15-27")),
    ):
        for level in levels:
            assert document.record(f"PHQ9_CHG_W8.E1_PRIMARY.SUBGROUP.{name}.{level}.CBT-ATTN.W08")
        interaction = document.record(f"PHQ9_CHG_W8.E1_PRIMARY.SUBGROUP.{name}.INTERACTION.CBT-ATTN.W08")
        assert interaction.df == len(levels) - 1
        assert interaction.p_value is not None
        assert 0 <= interaction.p_value <= 1


def test_responder_analysis_applies_the_composite_strategy_and_equals_newcombe(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    at = _at_w08(trial).set_index("subject")
    fas = trial.adsl.set_index("subject")
    crisis = (
        pd.to_datetime(fas["crisis_treatment_change_on"]) - pd.to_datetime(fas["randomized_on"])
    ).dt.days
    counts = {}
    for arm in ("CBT", "ATTN"):
        members = fas.index[(fas["arm"] == arm) & (fas["fasfl"] == "Y")]
        flags = at["crit1fl"].reindex(members)
        y = flags.map({"Y": 1, "N": 0}).astype(float)
        y[crisis.reindex(members) <= 56] = 0.0  # a crisis by week 8 counts as non-response
        counts[arm] = (int(y.sum()), int(y.notna().sum()))
    rd = newcombe_difference(*counts["CBT"], *counts["ATTN"])
    record = document.record("PHQ9_RESP_W8.E4_RESPONSE.RD.CBT-ATTN.W08")
    for name in ("estimate", "ci_low", "ci_high"):
        assert getattr(record, name) == pytest.approx(getattr(rd, name), rel=1e-12)
    assert record.statistics["events"] == counts["CBT"][0]
    nnt = document.record("PHQ9_RESP_W8.E4_RESPONSE.NNT.CBT-ATTN.W08")
    assert nnt.estimate == pytest.approx(1 / rd.estimate, rel=1e-12)
    assert nnt.statistics["text"].startswith("NNTB ")
    assert rd.ci_low is not None
    assert rd.ci_high is not None
    assert rd.ci_low > 0  # so the NNT interval is bounded: 1 / upper to 1 / lower
    assert (nnt.ci_low, nnt.ci_high) == (pytest.approx(1 / rd.ci_high), pytest.approx(1 / rd.ci_low))
    odds = document.record("PHQ9_RESP_W8.E4_RESPONSE.OR.CBT-ATTN.W08")
    assert odds.parameters["covariates"] == ("base", "site", "severity_stratum")
    assert odds.p_value is not None


def test_time_to_response_censors_at_withdrawal_and_crisis_and_equals_cox_and_logrank(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    adsl = trial.adsl.set_index("subject")
    randomized = pd.to_datetime(adsl["randomized_on"])
    ice = pd.concat(
        [
            (pd.to_datetime(adsl["withdrawal_on"]) - randomized).dt.days,
            (pd.to_datetime(adsl["crisis_treatment_change_on"]) - randomized).dt.days,
        ],
        axis=1,
    ).min(axis=1)
    tte = trial.adtte[trial.adtte["paramcd"] == "TTRESP"].set_index("subject")
    tte = tte[tte["arm"].isin(["CBT", "ATTN"])]
    time = tte["aval"].astype(float)
    event = tte["cnsr"] == 0
    stop = ice.reindex(tte.index)
    cut = stop < time
    time, event = time.where(~cut, stop), event & ~cut
    data = pd.DataFrame(
        {
            "time": time.clip(upper=84),
            "event": event & (time <= 84),
            "arm": tte["arm"],
            "site": adsl["site"].reindex(tte.index),
            "severity_stratum": adsl["severity_stratum"].reindex(tte.index),
        }
    )
    strata = ["site", "severity_stratum"]
    cox = cox_regression(
        data, time="time", event="event", arm="arm", reference="ATTN", strata=strata, event_is_favourable=True
    )
    hr = cox.hazard_ratio("CBT")
    record = document.record("TT_RESPONSE.E6_TT_RESPONSE.COX.CBT-ATTN")
    _same(record, hr, rel=1e-9)
    assert record.statistics["favours"] == hr.favours
    lr = logrank_test(data, time="time", event="event", arm="arm", strata=strata)
    _same(document.record("TT_RESPONSE.E6_TT_RESPONSE.LOGRANK.CBT-ATTN"), lr)
    ph = document.record("TT_RESPONSE.E6_TT_RESPONSE.PH_TEST.CBT-ATTN.arm")
    assert ph.p_value == pytest.approx(next(t.p_value for t in cox.ph_tests if t.term == "arm"), rel=1e-9)
    km = kaplan_meier(data, time="time", event="event", arm="arm").curve("CBT")
    median = document.record("TT_RESPONSE.E6_TT_RESPONSE.KM_MEDIAN.CBT")
    _same(median, km.median)
    k = max(i for i, t in enumerate(km.time) if t <= 56)
    at56 = document.record("TT_RESPONSE.E6_TT_RESPONSE.KM_SURVIVAL.CBT.D56")
    assert (at56.estimate, at56.ci_low, at56.ci_high) == (km.survival[k], km.ci_low[k], km.ci_high[k])
    assert at56.statistics["n_at_risk"] == int((data.loc[data["arm"] == "CBT", "time"] >= 56).sum())
    # the curve for the figure: time 0, then the estimator's rows with an event
    steps = median.statistics["curve"]
    events = [i for i, d in enumerate(km.n_event) if d > 0]
    assert steps["time"] == [0.0, *(km.time[i] for i in events)]
    assert steps["survival"] == [1.0, *(km.survival[i] for i in events)]
    assert steps["ci_low"][1:] == [km.ci_low[i] for i in events]
    assert steps["censored"] == {
        "time": [t for t, c in zip(km.time, km.n_censor, strict=True) if c],
        "count": [c for c in km.n_censor if c],
    }
    # Kaplan-Meier medians are given for every arm of the population
    assert {r.arm for r in document.results if ".E6_TT_RESPONSE.KM_MEDIAN." in r.analysis_id} == set(ARMS)


def test_stopping_app_use_is_analysed_in_the_app_arms_only(document: ResultsDocument) -> None:
    arms = {r.arm for r in document.results if ".E7_TT_STOP_APP.KM_MEDIAN." in r.analysis_id}
    assert arms == {"CBT", "ATTN"}
    assert document.record("TT_STOP_APP.E7_TT_STOP_APP.COX.CBT-ATTN").statistics["favours"] in ("CBT", "ATTN")


def _km_records(document: ResultsDocument) -> list[Any]:
    return [r for r in document.results if ".KM_MEDIAN." in r.analysis_id]


def test_the_km_curve_gives_each_survival_record_at_its_day_and_accounts_for_everyone(
    document: ResultsDocument, blinded: ResultsDocument
) -> None:
    import bisect

    medians = [*_km_records(document), *_km_records(blinded)]
    assert len(medians) == 3 + 2 + 1  # time to response by arm, stopping app use by app arm, pooled
    for median in medians:
        curve = median.statistics["curve"]
        time, survival = curve["time"], curve["survival"]
        assert (time[0], survival[0]) == (0.0, 1.0)
        assert time == sorted(time)
        assert all(a >= b for a, b in zip(survival, survival[1:], strict=False))
        assert len(time) == len(survival) == len(curve["ci_low"]) == len(curve["ci_high"])
        assert sum(curve["censored"]["count"]) + median.statistics["n_events"] == median.n
        assert len(set(curve["censored"]["time"])) == len(curve["censored"]["time"])
        prefix = median.analysis_id.replace(".KM_MEDIAN.", ".KM_SURVIVAL.") + ".D"
        document_of = document if median in document.results else blinded
        landmarks = [r for r in document_of.results if r.analysis_id.startswith(prefix)]
        assert [r.parameters["day"] for r in landmarks] == [
            float(d) for d in median.statistics["at_risk"] if d != "0"
        ]
        for record in landmarks:
            k = bisect.bisect_right(time, record.parameters["day"]) - 1
            assert survival[k] == record.estimate
            if k > 0:
                assert (curve["ci_low"][k], curve["ci_high"][k]) == (record.ci_low, record.ci_high)
    # in the JSON: plain lists of numbers, null where a limit is undefined (survival 1)
    parsed = json.loads(blinded.to_json())
    pooled = next(r for r in parsed["results"] if r["analysis_id"] == "TT_RESPONSE.KM_MEDIAN.ALL")
    assert pooled["statistics"]["curve"]["ci_low"][0] is None
    assert pooled["statistics"]["at_risk"]["0"] == N


def test_a_long_km_curve_is_thinned_deterministically_to_at_most_500_points() -> None:
    import bisect

    rng = np.random.default_rng(3)
    n = 3000
    data = pd.DataFrame({"time": rng.exponential(400.0, n).round(3), "event": rng.random(n) < 0.6})
    curve = kaplan_meier(data, time="time", event="event").curves[0]
    steps, notes = sap_module._km_curve(curve)
    full, _ = sap_module._km_curve(curve, limit=10**6)
    assert len(full["time"]) == 1 + sum(1 for d in curve.n_event if d) > 500
    assert len(full["censored"]["time"]) > 500
    assert len(steps["time"]) <= 500
    assert len(steps["censored"]["time"]) <= 500
    assert len(notes) == 2
    # each step of the full curve is drawn at most one bin (1/499 of the time span) late
    width = full["time"][-1] / 499
    for t in full["time"]:
        later = steps["time"][bisect.bisect_left(steps["time"], t)]
        assert t <= later <= t + width * (1 + 1e-9)
    # every kept point is a corner of the full curve, the first and the last among them
    corners = dict(zip(full["time"], full["survival"], strict=True))
    assert all(corners[t] == s for t, s in zip(steps["time"], steps["survival"], strict=True))
    assert steps["time"][0] == 0.0
    assert steps["time"][-1] == full["time"][-1]
    assert steps["survival"][-1] == full["survival"][-1]
    # censorings are moved within their bin, never lost
    assert sum(steps["censored"]["count"]) == sum(full["censored"]["count"]) == n - curve.n_events
    assert set(steps["censored"]["time"]) <= set(full["censored"]["time"])
    assert steps["censored"]["time"][-1] == full["censored"]["time"][-1]
    assert sap_module._km_curve(curve) == (steps, notes)
    # a curve of up to 500 points keeps every corner
    short = kaplan_meier(data.iloc[:400], time="time", event="event").curves[0]
    kept, none = sap_module._km_curve(short)
    assert none == ()
    assert kept["time"] == [0.0, *(t for t, d in zip(short.time, short.n_event, strict=True) if d)]


def test_descriptive_statistics_by_arm_and_visit_with_the_pooled_column(
    trial: TrialFrames, document: ResultsDocument
) -> None:
    at = _at_w08(trial)
    cbt = at.loc[at["arm"] == "CBT", "chg"]
    record = document.record("DESCRIPTIVE.PHQ9TOT.CHG.CBT.W08")
    assert record.n == len(cbt)
    assert record.estimate == pytest.approx(cbt.mean(), rel=1e-12)
    assert record.statistics["sd"] == pytest.approx(cbt.std(ddof=1), rel=1e-12)
    assert record.statistics["n_missing"] == int((trial.adsl["arm"] == "CBT").sum()) - len(cbt)
    pooled = document.record("DESCRIPTIVE.PHQ9TOT.CHG.ALL.W08")
    assert pooled.arm is None
    assert pooled.n == len(at)
    baseline = document.record("DESCRIPTIVE.GAD7TOT.AVAL.WAIT.BL")
    assert baseline.estimate == pytest.approx(
        trial.adsl.loc[trial.adsl["arm"] == "WAIT", "base_gad7"].astype(float).mean(), rel=1e-12
    )


# --- the testing hierarchy -------------------------------------------------------------------


def _hierarchy(document: ResultsDocument) -> list[Any]:
    return sorted(
        (r for r in document.results if r.analysis_id.startswith("HIERARCHY.")),
        key=lambda r: r.parameters["position"],
    )


def test_the_hierarchy_uses_each_endpoints_primary_comparison_p_value(
    spec: SapSpec, document: ResultsDocument
) -> None:
    rows = _hierarchy(document)
    assert [r.endpoint for r in rows] == list(spec.hierarchy)
    sources = [r.statistics["source"] for r in rows]
    assert sources[:3] == [
        PRIMARY_ID,
        "GAD7_CHG_W8.E3_GAD7.MMRM.CBT-ATTN.W08",
        "PHQ9_RESP_W8.E4_RESPONSE.OR.CBT-ATTN.W08",
    ]
    assert sources[4] == "TT_RESPONSE.E6_TT_RESPONSE.LOGRANK.CBT-ATTN"
    for r, source in zip(rows, sources, strict=True):
        assert r.statistics["raw_p"] == document.record(source).p_value
    running = 0.0
    for r in rows:  # fixed sequence: adjusted p = running maximum
        running = max(running, r.statistics["raw_p"])
        assert r.p_value == running


def test_fixed_sequence_stops_at_the_first_non_rejection(trial: TrialFrames, fast_spec: SapSpec) -> None:
    # The stopping-app-use comparison is not significant here; tested second, it stops the rest.
    order = ("PHQ9_CHG_W8", "TT_STOP_APP", "GAD7_CHG_W8", "PHQ9_RESP_W8", "PHQ9_REMIT_W8", "TT_RESPONSE")
    doc = run(trial, replace(fast_spec, hierarchy=order))
    rows = _hierarchy(doc)
    assert [r.statistics["tested"] for r in rows] == [True, True, False, False, False, False]
    assert [r.statistics["rejected"] for r in rows] == [True, False, False, False, False, False]
    assert rows[1].statistics["raw_p"] > 0.05
    assert rows[2].statistics["raw_p"] < 0.05  # significant on its own, but never reached


def test_holm_matches_the_multiplicity_module(trial: TrialFrames, fast_spec: SapSpec) -> None:
    doc = run(trial, replace(fast_spec, hierarchy_procedure="holm"))
    rows = _hierarchy(doc)
    expected = holm(
        pd.DataFrame(
            {"hypothesis": [r.endpoint for r in rows], "p_value": [r.statistics["raw_p"] for r in rows]}
        )
    )
    assert [r.p_value for r in rows] == [d.adjusted_p for d in expected.decisions]
    assert [r.statistics["rejected"] for r in rows] == [d.rejected for d in expected.decisions]


def test_a_failing_analysis_is_reported_as_not_estimable_and_stops_the_hierarchy(
    trial: TrialFrames, fast_spec: SapSpec
) -> None:
    gad7 = fast_spec.estimand("E3_GAD7")
    odd = replace(gad7, strategies=(StrategySpec("CRISIS", "principal_stratum"),))
    spec = replace(fast_spec, estimands=tuple(odd if e.code == "E3_GAD7" else e for e in fast_spec.estimands))
    doc = run(trial, spec)
    failed = doc.record("GAD7_CHG_W8.E3_GAD7.MMRM.CBT-ATTN.W08")
    assert math.isnan(failed.estimate)
    assert failed.p_value is None
    assert any("principal-stratum" in n for n in failed.notes)
    assert (
        json.loads(doc.to_json())["results"][[r.analysis_id for r in doc.results].index(failed.analysis_id)][
            "estimate"
        ]
        is None
    )
    rows = _hierarchy(doc)
    assert rows[1].notes == ("p-value not available: counted as not rejected",)
    assert [r.statistics["tested"] for r in rows][:3] == [True, True, False]


def test_a_failing_primary_analysis_raises(trial: TrialFrames, fast_spec: SapSpec) -> None:
    no_control = replace(trial, adqs=trial.adqs[trial.adqs["arm"] != "ATTN"])
    with pytest.raises(PrimaryAnalysisError, match="primary analysis"):
        run(no_control, fast_spec)


def test_warnings_raised_inside_an_analysis_become_its_notes(
    trial: TrialFrames, fast_spec: SapSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analysis.effect_size

    original = analysis.effect_size.hedges_g

    def noisy(*args: Any, **kwargs: Any) -> Any:
        warnings.warn("a remark from the estimator", RuntimeWarning, stacklevel=2)
        return original(*args, **kwargs)

    monkeypatch.setattr(analysis.effect_size, "hedges_g", noisy)
    doc = run(trial, fast_spec)  # pytest turns an escaping warning into an error
    record = doc.record("PHQ9_CHG_W8.E1_PRIMARY.HEDGES_G.CBT-ATTN.W08")
    assert "RuntimeWarning: a remark from the estimator" in record.notes
    assert record.estimate == pytest.approx(
        original(_at_w08(trial), outcome="chg", arm="arm", treatment="CBT", control="ATTN").estimate, rel=REL
    )


def test_a_separated_logistic_model_gives_a_not_estimable_odds_ratio(
    trial: TrialFrames, fast_spec: SapSpec
) -> None:
    few = set(trial.adsl["subject"].iloc[:30])
    small = replace(
        trial,
        adsl=trial.adsl[trial.adsl["subject"].isin(few)],
        adqs=trial.adqs[trial.adqs["subject"].isin(few)],
        adtte=trial.adtte[trial.adtte["subject"].isin(few)],
    )
    doc = run_sap(small.adsl, small.adqs, small.adtte, fast_spec, blinded=False, input_sha256="0" * 64)
    odds = doc.record("PHQ9_REMIT_W8.E5_REMISSION.OR.CBT-ATTN.W08")
    assert math.isnan(odds.estimate)
    assert odds.p_value is None
    assert any("separation" in n for n in odds.notes)
    assert doc.record("PHQ9_REMIT_W8.E5_REMISSION.RD.CBT-ATTN.W08").estimate == pytest.approx(0.05)
    assert doc.record("CONSORT.SCREENED").n is None  # no screening log given


# --- blinding --------------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value.keys(), *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_a_blinded_run_returns_no_arm_level_number(spec: SapSpec, blinded: ResultsDocument) -> None:
    text = blinded.to_json()
    parsed = json.loads(text)
    assert parsed["blinded"] is True
    assert blinded.primary is None
    # no arm code anywhere (the trial code MOOD-CBT-01 happens to contain one: taken out first)
    assert not re.search(r"\b(CBT|ATTN|WAIT)\b", text.replace(spec.trial, ""))
    for s in _strings(parsed):
        assert s not in ARMS
    for r in parsed["results"]:
        assert r["arm"] is None
        assert r["comparison"] is None
        assert r["estimand"] is None
        assert not {"arm", "reference", "treatment", "control", "comparison"} & set(r["parameters"])
        assert r["parameters"].get("pooled") is True
    kinds = {r["analysis_id"].split(".")[0] for r in parsed["results"]}
    assert kinds == {"DESCRIPTIVE", "COMPLETENESS", "TT_RESPONSE", "CONSORT"}
    assert blinded.record("TT_RESPONSE.KM_SURVIVAL.ALL.D56").n == N


def test_permuting_the_arm_labels_leaves_the_blinded_json_byte_identical(
    trial: TrialFrames, spec: SapSpec, blinded: ResultsDocument, fast_spec: SapSpec
) -> None:
    shuffled = permuted(trial)
    again = run_sap(
        shuffled.adsl,
        shuffled.adqs,
        shuffled.adtte,
        spec,
        blinded=True,
        input_sha256=sha(trial),
        screening=trial.screening,
    )
    assert again.to_json() == blinded.to_json()
    # ... while the unblinded results do change
    assert run(shuffled, fast_spec).to_json() != run(trial, fast_spec).to_json()


def test_the_blinded_path_never_receives_the_arm_column(
    trial: TrialFrames, spec: SapSpec, blinded: ResultsDocument, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[set[str]] = []
    inner = sap_module._run_blinded

    def spy(adsl: pd.DataFrame, adqs: pd.DataFrame, adtte: pd.DataFrame, **kw: Any) -> ResultsDocument:
        seen.extend([set(adsl.columns), set(adqs.columns), set(adtte.columns)])
        assert not {"experimental", "control", "arms", "estimands"} & set(kw)
        return inner(adsl, adqs, adtte, **kw)

    monkeypatch.setattr(sap_module, "_run_blinded", spy)
    doc = run(trial, spec, blinded=True)
    assert seen
    assert all("arm" not in columns for columns in seen)
    assert doc.to_json() == blinded.to_json()
    # and without any arm column at all, the same document
    no_arm = replace(
        trial,
        adsl=trial.adsl.drop(columns="arm"),
        adqs=trial.adqs.drop(columns="arm"),
        adtte=trial.adtte.drop(columns="arm"),
    )
    assert (
        run_sap(
            no_arm.adsl,
            no_arm.adqs,
            no_arm.adtte,
            spec,
            blinded=True,
            input_sha256=sha(trial),
            screening=trial.screening,
        ).to_json()
        == blinded.to_json()
    )


def test_blinded_pooled_numbers_agree_with_the_unblinded_pooled_ones(
    document: ResultsDocument, blinded: ResultsDocument
) -> None:
    for aid in ("DESCRIPTIVE.PHQ9TOT.CHG.ALL.W08", "COMPLETENESS.GAD7TOT.W12", "CONSORT.RANDOMIZED"):
        assert blinded.record(aid).estimate == document.record(aid).estimate
        assert blinded.record(aid).n == document.record(aid).n


# --- CONSORT ---------------------------------------------------------------------------------


def test_consort_counts_hold_the_diagrams_invariants(trial: TrialFrames, document: ResultsDocument) -> None:
    def count(aid: str) -> int:
        n = document.record(aid).n
        assert n is not None
        return n

    assert count("CONSORT.SCREENED") == len(trial.screening)
    assert count("CONSORT.SCREENED") == count("CONSORT.EXCLUDED") + count("CONSORT.RANDOMIZED")
    assert count("CONSORT.RANDOMIZED") == N == sum(count(f"CONSORT.ALLOCATED.{a}") for a in ARMS)
    for a in ARMS:
        allocated = count(f"CONSORT.ALLOCATED.{a}")
        assert allocated == count(f"CONSORT.RECEIVED.{a}") + count(f"CONSORT.NOT_RECEIVED.{a}")
        assert allocated == count(f"CONSORT.ANALYSED.{a}") + count(f"CONSORT.EXCLUDED_FROM_ANALYSIS.{a}")
    assert count("CONSORT.NOT_RECEIVED.WAIT") == 0  # a waitlist has nothing to receive
    app = trial.adsl[trial.adsl["arm"] == "CBT"]
    assert count("CONSORT.RECEIVED.CBT") == int((app["use_days"] > 0).sum())
    assert count("CONSORT.LOST_TO_FOLLOW_UP") == sum(count(f"CONSORT.LOST_TO_FOLLOW_UP.{a}") for a in ARMS)
    reasons = document.record("CONSORT.NOT_ELIGIBLE").statistics["reasons"]
    assert set(reasons) <= {"age", "screening_phq9", "inclusion", "exclusion"}
    assert sum(reasons.values()) >= count("CONSORT.NOT_ELIGIBLE")


def test_inconsistent_consort_inputs_raise(trial: TrialFrames, fast_spec: SapSpec) -> None:
    adsl = trial.adsl
    someone = adsl["subject"].iloc[0]
    missing = trial.screening[trial.screening["subject"] != someone]
    with pytest.raises(ConsortError, match="assessed = excluded \\+ randomized"):
        consort_counts(adsl, screening=missing, arms=ARMS)
    failed = trial.screening.assign(
        eligible=trial.screening["eligible"] & (trial.screening["subject"] != someone)
    )
    with pytest.raises(ConsortError, match="assessed = excluded \\+ randomized"):
        consort_counts(adsl, screening=failed, arms=ARMS)
    odd_arm = adsl.assign(arm=np.where(adsl["subject"] == someone, "PLACEBO", adsl["arm"]))
    with pytest.raises(ConsortError, match="randomized = sum of allocated"):
        consort_counts(odd_arm, screening=trial.screening, arms=ARMS)
    with pytest.raises(ConsortError, match="twice"):
        consort_counts(pd.concat([adsl, adsl.iloc[:1]]), arms=ARMS)
    # the run refuses rather than printing a diagram that does not add up
    with pytest.raises(ConsortError):
        run_sap(
            adsl, trial.adqs, trial.adtte, fast_spec, blinded=False, input_sha256="0" * 64, screening=missing
        )
    with pytest.raises(ConsortError):
        run_sap(
            adsl, trial.adqs, trial.adtte, fast_spec, blinded=True, input_sha256="0" * 64, screening=missing
        )


def test_consort_without_a_screening_log_notes_it(trial: TrialFrames) -> None:
    counts = consort_counts(trial.adsl, arms=ARMS, app_arms={"CBT", "ATTN"})
    assert counts.screened is None
    assert counts.randomized == N
    assert counts.notes
    frame = counts.to_frame()
    assert int(frame.loc[(frame["stage"] == "allocated") & (frame["arm"] == "WAIT"), "count"].iloc[0]) == int(
        (trial.adsl["arm"] == "WAIT").sum()
    )


# --- the specification -----------------------------------------------------------------------


def test_an_inconsistent_specification_is_refused(spec: SapSpec) -> None:
    with pytest.raises(ValueError, match="unknown arm 'PLACEBO'"):
        replace(spec, estimands=(replace(spec.estimands[0], control="PLACEBO"), *spec.estimands[1:]))
    with pytest.raises(ValueError, match="unknown covariate 'height'"):
        replace(spec, covariates=("baseline", "height"))
    with pytest.raises(ValueError, match="primary estimand"):
        replace(spec, primary_estimand="E9")


def test_the_runner_imports_without_the_numerical_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import analysis.sap, analysis.consort\n"
        "heavy = {'numpy', 'pandas', 'scipy', 'statsmodels', 'lifelines', 'pingouin'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
