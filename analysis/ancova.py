"""Analysis of covariance at one visit: the supporting analysis of a continuous endpoint.

``response ~ arm + covariates`` by ordinary least squares (statsmodels), with LS means and
differences against the reference arm computed as R's ``emmeans`` does by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.mmrm import _Design, _Factor, _levels, _results_frame, _term
from analysis.results import Result, as_parameters, captured_warnings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]

__all__ = ["AncovaResult", "fit_ancova"]


@dataclass(frozen=True)
class AncovaResult:
    """An ANCOVA at one visit: LS means and differences against the reference arm.

    Attributes
    ----------
    primary : Result
        The LS-mean difference of the primary arm against the reference arm (estimate, se,
        df, ci_low, ci_high, p_value, n, method, parameters, notes).
    differences : tuple of Result
        Every other arm against the reference arm (``parameters`` name ``arm`` and
        ``reference``).
    lsmeans : tuple of Result
        The LS mean of every arm (``p_value`` is None).
    coefficient_names : tuple of str
        Names of the model terms, e.g. ``arm[app]``, ``base``, ``site[S2]``.
    coefficients : tuple of float
        Their least-squares estimates.
    residual_sd : float
        The residual standard deviation.
    residual_df : float
        Residual degrees of freedom, :math:`n - p`.
    n : int
        Participants analysed.
    method : str
        Description of the model.
    notes : tuple of str
        Warnings and remarks.
    """

    primary: Result
    differences: tuple[Result, ...]
    lsmeans: tuple[Result, ...]
    coefficient_names: tuple[str, ...]
    coefficients: tuple[float, ...]
    residual_sd: float
    residual_df: float
    n: int
    method: str
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """Return the differences against the reference arm, one row per arm.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm``, ``reference``, ``estimate``, ``se``, ``df``, ``ci_low``,
            ``ci_high``, ``p_value``.
        """
        return _results_frame(self.differences, ("arm", "reference"))

    def lsmeans_frame(self) -> pd.DataFrame:
        """Return the LS means, one row per arm.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm``, ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``.
        """
        return _results_frame(self.lsmeans, ("arm",)).drop(columns=["p_value"])


@dataclass(frozen=True)
class _Prepared:
    """The analysed rows, their design and the contrast rows of the LS means."""

    data: pd.DataFrame
    design: _Design
    x: FloatArray
    arm_levels: tuple[Any, ...]
    primary_arm: Any
    grid: dict[Any, FloatArray]
    notes: tuple[str, ...]


def _prepare(
    frame: pd.DataFrame,
    *,
    arm: str,
    response: str | None,
    reference_arm: Any,
    covariates: Sequence[str],
    primary_arm: Any | None,
) -> _Prepared:
    needed = [arm, *covariates] + ([response] if response else [])
    missing_cols = [c for c in needed if c not in frame.columns]
    if missing_cols:
        raise ValueError(f"columns not in the frame: {missing_cols}")
    data = frame[list(dict.fromkeys(needed))]
    complete = data.notna().all(axis=1)
    notes: list[str] = []
    if not complete.all():
        notes.append(
            f"{int((~complete).sum())} participants with a missing response, arm or covariate were left out."
        )
    data = data[complete].reset_index(drop=True)
    arm_levels = _levels(data[arm])
    if reference_arm not in arm_levels:
        raise ValueError(f"reference arm {reference_arm!r} has no analysed data")
    arm_levels = [reference_arm, *[a for a in arm_levels if a != reference_arm]]
    if len(arm_levels) < 2:
        raise ValueError("at least two arms are needed")
    if primary_arm is None:
        if len(arm_levels) != 2:
            raise ValueError("primary_arm is required with three or more arms")
        primary_arm = arm_levels[1]
    if primary_arm not in arm_levels[1:]:
        raise ValueError(f"primary arm {primary_arm!r} is not a compared arm")
    design = _Design(
        arm=_Factor(arm, tuple(arm_levels)),
        visit=None,
        covariates=tuple(_term(data, c) for c in covariates),
        visit_covariates=(),
    )
    x = design.matrix(data)
    import numpy as np

    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("the model is not estimable (a covariate is constant or collinear)")
    if len(data) <= x.shape[1]:
        raise ValueError("too few participants for the model")
    grid = {a: design.grid_rows(data, a, None) for a in arm_levels}
    return _Prepared(data, design, x, tuple(arm_levels), primary_arm, grid, tuple(notes))


def fit_ancova(
    frame: pd.DataFrame,
    *,
    arm: str,
    response: str,
    reference_arm: Any,
    covariates: Sequence[str] = (),
    primary_arm: Any | None = None,
    alpha: float = 0.05,
) -> AncovaResult:
    r"""Fit ``response ~ arm + covariates`` by least squares and compare arms by LS means.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant at the analysed visit. Rows with a missing response, arm or
        covariate are left out and counted in ``notes``.
    arm, response : str
        Columns: randomised arm and response (e.g. change from baseline at the primary visit).
    reference_arm : object
        The arm every other arm is compared with.
    covariates : sequence of str
        Adjustment columns, e.g. the baseline score and stratification factors. Text, boolean
        and categorical columns are factors (treatment contrasts, first level as reference);
        numeric columns enter linearly.
    primary_arm : object, optional
        The arm of the primary comparison. Default: the only arm besides the reference
        (required with three or more arms).
    alpha : float
        Two-sided level; intervals are at ``1 - alpha``.

    Returns
    -------
    AncovaResult
        With fields ``primary`` (a :class:`~analysis.results.Result`: estimate, se, df,
        ci_low, ci_high, p_value, n, method, parameters, notes), ``differences``,
        ``lsmeans``, ``coefficient_names``, ``coefficients``, ``residual_sd``,
        ``residual_df``, ``n``, ``method`` and ``notes``.

    Raises
    ------
    ValueError
        On a missing column, an unknown reference or primary arm, fewer than two arms or a
        model that cannot be estimated.

    Notes
    -----
    :math:`\hat\beta = (X^\top X)^{-1} X^\top y`, :math:`s^2 = \lVert y - X\hat\beta
    \rVert^2 / (n - p)`. An LS mean or difference is :math:`l^\top \hat\beta` with standard
    error :math:`s \sqrt{l^\top (X^\top X)^{-1} l}` and :math:`n - p` degrees of freedom.
    As in R's ``emmeans`` (defaults), :math:`l` sets numeric covariates to their mean over the
    analysed participants and averages factor covariates over their levels with equal
    weights. Without interactions the difference between arms equals the arm coefficient.

    References
    ----------
    .. [1] European Medicines Agency. Guideline on adjustment for baseline covariates in
       clinical trials. EMA/CHMP/295050/2013. 2015.
    .. [2] Searle SR, Speed FM, Milliken GA. Population marginal means in the linear model: an
       alternative to least squares means. Am Stat. 1980;34(4):216-221.
    """
    import numpy as np
    import statsmodels.api as sm

    if not 0 < alpha < 1:
        raise ValueError("alpha must lie between 0 and 1")
    prep = _prepare(
        frame,
        arm=arm,
        response=response,
        reference_arm=reference_arm,
        covariates=covariates,
        primary_arm=primary_arm,
    )
    y = prep.data[response].to_numpy(dtype=float)
    with captured_warnings() as caught:
        fit = sm.OLS(y, prep.x).fit()

        def infer(contrast: FloatArray) -> tuple[float, float, float, float, float]:
            test = fit.t_test(contrast.reshape(1, -1))
            low, high = np.asarray(test.conf_int(alpha=alpha)).ravel()
            return (
                float(np.asarray(test.effect).ravel()[0]),
                float(np.asarray(test.sd).ravel()[0]),
                float(low),
                float(high),
                float(np.asarray(test.pvalue).ravel()[0]),
            )

        df = float(fit.df_resid)
        method = (
            f"ANCOVA ({response} ~ {' + '.join([arm, *covariates])}), least squares; LS means at "
            "covariate means (factors averaged with equal weights)"
        )
        arm_n = prep.data[arm].value_counts().to_dict()
        lsmeans = []
        for a in prep.arm_levels:
            est, se, low, high, _ = infer(prep.grid[a])
            lsmeans.append(
                Result(
                    estimate=est,
                    se=se,
                    df=df,
                    ci_low=low,
                    ci_high=high,
                    n=int(arm_n.get(a, 0)),
                    method=f"LS mean; {method}",
                    parameters=as_parameters(arm=a, alpha=alpha),
                )
            )
        rows = []
        for a in prep.arm_levels[1:]:
            rows.append((a, infer(prep.grid[a] - prep.grid[reference_arm])))
    notes = (*prep.notes, *caught)
    differences = tuple(
        Result(
            estimate=est,
            se=se,
            df=df,
            ci_low=low,
            ci_high=high,
            p_value=p,
            n=int(arm_n.get(a, 0) + arm_n.get(reference_arm, 0)),
            method=f"LS-mean difference; {method}",
            parameters=as_parameters(arm=a, reference=reference_arm, alpha=alpha),
            notes=notes,
        )
        for a, (est, se, low, high, p) in rows
    )
    primary = next(d for d in differences if d.parameters["arm"] == prep.primary_arm)
    return AncovaResult(
        primary=primary,
        differences=differences,
        lsmeans=tuple(lsmeans),
        coefficient_names=tuple(prep.design.names()),
        coefficients=tuple(float(b) for b in fit.params),
        residual_sd=float(np.sqrt(fit.scale)),
        residual_df=df,
        n=len(y),
        method=method,
        notes=notes,
    )
