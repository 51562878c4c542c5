"""Subgroup estimates (by site, baseline severity, ...) for a forest plot.

Any estimator that returns a :class:`~analysis.results.Result` for a frame can be applied to
each level of a subgroup variable; the levels' estimates are then compared by a test of
heterogeneity, which is the treatment-by-subgroup interaction test.

References
----------
.. [1] Wang R, Lagakos SW, Ware JH, Hunter DJ, Drazen JM. Statistics in medicine - reporting
   of subgroup analyses in clinical trials. N Engl J Med. 2007;357(21):2189-2194.
.. [2] Cochran WG. The combination of estimates from different experiments. Biometrics.
   1954;10(1):101-129.
.. [3] EMA. Guideline on the investigation of subgroups in confirmatory clinical trials
   (EMA/CHMP/539146/2013), 2019.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from analysis._frames import check_alpha, require_columns
from analysis.results import Result, as_parameters, captured_warnings

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SubgroupAnalysis", "SubgroupEstimate", "subgroup_estimates"]

Scale = Literal["difference", "ratio"]


@dataclass(frozen=True)
class SubgroupEstimate:
    """The estimate in one level of the subgroup variable.

    Attributes
    ----------
    level : str
        The level (e.g. a site code).
    n_rows : int
        Rows of the frame in the level.
    result : Result
        What the estimator returned for the level.
    """

    level: str
    n_rows: int
    result: Result


@dataclass(frozen=True)
class SubgroupAnalysis:
    """Estimates by subgroup level with the interaction test.

    Attributes
    ----------
    subgroup : str
        The subgroup column.
    overall : Result
        The estimator applied to all rows.
    levels : tuple of SubgroupEstimate
        One per level, in sorted order.
    interaction : Result
        ``estimate`` the heterogeneity chi-square (Cochran's Q) or the statistic of the
        supplied test, ``df``, ``p_value``, ``method``, ``notes`` (levels left out).
    scale : str
        ``"difference"`` or ``"ratio"`` (pooled on the log scale).
    """

    subgroup: str
    overall: Result
    levels: tuple[SubgroupEstimate, ...]
    interaction: Result
    scale: str

    def to_frame(self) -> pd.DataFrame:
        """Return the rows of a forest plot, overall first.

        Returns
        -------
        pandas.DataFrame
            Columns ``subgroup, level, n, estimate, ci_low, ci_high, p_value``; the overall row
            has level ``"overall"``; the interaction p-value is in ``attrs["interaction_p"]``.
        """
        import pandas as pd

        rows = [("overall", self.overall)] + [(lv.level, lv.result) for lv in self.levels]
        out = pd.DataFrame(
            [
                {
                    "subgroup": self.subgroup,
                    "level": level,
                    "n": r.n,
                    "estimate": r.estimate,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "p_value": r.p_value,
                }
                for level, r in rows
            ]
        )
        out.attrs["interaction_p"] = self.interaction.p_value
        return out


def subgroup_estimates(
    frame: pd.DataFrame,
    *,
    subgroup: str,
    estimator: Callable[[pd.DataFrame], Result],
    scale: Scale,
    interaction_test: Callable[[pd.DataFrame], tuple[float, float, float]] | None = None,
    min_rows: int = 1,
    alpha: float = 0.05,
) -> SubgroupAnalysis:
    r"""Apply an estimator within each level of a subgroup variable and test the interaction.

    Parameters
    ----------
    frame : pandas.DataFrame
        The analysis data (all arms, all levels).
    subgroup : str
        Column of the subgroup variable (site, baseline severity, ...); rows where it is
        missing are left out of the levels (but not of ``overall``).
    estimator : callable
        ``estimator(frame) -> Result`` for one comparison, e.g.
        ``lambda d: odds_ratios(d, outcome="response", arm="arm", reference="CTL")[0]``.
        Its ``se`` must be on the pooling scale: of the estimate for ``"difference"``, of its
        logarithm for ``"ratio"``.
    scale : {"difference", "ratio"}
        Whether estimates are pooled as they are or on the log scale.
    interaction_test : callable, optional
        ``interaction_test(frame) -> (statistic, df, p_value)``, e.g. a likelihood-ratio test
        of the arm-by-subgroup term of a model; replaces Cochran's Q.
    min_rows : int
        Levels with fewer rows are reported without an estimate and left out of the test.
    alpha : float
        Passed on for the record; the estimator sets its own confidence level.

    Returns
    -------
    SubgroupAnalysis
        ``subgroup``, ``overall``, ``levels`` (``level``, ``n_rows``, ``result``),
        ``interaction`` (``estimate`` = statistic, ``df``, ``p_value``, ``method``, ``notes``)
        and ``scale``.

    Raises
    ------
    KeyError
        If the subgroup column is missing.
    ValueError
        If `scale` is unknown.

    Notes
    -----
    Cochran's Q: with level estimates :math:`y_k` (log of ratios) and standard errors
    :math:`s_k`, weights :math:`w_k = 1/s_k^2`, :math:`\bar y = \sum w_k y_k / \sum w_k` and
    :math:`Q = \sum w_k (y_k - \bar y)^2`, chi-square with :math:`K - 1` degrees of freedom.
    For independent level estimates this is the Wald test of the treatment-by-subgroup
    interaction (equal effects in all levels); for unadjusted log odds ratios it equals the
    Wald test of the interaction terms of the saturated logistic model. An estimator that fails
    in a level (e.g. no events) gives that level no estimate; the level is left out of the
    test and named in its notes.

    References
    ----------
    .. [1] Cochran WG. Biometrics. 1954;10(1):101-129.
    .. [2] Wang R, et al. N Engl J Med. 2007;357(21):2189-2194.
    """
    import numpy as np
    import pandas as pd
    from scipy.stats import chi2

    check_alpha(alpha)
    if scale not in ("difference", "ratio"):
        raise ValueError(f"scale must be 'difference' or 'ratio', got {scale!r}")
    require_columns(frame, [subgroup])
    overall = estimator(frame)
    levels: list[SubgroupEstimate] = []
    skipped: list[str] = []
    ys, ses = [], []
    for level in sorted(frame[subgroup].dropna().astype(str).unique()):
        part = frame[frame[subgroup].astype(str) == level]
        result: Result
        if len(part) < min_rows:
            result = Result(estimate=math.nan, n=len(part), notes=(f"fewer than {min_rows} rows",))
        else:
            try:
                with captured_warnings() as warned:
                    result = estimator(part)
            except (ValueError, ZeroDivisionError, np.linalg.LinAlgError, KeyError) as exc:
                result = Result(estimate=math.nan, n=len(part), notes=(f"not estimable: {exc}",))
            else:
                if warned:
                    result = replace(result, notes=(*result.notes, *warned))
        levels.append(SubgroupEstimate(level=level, n_rows=len(part), result=result))
        y = result.estimate
        se = result.se
        if scale == "ratio":
            y = math.log(y) if y > 0 and math.isfinite(y) else math.nan
        if se is None or not (math.isfinite(y) and math.isfinite(se) and se > 0):
            skipped.append(level)
            continue
        ys.append(y)
        ses.append(se)

    notes = [f"level {lv} left out of the test (no estimate or standard error)" for lv in skipped]
    if interaction_test is not None:
        stat, df, p = interaction_test(frame)
        method = "supplied interaction test"
    elif len(ys) >= 2:
        w = 1 / np.square(np.asarray(ses))
        y_arr = np.asarray(ys)
        pooled = float(np.sum(w * y_arr) / np.sum(w))
        stat = float(np.sum(w * (y_arr - pooled) ** 2))
        df = float(len(ys) - 1)
        p = float(chi2.sf(stat, df))
        method = "Cochran's Q test of heterogeneity across subgroup levels (inverse-variance)"
    else:
        stat, df, p = math.nan, math.nan, math.nan
        method = "no interaction test: fewer than two levels with an estimate"
    interaction = Result(
        estimate=stat,
        df=df,
        p_value=p,
        n=int(pd.notna(frame[subgroup]).sum()),
        method=method,
        parameters=as_parameters(subgroup=subgroup, scale=scale, alpha=alpha),
        notes=tuple(notes),
    )
    return SubgroupAnalysis(
        subgroup=subgroup, overall=overall, levels=tuple(levels), interaction=interaction, scale=scale
    )
