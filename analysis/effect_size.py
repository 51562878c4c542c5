"""Standardized effect sizes: Hedges' g and the model-adjusted difference over the baseline SD.

Both divide a difference between arms by a standard deviation, and the report must say which:
Hedges' g uses the pooled SD of the outcome at the visit; the model-adjusted effect size uses
the pooled SD of the baseline score, so that it does not depend on how much the arms changed.
Differences are arm minus reference: on the PHQ-9 and GAD-7 a negative value favours the arm.

References
----------
.. [1] Hedges LV, Olkin I. Statistical Methods for Meta-Analysis. Academic Press; 1985.
.. [2] Borenstein M, Hedges LV, Higgins JPT, Rothstein HR. Introduction to Meta-Analysis.
   Wiley; 2009, chapter 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analysis._frames import require_columns, z_value
from analysis.results import Result, as_parameters

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EffectSize",
    "hedges_g",
    "hedges_g_from_summary",
    "model_adjusted_effect_size",
    "pooled_sd",
    "standardized_difference",
]


@dataclass(frozen=True)
class EffectSize(Result):
    """A standardized difference; ``estimate`` is the effect size.

    Attributes
    ----------
    raw_difference : float
        The unstandardized difference (arm minus reference).
    standardizer : float
        The SD it was divided by.
    standardizer_label : str
        Which SD that is, for the report.
    cohen_d : float or None
        Hedges' g only: the uncorrected :math:`d`.
    correction : float or None
        Hedges' g only: the small-sample factor :math:`J`.
    """

    raw_difference: float = math.nan
    standardizer: float = math.nan
    standardizer_label: str = ""
    cohen_d: float | None = None
    correction: float | None = None


def pooled_sd(sd_1: float, n_1: int, sd_2: float, n_2: int) -> float:
    r"""Pooled within-group standard deviation of two groups.

    Parameters
    ----------
    sd_1, sd_2 : float
        Sample SDs (denominator :math:`n - 1`).
    n_1, n_2 : int
        Group sizes; each at least 1 and together at least 3.

    Returns
    -------
    float
        :math:`\sqrt{((n_1 - 1) s_1^2 + (n_2 - 1) s_2^2) / (n_1 + n_2 - 2)}`.

    Raises
    ------
    ValueError
        If the sizes leave no degrees of freedom.

    Notes
    -----
    The formula is the one in Returns.

    References
    ----------
    .. [1] Borenstein M, et al. Introduction to Meta-Analysis. Wiley; 2009, eq. 4.19.
    """
    if n_1 < 1 or n_2 < 1 or n_1 + n_2 < 3:
        raise ValueError(f"need n_1, n_2 >= 1 and n_1 + n_2 >= 3, got {n_1} and {n_2}")
    return math.sqrt(((n_1 - 1) * sd_1**2 + (n_2 - 1) * sd_2**2) / (n_1 + n_2 - 2))


def hedges_g_from_summary(
    *,
    mean_treatment: float,
    sd_treatment: float,
    n_treatment: int,
    mean_control: float,
    sd_control: float,
    n_control: int,
    alpha: float = 0.05,
) -> EffectSize:
    r"""Hedges' g from group means, SDs and sizes.

    Parameters
    ----------
    mean_treatment, sd_treatment, n_treatment : float, float, int
        The arm's mean, SD and size.
    mean_control, sd_control, n_control : float, float, int
        The reference arm's.
    alpha : float
        Interval at ``1 - alpha``.

    Returns
    -------
    EffectSize
        ``estimate`` g; ``se`` :math:`J\,SE(d)`; ``ci_low``, ``ci_high``; ``df``
        :math:`n_1 + n_2 - 2`; ``n``; ``cohen_d``; ``correction`` J; ``raw_difference``;
        ``standardizer`` (pooled SD) and ``standardizer_label``; ``method``; ``parameters``;
        ``p_value`` None; ``notes`` empty.

    Raises
    ------
    ValueError
        If a size leaves no degrees of freedom or the pooled SD is 0.

    Notes
    -----
    :math:`d = (M_1 - M_2) / S_p` with the pooled SD :math:`S_p`;
    :math:`J = 1 - 3 / (4\,df - 1)`, :math:`df = n_1 + n_2 - 2`; :math:`g = J d`;
    :math:`Var(d) = (n_1 + n_2) / (n_1 n_2) + d^2 / (2 (n_1 + n_2))`;
    limits :math:`g \mp z\,J\,SE(d)` (DOMAIN.md section 3; Borenstein et al. 2009, eqs.
    4.18-4.24).

    References
    ----------
    .. [1] Hedges LV, Olkin I. Statistical Methods for Meta-Analysis. Academic Press; 1985.
    .. [2] Borenstein M, et al. Introduction to Meta-Analysis. Wiley; 2009, chapter 4.
    """
    n1, n2 = n_treatment, n_control
    s = pooled_sd(sd_treatment, n1, sd_control, n2)
    if s == 0:
        raise ValueError("the pooled SD is 0: the effect size is undefined")
    df = n1 + n2 - 2
    raw = float(mean_treatment - mean_control)
    d = raw / s
    j = 1 - 3 / (4 * df - 1)
    se_d = math.sqrt((n1 + n2) / (n1 * n2) + d**2 / (2 * (n1 + n2)))
    g = j * d
    z = z_value(alpha)
    return EffectSize(
        estimate=g,
        se=j * se_d,
        df=float(df),
        ci_low=g - z * j * se_d,
        ci_high=g + z * j * se_d,
        n=n1 + n2,
        method="Hedges' g (pooled SD of the outcome; small-sample correction J); normal interval",
        parameters=as_parameters(n_treatment=n1, n_control=n2, alpha=alpha),
        raw_difference=raw,
        standardizer=s,
        standardizer_label="pooled within-arm SD of the outcome",
        cohen_d=d,
        correction=j,
    )


def hedges_g(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    treatment: str,
    control: str,
    alpha: float = 0.05,
) -> EffectSize:
    r"""Hedges' g of an outcome between two arms, from participant-level data.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant (at one visit).
    outcome : str
        Column of the outcome (e.g. PHQ-9 total or change at the primary visit); missing
        values are left out.
    arm : str
        Column of the arm.
    treatment, control : str
        The two arms; the difference is `treatment` minus `control`.
    alpha : float
        Interval at ``1 - alpha``.

    Returns
    -------
    EffectSize
        As :func:`hedges_g_from_summary`, plus ``notes`` counting the rows left out.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If an arm has no observed outcome.

    Notes
    -----
    Means and SDs (denominator :math:`n - 1`) of the observed values of each arm, then the
    formulas of :func:`hedges_g_from_summary`.

    References
    ----------
    .. [1] Borenstein M, et al. Introduction to Meta-Analysis. Wiley; 2009, chapter 4.
    """
    from dataclasses import replace

    require_columns(frame, [outcome, arm])
    stats = {}
    notes = []
    for a in (treatment, control):
        values = frame.loc[frame[arm].astype(str) == a, outcome]
        observed = values.dropna().astype(float)
        if observed.empty:
            raise ValueError(f"arm {a!r} has no observed {outcome!r}")
        if len(observed) < len(values):
            notes.append(f"{a}: {len(values) - len(observed)} missing value(s) left out")
        stats[a] = (
            float(observed.mean()),
            float(observed.std(ddof=1)) if len(observed) > 1 else 0.0,
            len(observed),
        )
    (m1, s1, n1), (m2, s2, n2) = stats[treatment], stats[control]
    result = hedges_g_from_summary(
        mean_treatment=m1,
        sd_treatment=s1,
        n_treatment=n1,
        mean_control=m2,
        sd_control=s2,
        n_control=n2,
        alpha=alpha,
    )
    return replace(
        result,
        parameters=as_parameters(outcome=outcome, treatment=treatment, control=control, alpha=alpha),
        notes=tuple(notes),
    )


def standardized_difference(
    *,
    difference: float,
    ci_low: float,
    ci_high: float,
    sd_treatment: float,
    n_treatment: int,
    sd_control: float,
    n_control: int,
    standardizer_label: str = "pooled within-arm SD of the baseline score",
) -> EffectSize:
    r"""Divide a model-adjusted difference and its interval by a pooled (baseline) SD.

    Parameters
    ----------
    difference : float
        The model-adjusted difference (e.g. the MMRM or ANCOVA LS-mean difference, arm minus
        reference).
    ci_low, ci_high : float
        Its confidence limits.
    sd_treatment, n_treatment : float, int
        Baseline SD and size of the arm.
    sd_control, n_control : float, int
        Baseline SD and size of the reference arm.
    standardizer_label : str
        How the SD is described in the report.

    Returns
    -------
    EffectSize
        ``estimate`` the difference over the pooled SD; ``ci_low``, ``ci_high`` the limits over
        the same SD; ``n``; ``raw_difference``; ``standardizer``; ``standardizer_label``;
        ``method``; ``parameters``; ``notes`` (the SD is treated as known); ``se``, ``df``,
        ``p_value``, ``cohen_d``, ``correction`` None.

    Raises
    ------
    ValueError
        If the pooled SD is 0 or the sizes leave no degrees of freedom.

    Notes
    -----
    :math:`ES = \hat\Delta / S_{p,0}` with :math:`S_{p,0} = \sqrt{((n_1 - 1) s_{1,0}^2 +
    (n_2 - 1) s_{2,0}^2) / (n_1 + n_2 - 2)}` from the baseline SDs; the limits are those of
    :math:`\hat\Delta` divided by :math:`S_{p,0}`, ignoring the sampling error of the SD. The
    interval and p-value of the model remain the inferential result.

    References
    ----------
    .. [1] Feingold A. Effect sizes for growth-modeling analysis for controlled clinical
       trials in the same metric as for classical analysis. Psychol Methods.
       2009;14(1):43-53.
    """
    s = pooled_sd(sd_treatment, n_treatment, sd_control, n_control)
    if s == 0:
        raise ValueError("the pooled baseline SD is 0: the effect size is undefined")
    return EffectSize(
        estimate=difference / s,
        ci_low=ci_low / s,
        ci_high=ci_high / s,
        n=n_treatment + n_control,
        method="model-adjusted difference divided by the pooled baseline SD",
        parameters=as_parameters(n_treatment=n_treatment, n_control=n_control),
        notes=("limits are the model's limits divided by the SD, which is treated as known",),
        raw_difference=difference,
        standardizer=s,
        standardizer_label=standardizer_label,
    )


def model_adjusted_effect_size(
    frame: pd.DataFrame,
    *,
    baseline: str,
    arm: str,
    treatment: str,
    control: str,
    difference: Result,
) -> EffectSize:
    r"""Divide a model's adjusted difference by the pooled baseline SD of the two arms.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant with the baseline score (the population of the model).
    baseline : str
        Column of the baseline score.
    arm : str
        Column of the arm.
    treatment, control : str
        The two arms compared by `difference`.
    difference : Result
        The adjusted difference (treatment minus control) with ``ci_low`` and ``ci_high``.

    Returns
    -------
    EffectSize
        As :func:`standardized_difference`.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If `difference` has no limits, or an arm has too few baseline values.

    Notes
    -----
    The baseline SDs (denominator :math:`n - 1`) of each arm's observed baseline values, then
    :func:`standardized_difference`.

    References
    ----------
    .. [1] Feingold A. Psychol Methods. 2009;14(1):43-53.
    """
    require_columns(frame, [baseline, arm])
    if difference.ci_low is None or difference.ci_high is None:
        raise ValueError("the difference needs confidence limits")
    sds = {}
    for a in (treatment, control):
        values = frame.loc[frame[arm].astype(str) == a, baseline].dropna().astype(float)
        if len(values) < 2:
            raise ValueError(f"arm {a!r} needs at least two baseline values")
        sds[a] = (float(values.std(ddof=1)), len(values))
    return standardized_difference(
        difference=difference.estimate,
        ci_low=difference.ci_low,
        ci_high=difference.ci_high,
        sd_treatment=sds[treatment][0],
        n_treatment=sds[treatment][1],
        sd_control=sds[control][0],
        n_control=sds[control][1],
    )
