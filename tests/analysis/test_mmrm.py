"""MMRM against R: nlme::gls (corSymm + varIdent, REML) with emmeans.

Expected values: tests/analysis/reference/mmrm_expected.json, written by mmrm.R from the CSVs
that mmrm_data.py writes. R is not needed to run these tests.
"""

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.mmrm import MmrmResult, fit_mmrm

REFERENCE = Path(__file__).parent / "reference"
EXPECTED = json.loads((REFERENCE / "mmrm_expected.json").read_text())
DATASETS = list(EXPECTED)  # balanced, three_arms (unbalanced), monotone, intermittent

# Acceptance: estimates and standard errors within 1e-4 relative of R.
RTOL = 1e-4
# df against R's Satterthwaite formula with an accurate Hessian (see mmrm.R): 1e-4 relative.
# emmeans' printed df use gls's finite-difference apVar and differ by up to a few percent.
DF_RTOL_ACCURATE = 1e-4
DF_RTOL_EMMEANS = 0.05


@cache
def frame(name: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / f"mmrm_{name}.csv")


@cache
def fit(name: str, df_method: str = "satterthwaite") -> MmrmResult:
    return fit_mmrm(
        frame(name),
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        reference_arm="control",
        covariates=("site",),
        visit_covariates=("base",),
        primary_arm="app",
        df_method=df_method,
    )


def r_name(name: str) -> str:
    """Our coefficient name in R's spelling, interaction parts sorted (armapp:visit2)."""
    return ":".join(sorted(name.replace("[", "").replace("]", "").split(":")))


def r_visit(result_visit: object) -> str:
    return str(result_visit)


def close(actual: float, expected: float, rtol: float) -> bool:
    return math.isclose(actual, expected, rel_tol=rtol, abs_tol=0.0)


@pytest.mark.parametrize("name", DATASETS)
def test_mmrm_differences_against_R_gls_emmeans(name):
    expected = EXPECTED[name]["satterthwaite"]["differences"]
    result = fit(name)
    assert len(result.differences) == len(expected)
    for ours, ref in zip(result.differences, expected, strict=True):
        assert f"{ours.parameters['arm']} - control" == ref["contrast"]
        assert r_visit(ours.parameters["visit"]) == ref["visit"]
        assert close(ours.estimate, ref["estimate"], RTOL)
        assert close(ours.se, ref["se"], RTOL)
        assert close(ours.df, ref["df_accurate"], DF_RTOL_ACCURATE)
        assert close(ours.df, ref["df"], DF_RTOL_EMMEANS)
        # limits and p-value as R computes them from its estimate, SE and accurate df
        q = stats.t.ppf(0.975, ref["df_accurate"])
        assert close(ours.ci_low, ref["estimate"] - q * ref["se"], RTOL)
        assert close(ours.ci_high, ref["estimate"] + q * ref["se"], RTOL)
        p = 2 * stats.t.sf(abs(ref["t"]), ref["df_accurate"])
        assert close(ours.p_value, p, 1e-3)
        # and against emmeans' own p-value (its df are less accurate)
        assert close(ours.p_value, ref["p_value"], 0.02)


@pytest.mark.parametrize("name", DATASETS)
def test_mmrm_lsmeans_against_R_emmeans(name):
    expected = EXPECTED[name]["satterthwaite"]["lsmeans"]
    result = fit(name)
    assert len(result.lsmeans) == len(expected)
    for ours, ref in zip(result.lsmeans, expected, strict=True):
        assert (ours.parameters["arm"], r_visit(ours.parameters["visit"])) == (ref["arm"], ref["visit"])
        assert close(ours.estimate, ref["estimate"], RTOL)
        assert close(ours.se, ref["se"], RTOL)
        assert close(ours.df, ref["df_accurate"], DF_RTOL_ACCURATE)
        q = stats.t.ppf(0.975, ref["df_accurate"])
        assert close(ours.ci_low, ref["estimate"] - q * ref["se"], RTOL)
        assert close(ours.ci_high, ref["estimate"] + q * ref["se"], RTOL)
        assert ours.p_value is None


@pytest.mark.parametrize("name", DATASETS)
def test_mmrm_fit_against_R_gls(name):
    expected = EXPECTED[name]
    result = fit(name)
    assert result.converged
    assert result.n_subjects == expected["n_subjects"]
    assert result.n_observations == expected["n_observations"]
    # R's REML optimum is within 1e-7 of ours (ours is higher by a few 1e-8)
    assert result.log_likelihood == pytest.approx(expected["log_likelihood"], rel=1e-10, abs=1e-6)
    assert result.log_likelihood >= expected["log_likelihood"] - 1e-9
    np.testing.assert_allclose(result.covariance, expected["covariance"], rtol=RTOL)
    ours = dict(zip(map(r_name, result.coefficient_names), result.coefficients, strict=True))
    ref_names = [r_name(n) for n in expected["coefficients"]]
    assert sorted(ours) == sorted(ref_names)
    order = [list(ours).index(n) for n in ref_names]
    coef = np.array([ours[n] for n in ref_names])
    vcov = result.coefficient_covariance[np.ix_(order, order)]
    ref_vcov = np.array(expected["vcov"])
    # coefficients: 1e-4 of their standard error (some are near zero, so not relative)
    se = np.sqrt(np.diag(ref_vcov))
    assert np.max(np.abs(coef - np.array(list(expected["coefficients"].values()))) / se) < RTOL
    np.testing.assert_allclose(vcov, ref_vcov, rtol=RTOL, atol=RTOL * np.max(np.abs(ref_vcov)))


@pytest.mark.parametrize("name", ["three_arms", "intermittent"])
def test_mmrm_residual_df_against_R_emmeans_df_error(name):
    expected = EXPECTED[name]["df_error"]
    result = fit(name, "residual")
    for ours, ref in zip(result.differences, expected["differences"], strict=True):
        assert ours.df == ref["df"]
        assert close(ours.estimate, ref["estimate"], RTOL)
        assert close(ours.se, ref["se"], RTOL)
        assert close(ours.p_value, ref["p_value"], 1e-3)
        assert close(ours.ci_low, ref["ci_low"], RTOL)
    for ours, ref in zip(result.lsmeans, expected["lsmeans"], strict=True):
        assert ours.df == ref["df"]


def test_primary_result_is_the_primary_arm_at_the_primary_visit():
    result = fit("monotone")
    assert result.primary.parameters["visit"] == 6
    assert result.primary.parameters["arm"] == "app"
    assert result.primary.parameters["reference"] == "control"
    assert result.primary == result.differences[-1]
    assert result.primary.n == 250
    frame_ = result.to_frame()
    assert list(frame_.columns) == [
        "arm",
        "reference",
        "visit",
        "estimate",
        "se",
        "df",
        "ci_low",
        "ci_high",
        "p_value",
    ]
    assert len(result.lsmeans_frame()) == 12
    three = fit("three_arms")
    assert three.primary.parameters["arm"] == "app"
    assert three.primary.parameters["visit"] == 4


def test_reported_covariance_pieces_are_consistent():
    result = fit("intermittent")
    sd = result.standard_deviations
    assert np.allclose(result.correlation * np.outer(sd, sd), result.covariance)
    assert np.allclose(np.diag(result.correlation), 1.0)
    with pytest.raises(ValueError, match="read-only"):
        result.covariance[0, 0] = 1.0


def test_result_does_not_depend_on_row_order_or_participant_labels():
    data = frame("intermittent")
    shuffled = data.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["subject"] = "X" + shuffled["subject"].str[::-1]
    a = fit("intermittent").primary
    b = fit_mmrm(
        shuffled,
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        reference_arm="control",
        covariates=("site",),
        visit_covariates=("base",),
    ).primary
    assert b.estimate == pytest.approx(a.estimate, rel=1e-7)
    assert b.se == pytest.approx(a.se, rel=1e-7)
    assert b.df == pytest.approx(a.df, rel=1e-5)


def test_rescaled_response_rescales_estimates_and_keeps_df():
    data = frame("monotone").assign(chg=lambda d: 10 * d["chg"] + 3)
    result = fit_mmrm(
        data,
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        reference_arm="control",
        covariates=("site",),
        visit_covariates=("base",),
    )
    base = fit("monotone")
    assert result.primary.estimate == pytest.approx(10 * base.primary.estimate, rel=1e-7)
    assert result.primary.se == pytest.approx(10 * base.primary.se, rel=1e-7)
    assert result.primary.df == pytest.approx(base.primary.df, rel=1e-5)
    np.testing.assert_allclose(result.covariance, 100 * base.covariance, rtol=1e-6)


def test_recovers_the_simulated_covariance_in_a_large_sample():
    rng = np.random.default_rng(7)
    n, t = 4000, 4
    sigma = np.array([[4.0, 2.0, 1.5, 1.0], [2.0, 5.0, 2.5, 2.0], [1.5, 2.5, 6.0, 3.0], [1.0, 2.0, 3.0, 7.0]])
    arm = rng.integers(0, 2, n)
    y = rng.multivariate_normal(np.zeros(t), sigma, n) - 1.5 * arm[:, None] * np.arange(1, t + 1)
    keep = rng.random((n, t)) > 0.2
    long = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), t),
            "visit": np.tile(np.arange(1, t + 1), n),
            "arm": np.repeat(np.where(arm == 1, "app", "control"), t),
            "y": np.where(keep, y, np.nan).ravel(),
        }
    )
    result = fit_mmrm(long, subject="id", visit="visit", arm="arm", response="y", reference_arm="control")
    np.testing.assert_allclose(result.covariance, sigma, rtol=0.1, atol=0.2)
    assert abs(result.primary.estimate - (-6.0)) < 3 * result.primary.se
    assert result.converged


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns="site"), "columns not in the frame"),
        (lambda d: pd.concat([d, d.iloc[[0]]]), "more than one row"),
        (lambda d: d.assign(arm=d["arm"].replace("control", "placebo")), "reference arm"),
    ],
)
def test_invalid_input_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        fit_mmrm(
            change(frame("balanced")),
            subject="subject",
            visit="visit",
            arm="arm",
            response="chg",
            reference_arm="control",
            covariates=("site",),
            visit_covariates=("base",),
        )


def test_three_arms_need_the_primary_arm_and_kenward_roger_is_not_offered():
    kwargs = {
        "subject": "subject",
        "visit": "visit",
        "arm": "arm",
        "response": "chg",
        "reference_arm": "control",
    }
    with pytest.raises(ValueError, match="primary_arm is required"):
        fit_mmrm(frame("three_arms"), **kwargs)
    with pytest.raises(ValueError, match="df_method"):
        fit_mmrm(frame("balanced"), df_method="kenward-roger", **kwargs)
    with pytest.raises(ValueError, match="visits not in the visit list"):
        fit_mmrm(frame("balanced"), visits=[1, 2, 3], **kwargs)


def test_missing_covariates_are_left_out_and_noted():
    data = frame("balanced").copy()
    data.loc[data["subject"] == "P0003", "site"] = None
    result = fit_mmrm(
        data,
        subject="subject",
        visit="visit",
        arm="arm",
        response="chg",
        reference_arm="control",
        covariates=("site",),
        visit_covariates=("base",),
    )
    assert result.n_subjects == 219
    assert any("5 participant-visits" in n for n in result.notes)
    assert result.primary.notes == result.notes


def test_optimum_does_not_depend_on_the_starting_covariance():
    import analysis.mmrm as mmrm

    data = frame("intermittent").dropna(subset=["chg"]).reset_index(drop=True)
    design = mmrm._Design(
        arm=mmrm._Factor("arm", ("control", "app")),
        visit=mmrm._Factor("visit", (1, 2, 3, 4, 5)),
        covariates=(mmrm._term(data, "site"),),
        visit_covariates=("base",),
    )
    x = design.matrix(data)
    y = data["chg"].to_numpy(dtype=float)
    subjects = pd.factorize(data["subject"])[0]
    visits = data["visit"].to_numpy() - 1
    reml = mmrm._Reml(mmrm._groups(x, y, subjects, visits), 5, x.shape[1])
    starts = [np.zeros(15), reml.theta_of(np.diag([100.0, 1.0, 50.0, 0.1, 10.0]))]
    optima = [mmrm._optimise(reml, start) for start in starts]
    assert all(converged for _, converged, *_ in optima)
    sigmas = [reml.chol(theta) @ reml.chol(theta).T for theta, *_ in optima]
    np.testing.assert_allclose(sigmas[0], sigmas[1], rtol=1e-7)
    np.testing.assert_allclose(sigmas[0], fit("intermittent").covariance, rtol=1e-7)
