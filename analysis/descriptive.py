"""Descriptive statistics by arm and visit: summaries of scores and counts of categories.

References
----------
.. [1] Hyndman RJ, Fan Y. Sample quantiles in statistical packages. Am Stat.
   1996;50(4):361-365 (quantile definitions; R's default is type 7).
.. [2] ICH E3. Structure and content of clinical study reports, section 11.2 (demographic and
   other baseline characteristics), 1995.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from analysis._frames import require_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CategorySummary",
    "ContinuousSummary",
    "DescriptiveTable",
    "FrequencyTable",
    "describe",
    "frequencies",
]

#: numpy's names of the Hyndman-Fan quantile definitions we allow, with R's type numbers.
QuantileMethod = Literal["linear", "weibull", "hazen", "median_unbiased", "normal_unbiased"]
_R_TYPE = {"linear": 7, "weibull": 6, "hazen": 5, "median_unbiased": 8, "normal_unbiased": 9}


@dataclass(frozen=True)
class ContinuousSummary:
    """Summary of one variable in one arm at one visit.

    Attributes
    ----------
    arm : str
        Arm label, or the pooled label.
    visit : str or None
        Visit label (None when no visit column was given).
    n : int
        Non-missing values.
    n_missing : int
        Missing values among the rows of the cell.
    mean, sd, median, q1, q3, min, max : float
        Of the non-missing values (NaN when there are none; ``sd`` NaN with fewer than two).
    """

    arm: str
    visit: str | None
    n: int
    n_missing: int
    mean: float
    sd: float
    median: float
    q1: float
    q3: float
    min: float
    max: float


@dataclass(frozen=True)
class DescriptiveTable:
    """Summaries of a continuous variable by arm and visit.

    Attributes
    ----------
    variable : str
        The summarised column.
    rows : tuple of ContinuousSummary
        By visit (in order of appearance), then arm (in order of appearance, pooled last).
    method : str
        The SD denominator and quantile definition.
    """

    variable: str
    rows: tuple[ContinuousSummary, ...]
    method: str

    def to_frame(self) -> pd.DataFrame:
        """Return one row per arm and visit.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm, visit, n, n_missing, mean, sd, median, q1, q3, min, max``.
        """
        import pandas as pd

        return pd.DataFrame([r.__dict__ for r in self.rows])

    def cell(self, arm: str, visit: str | None = None) -> ContinuousSummary:
        """Return the summary of one arm at one visit.

        Parameters
        ----------
        arm : str
            Arm label (or the pooled label).
        visit : str, optional
            Visit label.

        Returns
        -------
        ContinuousSummary
            That cell.

        Raises
        ------
        KeyError
            If there is no such cell.
        """
        for r in self.rows:
            if r.arm == arm and r.visit == visit:
                return r
        raise KeyError((arm, visit))


@dataclass(frozen=True)
class CategorySummary:
    """Counts of one categorical variable in one arm at one visit.

    Attributes
    ----------
    arm : str
        Arm label, or the pooled label.
    visit : str or None
        Visit label.
    n : int
        Non-missing values (the denominator of the percentages).
    n_missing : int
        Missing values.
    counts : tuple of (str, int, float)
        ``(level, count, percent)`` for every level, including levels with no count.
    """

    arm: str
    visit: str | None
    n: int
    n_missing: int
    counts: tuple[tuple[str, int, float], ...]


@dataclass(frozen=True)
class FrequencyTable:
    """Counts and percentages of a categorical variable by arm and visit.

    Attributes
    ----------
    variable : str
        The counted column.
    levels : tuple of str
        The categories, in the order given or sorted.
    rows : tuple of CategorySummary
        By visit, then arm (pooled last).
    """

    variable: str
    levels: tuple[str, ...]
    rows: tuple[CategorySummary, ...]

    def to_frame(self) -> pd.DataFrame:
        """Return one row per arm, visit and level.

        Returns
        -------
        pandas.DataFrame
            Columns ``arm, visit, level, count, percent, n, n_missing``.
        """
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "arm": r.arm,
                    "visit": r.visit,
                    "level": level,
                    "count": count,
                    "percent": pct,
                    "n": r.n,
                    "n_missing": r.n_missing,
                }
                for r in self.rows
                for level, count, pct in r.counts
            ]
        )


def _cells(
    frame: pd.DataFrame, arm: str, visit: str | None, pooled: str | None
) -> list[tuple[str, str | None, pd.DataFrame]]:
    visits: list[str | None] = list(dict.fromkeys(frame[visit].astype(str))) if visit else [None]
    arms = list(dict.fromkeys(frame[arm].dropna().astype(str)))
    if pooled is not None and pooled in arms:
        raise ValueError(f"the pooled label {pooled!r} is also an arm")
    out = []
    for v in visits:
        at_visit = frame if v is None or visit is None else frame[frame[visit].astype(str) == v]
        for a in arms:
            out.append((a, v, at_visit[at_visit[arm].astype(str) == a]))
        if pooled is not None:
            out.append((pooled, v, at_visit[at_visit[arm].notna()]))
    return out


def describe(
    frame: pd.DataFrame,
    *,
    value: str,
    arm: str,
    visit: str | None = None,
    pooled: str | None = "Total",
    quantile_method: QuantileMethod = "linear",
) -> DescriptiveTable:
    r"""Summarise a continuous variable (n, mean, SD, median, quartiles, range) by arm and visit.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data: one row per participant and visit.
    value : str
        Column to summarise (e.g. PHQ-9 total or change from baseline).
    arm : str
        Column of the arm.
    visit : str, optional
        Column of the visit; without it, one summary per arm.
    pooled : str or None
        Label of the pooled (all arms) row; None leaves it out.
    quantile_method : str
        numpy's name of the quartile definition: ``"linear"`` (R type 7, the default),
        ``"weibull"`` (type 6, as SAS ``QNTLDEF=4``), ``"hazen"`` (5), ``"median_unbiased"``
        (8), ``"normal_unbiased"`` (9).

    Returns
    -------
    DescriptiveTable
        ``variable``, ``method`` and ``rows`` (``arm, visit, n, n_missing, mean, sd, median,
        q1, q3, min, max``).

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If the pooled label is also an arm, or the values are not numeric.

    Notes
    -----
    Over the non-missing values :math:`x_1, \dots, x_n` of a cell: mean
    :math:`\bar x = \sum x_i / n`; SD :math:`\sqrt{\sum (x_i - \bar x)^2 / (n - 1)}`;
    quartiles by the chosen Hyndman-Fan definition (type 7: linear interpolation at
    :math:`(n - 1) p + 1`).

    References
    ----------
    .. [1] Hyndman RJ, Fan Y. Am Stat. 1996;50(4):361-365.
    """
    import numpy as np
    import pandas as pd

    require_columns(frame, [value, arm, visit])
    if not pd.api.types.is_numeric_dtype(frame[value]):
        raise ValueError(f"column {value!r} must be numeric")
    rows = []
    for a, v, cell in _cells(frame, arm, visit, pooled):
        x = cell[value].to_numpy(dtype=float)
        obs = x[~np.isnan(x)]
        n = len(obs)
        if n:
            q1, med, q3 = (float(q) for q in np.quantile(obs, [0.25, 0.5, 0.75], method=quantile_method))
            summary: dict[str, Any] = {
                "mean": float(obs.mean()),
                "sd": float(obs.std(ddof=1)) if n > 1 else float("nan"),
                "median": med,
                "q1": q1,
                "q3": q3,
                "min": float(obs.min()),
                "max": float(obs.max()),
            }
        else:
            summary = dict.fromkeys(("mean", "sd", "median", "q1", "q3", "min", "max"), float("nan"))
        rows.append(ContinuousSummary(arm=a, visit=v, n=n, n_missing=len(x) - n, **summary))
    return DescriptiveTable(
        variable=value,
        rows=tuple(rows),
        method=f"SD with denominator n - 1; quartiles by Hyndman-Fan type {_R_TYPE[quantile_method]}",
    )


def frequencies(
    frame: pd.DataFrame,
    *,
    variable: str,
    arm: str,
    visit: str | None = None,
    levels: tuple[str, ...] | None = None,
    pooled: str | None = "Total",
) -> FrequencyTable:
    r"""Count the categories of a variable by arm and visit, with percentages.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data: one row per participant (and visit).
    variable : str
        Categorical column (e.g. severity band, sex); empty strings count as missing.
    arm : str
        Column of the arm.
    visit : str, optional
        Column of the visit.
    levels : tuple of str, optional
        The categories in display order (e.g. severity bands from minimal to severe);
        by default the observed values, sorted. A value outside `levels` is an error.
    pooled : str or None
        Label of the pooled (all arms) row; None leaves it out.

    Returns
    -------
    FrequencyTable
        ``variable``, ``levels`` and ``rows`` (``arm, visit, n, n_missing, counts``).

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If a value is not among `levels`, or the pooled label is also an arm.

    Notes
    -----
    Percent of level :math:`\ell` in a cell :math:`= 100\,n_\ell / n` where :math:`n` counts the
    non-missing values of the cell; missing values are counted separately.

    References
    ----------
    .. [1] ICH E3, section 11.2, 1995.
    """
    require_columns(frame, [variable, arm, visit])
    values = frame[variable].astype("string").replace("", None)
    observed = sorted(str(v) for v in values.dropna().unique())
    if levels is None:
        levels = tuple(observed)
    else:
        unknown = set(observed) - set(levels)
        if unknown:
            raise ValueError(f"value(s) of {variable!r} not among the levels: {sorted(unknown)}")
    data = frame.assign(**{variable: values})
    rows = []
    for a, v, cell in _cells(data, arm, visit, pooled):
        present = cell[variable].dropna().astype(str)
        n = len(present)
        counts = present.value_counts()
        rows.append(
            CategorySummary(
                arm=a,
                visit=v,
                n=n,
                n_missing=len(cell) - n,
                counts=tuple(
                    (lv, int(counts.get(lv, 0)), 100 * int(counts.get(lv, 0)) / n if n else float("nan"))
                    for lv in levels
                ),
            )
        )
    return FrequencyTable(variable=variable, levels=tuple(levels), rows=tuple(rows))
