"""Multiple imputation, Rubin's rules and the tipping-point analysis.

Rubin's rules are checked against R's mice::pool.scalar (tests/analysis/reference/rubin.R
writes rubin_expected.json) and against a hand computation. The imputations themselves are
random: they are checked for reproducibility from the seed, for equality with the complete-data
ANCOVA when nothing is missing at the primary visit, and for agreement with the MMRM under MAR.
"""

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.ancova import fit_ancova
from analysis.imputation import mi_ancova, rubin_pool, tipping_point
from analysis.mmrm import fit_mmrm

REFERENCE = Path(__file__).parent / "reference"
RUBIN = json.loads((REFERENCE / "rubin_expected.json").read_text())

FAST = {"n_imputations": 20, "burn_in": 50, "thin": 5}


@cache
def frame(name: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / f"mmrm_{name}.csv")


def run_mi(name: str, seed: int = 11, **kwargs):
    return mi_ancova(
        frame(name),
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        baseline="base",
        covariates=("site",),
        reference_arm="control",
        seed=seed,
        **{**FAST, **kwargs},
    )


@pytest.mark.parametrize("case", list(RUBIN))
def test_rubin_pool_against_R_mice_pool_scalar(case):
    ref = RUBIN[case]
    df_complete = math.inf if ref["df_complete"] is None else ref["df_complete"]
    result = rubin_pool(ref["Q"], ref["U"], df_complete=df_complete)
    assert result.estimate == pytest.approx(ref["qbar"], rel=1e-12)
    assert result.parameters["within"] == pytest.approx(ref["ubar"], rel=1e-12)
    assert result.parameters["between"] == pytest.approx(ref["b"], rel=1e-9)
    assert result.se**2 == pytest.approx(ref["t"], rel=1e-12)
    assert result.df == pytest.approx(ref["df"], rel=1e-9)
    assert result.parameters["fraction_missing_information"] == pytest.approx(ref["fmi"], rel=1e-9)


def test_rubin_pool_against_a_hand_computation():
    # Q = 1, 2, 3; U = 0.5 each; m = 3, complete-data df 20
    # Qbar = 2, Ubar = 0.5, B = 1, T = 0.5 + 4/3 = 11/6, lambda = (4/3)/(11/6) = 8/11
    # df_old = 2 / (8/11)^2 = 121/32, df_obs = 21/23 * 20 * 3/11 = 1260/253
    result = rubin_pool([1.0, 2.0, 3.0], [0.5, 0.5, 0.5], df_complete=20)
    df_old, df_obs = 121 / 32, 1260 / 253
    assert result.estimate == 2.0
    assert result.se == pytest.approx(math.sqrt(11 / 6), rel=1e-14)
    assert result.df == pytest.approx(df_old * df_obs / (df_old + df_obs), rel=1e-14)
    from scipy import stats

    q = stats.t.ppf(0.975, result.df)
    assert result.ci_low == pytest.approx(2 - q * math.sqrt(11 / 6), rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.t.sf(2 / math.sqrt(11 / 6), result.df), rel=1e-12)


def test_rubin_pool_refuses_bad_input():
    with pytest.raises(ValueError, match="at least two"):
        rubin_pool([1.0], [0.1])
    with pytest.raises(ValueError, match="same length"):
        rubin_pool([1.0, 2.0], [0.1])
    with pytest.raises(ValueError, match="non-negative"):
        rubin_pool([1.0, 2.0], [0.1, -0.1])


def test_same_seed_gives_identical_results_and_another_seed_does_not():
    a = run_mi("intermittent", seed=5)
    b = run_mi("intermittent", seed=5)
    c = run_mi("intermittent", seed=6)
    assert a.primary.to_dict() == b.primary.to_dict()
    assert a.primary.estimate.hex() == b.primary.estimate.hex()
    assert a.primary.se.hex() == b.primary.se.hex()
    assert a.primary.estimate != c.primary.estimate


def test_without_missing_data_mi_equals_the_complete_data_ancova():
    data = frame("balanced")
    mi = run_mi("balanced")
    last = data[data["visit"] == 5]
    ancova = fit_ancova(last, arm="arm", response="chg", reference_arm="control", covariates=("base", "site"))
    for field in ("estimate", "se", "df", "ci_low", "ci_high", "p_value"):
        assert getattr(mi.primary, field) == pytest.approx(getattr(ancova.primary, field), rel=1e-10), field
    assert mi.primary.parameters["between"] == 0.0
    assert mi.n_imputed == 0


def test_missing_only_before_the_primary_visit_leaves_the_complete_data_ancova():
    data = frame("balanced").copy()
    data.loc[(data["visit"] < 5) & (data.index % 3 == 0), "chg"] = np.nan
    mi = mi_ancova(
        data,
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        baseline="base",
        covariates=("site",),
        reference_arm="control",
        seed=1,
        **FAST,
    )
    ancova = fit_ancova(
        data[data["visit"] == 5],
        arm="arm",
        response="chg",
        reference_arm="control",
        covariates=("base", "site"),
    )
    assert mi.primary.estimate == pytest.approx(ancova.primary.estimate, rel=1e-10)
    assert mi.primary.se == pytest.approx(ancova.primary.se, rel=1e-10)


@pytest.mark.parametrize("name", ["monotone", "intermittent"])
def test_mi_under_mar_agrees_with_the_mmrm(name):
    # Under MAR both estimate the same effect; with these samples they agree to a fraction of
    # a standard error (not a reference value, a consistency check between two methods).
    mi = run_mi(name, n_imputations=40)
    mmrm = fit_mmrm(
        frame(name),
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        reference_arm="control",
        covariates=("site",),
        visit_covariates=("base",),
    )
    assert abs(mi.primary.estimate - mmrm.primary.estimate) < 0.25 * mmrm.primary.se
    assert 0.85 < mi.primary.se / mmrm.primary.se < 1.25
    assert mi.n_imputed == int(frame(name).query("visit == visit.max()")["chg"].isna().sum())
    assert 0 < mi.primary.parameters["fraction_missing_information"] < 0.6


def test_three_arms_are_each_pooled_against_the_reference():
    mi = run_mi("three_arms", primary_arm="app_plus")
    assert [d.parameters["arm"] for d in mi.differences] == ["app", "app_plus"]
    assert mi.primary.parameters["arm"] == "app_plus"
    assert list(mi.to_frame()["arm"]) == ["app", "app_plus"]


def test_tipping_point_shifts_the_imputed_values_of_the_experimental_arm():
    kwargs = dict(
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        baseline="base",
        covariates=("site",),
        reference_arm="control",
        seed=3,
        **FAST,
    )
    deltas = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    tp = tipping_point(frame("monotone"), deltas=deltas, **kwargs)
    mi = mi_ancova(frame("monotone"), **kwargs)
    table = tp.to_frame()
    assert list(table["delta"]) == deltas
    # delta 0 is the MAR analysis with the same imputations
    assert tp.results[0].estimate == mi.primary.estimate
    assert tp.results[0].se == mi.primary.se
    # the ANCOVA is linear in the response: the estimate moves by a fixed amount per unit delta
    steps = np.diff(table["estimate"])
    assert np.allclose(steps, steps[0], rtol=1e-9)
    assert steps[0] > 0  # worse outcomes in the experimental arm shrink its advantage
    assert tp.significant_without_shift
    first = next(r.parameters["delta"] for r in tp.results if r.p_value >= 0.05)
    assert tp.tipping_delta == first
    assert all(r.p_value < 0.05 for r in tp.results if r.parameters["delta"] < first)
    with pytest.raises(ValueError, match="empty"):
        tipping_point(frame("monotone"), deltas=[], **kwargs)


def test_imputation_refuses_rows_at_unlisted_visits():
    with pytest.raises(ValueError, match="visits not in the visit list"):
        mi_ancova(
            frame("monotone"),
            subject="subject",
            visit="visit",
            arm="arm",
            response="chg",
            baseline="base",
            reference_arm="control",
            seed=1,
            visits=[1, 2, 3],
            **FAST,
        )
