r"""Missing-data sensitivity analyses: multiple imputation under MAR and a tipping-point analysis.

The visit-wise responses of each arm are imputed from a multivariate normal regression on the
baseline score and the stratification factors, fitted by Bayesian data augmentation (so that
each imputation uses its own draw of the parameters: "proper" imputation). Each completed data
set is analysed by ANCOVA at the primary visit and the results are combined by Rubin's rules
with the Barnard-Rubin degrees of freedom. The tipping-point analysis adds a shift
:math:`\delta` to the imputed primary-visit values of the experimental arm and repeats the
analysis over a grid of shifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.ancova import _prepare
from analysis.mmrm import _results_frame
from analysis.results import Result, as_parameters, captured_warnings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]

__all__ = [
    "ImputationResult",
    "TippingPointResult",
    "mi_ancova",
    "rubin_pool",
    "tipping_point",
]


# --------------------------------------------------------------------------------------------
# Rubin's rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pooled:
    qbar: float
    ubar: float
    b: float
    t: float
    df: float
    fmi: float


def _pool(q: FloatArray, u: FloatArray, df_complete: float) -> _Pooled:
    import numpy as np

    m = len(q)
    qbar = float(np.mean(q))
    ubar = float(np.mean(u))
    b = float(np.var(q, ddof=1))
    t = ubar + (1 + 1 / m) * b
    lam = max((1 + 1 / m) * b / t, 1e-4)
    df_old = (m - 1) / lam**2
    if math.isinf(df_complete):
        df = df_old
    else:
        df_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
        df = df_old * df_obs / (df_old + df_obs)
    r = (1 + 1 / m) * b / ubar
    fmi = (r + 2 / (df + 3)) / (r + 1)
    return _Pooled(qbar, ubar, b, t, df, fmi)


def rubin_pool(
    estimates: Sequence[float],
    variances: Sequence[float],
    *,
    df_complete: float = math.inf,
    alpha: float = 0.05,
) -> Result:
    r"""Combine the estimates of multiply imputed data sets by Rubin's rules.

    Parameters
    ----------
    estimates : sequence of float
        The estimate from each completed data set (at least two).
    variances : sequence of float
        Its squared standard error in each completed data set.
    df_complete : float
        Degrees of freedom of the complete-data analysis (``inf`` for a normal reference).
    alpha : float
        Two-sided level; the interval is at ``1 - alpha``.

    Returns
    -------
    Result
        ``estimate`` (the mean estimate), ``se`` (square root of the total variance), ``df``
        (Barnard-Rubin), ``ci_low``, ``ci_high``, ``p_value`` (of estimate 0), ``n`` (None),
        ``method``, ``parameters`` (``m``, ``within``, ``between``, ``total``,
        ``fraction_missing_information``, ``df_complete``, ``alpha``) and ``notes``.

    Raises
    ------
    ValueError
        With fewer than two estimates, lengths that differ, or a negative variance.

    Notes
    -----
    With :math:`m` estimates :math:`Q_j` and variances :math:`U_j`:
    :math:`\bar Q = m^{-1} \sum Q_j`, :math:`\bar U = m^{-1} \sum U_j`,
    :math:`B = (m - 1)^{-1} \sum (Q_j - \bar Q)^2`, :math:`T = \bar U + (1 + 1/m) B`.
    With :math:`\lambda = (1 + 1/m) B / T` (floored at 1e-4, as R's ``mice`` does),
    :math:`\nu_{old} = (m - 1) / \lambda^2`, :math:`\nu_{obs} = \frac{\nu_{com} +
    1}{\nu_{com} + 3} \nu_{com} (1 - \lambda)` and :math:`\nu = \nu_{old}
    \nu_{obs} / (\nu_{old} + \nu_{obs})` (:math:`\nu = \nu_{old}` when
    :math:`\nu_{com}` is infinite). The fraction of missing information is
    :math:`(r + 2 / (\nu + 3)) / (r + 1)`, :math:`r = (1 + 1/m) B / \bar U`.

    References
    ----------
    .. [1] Rubin DB. Multiple Imputation for Nonresponse in Surveys. Wiley; 1987.
    .. [2] Barnard J, Rubin DB. Small-sample degrees of freedom with multiple imputation.
       Biometrika. 1999;86(4):948-955. doi:10.1093/biomet/86.4.948
    .. [3] van Buuren S, Groothuis-Oudshoorn K. mice: Multivariate Imputation by Chained
       Equations in R. J Stat Softw. 2011;45(3):1-67. doi:10.18637/jss.v045.i03
    """
    import numpy as np

    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.shape != u.shape or q.ndim != 1:
        raise ValueError("estimates and variances must be sequences of the same length")
    if len(q) < 2:
        raise ValueError("at least two imputations are needed")
    if np.any(u < 0) or not np.all(np.isfinite(q)) or not np.all(np.isfinite(u)):
        raise ValueError("estimates must be finite and variances finite and non-negative")
    if float(np.mean(u)) + float(np.var(q, ddof=1)) <= 0:
        raise ValueError("the total variance is zero")
    pooled = _pool(q, u, df_complete)
    return _pooled_result(pooled, len(q), df_complete, alpha, "Rubin's rules, Barnard-Rubin df")


def _pooled_result(pooled: _Pooled, m: int, df_complete: float, alpha: float, method: str) -> Result:
    from scipy import stats

    se = math.sqrt(pooled.t)
    crit = float(stats.t.ppf(1 - alpha / 2, pooled.df))
    p = float(2 * stats.t.sf(abs(pooled.qbar) / se, pooled.df)) if se > 0 else math.nan
    return Result(
        estimate=pooled.qbar,
        se=se,
        df=pooled.df,
        ci_low=pooled.qbar - crit * se,
        ci_high=pooled.qbar + crit * se,
        p_value=p,
        method=method,
        parameters=as_parameters(
            m=m,
            within=pooled.ubar,
            between=pooled.b,
            total=pooled.t,
            fraction_missing_information=pooled.fmi,
            df_complete=df_complete,
            alpha=alpha,
        ),
    )


# --------------------------------------------------------------------------------------------
# Imputation by data augmentation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Imputed:
    """Completed primary-visit responses, one row per imputation, and the analysis frame."""

    data: pd.DataFrame  # one row per participant: arm, covariates, observed primary response
    completed: FloatArray  # (m, n) primary-visit response per imputation
    imputed: npt.NDArray[np.bool_]  # (n,) whether the primary-visit response was imputed
    notes: tuple[str, ...]


def _draw_sigma(rng: np.random.Generator, scale: FloatArray, df: float) -> FloatArray:
    """Sigma from the inverse Wishart(df, scale), by the Bartlett decomposition of its inverse."""
    import numpy as np

    t = scale.shape[0]
    chol = np.linalg.cholesky(np.linalg.inv(scale))
    a = np.zeros((t, t))
    a[np.diag_indices(t)] = np.sqrt(rng.chisquare(df - np.arange(t)))
    a[np.tril_indices(t, -1)] = rng.standard_normal(t * (t - 1) // 2)
    la = chol @ a
    return np.asarray(np.linalg.inv(la @ la.T))


def _augment(
    rng: np.random.Generator,
    z: FloatArray,
    y: FloatArray,
    observed: npt.NDArray[np.bool_],
    iterations: int,
    keep_every: int,
    keep: int,
) -> list[FloatArray]:
    """Run data augmentation for Y | Z ~ N(Z B, Sigma) (Jeffreys prior); return the kept Y."""
    import numpy as np

    n, k = z.shape
    t = y.shape[1]
    if n - k < t:
        raise ValueError("too few participants in an arm for the imputation model")
    ztz_inv = np.linalg.inv(z.T @ z)
    chol_z = np.linalg.cholesky(ztz_inv)
    hat = ztz_inv @ z.T
    y = y.copy()
    col_mean = np.array([y[observed[:, j], j].mean() if observed[:, j].any() else 0.0 for j in range(t)])
    y[~observed] = np.broadcast_to(col_mean, y.shape)[~observed]
    codes = observed @ (1 << np.arange(t))
    groups = [(np.flatnonzero(codes == c), observed[codes == c][0]) for c in np.unique(codes)]
    groups = [(rows, obs) for rows, obs in groups if not obs.all()]
    kept = []
    for it in range(iterations):
        # P-step: parameters from their posterior given the completed data
        b_hat = hat @ y
        resid = y - z @ b_hat
        sigma = _draw_sigma(rng, resid.T @ resid, n - k)
        b = b_hat + chol_z @ rng.standard_normal((k, t)) @ np.linalg.cholesky(sigma).T
        mean = z @ b
        # I-step: missing values from their conditional normal given the observed ones
        for rows, obs in groups:
            mis = ~obs
            s_oo = sigma[np.ix_(obs, obs)]
            s_mo = sigma[np.ix_(mis, obs)]
            coef = np.linalg.solve(s_oo, s_mo.T).T if obs.any() else np.zeros((mis.sum(), 0))
            cond_cov = sigma[np.ix_(mis, mis)] - coef @ s_mo.T
            centre = mean[np.ix_(rows, mis)] + (y[np.ix_(rows, obs)] - mean[np.ix_(rows, obs)]) @ coef.T
            noise = rng.standard_normal((len(rows), int(mis.sum()))) @ np.linalg.cholesky(cond_cov).T
            y[np.ix_(rows, mis)] = centre + noise
        done = it + 1 - (iterations - keep * keep_every)
        if done > 0 and done % keep_every == 0:
            kept.append(y.copy())
    return kept


def _impute(
    frame: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    arm: str,
    response: str,
    baseline: str,
    covariates: Sequence[str],
    visits: Sequence[Any] | None,
    primary_visit: Any | None,
    n_imputations: int,
    seed: int,
    burn_in: int,
    thin: int,
) -> _Imputed:
    import numpy as np
    import pandas as pd

    if n_imputations < 2:
        raise ValueError("at least two imputations are needed")
    if burn_in < 0 or thin < 1:
        raise ValueError("burn_in must be >= 0 and thin >= 1")
    needed = [subject, visit, arm, response, baseline, *covariates]
    missing_cols = [c for c in needed if c not in frame.columns]
    if missing_cols:
        raise ValueError(f"columns not in the frame: {missing_cols}")
    visit_levels = list(visits) if visits is not None else sorted(frame[visit].dropna().unique().tolist())
    primary_visit = visit_levels[-1] if primary_visit is None else primary_visit
    if primary_visit not in visit_levels:
        raise ValueError(f"primary visit {primary_visit!r} is not in the visit list")
    long = frame[list(dict.fromkeys(needed))]
    unknown = set(long[visit].dropna().unique()) - set(visit_levels)
    if unknown:
        raise ValueError(f"visits not in the visit list: {sorted(map(str, unknown))}")
    if long.duplicated([subject, visit]).any():
        raise ValueError("a participant has more than one row at the same visit")
    people = long[[subject, arm, baseline, *covariates]].drop_duplicates()
    if people[subject].duplicated().any():
        raise ValueError("arm, baseline and covariates must be constant within a participant")
    notes: list[str] = []
    usable = people.notna().all(axis=1)
    if not usable.all():
        notes.append(
            f"{int((~usable).sum())} participants with a missing arm, baseline or covariate were left out."
        )
    people = people[usable].sort_values(subject, kind="stable").reset_index(drop=True)
    wide = (
        long.pivot(index=subject, columns=visit, values=response)
        .reindex(index=people[subject], columns=visit_levels)
        .to_numpy(dtype=float)
    )
    observed = ~np.isnan(wide)
    primary_col = visit_levels.index(primary_visit)

    # covariates of the imputation model: intercept, baseline and covariates
    from analysis.mmrm import _Design, _Factor, _term

    design = _Design(
        arm=_Factor(arm, (None,)),  # no arm term: each arm is imputed separately
        visit=None,
        covariates=tuple(_term(people, c) for c in (baseline, *covariates)),
        visit_covariates=(),
    )
    z_all = design.matrix(people)
    rng = np.random.default_rng(seed)
    completed = np.empty((n_imputations, len(people)))
    iterations = burn_in + thin * n_imputations
    for a in sorted(people[arm].unique(), key=str):
        rows = np.flatnonzero((people[arm] == a).to_numpy())
        z = z_all[rows]
        keepcols = np.linalg.matrix_rank(z) == z.shape[1]
        if not keepcols:
            z = _independent_columns(z)
        if observed[rows].all():
            completed[:, rows] = wide[rows, primary_col]
            continue
        draws = _augment(rng, z, wide[rows], observed[rows], iterations, thin, n_imputations)
        for j, y in enumerate(draws):
            completed[j, rows] = y[:, primary_col]
    data = people.assign(**{response: wide[:, primary_col]})
    imputed = ~observed[:, primary_col]
    n_imp = int(imputed.sum())
    notes.append(
        f"{n_imp} of {len(people)} primary-visit responses imputed ({n_imputations} imputations, "
        f"seed {seed})."
    )
    return _Imputed(pd.DataFrame(data), completed, imputed, tuple(notes))


def _independent_columns(z: FloatArray) -> FloatArray:
    """Drop columns of z that are linear combinations of earlier ones (e.g. an empty stratum)."""
    import numpy as np

    keep: list[int] = []
    for j in range(z.shape[1]):
        if np.linalg.matrix_rank(z[:, [*keep, j]]) == len(keep) + 1:
            keep.append(j)
    return np.asarray(z[:, keep])


# --------------------------------------------------------------------------------------------
# Analysis of the completed data sets
# --------------------------------------------------------------------------------------------


def _ancova_many(x: FloatArray, contrast: FloatArray, ys: FloatArray) -> tuple[FloatArray, FloatArray, float]:
    """Least-squares contrast estimates and variances for each row of ``ys`` (same design)."""
    import numpy as np

    n, p = x.shape
    q, r = np.linalg.qr(x)
    beta = np.linalg.solve(r, q.T @ ys.T)  # (p, m)
    resid = ys.T - x @ beta
    s2 = (resid**2).sum(axis=0) / (n - p)
    w = np.linalg.solve(r.T, contrast)
    return contrast @ beta, s2 * float(w @ w), float(n - p)


@dataclass(frozen=True)
class ImputationResult:
    """Multiple imputation under MAR, analysed by ANCOVA at the primary visit and pooled.

    Attributes
    ----------
    primary : Result
        The pooled difference of the primary arm against the reference arm (estimate, se,
        df, ci_low, ci_high, p_value, n, method, parameters with ``within``, ``between``,
        ``total``, ``fraction_missing_information``, ``m``, and notes).
    differences : tuple of Result
        Every other arm against the reference arm, pooled the same way.
    n_imputations : int
        Number of imputations.
    seed : int
        Seed of the random number generator.
    n_imputed : int
        Participants whose primary-visit response was imputed.
    method : str
        Description of the imputation and analysis.
    notes : tuple of str
        Warnings and remarks.
    """

    primary: Result
    differences: tuple[Result, ...]
    n_imputations: int
    seed: int
    n_imputed: int
    method: str
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """Return the pooled differences, one row per arm.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm``, ``reference``, ``estimate``, ``se``, ``df``, ``ci_low``,
            ``ci_high``, ``p_value``.
        """
        return _results_frame(self.differences, ("arm", "reference"))


@dataclass(frozen=True)
class TippingPointResult:
    """A delta-adjusted tipping-point analysis over a grid of shifts.

    Attributes
    ----------
    results : tuple of Result
        The pooled primary difference at each shift, in grid order (``parameters`` name
        ``delta``).
    tipping_delta : float or None
        The first shift of the grid at which the difference is no longer significant at
        ``alpha`` (p >= alpha), or None if it stays significant over the whole grid (or is
        not significant even without a shift).
    significant_without_shift : bool
        Whether the difference is significant at ``alpha`` with no shift (MAR).
    n_imputations : int
        Number of imputations.
    seed : int
        Seed of the random number generator.
    method : str
        Description of the analysis.
    notes : tuple of str
        Warnings and remarks.
    """

    results: tuple[Result, ...]
    tipping_delta: float | None
    significant_without_shift: bool
    n_imputations: int
    seed: int
    method: str
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """One row per shift.

        Returns
        -------
        pandas.DataFrame
            Columns ``delta``, ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``,
            ``p_value``.
        """
        return _results_frame(self.results, ("delta",))


def _run(
    frame: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    arm: str,
    response: str,
    baseline: str,
    reference_arm: Any,
    covariates: Sequence[str],
    visits: Sequence[Any] | None,
    primary_visit: Any | None,
    primary_arm: Any | None,
    n_imputations: int,
    seed: int,
    burn_in: int,
    thin: int,
) -> tuple[_Imputed, Any, list[str]]:
    with captured_warnings() as caught:
        imp = _impute(
            frame,
            subject=subject,
            visit=visit,
            arm=arm,
            response=response,
            baseline=baseline,
            covariates=covariates,
            visits=visits,
            primary_visit=primary_visit,
            n_imputations=n_imputations,
            seed=seed,
            burn_in=burn_in,
            thin=thin,
        )
        prep = _prepare(
            imp.data,
            arm=arm,
            response=None,
            reference_arm=reference_arm,
            covariates=(baseline, *covariates),
            primary_arm=primary_arm,
        )
    return imp, prep, [*imp.notes, *prep.notes, *caught]


def mi_ancova(
    frame: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    arm: str,
    response: str,
    baseline: str,
    reference_arm: Any,
    seed: int,
    covariates: Sequence[str] = (),
    visits: Sequence[Any] | None = None,
    primary_visit: Any | None = None,
    primary_arm: Any | None = None,
    n_imputations: int = 50,
    burn_in: int = 200,
    thin: int = 20,
    alpha: float = 0.05,
) -> ImputationResult:
    r"""Multiple imputation under MAR, ANCOVA at the primary visit, Rubin's rules.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data, one row per participant and visit (a missing response may be a missing
        row or an empty value). Every randomised participant with a baseline is analysed.
    subject, visit, arm, response, baseline : str
        Columns: participant, visit, randomised arm, response (change from baseline), baseline
        score (constant within a participant).
    reference_arm : object
        The control arm.
    covariates : sequence of str
        Stratification factors (constant within a participant), used by both the imputation
        model and the ANCOVA.
    visits : sequence, optional
        The visits in order; default the sorted distinct visits. A row at any other visit is
        an error.
    primary_visit : object, optional
        The analysed visit; default the last.
    primary_arm : object, optional
        The experimental arm of the primary comparison; default the only other arm.
    n_imputations : int
        Number of imputed data sets.
    seed : int
        Seed of the random number generator: the same seed, data and library versions give
        the same result, bit for bit.
    burn_in, thin : int
        Data-augmentation iterations before the first imputation, and between imputations.
    alpha : float
        Two-sided level.

    Returns
    -------
    ImputationResult
        With fields ``primary`` (a :class:`~analysis.results.Result`: estimate, se, df,
        ci_low, ci_high, p_value, n, method, parameters, notes), ``differences``,
        ``n_imputations``, ``seed``, ``n_imputed``, ``method`` and ``notes``.

    Raises
    ------
    ValueError
        On a missing column, a duplicated participant-visit, covariates that vary within a
        participant, an arm too small for its imputation model, or invalid settings.

    Notes
    -----
    Imputation model, separately in each arm: the vector of responses at the visits,
    :math:`y_i \sim N(B^\top z_i, \Sigma)` with :math:`z_i` = (1, baseline, covariates),
    under the Jeffreys prior :math:`p(B, \Sigma) \propto |\Sigma|^{-(T+1)/2}`. Data
    augmentation alternates :math:`\Sigma \sim \mathrm{IW}(n - k, S)`, :math:`B \mid
    \Sigma \sim N(\hat B, \Sigma \otimes (Z^\top Z)^{-1})` and the missing responses
    from their normal distribution given the observed ones; it handles monotone and
    intermittent missingness alike. After ``burn_in`` iterations every ``thin``-th completed
    data set is kept. Each is analysed by ``response ~ arm + baseline + covariates`` at the
    primary visit (the ANCOVA of :func:`analysis.ancova.fit_ancova`) and the LS-mean
    differences are pooled by :func:`rubin_pool` with :math:`\nu_{com} = n - p`. If no
    primary-visit response is missing the result is the complete-data ANCOVA (between
    variance 0, :math:`\nu = n - p`).

    References
    ----------
    .. [1] Schafer JL. Analysis of Incomplete Multivariate Data. Chapman & Hall; 1997.
    .. [2] Rubin DB. Multiple Imputation for Nonresponse in Surveys. Wiley; 1987.
    .. [3] Barnard J, Rubin DB. Small-sample degrees of freedom with multiple imputation.
       Biometrika. 1999;86(4):948-955. doi:10.1093/biomet/86.4.948
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie between 0 and 1")
    imp, prep, notes = _run(
        frame,
        subject=subject,
        visit=visit,
        arm=arm,
        response=response,
        baseline=baseline,
        reference_arm=reference_arm,
        covariates=covariates,
        visits=visits,
        primary_visit=primary_visit,
        primary_arm=primary_arm,
        n_imputations=n_imputations,
        seed=seed,
        burn_in=burn_in,
        thin=thin,
    )
    method = (
        f"Multiple imputation under MAR ({n_imputations} imputations, multivariate normal by arm, "
        f"data augmentation, seed {seed}); ANCOVA ({response} ~ "
        f"{' + '.join([arm, baseline, *covariates])}) at the primary visit; Rubin's rules, "
        "Barnard-Rubin df"
    )
    differences = []
    for a in prep.arm_levels[1:]:
        res = _pooled_difference(imp.completed, prep, a, reference_arm, alpha, method)
        differences.append(_with(res, arm, a, reference_arm, imp, prep, notes))
    primary = next(d for d in differences if d.parameters["arm"] == prep.primary_arm)
    return ImputationResult(
        primary=primary,
        differences=tuple(differences),
        n_imputations=n_imputations,
        seed=seed,
        n_imputed=int(imp.imputed.sum()),
        method=method,
        notes=tuple(notes),
    )


def _pooled_difference(
    completed: FloatArray, prep: Any, a: Any, reference_arm: Any, alpha: float, method: str
) -> Result:
    import numpy as np

    contrast = prep.grid[a] - prep.grid[reference_arm]
    q, u, df_com = _ancova_many(prep.x, contrast, completed)
    if np.all(completed == completed[0]):
        # nothing imputed at the primary visit: the complete-data analysis
        from scipy import stats

        se = math.sqrt(float(u[0]))
        crit = float(stats.t.ppf(1 - alpha / 2, df_com))
        return Result(
            estimate=float(q[0]),
            se=se,
            df=df_com,
            ci_low=float(q[0]) - crit * se,
            ci_high=float(q[0]) + crit * se,
            p_value=float(2 * stats.t.sf(abs(float(q[0])) / se, df_com)),
            method=method,
            parameters=as_parameters(
                m=len(q),
                within=float(u[0]),
                between=0.0,
                total=float(u[0]),
                fraction_missing_information=0.0,
                df_complete=df_com,
                alpha=alpha,
            ),
        )
    return _pooled_result(_pool(q, u, df_com), len(q), df_com, alpha, method)


def _with(
    res: Result, arm: str, a: Any, reference_arm: Any, imp: _Imputed, prep: Any, notes: list[str]
) -> Result:
    from dataclasses import replace

    counts = prep.data[arm].value_counts().to_dict()
    return replace(
        res,
        n=int(counts.get(a, 0) + counts.get(reference_arm, 0)),
        parameters=as_parameters(**res.parameters, arm=a, reference=reference_arm),
        notes=tuple(notes),
    )


def tipping_point(
    frame: pd.DataFrame,
    *,
    subject: str,
    visit: str,
    arm: str,
    response: str,
    baseline: str,
    reference_arm: Any,
    seed: int,
    deltas: Sequence[float],
    covariates: Sequence[str] = (),
    visits: Sequence[Any] | None = None,
    primary_visit: Any | None = None,
    primary_arm: Any | None = None,
    n_imputations: int = 50,
    burn_in: int = 200,
    thin: int = 20,
    alpha: float = 0.05,
) -> TippingPointResult:
    r"""Delta-adjusted tipping-point analysis around multiple imputation under MAR.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data, one row per participant and visit (a missing response may be a missing
        row or an empty value). Every randomised participant with a baseline is analysed.
    subject, visit, arm, response, baseline : str
        Columns: participant, visit, randomised arm, response (change from baseline), baseline
        score (constant within a participant).
    reference_arm : object
        The control arm.
    covariates : sequence of str
        Stratification factors (constant within a participant), used by both the imputation
        model and the ANCOVA.
    visits : sequence, optional
        The visits in order; default the sorted distinct visits. A row at any other visit is
        an error.
    primary_visit : object, optional
        The analysed visit; default the last.
    primary_arm : object, optional
        The experimental arm of the primary comparison; default the only other arm.
    n_imputations : int
        Number of imputed data sets.
    seed : int
        Seed of the random number generator: the same seed, data and library versions give
        the same result, bit for bit.
    burn_in, thin : int
        Data-augmentation iterations before the first imputation, and between imputations.
    alpha : float
        Two-sided level.
    deltas : sequence of float
        The shifts, in the order to search (e.g. 0, 0.5, 1, ... towards a worse outcome in
        the experimental arm).

    Returns
    -------
    TippingPointResult
        With fields ``results`` (one :class:`~analysis.results.Result` per shift: estimate,
        se, df, ci_low, ci_high, p_value, n, method, parameters, notes),
        ``tipping_delta``, ``significant_without_shift``, ``n_imputations``, ``seed``,
        ``method`` and ``notes``.

    Raises
    ------
    ValueError
        As :func:`mi_ancova`, or on an empty grid.

    Notes
    -----
    The data are imputed once under MAR (as in :func:`mi_ancova`, with the same seed the
    same imputations). For each shift :math:`\delta` the imputed primary-visit responses of
    the experimental arm become :math:`y^{imp} + \delta`, every completed data set is
    analysed by ANCOVA and the results are pooled by Rubin's rules. The tipping point is the
    first shift of the grid at which :math:`p \ge \alpha`; a shift that large in the
    unobserved outcomes of the experimental arm would overturn the conclusion.

    References
    ----------
    .. [1] Ratitch B, O'Kelly M, Tosiello R. Missing data in clinical trials: from clinical
       assumptions to statistical analysis using pattern mixture models. Pharm Stat.
       2013;12(6):337-347. doi:10.1002/pst.1549
    .. [2] National Research Council. The Prevention and Treatment of Missing Data in Clinical
       Trials. National Academies Press; 2010. doi:10.17226/12955
    """
    import numpy as np

    if not 0 < alpha < 1:
        raise ValueError("alpha must lie between 0 and 1")
    grid = [float(d) for d in deltas]
    if not grid:
        raise ValueError("the grid of shifts is empty")
    imp, prep, notes = _run(
        frame,
        subject=subject,
        visit=visit,
        arm=arm,
        response=response,
        baseline=baseline,
        reference_arm=reference_arm,
        covariates=covariates,
        visits=visits,
        primary_visit=primary_visit,
        primary_arm=primary_arm,
        n_imputations=n_imputations,
        seed=seed,
        burn_in=burn_in,
        thin=thin,
    )
    method = (
        f"Delta-adjusted multiple imputation ({n_imputations} imputations, seed {seed}): delta added "
        f"to imputed {response} of arm {prep.primary_arm} at the primary visit; ANCOVA; Rubin's rules"
    )
    shift_mask = imp.imputed & (prep.data[arm] == prep.primary_arm).to_numpy()
    results = []
    for delta in grid:
        completed = imp.completed + np.where(shift_mask, delta, 0.0)[None, :]
        res = _pooled_difference(completed, prep, prep.primary_arm, reference_arm, alpha, method)
        res = _with(res, arm, prep.primary_arm, reference_arm, imp, prep, notes)
        from dataclasses import replace

        results.append(replace(res, parameters=as_parameters(**res.parameters, delta=delta)))
    p0 = _pooled_difference(imp.completed, prep, prep.primary_arm, reference_arm, alpha, method).p_value
    significant = p0 is not None and p0 < alpha
    tipping = None
    if significant:
        tipping = next((r.parameters["delta"] for r in results if (r.p_value or 0.0) >= alpha), None)
    return TippingPointResult(
        results=tuple(results),
        tipping_delta=tipping,
        significant_without_shift=bool(significant),
        n_imputations=n_imputations,
        seed=seed,
        method=method,
        notes=tuple(notes),
    )
