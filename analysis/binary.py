"""Binary endpoints (response, remission): risk difference, risk ratio, odds ratio and NNT.

Each arm is compared with a reference arm. Absolute and relative effects are both reported
(CONSORT 2010 item 17b): the risk difference with Newcombe's hybrid score interval, the risk
ratio with a log-scale interval, the odds ratio from a logistic regression adjusted for the
covariates named (by default none; the analysis plan normally names the baseline score), and
the number needed to treat with Altman's wording when the interval spans no effect.

References
----------
.. [1] Newcombe RG. Interval estimation for the difference between independent proportions:
   comparison of eleven methods. Stat Med. 1998;17(8):873-890 (method 10).
.. [2] Wilson EB. Probable inference, the law of succession, and statistical inference. J Am
   Stat Assoc. 1927;22(158):209-212.
.. [3] Altman DG. Confidence intervals for the number needed to treat. BMJ.
   1998;317(7168):1309-1312.
.. [4] Moher D, Hopewell S, Schulz KF, et al. CONSORT 2010 explanation and elaboration. BMJ.
   2010;340:c869 (item 17b).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis._frames import arm_levels, require_columns, z_value
from analysis.results import Result, as_parameters, captured_warnings

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BinaryAnalysis",
    "BinaryComparison",
    "NumberNeededToTreat",
    "compare_binary",
    "newcombe_difference",
    "number_needed_to_treat",
    "odds_ratios",
    "risk_ratio",
    "wilson_interval",
]


# --- summary-level estimators --------------------------------------------------------------


def _check_counts(events: int, n: int) -> None:
    if n <= 0 or not 0 <= events <= n:
        raise ValueError(f"need 0 <= events <= n and n > 0, got {events} of {n}")


def wilson_interval(events: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    r"""Wilson score interval for one proportion (no continuity correction).

    Parameters
    ----------
    events, n : int
        Number with the outcome and number analysed.
    alpha : float
        Interval at ``1 - alpha``.

    Returns
    -------
    tuple of float
        ``(lower, upper)``.

    Raises
    ------
    ValueError
        Unless ``0 <= events <= n`` and ``n > 0``.

    Notes
    -----
    With :math:`\hat p = x / n` and :math:`z = \Phi^{-1}(1 - \alpha / 2)`:
    :math:`(2x + z^2 \mp z \sqrt{z^2 + 4 x (1 - \hat p)}) / (2 (n + z^2))`, the interval of R's
    ``prop.test(x, n, correct = FALSE)``.

    References
    ----------
    .. [1] Wilson EB. J Am Stat Assoc. 1927;22(158):209-212.
    """
    _check_counts(events, n)
    z = z_value(alpha)
    c = z * z
    p = events / n
    centre = (2 * events + c) / (2 * (n + c))
    half = z * math.sqrt(c + 4 * events * (1 - p)) / (2 * (n + c))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(events_1: int, n_1: int, events_2: int, n_2: int, *, alpha: float = 0.05) -> Result:
    r"""Difference of two independent proportions with Newcombe's hybrid score interval.

    Parameters
    ----------
    events_1, n_1 : int
        Events and participants of group 1 (the arm).
    events_2, n_2 : int
        Events and participants of group 2 (the reference).
    alpha : float
        Interval at ``1 - alpha``.

    Returns
    -------
    Result
        ``estimate`` :math:`p_1 - p_2`; ``se`` the Wald standard error
        :math:`\sqrt{p_1 q_1 / n_1 + p_2 q_2 / n_2}` (for pooling, not for the interval);
        ``ci_low``, ``ci_high`` Newcombe's limits; ``n`` :math:`n_1 + n_2`; ``method``;
        ``parameters`` (the counts and alpha); ``df``, ``p_value`` None; ``notes`` empty.

    Raises
    ------
    ValueError
        If a count is impossible.

    Notes
    -----
    With Wilson limits :math:`(l_i, u_i)` of each proportion (method 10 of Newcombe 1998):
    :math:`L = \hat\delta - \sqrt{(p_1 - l_1)^2 + (u_2 - p_2)^2}`,
    :math:`U = \hat\delta + \sqrt{(u_1 - p_1)^2 + (p_2 - l_2)^2}`.

    References
    ----------
    .. [1] Newcombe RG. Stat Med. 1998;17(8):873-890, method 10.
    """
    _check_counts(events_1, n_1)
    _check_counts(events_2, n_2)
    p1, p2 = events_1 / n_1, events_2 / n_2
    l1, u1 = wilson_interval(events_1, n_1, alpha=alpha)
    l2, u2 = wilson_interval(events_2, n_2, alpha=alpha)
    delta = p1 - p2
    return Result(
        estimate=delta,
        se=math.sqrt(p1 * (1 - p1) / n_1 + p2 * (1 - p2) / n_2),
        ci_low=delta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        ci_high=delta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
        n=n_1 + n_2,
        method="risk difference; Newcombe hybrid score interval (Wilson, no continuity correction)",
        parameters=as_parameters(events_1=events_1, n_1=n_1, events_2=events_2, n_2=n_2, alpha=alpha),
    )


def risk_ratio(events_1: int, n_1: int, events_2: int, n_2: int, *, alpha: float = 0.05) -> Result:
    r"""Risk ratio of two independent proportions with a log-scale Wald interval.

    Parameters
    ----------
    events_1, n_1 : int
        Events and participants of group 1 (the arm).
    events_2, n_2 : int
        Events and participants of group 2 (the reference).
    alpha : float
        Interval at ``1 - alpha``.

    Returns
    -------
    Result
        ``estimate`` :math:`p_1 / p_2`; ``se`` the standard error of its logarithm;
        ``ci_low``, ``ci_high``; ``p_value`` of the Wald test of log RR = 0; ``n``;
        ``method``; ``parameters``; ``notes`` (why the interval is missing, when it is);
        ``df`` None.

    Raises
    ------
    ValueError
        If a count is impossible.

    Notes
    -----
    :math:`SE(\log RR) = \sqrt{1/x_1 - 1/n_1 + 1/x_2 - 1/n_2}`; limits
    :math:`\exp(\log RR \mp z\,SE)`. This equals the Wald interval of the arm coefficient of
    R's ``glm(y ~ arm, family = binomial(link = "log"))``. With no events in a group the ratio
    is 0 or infinite and has no interval (no continuity correction is applied).

    References
    ----------
    .. [1] Altman DG. Practical Statistics for Medical Research. Chapman & Hall; 1991,
       section 10.11.
    """
    from scipy.stats import norm

    _check_counts(events_1, n_1)
    _check_counts(events_2, n_2)
    params = as_parameters(events_1=events_1, n_1=n_1, events_2=events_2, n_2=n_2, alpha=alpha)
    method = "risk ratio; Wald interval on the log scale"
    if events_1 == 0 or events_2 == 0:
        if events_2 > 0:
            estimate = 0.0  # no events in the arm
        elif events_1 > 0:
            estimate = math.inf  # no events in the reference
        else:
            estimate = math.nan
        return Result(
            estimate=estimate,
            n=n_1 + n_2,
            method=method,
            parameters=params,
            notes=("no events in a group: the risk ratio has no interval",),
        )
    log_rr = math.log((events_1 / n_1) / (events_2 / n_2))
    se = math.sqrt(1 / events_1 - 1 / n_1 + 1 / events_2 - 1 / n_2)
    z = z_value(alpha)
    return Result(
        estimate=math.exp(log_rr),
        se=se,
        ci_low=math.exp(log_rr - z * se),
        ci_high=math.exp(log_rr + z * se),
        p_value=float(2 * norm.sf(abs(log_rr / se))) if se > 0 else math.nan,
        n=n_1 + n_2,
        method=method,
        parameters=params,
    )


# --- number needed to treat ----------------------------------------------------------------


@dataclass(frozen=True)
class NumberNeededToTreat:
    """Number needed to treat, worded as in Altman (1998).

    Attributes
    ----------
    estimate : float
        :math:`1 / |RD_b|` unrounded, where :math:`RD_b` is the risk difference in the direction
        of benefit (infinite when it is 0).
    rounded : int or None
        ``estimate`` rounded up to a whole participant (None when infinite).
    kind : str
        ``"NNTB"`` (benefit), ``"NNTH"`` (harm) or ``""`` when the difference is 0.
    reciprocal_limits : tuple of float
        :math:`(1 / U_b, 1 / L_b)` from the benefit-direction limits of the risk difference,
        signed: positive values are NNTB, negative values NNTH (an interval that spans 0 runs
        from the first through infinity to the second).
    text : str
        For example ``"NNTB 7 (95% CI 4 to 50)"`` or
        ``"NNTB 12 (95% CI NNTB 5 to infinity to NNTH 20)"``.
    """

    estimate: float
    rounded: int | None
    kind: str
    reciprocal_limits: tuple[float, float]
    text: str


def _ceil(x: float) -> int:
    # round up to a whole participant, ignoring floating-point noise (1 / 0.02 = 50.000000001)
    return math.ceil(round(x, 9))


def number_needed_to_treat(
    risk_difference: Result, *, outcome_is_favourable: bool, alpha: float = 0.05
) -> NumberNeededToTreat:
    r"""Compute the number needed to treat from a risk difference and its interval.

    Parameters
    ----------
    risk_difference : Result
        Arm minus reference, with ``ci_low`` and ``ci_high`` (e.g. from
        :func:`newcombe_difference`).
    outcome_is_favourable : bool
        True for response or remission (more is better), False for outcomes to avoid
        (deterioration, dropout).
    alpha : float
        Only used to print the confidence level in ``text``.

    Returns
    -------
    NumberNeededToTreat
        ``estimate``, ``rounded``, ``kind``, ``reciprocal_limits``, ``text``.

    Raises
    ------
    ValueError
        If the risk difference has no confidence limits.

    Notes
    -----
    :math:`RD_b = RD` for a favourable outcome and :math:`-RD` otherwise, with limits
    :math:`(L_b, U_b)`. NNT :math:`= 1 / |RD_b|`, "NNTB" when :math:`RD_b > 0` and "NNTH" when
    :math:`RD_b < 0`, rounded up. Its interval is the reciprocal of the risk difference's:
    NNTB :math:`1/U_b` to :math:`1/L_b` when :math:`L_b > 0`; NNTH :math:`1/|L_b|` to
    :math:`1/|U_b|` when :math:`U_b < 0`; and "NNTB :math:`1/U_b` to infinity to NNTH
    :math:`1/|L_b|`" when the interval spans 0. Printed limits are rounded up as well.

    References
    ----------
    .. [1] Altman DG. Confidence intervals for the number needed to treat. BMJ.
       1998;317(7168):1309-1312.
    """
    if risk_difference.ci_low is None or risk_difference.ci_high is None:
        raise ValueError("the risk difference needs confidence limits")
    sign = 1.0 if outcome_is_favourable else -1.0
    rd = sign * risk_difference.estimate
    lo, hi = sorted((sign * risk_difference.ci_low, sign * risk_difference.ci_high))
    level = f"{100 * (1 - alpha):g}% CI"

    def inv(x: float) -> float:
        return math.inf if x == 0 else 1 / x

    estimate = inv(abs(rd))
    kind = "NNTB" if rd > 0 else "NNTH" if rd < 0 else ""
    rounded = None if math.isinf(estimate) else _ceil(estimate)
    point = f"{kind} {rounded}" if kind else "NNT infinite (no difference)"
    if lo > 0:
        ci = f"{_ceil(inv(hi))} to {_ceil(inv(lo))}"
    elif hi < 0:
        ci = f"{_ceil(inv(-lo))} to {_ceil(inv(-hi))}"
    else:
        benefit = "infinity" if hi == 0 else f"NNTB {_ceil(inv(hi))}"
        harm = "infinity" if lo == 0 else f"NNTH {_ceil(inv(-lo))}"
        ci = f"{benefit} to infinity to {harm}" if hi > 0 and lo < 0 else f"{benefit} to {harm}"
    return NumberNeededToTreat(
        estimate=estimate,
        rounded=rounded,
        kind=kind,
        reciprocal_limits=(inv(hi), inv(lo)),
        text=f"{point} ({level} {ci})",
    )


# --- logistic regression -------------------------------------------------------------------


def _design(data: pd.DataFrame, arm: str, others: Sequence[str], covariates: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    parts = [pd.Series(1.0, index=data.index, name="(intercept)")]
    parts += [(data[arm] == a).astype(float).rename(f"arm[{a}]") for a in others]
    for c in covariates:
        if pd.api.types.is_numeric_dtype(data[c]):
            parts.append(data[c].astype(float).rename(c))
        else:  # categorical: treatment coding, first level (sorted) as reference
            levels = sorted(data[c].astype(str).unique())
            parts += [(data[c].astype(str) == lv).astype(float).rename(f"{c}[{lv}]") for lv in levels[1:]]
    return pd.concat(parts, axis=1)


def odds_ratios(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    covariates: Sequence[str] = (),
    alpha: float = 0.05,
) -> tuple[Result, ...]:
    r"""Odds ratio of each arm against the reference from a logistic regression.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant.
    outcome : str
        Column of the 0/1 (or boolean) outcome; rows where it is missing are excluded.
    arm : str
        Column of the arm.
    reference : str
        The reference arm.
    covariates : sequence of str
        Adjustment covariates: numeric columns enter linearly, other columns as factors
        (treatment coding, first sorted level as reference).
    alpha : float
        Intervals at ``1 - alpha``.

    Returns
    -------
    tuple of Result
        One per non-reference arm: ``estimate`` the odds ratio, ``se`` of the log odds ratio,
        ``ci_low``, ``ci_high`` (Wald, log scale), ``p_value`` (Wald z), ``n``, ``method``,
        ``parameters`` (``arm``, ``reference``, ``covariates``, ``alpha``) and ``notes``
        (rows excluded, fitting warnings); ``df`` None.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If the outcome is not 0/1 or the reference arm is absent.

    Notes
    -----
    :math:`\operatorname{logit} P(Y = 1) = \beta_0 + \sum_a \beta_a [arm = a] + \gamma^T x`,
    fitted by maximum likelihood (IRLS, statsmodels ``GLM`` with the binomial family);
    :math:`OR_a = \exp(\hat\beta_a)`, limits :math:`\exp(\hat\beta_a \mp z\,SE)`. This is R's
    ``glm(family = binomial)`` with ``confint.default``. Without covariates the standard error
    is Woolf's.

    References
    ----------
    .. [1] Hosmer DW, Lemeshow S, Sturdivant RX. Applied Logistic Regression. 3rd ed. Wiley;
       2013.
    """
    data, others, notes = _binary_data(frame, outcome, arm, reference, covariates)
    return _fit_odds_ratios(data, outcome, arm, reference, others, covariates, alpha, notes)


def _binary_data(
    frame: pd.DataFrame, outcome: str, arm: str, reference: str, covariates: Sequence[str]
) -> tuple[pd.DataFrame, list[str], list[str]]:
    import pandas as pd

    require_columns(frame, [outcome, arm, *covariates])
    data = frame[list(dict.fromkeys([outcome, arm, *covariates]))].dropna()
    notes = []
    if len(data) < len(frame):
        notes.append(
            f"{len(frame) - len(data)} row(s) with a missing outcome, arm or covariate were excluded"
        )
    y = data[outcome]
    if y.dtype != bool:
        y_num = pd.to_numeric(y, errors="coerce")
        if not y_num.isin([0, 1]).all():
            raise ValueError(f"column {outcome!r} must be 0/1 or boolean")
        y = y_num == 1
    data = data.copy()
    data[outcome] = y.astype(bool)
    data[arm] = data[arm].astype(str)
    others = arm_levels(data, arm, reference)
    return data, others, notes


def _fit_odds_ratios(
    data: pd.DataFrame,
    outcome: str,
    arm: str,
    reference: str,
    others: Sequence[str],
    covariates: Sequence[str],
    alpha: float,
    notes: list[str],
) -> tuple[Result, ...]:
    import numpy as np
    import statsmodels.api as sm
    from scipy.stats import norm

    z = z_value(alpha)
    x = _design(data, arm, others, covariates)
    with captured_warnings() as warned:
        fit = sm.GLM(data[outcome].astype(float), x, family=sm.families.Binomial()).fit(tol=1e-12)
        params = np.asarray(fit.params, dtype=float)
        bse = np.asarray(fit.bse, dtype=float)
    fit_notes = [*notes, *warned]
    if not np.all(np.isfinite(bse)) or np.any(np.abs(params[1:]) > 15):
        fit_notes.append(
            "quasi-complete separation (an arm or covariate level without events or non-events): "
            "the odds ratio is not estimable"
        )
    adjusted = f"adjusted for {', '.join(covariates)}" if covariates else "unadjusted"
    out = []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # separation, noted above
        for i, a in enumerate(others, start=1):
            b, se = params[i], bse[i]
            out.append(
                Result(
                    estimate=float(np.exp(b)),
                    se=float(se),
                    ci_low=float(np.exp(b - z * se)),
                    ci_high=float(np.exp(b + z * se)),
                    p_value=float(2 * norm.sf(abs(b / se))),
                    n=int(data[arm].isin([a, reference]).sum()),
                    method=f"odds ratio from logistic regression ({adjusted}); Wald interval",
                    parameters=as_parameters(
                        arm=a, reference=reference, covariates=tuple(covariates), alpha=alpha
                    ),
                    notes=tuple(fit_notes),
                )
            )
    return tuple(out)


# --- the whole analysis --------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryComparison:
    """One arm against the reference.

    Attributes
    ----------
    arm, reference : str
        Arm labels.
    events, n : int
        Outcomes and participants analysed in the arm.
    events_reference, n_reference : int
        The same in the reference arm.
    risk_difference : Result
        Arm minus reference, Newcombe interval.
    risk_ratio : Result
        Arm over reference, log interval.
    odds_ratio : Result
        From the logistic regression (adjusted as its ``method`` says).
    nnt : NumberNeededToTreat
        From the risk difference.
    """

    arm: str
    reference: str
    events: int
    n: int
    events_reference: int
    n_reference: int
    risk_difference: Result
    risk_ratio: Result
    odds_ratio: Result
    nnt: NumberNeededToTreat


@dataclass(frozen=True)
class BinaryAnalysis:
    """Proportions by arm and the comparisons with the reference.

    Attributes
    ----------
    outcome : str
        The outcome column.
    proportions : tuple of Result
        One per arm (reference first): ``estimate`` the proportion, Wilson limits, ``n``,
        ``parameters["arm"]`` and ``parameters["events"]``.
    comparisons : tuple of BinaryComparison
        Each other arm against the reference.
    notes : tuple of str
        Rows excluded, warnings.
    """

    outcome: str
    proportions: tuple[Result, ...]
    comparisons: tuple[BinaryComparison, ...]
    notes: tuple[str, ...] = ()

    def comparison(self, arm: str) -> BinaryComparison:
        """Return the comparison of one arm with the reference.

        Parameters
        ----------
        arm : str
            Arm label.

        Returns
        -------
        BinaryComparison
            That comparison.

        Raises
        ------
        KeyError
            If there is no such arm.
        """
        for c in self.comparisons:
            if c.arm == arm:
                return c
        raise KeyError(arm)

    def to_frame(self) -> pd.DataFrame:
        """Return one row per comparison and measure.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm, reference, measure, estimate, ci_low, ci_high, p_value, text``;
            measures ``risk difference``, ``risk ratio``, ``odds ratio`` and ``NNT`` (whose
            row carries the NNT text only).
        """
        import pandas as pd

        rows: list[dict[str, Any]] = []
        for c in self.comparisons:
            for measure, r in (
                ("risk difference", c.risk_difference),
                ("risk ratio", c.risk_ratio),
                ("odds ratio", c.odds_ratio),
            ):
                rows.append(
                    {
                        "arm": c.arm,
                        "reference": c.reference,
                        "measure": measure,
                        "estimate": r.estimate,
                        "ci_low": r.ci_low,
                        "ci_high": r.ci_high,
                        "p_value": r.p_value,
                        "text": r.method,
                    }
                )
            rows.append(
                {
                    "arm": c.arm,
                    "reference": c.reference,
                    "measure": "NNT",
                    "estimate": c.nnt.estimate,
                    "ci_low": None,
                    "ci_high": None,
                    "p_value": None,
                    "text": c.nnt.text,
                }
            )
        return pd.DataFrame(rows)


def compare_binary(
    frame: pd.DataFrame,
    *,
    outcome: str,
    arm: str,
    reference: str,
    outcome_is_favourable: bool,
    covariates: Sequence[str] = (),
    alpha: float = 0.05,
) -> BinaryAnalysis:
    r"""Compare a binary outcome between each arm and the reference.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant.
    outcome : str
        Column of the 0/1 (or boolean) outcome, e.g. response or remission at the primary
        visit; rows where it is missing are excluded (and counted in ``notes``).
    arm : str
        Column of the arm (two or more arms).
    reference : str
        The reference (control) arm.
    outcome_is_favourable : bool
        True for response or remission, False for outcomes to avoid; sets the NNT wording.
    covariates : sequence of str
        Adjustment covariates of the odds ratio (the analysis plan's baseline score and
        strata). Risk difference and risk ratio are unadjusted.
    alpha : float
        Intervals at ``1 - alpha``.

    Returns
    -------
    BinaryAnalysis
        ``outcome``, ``proportions`` (per arm, Wilson limits), ``comparisons`` (per arm:
        ``arm``, ``reference``, ``events``, ``n``, ``events_reference``, ``n_reference``,
        ``risk_difference``, ``risk_ratio``, ``odds_ratio``, ``nnt``) and ``notes``.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If the outcome is not 0/1, or the reference arm is absent.

    Notes
    -----
    Risk difference :math:`p_a - p_r` with Newcombe's hybrid score interval (see
    :func:`newcombe_difference`); risk ratio :math:`p_a / p_r` with
    :math:`SE(\log RR) = \sqrt{1/x_a - 1/n_a + 1/x_r - 1/n_r}`; odds ratio from the logistic
    regression of :func:`odds_ratios` on all arms together; NNT from the risk difference
    (:func:`number_needed_to_treat`).

    References
    ----------
    .. [1] Newcombe RG. Stat Med. 1998;17(8):873-890.
    .. [2] Altman DG. BMJ. 1998;317(7168):1309-1312.
    """
    data, others, notes = _binary_data(frame, outcome, arm, reference, covariates)
    ors = _fit_odds_ratios(data, outcome, arm, reference, others, covariates, alpha, list(notes))
    grouped = data.groupby(arm)[outcome]
    events_by_arm = {str(k): int(v) for k, v in grouped.sum().items()}
    n_by_arm = {str(k): int(v) for k, v in grouped.count().items()}
    proportions = []
    for a in [reference, *others]:
        x, n = events_by_arm[a], n_by_arm[a]
        lo, hi = wilson_interval(x, n, alpha=alpha)
        proportions.append(
            Result(
                estimate=x / n,
                ci_low=lo,
                ci_high=hi,
                n=n,
                method="proportion; Wilson score interval",
                parameters=as_parameters(arm=a, events=x, alpha=alpha),
            )
        )
    xr, nr = events_by_arm[reference], n_by_arm[reference]
    comparisons = []
    for a, odds in zip(others, ors, strict=True):
        x, n = events_by_arm[a], n_by_arm[a]
        rd = newcombe_difference(x, n, xr, nr, alpha=alpha)
        comparisons.append(
            BinaryComparison(
                arm=a,
                reference=reference,
                events=x,
                n=n,
                events_reference=xr,
                n_reference=nr,
                risk_difference=rd,
                risk_ratio=risk_ratio(x, n, xr, nr, alpha=alpha),
                odds_ratio=odds,
                nnt=number_needed_to_treat(rd, outcome_is_favourable=outcome_is_favourable, alpha=alpha),
            )
        )
    return BinaryAnalysis(
        outcome=outcome, proportions=tuple(proportions), comparisons=tuple(comparisons), notes=tuple(notes)
    )
