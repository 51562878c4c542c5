"""Time-to-event analyses: Kaplan-Meier, log-rank, Cox regression and its proportional-hazards test.

Endpoints such as time to first response, to remission, to stopping app use or to dropout.
Every function takes a DataFrame with one row per participant, a time column and an event
column (``True``/1 = the event happened, ``False``/0 = censored). CDISC ADaM time-to-event data
carry the opposite flag, ``CNSR`` (0 = event, >= 1 = censored): convert it with
:func:`event_from_cnsr` first.

The computations reproduce R's survival package (``survfit`` with ``conf.type = "log-log"``,
``quantile.survfit``, ``survdiff``, ``coxph(ties = "efron")`` and ``cox.zph`` as of survival
3.0 and later); the tests compare them with values from survival 3.5-3.

References
----------
.. [1] Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat
   Assoc. 1958;53(282):457-481.
.. [2] Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data. 2nd ed.
   Wiley; 2002 (Greenwood variance; log-log confidence interval).
.. [3] Brookmeyer R, Crowley J. A confidence interval for the median survival time.
   Biometrics. 1982;38(1):29-41.
.. [4] Cox DR. Regression models and life-tables. J R Stat Soc B. 1972;34(2):187-220.
.. [5] Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat
   Assoc. 1977;72(359):557-565.
.. [6] Grambsch PM, Therneau TM. Proportional hazards tests and diagnostics based on weighted
   residuals. Biometrika. 1994;81(3):515-526.
.. [7] Therneau TM. survival: A Package for Survival Analysis in R, version 3.5-3 (functions
   survfit, quantile.survfit, survdiff, coxph, cox.zph).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from analysis._frames import arm_levels, as_tuple, require_columns, z_value
from analysis.results import Result, as_parameters, captured_warnings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]

__all__ = [
    "CoxModel",
    "HazardRatio",
    "KaplanMeier",
    "LogRankTest",
    "MedianSurvival",
    "ProportionalHazardsTest",
    "SurvivalCurve",
    "cox_regression",
    "event_from_cnsr",
    "hazard_ratio_direction",
    "kaplan_meier",
    "logrank_test",
]

#: Tolerance used by R's quantile.survfit to decide that a curve equals a probability.
_QUANTILE_TOL = math.sqrt(2.220446049250313e-16)

PHTransform = Literal["km", "identity", "rank", "log"]


# --- CDISC censoring flag ------------------------------------------------------------------


def event_from_cnsr(cnsr: pd.Series[Any]) -> pd.Series[bool]:
    """Convert a CDISC ADaM censoring flag to an event indicator.

    Parameters
    ----------
    cnsr : pandas.Series
        ``CNSR`` values: 0 means the event happened; 1 (or any positive integer code) means the
        time is censored.

    Returns
    -------
    pandas.Series of bool
        ``True`` where ``CNSR == 0`` (an event), same index and name ``"event"``.

    Raises
    ------
    ValueError
        If a value is missing, negative or not an integer.

    Notes
    -----
    ``event = (CNSR == 0)``. CDISC's flag is the inverse of the event flag used by
    lifelines, statsmodels and R's ``Surv()``: passing ``CNSR`` where an event flag is expected
    would swap events and censorings silently.

    References
    ----------
    .. [1] CDISC. ADaM Basic Data Structure for Time-to-Event Analyses, version 1.0; 2012.
    """
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(cnsr, errors="coerce")
    bad = values.isna() | (values < 0) | (values != np.floor(values))
    if bad.any():
        raise ValueError(
            f"CNSR must be a non-negative integer on every row; bad values: "
            f"{sorted(map(str, cnsr[bad].unique()))[:5]}"
        )
    return (values == 0).rename("event")


# --- result types --------------------------------------------------------------------------


@dataclass(frozen=True)
class MedianSurvival(Result):
    """Median survival time with its Brookmeyer-Crowley confidence interval.

    ``estimate`` is NaN when the curve never falls to 0.5 (median not reached); a limit is
    NaN when the corresponding confidence band never falls to 0.5. Both print as
    "not estimable" in :meth:`text`.
    """

    def text(self, digits: int = 0) -> str:
        """Format the median and its limits as printed in a report.

        Parameters
        ----------
        digits : int
            Decimal places.

        Returns
        -------
        str
            For example ``"56 (42 to 63)"`` or ``"not estimable (63 to not estimable)"``.
        """

        def fmt(value: float | None) -> str:
            if value is None or not math.isfinite(value):
                return "not estimable"
            return f"{value:.{digits}f}"

        return f"{fmt(self.estimate)} ({fmt(self.ci_low)} to {fmt(self.ci_high)})"


@dataclass(frozen=True)
class SurvivalCurve:
    """Kaplan-Meier estimate of one arm, one row per distinct observed time.

    Attributes
    ----------
    arm : str
        Arm label (``"all"`` when no arm column was given).
    n, n_events : int
        Participants and events in the arm.
    time : tuple of float
        Distinct observed times (events or censorings), ascending.
    n_risk, n_event, n_censor : tuple of int
        At risk just before each time, events and censorings at it.
    survival : tuple of float
        Kaplan-Meier survival just after each time.
    std_err : tuple of float
        Greenwood standard error of ``-log(survival)`` (NaN where survival is 0).
    ci_low, ci_high : tuple of float
        Log-log confidence limits (NaN where survival is 0 or 1, as in R).
    median : MedianSurvival
        Median with its Brookmeyer-Crowley interval.
    at_risk : tuple of (float, int)
        Number at risk at the requested times (for the figure's table).
    """

    arm: str
    n: int
    n_events: int
    time: tuple[float, ...]
    n_risk: tuple[int, ...]
    n_event: tuple[int, ...]
    n_censor: tuple[int, ...]
    survival: tuple[float, ...]
    std_err: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    median: MedianSurvival
    at_risk: tuple[tuple[float, int], ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """Return the curve as a table.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm, time, n_risk, n_event, n_censor, survival, std_err, ci_low,
            ci_high``.
        """
        import pandas as pd

        return pd.DataFrame(
            {
                "arm": self.arm,
                "time": self.time,
                "n_risk": self.n_risk,
                "n_event": self.n_event,
                "n_censor": self.n_censor,
                "survival": self.survival,
                "std_err": self.std_err,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
            }
        )


@dataclass(frozen=True)
class KaplanMeier:
    """Kaplan-Meier curves by arm.

    Attributes
    ----------
    curves : tuple of SurvivalCurve
        One per arm, in order of first appearance in the data.
    alpha : float
        One minus the confidence level of the bands and of the median intervals.
    method : str
        Description of the estimator and of the intervals.
    notes : tuple of str
        Rows dropped, warnings.
    """

    curves: tuple[SurvivalCurve, ...]
    alpha: float
    method: str
    notes: tuple[str, ...] = ()

    def curve(self, arm: str) -> SurvivalCurve:
        """Return the curve of one arm.

        Parameters
        ----------
        arm : str
            Arm label.

        Returns
        -------
        SurvivalCurve
            That arm's curve.

        Raises
        ------
        KeyError
            If there is no such arm.
        """
        for c in self.curves:
            if c.arm == arm:
                return c
        raise KeyError(arm)

    def to_frame(self) -> pd.DataFrame:
        """Return all curves stacked.

        Returns
        -------
        pandas.DataFrame
            :meth:`SurvivalCurve.to_frame` of each arm, concatenated.
        """
        import pandas as pd

        return pd.concat([c.to_frame() for c in self.curves], ignore_index=True)

    def medians_frame(self) -> pd.DataFrame:
        """Return the medians by arm.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm, n, n_events, median, ci_low, ci_high, text``.
        """
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "arm": c.arm,
                    "n": c.n,
                    "n_events": c.n_events,
                    "median": c.median.estimate,
                    "ci_low": c.median.ci_low,
                    "ci_high": c.median.ci_high,
                    "text": c.median.text(),
                }
                for c in self.curves
            ]
        )

    def at_risk_frame(self) -> pd.DataFrame:
        """Return the numbers at risk, one row per arm and one column per requested time.

        Returns
        -------
        pandas.DataFrame
            Indexed by arm; columns are the times.
        """
        import pandas as pd

        return pd.DataFrame({c.arm: dict(c.at_risk) for c in self.curves}).T


@dataclass(frozen=True)
class LogRankTest(Result):
    """Log-rank test; ``estimate`` is the chi-square statistic, ``df`` its degrees of freedom.

    Attributes
    ----------
    groups : tuple of str
        Arms, in the order of ``observed`` and ``expected``.
    observed, expected : tuple of float
        Observed and expected events per arm, summed over strata.
    strata : tuple of str
        Stratification columns (empty for the unstratified test).
    """

    groups: tuple[str, ...] = ()
    observed: tuple[float, ...] = ()
    expected: tuple[float, ...] = ()
    strata: tuple[str, ...] = ()


@dataclass(frozen=True)
class HazardRatio(Result):
    """Hazard ratio of one arm against the reference (or per unit of a covariate).

    ``estimate`` is the hazard ratio, ``se`` the standard error of its logarithm, the limits
    are ``exp(log HR -/+ z se)`` and ``p_value`` is the Wald test of log HR = 0.

    Attributes
    ----------
    term : str
        Arm label or covariate name.
    favours : str
        Which arm the estimate favours (see :func:`hazard_ratio_direction`), empty for a
        covariate.
    """

    term: str = ""
    favours: str = ""


@dataclass(frozen=True)
class ProportionalHazardsTest:
    """Score test of proportional hazards for one term (or ``"GLOBAL"``), as R's ``cox.zph``.

    Attributes
    ----------
    term : str
        ``"arm"``, a covariate name, or ``"GLOBAL"``.
    chisq : float
        Chi-square statistic.
    df : int
        Degrees of freedom (columns of the term).
    p_value : float
        Upper tail probability.
    """

    term: str
    chisq: float
    df: int
    p_value: float


@dataclass(frozen=True)
class CoxModel:
    """Cox proportional hazards model of the arms (and covariates), with its PH test.

    Attributes
    ----------
    hazard_ratios : tuple of HazardRatio
        Each arm against the reference.
    covariates : tuple of HazardRatio
        Per-unit hazard ratio of each covariate.
    ph_tests : tuple of ProportionalHazardsTest
        Per term and ``"GLOBAL"``.
    n, n_events : int
        Participants and events used.
    log_likelihood : float
        Log partial likelihood at the estimate.
    direction : str
        How to read a hazard ratio for this endpoint.
    method : str
        Description of the model.
    parameters : Mapping[str, Any]
        Arm column, reference, covariates, strata, ties, transform, alpha.
    notes : tuple of str
        Rows dropped, warnings, PH violations flagged at ``alpha``.
    """

    hazard_ratios: tuple[HazardRatio, ...]
    covariates: tuple[HazardRatio, ...]
    ph_tests: tuple[ProportionalHazardsTest, ...]
    n: int
    n_events: int
    log_likelihood: float
    direction: str
    method: str
    parameters: Mapping[str, Any]
    notes: tuple[str, ...] = ()

    def hazard_ratio(self, arm: str) -> HazardRatio:
        """Return the hazard ratio of one arm against the reference.

        Parameters
        ----------
        arm : str
            Arm label.

        Returns
        -------
        HazardRatio
            That comparison.

        Raises
        ------
        KeyError
            If there is no such arm.
        """
        for hr in self.hazard_ratios:
            if hr.term == arm:
                return hr
        raise KeyError(arm)

    def to_frame(self) -> pd.DataFrame:
        """Return the hazard ratios (arms then covariates) as a table.

        Returns
        -------
        pandas.DataFrame
            Columns ``term, estimate, se, ci_low, ci_high, p_value, favours``.
        """
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "term": r.term,
                    "estimate": r.estimate,
                    "se": r.se,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "p_value": r.p_value,
                    "favours": r.favours,
                }
                for r in (*self.hazard_ratios, *self.covariates)
            ]
        )


# --- input preparation ---------------------------------------------------------------------


def _prepare(
    frame: pd.DataFrame, time: str, event: str, columns: Sequence[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Rows complete in `time`, `event` and `columns`, with checked types."""
    import numpy as np
    import pandas as pd

    require_columns(frame, [time, event, *columns])
    if event.strip().upper() == "CNSR":
        raise ValueError(
            f"column {event!r} looks like the CDISC censoring flag (0 = event), not an event flag; "
            "convert it with event_from_cnsr()"
        )
    data = frame[[time, event, *dict.fromkeys(c for c in columns if c not in (time, event))]]
    complete = data.dropna()
    notes = []
    if len(complete) < len(data):
        notes.append(f"{len(data) - len(complete)} row(s) with a missing value were excluded")
    times = pd.to_numeric(complete[time], errors="coerce")
    if times.isna().any() or (times < 0).any() or not np.isfinite(times).all():
        raise ValueError(f"column {time!r} must hold non-negative finite times")
    ev = complete[event]
    if ev.dtype != bool:
        ev_num = pd.to_numeric(ev, errors="coerce")
        if not ev_num.isin([0, 1]).all():
            raise ValueError(
                f"column {event!r} must be an event flag (True/1 = event, False/0 = censored); "
                "convert CDISC CNSR with event_from_cnsr()"
            )
        ev = ev_num == 1
    out = complete.copy()
    out[time] = times.astype(float)
    out[event] = ev.astype(bool)
    if out.empty:
        raise ValueError("no complete rows to analyse")
    return out, notes


def _strata_codes(data: pd.DataFrame, strata: tuple[str, ...]) -> IntArray | None:
    import numpy as np
    import pandas as pd

    if not strata:
        return None
    labels = data[list(strata)].astype(str).agg("\x1f".join, axis=1)
    codes, _ = pd.factorize(labels, sort=True)
    return np.asarray(codes, dtype=np.int64)


# --- Kaplan-Meier --------------------------------------------------------------------------


def _km_table(
    t: FloatArray, e: npt.NDArray[np.bool_]
) -> tuple[FloatArray, IntArray, IntArray, IntArray, FloatArray, FloatArray]:
    """Distinct times, at risk, events, censored, survival and Greenwood SE of -log S."""
    import numpy as np

    order = np.argsort(t, kind="stable")
    ts, es = t[order], e[order].astype(np.int64)
    times, first_idx, count_idx = np.unique(ts, return_index=True, return_counts=True)
    first = first_idx.astype(np.int64)
    n_event = np.add.reduceat(es, first).astype(np.int64)
    n_censor = count_idx.astype(np.int64) - n_event
    n_risk = (len(ts) - first).astype(np.int64)
    surv = np.cumprod(1.0 - n_event / n_risk).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        increments = np.where(n_event > 0, n_event / (n_risk * (n_risk - n_event)), 0.0)
    std_err = np.sqrt(np.cumsum(increments)).astype(np.float64)
    std_err[surv == 0] = np.nan
    return times.astype(np.float64), n_risk, n_event, n_censor, surv, std_err


def _loglog_limits(surv: FloatArray, std_err: FloatArray, z: float) -> tuple[FloatArray, FloatArray]:
    """R's survfit log-log limits; NaN where survival is 0 or 1."""
    import numpy as np

    xx = np.where((surv == 0) | (surv == 1), np.nan, surv)
    with np.errstate(divide="ignore", invalid="ignore"):
        se2 = z * std_err / np.log(xx)
        base = np.log(-np.log(xx))
        lower = np.exp(-np.exp(base - se2))
        upper = np.exp(-np.exp(base + se2))
    return lower, upper


def _approx_constant_index(knots: FloatArray, p: float) -> float:
    """Index of the first knot >= p, as R's ``approx(method = "constant", f = 1)``."""
    import numpy as np

    idx = np.arange(len(knots), dtype=float)
    valid = ~np.isnan(knots)
    xs, vs = knots[valid], idx[valid]
    if xs.size == 0:
        return math.nan
    order = np.argsort(xs, kind="stable")
    xs, vs = xs[order], vs[order]
    if p < xs[0] or p > xs[-1]:
        return math.nan
    return float(vs[int(np.searchsorted(xs, p, side="left"))])


def _findq(x: FloatArray, y: FloatArray, p: float, tol: float = _QUANTILE_TOL) -> float:
    """Time at which the non-decreasing ``y = 1 - S`` reaches `p`, as R's survival:::findq."""
    import numpy as np
    import pandas as pd

    if np.all(np.isnan(y)) or np.nanmax(y) < p:
        return math.nan
    xmax = float(x[-1])
    keep = ~pd.Series(y).duplicated().to_numpy()
    x, y = x[keep], y[keep]
    i1 = _approx_constant_index(y + tol, p)
    i2 = _approx_constant_index(y - tol, p)
    quant = math.nan if math.isnan(i1) or math.isnan(i2) else (x[int(i1)] + x[int(i2)]) / 2
    if p == 0:
        quant = float(x[0])
    if not math.isnan(y[-1]) and abs(p - y[-1]) < tol and not math.isnan(i1):
        quant = (x[int(i1)] + xmax) / 2
    return float(quant)


def _median(
    times: FloatArray, surv: FloatArray, lower: FloatArray, upper: FloatArray
) -> tuple[float, float, float]:
    import numpy as np

    x = np.concatenate([[0.0], times])
    return (
        _findq(x, np.concatenate([[0.0], 1 - surv]), 0.5),
        _findq(x, np.concatenate([[0.0], 1 - lower]), 0.5),
        _findq(x, np.concatenate([[0.0], 1 - upper]), 0.5),
    )


def kaplan_meier(
    frame: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str | None = None,
    at_risk_times: Sequence[float] = (),
    alpha: float = 0.05,
) -> KaplanMeier:
    r"""Kaplan-Meier survival by arm with log-log confidence bands and median survival.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant.
    time : str
        Column of observed times (event or censoring), non-negative.
    event : str
        Column of the event flag: True/1 = event, False/0 = censored (not CDISC ``CNSR``; see
        :func:`event_from_cnsr`).
    arm : str, optional
        Column of the arm; one curve per arm. Without it, one curve labelled ``"all"``.
    at_risk_times : sequence of float
        Times at which to count the participants at risk (for the figure's table).
    alpha : float
        Confidence bands and median intervals at ``1 - alpha``.

    Returns
    -------
    KaplanMeier
        ``curves`` (one :class:`SurvivalCurve` per arm with ``arm, n, n_events, time, n_risk,
        n_event, n_censor, survival, std_err, ci_low, ci_high, median, at_risk``), ``alpha``,
        ``method`` and ``notes``.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If times are negative or not numeric, or the event flag is not 0/1.

    Notes
    -----
    At each distinct time :math:`t_j` with :math:`n_j` at risk and :math:`d_j` events,
    :math:`\hat S(t) = \prod_{t_j \le t} (1 - d_j / n_j)`. Greenwood:
    :math:`\sigma^2(t) = \sum_{t_j \le t} d_j / (n_j (n_j - d_j))` is the variance of
    :math:`-\log \hat S`. Log-log limits:
    :math:`\exp(-\exp(\log(-\log \hat S) \pm z \sigma / \log \hat S))` (undefined where
    :math:`\hat S` is 0 or 1, as in R's ``survfit(conf.type = "log-log")``).

    The median is the smallest time at which :math:`\hat S \le 0.5` (the midpoint of the
    flat stretch when :math:`\hat S` equals 0.5 exactly). Its Brookmeyer-Crowley interval is
    read off the confidence bands: the lower limit is the time at which the lower band reaches
    0.5, the upper limit the time at which the upper band does. Either is "not estimable"
    when the band never reaches 0.5. This is R's ``quantile.survfit``.

    The number at risk at time :math:`t` counts participants with an observed time
    :math:`\ge t`.

    References
    ----------
    .. [1] Kaplan EL, Meier P. J Am Stat Assoc. 1958;53(282):457-481.
    .. [2] Brookmeyer R, Crowley J. Biometrics. 1982;38(1):29-41.
    .. [3] Therneau TM. survival 3.5-3: survfit, quantile.survfit.
    """
    import numpy as np

    z = z_value(alpha)
    data, notes = _prepare(frame, time, event, [arm] if arm else [])
    groups = [str(a) for a in data[arm].unique()] if arm else ["all"]
    curves = []
    for g in groups:
        sub = data[data[arm].astype(str) == g] if arm else data
        t = sub[time].to_numpy(dtype=float)
        e = sub[event].to_numpy(dtype=bool)
        times, n_risk, n_event, n_censor, surv, std_err = _km_table(t, e)
        lower, upper = _loglog_limits(surv, std_err, z)
        med, med_low, med_high = _median(times, surv, lower, upper)
        median_notes = () if math.isfinite(med) else ("median not reached: not estimable",)
        median = MedianSurvival(
            estimate=med,
            ci_low=med_low,
            ci_high=med_high,
            n=len(sub),
            method="Kaplan-Meier median; Brookmeyer-Crowley interval from log-log bands",
            parameters=as_parameters(arm=g, alpha=alpha),
            notes=median_notes,
        )
        at_risk = tuple((float(s), int(np.sum(t >= s))) for s in at_risk_times)
        curves.append(
            SurvivalCurve(
                arm=g,
                n=len(sub),
                n_events=int(e.sum()),
                time=tuple(float(v) for v in times),
                n_risk=tuple(int(v) for v in n_risk),
                n_event=tuple(int(v) for v in n_event),
                n_censor=tuple(int(v) for v in n_censor),
                survival=tuple(float(v) for v in surv),
                std_err=tuple(float(v) for v in std_err),
                ci_low=tuple(float(v) for v in lower),
                ci_high=tuple(float(v) for v in upper),
                median=median,
                at_risk=at_risk,
            )
        )
    return KaplanMeier(
        curves=tuple(curves),
        alpha=alpha,
        method="Kaplan-Meier; Greenwood variance; log-log confidence bands",
        notes=tuple(notes),
    )


# --- log-rank ------------------------------------------------------------------------------


def _logrank_parts(
    t: FloatArray, e: npt.NDArray[np.bool_], g: IntArray, k: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Observed, expected and variance matrix of one stratum (hypergeometric variance)."""
    import numpy as np

    times, inverse = np.unique(t, return_inverse=True)
    m = len(times)
    at_time = np.zeros((m, k))
    deaths = np.zeros((m, k))
    np.add.at(at_time, (inverse, g), 1.0)
    np.add.at(deaths, (inverse, g), e.astype(float))
    n_g = np.cumsum(at_time[::-1], axis=0)[::-1]  # at risk: time >= t
    n = n_g.sum(axis=1)
    d = deaths.sum(axis=1)
    rows = d > 0
    n_g, n, d = n_g[rows], n[rows], d[rows]
    observed = deaths.sum(axis=0)
    share = n_g / n[:, None]
    expected = (d[:, None] * share).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
    variance = np.einsum("t,ti,ij->ij", factor, share, np.eye(k)) - np.einsum(
        "t,ti,tj->ij", factor, share, share
    )
    return observed, expected, variance


def logrank_test(
    frame: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str,
    strata: Sequence[str] | str | None = None,
) -> LogRankTest:
    r"""Log-rank test of equal survival across arms, stratified when `strata` is given.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant.
    time : str
        Column of observed times.
    event : str
        Column of the event flag (True/1 = event).
    arm : str
        Column of the arm (two or more arms).
    strata : str or sequence of str, optional
        Stratification columns (the randomization strata); their combinations are the strata.

    Returns
    -------
    LogRankTest
        ``estimate`` (the chi-square statistic), ``df``, ``p_value``, ``n``, ``method``,
        ``parameters``, ``notes``, and ``groups``, ``observed``, ``expected`` (per arm, summed
        over strata) and ``strata``; ``se``, ``ci_low`` and ``ci_high`` are None.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If there are fewer than two arms.

    Notes
    -----
    In each stratum and at each distinct event time with :math:`n` at risk (:math:`n_g` in arm
    :math:`g`) and :math:`d` events: :math:`E_g = d n_g / n` and
    :math:`V_{gh} = d (n - d) / (n - 1) \cdot (n_g / n) (\delta_{gh} - n_h / n)`. Observed
    minus expected and :math:`V` are summed over times and strata;
    :math:`\chi^2 = (O - E)^T V^{-} (O - E)` dropping the first arm, with (number of arms
    with expected events > 0) - 1 degrees of freedom. This is R's
    ``survdiff(Surv(time, event) ~ arm + strata(...))`` (rho = 0).

    References
    ----------
    .. [1] Peto R, Peto J. Asymptotically efficient rank invariant test procedures. J R Stat
       Soc A. 1972;135(2):185-207.
    .. [2] Therneau TM. survival 3.5-3: survdiff.
    """
    import numpy as np
    import pandas as pd
    from scipy.stats import chi2

    strata_cols = as_tuple(strata)
    data, notes = _prepare(frame, time, event, [arm, *strata_cols])
    codes, labels = pd.factorize(data[arm].astype(str))
    k = len(labels)
    if k < 2:
        raise ValueError(f"column {arm!r} must hold at least two arms")
    scodes = _strata_codes(data, strata_cols)
    if scodes is None:
        scodes = np.zeros(len(data), dtype=np.int64)
    t = data[time].to_numpy(dtype=float)
    e = data[event].to_numpy(dtype=bool)
    observed, expected, variance = np.zeros(k), np.zeros(k), np.zeros((k, k))
    for s in np.unique(scodes):
        rows = scodes == s
        o, ex, v = _logrank_parts(t[rows], e[rows], codes[rows].astype(np.int64), k)
        observed += o
        expected += ex
        variance += v
    diff = (observed - expected)[1:]
    stat = float(diff @ np.linalg.lstsq(variance[1:, 1:], diff, rcond=None)[0])
    df = int(np.sum(expected > 0)) - 1
    label = "stratified log-rank" if strata_cols else "log-rank"
    return LogRankTest(
        estimate=stat,
        df=float(df),
        p_value=float(chi2.sf(stat, df)),
        n=len(data),
        method=f"{label} chi-square test (hypergeometric variance)",
        parameters=as_parameters(arm=arm, strata=strata_cols),
        notes=tuple(notes),
        groups=tuple(str(x) for x in labels),
        observed=tuple(float(x) for x in observed),
        expected=tuple(float(x) for x in expected),
        strata=strata_cols,
    )


# --- Cox regression and the PH test ------------------------------------------------------


def hazard_ratio_direction(
    hazard_ratio: float, *, arm: str, reference: str, event_is_favourable: bool
) -> str:
    """Which arm a hazard ratio favours.

    Parameters
    ----------
    hazard_ratio : float
        Hazard of `arm` over the hazard of `reference`.
    arm, reference : str
        Arm labels.
    event_is_favourable : bool
        True for events a participant wants sooner (response, remission): a higher hazard is
        better. False for events to avoid or delay (dropout, stopping app use, relapse).

    Returns
    -------
    str
        The label of the favoured arm, or ``""`` when the ratio is exactly 1 or not finite.

    Notes
    -----
    For a favourable event, HR > 1 favours `arm`; for an unfavourable one, HR < 1 does.

    References
    ----------
    .. [1] ICH E9(R1) addendum on estimands, 2019 (population-level summary and its
       interpretation).
    """
    if not math.isfinite(hazard_ratio) or hazard_ratio == 1:
        return ""
    higher_is_better = hazard_ratio > 1
    return arm if higher_is_better == event_is_favourable else reference


def _zph(
    t: FloatArray,
    e: npt.NDArray[np.bool_],
    x: FloatArray,
    eta: FloatArray,
    scodes: IntArray,
    transform: PHTransform,
) -> tuple[FloatArray, FloatArray]:
    """Score vector (for the time interaction) and full 2p x 2p information of cox.zph."""
    import numpy as np
    from scipy.stats import rankdata

    if transform == "km":
        times, _, _, _, surv, _ = _km_table(t, e)
        before = np.searchsorted(times, t, side="left")  # distinct times strictly below t
        ttimes = 1 - np.concatenate([[1.0], surv])[before]
    elif transform == "identity":
        ttimes = t.copy()
    elif transform == "rank":
        ttimes = rankdata(t, method="average")
    elif transform == "log":
        ttimes = np.log(t)
    else:
        raise ValueError(f"unknown transform {transform!r}")
    g = ttimes - ttimes[e].mean()

    p = x.shape[1]
    xc = x - x.mean(axis=0)
    risk = np.exp(eta - eta.max())
    u = np.zeros(2 * p)
    imat = np.zeros((2 * p, 2 * p))
    for s in np.unique(scodes):
        rows = scodes == s
        ts, es, xs, rs, gs = t[rows], e[rows], xc[rows], risk[rows], g[rows]
        order = np.argsort(-ts, kind="stable")  # backwards in time
        ts, es, xs, rs, gs = ts[order], es[order], xs[order], rs[order], gs[order]
        denom = 0.0
        a = np.zeros(p)
        cmat = np.zeros((p, p))
        i = 0
        n = len(ts)
        while i < n:
            j = i
            while j < n and ts[j] == ts[i]:
                j += 1
            block = slice(i, j)
            alive = ~es[block]
            dead = es[block]
            xb, rb = xs[block], rs[block]
            denom += rb[alive].sum()
            a += rb[alive] @ xb[alive]
            cmat += (xb[alive] * rb[alive][:, None]).T @ xb[alive]
            ndead = int(dead.sum())
            if ndead:
                timewt = gs[i]
                denom2 = rb[dead].sum()
                a2 = rb[dead] @ xb[dead]
                cmat2 = (xb[dead] * rb[dead][:, None]).T @ xb[dead]
                u[p:] += timewt * xb[dead].sum(axis=0)
                for _ in range(ndead):  # Efron: the deaths enter 1/ndead at a time
                    denom += denom2 / ndead
                    a += a2 / ndead
                    cmat += cmat2 / ndead
                    mean = a / denom
                    u[p:] -= timewt * mean
                    v = (cmat - np.outer(mean, a)) / denom
                    imat[:p, :p] += v
                    imat[:p, p:] += timewt * v
                    imat[p:, p:] += timewt * timewt * v
            i = j
    imat[p:, :p] = imat[:p, p:].T
    return u[p:], imat


def _ph_tests(
    score: FloatArray, imat: FloatArray, terms: Sequence[tuple[str, list[int]]]
) -> tuple[ProportionalHazardsTest, ...]:
    import numpy as np
    from scipy.stats import chi2

    p = len(score)
    out = []
    for name, cols in [*terms, ("GLOBAL", list(range(p)))]:
        kk = list(range(p)) + [p + c for c in cols]
        uu = np.concatenate([np.zeros(p), score[cols]])
        stat = float(uu @ np.linalg.solve(imat[np.ix_(kk, kk)], uu))
        out.append(ProportionalHazardsTest(name, stat, len(cols), float(chi2.sf(stat, len(cols)))))
    return tuple(out)


def cox_regression(
    frame: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str,
    reference: str,
    covariates: Sequence[str] = (),
    strata: Sequence[str] | str | None = None,
    event_is_favourable: bool,
    ph_transform: PHTransform = "km",
    alpha: float = 0.05,
) -> CoxModel:
    r"""Cox proportional hazards regression (Efron ties) with the proportional-hazards test.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per participant.
    time : str
        Column of observed times.
    event : str
        Column of the event flag (True/1 = event).
    arm : str
        Column of the arm; each other arm gets a hazard ratio against `reference`.
    reference : str
        The control arm.
    covariates : sequence of str
        Numeric covariates (e.g. baseline score), entered linearly.
    strata : str or sequence of str, optional
        Stratification columns: a separate baseline hazard for each combination.
    event_is_favourable : bool
        True for time to response or remission (HR > 1 favours the arm), False for time to
        dropout or to stopping app use (HR < 1 favours the arm).
    ph_transform : {"km", "identity", "rank", "log"}
        Time scale of the proportional-hazards test (R's ``cox.zph`` ``transform``).
    alpha : float
        Confidence intervals at ``1 - alpha``; a PH test with p < `alpha` is noted.

    Returns
    -------
    CoxModel
        ``hazard_ratios`` (one :class:`HazardRatio` per arm: ``estimate`` = HR, ``se`` of log
        HR, ``ci_low``, ``ci_high``, ``p_value`` (Wald), ``n``, ``term``, ``favours``,
        ``method``, ``parameters``, ``notes``), ``covariates`` (the same per covariate),
        ``ph_tests`` (``term, chisq, df, p_value`` per term and GLOBAL), ``n``, ``n_events``,
        ``log_likelihood``, ``direction``, ``method``, ``parameters`` and ``notes``.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If the reference arm is absent, a covariate is not numeric, or the data are unusable.

    Notes
    -----
    The partial likelihood with Efron's approximation for tied event times is maximised by
    Newton-Raphson (statsmodels ``PHReg``, ``ties="efron"``). For arm :math:`a`,
    :math:`HR_a = \exp(\hat\beta_a)` with limits :math:`\exp(\hat\beta_a \pm z\,SE)` and
    the Wald p-value of :math:`\beta_a = 0`, as R's ``coxph(ties = "efron")``.

    Proportional hazards are tested as R's ``cox.zph`` (survival >= 3.0): the score test, at
    :math:`(\hat\beta, 0)`, of adding :math:`x \cdot g(t)` for each term, where
    :math:`g` is the chosen transform of time (``"km"``: one minus the left-continuous pooled
    Kaplan-Meier estimate) centred on its mean over events. The test uses the full
    :math:`2p \times 2p` information matrix (Efron-weighted); the statistic of a term is
    :math:`U^T I^{-1} U` on that term's columns, chi-square with as many degrees of freedom as
    columns; ``GLOBAL`` uses all. The arm is one term (one column per non-reference arm).

    References
    ----------
    .. [1] Cox DR. J R Stat Soc B. 1972;34(2):187-220.
    .. [2] Efron B. J Am Stat Assoc. 1977;72(359):557-565.
    .. [3] Grambsch PM, Therneau TM. Biometrika. 1994;81(3):515-526.
    .. [4] Therneau TM. survival 3.5-3: coxph, cox.zph.
    """
    import numpy as np
    import pandas as pd
    from scipy.stats import norm
    from statsmodels.duration.hazard_regression import PHReg

    z = z_value(alpha)
    covs = list(covariates)
    strata_cols = as_tuple(strata)
    data, notes = _prepare(frame, time, event, [arm, *covs, *strata_cols])
    data = data.assign(**{arm: data[arm].astype(str)})
    others = arm_levels(data, arm, reference)
    for c in covs:
        if not pd.api.types.is_numeric_dtype(data[c]):
            raise ValueError(f"covariate {c!r} must be numeric")
    x = np.column_stack(
        [(data[arm] == a).to_numpy(dtype=float) for a in others]
        + [data[c].to_numpy(dtype=float) for c in covs]
    )
    t = data[time].to_numpy(dtype=float)
    e = data[event].to_numpy(dtype=bool)
    scodes = _strata_codes(data, strata_cols)
    with captured_warnings() as warned:
        model = PHReg(t, x, status=e.astype(float), strata=scodes, ties="efron")
        fit = model.fit(method="newton", maxiter=100)
        params = np.asarray(fit.params, dtype=float)
        bse = np.asarray(fit.bse, dtype=float)
        gradient = np.asarray(model.score(params), dtype=float)
        p_values = 2 * norm.sf(np.abs(params / bse))
        ph: tuple[ProportionalHazardsTest, ...] = ()
        if np.all(np.isfinite(params)):
            eta = x @ params
            score, imat = _zph(
                t, e, x, eta, scodes if scodes is not None else np.zeros(len(t), np.int64), ph_transform
            )
            terms = [("arm", list(range(len(others))))] + [(c, [len(others) + i]) for i, c in enumerate(covs)]
            try:
                ph = _ph_tests(score, imat, terms)
            except np.linalg.LinAlgError:
                ph = ()
    notes.extend(warned)
    converged = bool(np.all(np.isfinite(params)) and np.max(np.abs(gradient)) <= 1e-4)
    converged = converged and bool(np.all(np.abs(params) < 20))
    if not converged:
        notes.append(
            "the Cox model did not converge (an arm or covariate level may have no events); "
            "estimates are unreliable"
        )
    if not ph:
        notes.append("the proportional-hazards test could not be computed (singular information)")
    for test in ph:
        if test.p_value < alpha:
            notes.append(
                f"proportional hazards questionable for {test.term} "
                f"(cox.zph-type test p = {test.p_value:.3g})"
            )

    method = "Cox proportional hazards, Efron ties" + (
        f", stratified by {', '.join(strata_cols)}" if strata_cols else ""
    )
    if event_is_favourable:
        direction = "the event is favourable: HR > 1 favours the arm over the reference"
    else:
        direction = "the event is unfavourable: HR < 1 favours the arm over the reference"

    def ratio(i: int, term: str, favours: str) -> HazardRatio:
        return HazardRatio(
            estimate=float(np.exp(params[i])),
            se=float(bse[i]),
            ci_low=float(np.exp(params[i] - z * bse[i])),
            ci_high=float(np.exp(params[i] + z * bse[i])),
            p_value=float(p_values[i]),
            n=len(data),
            method=method,
            parameters=as_parameters(
                term=term, reference=reference, covariates=tuple(covs), strata=strata_cols, alpha=alpha
            ),
            term=term,
            favours=favours,
        )

    with np.errstate(over="ignore"):  # a diverged fit gives infinite ratios, noted above
        hrs = tuple(
            ratio(
                i,
                a,
                hazard_ratio_direction(
                    float(np.exp(params[i])),
                    arm=a,
                    reference=reference,
                    event_is_favourable=event_is_favourable,
                ),
            )
            for i, a in enumerate(others)
        )
        cov_hrs = tuple(ratio(len(others) + i, c, "") for i, c in enumerate(covs))
    return CoxModel(
        hazard_ratios=hrs,
        covariates=cov_hrs,
        ph_tests=ph,
        n=len(data),
        n_events=int(e.sum()),
        log_likelihood=float(fit.llf),
        direction=direction,
        method=method,
        parameters=as_parameters(
            arm=arm,
            reference=reference,
            covariates=tuple(covs),
            strata=strata_cols,
            ties="efron",
            ph_transform=ph_transform,
            alpha=alpha,
        ),
        notes=tuple(notes),
    )
