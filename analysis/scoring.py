"""Scoring of the PHQ-9, PHQ-8 and GAD-7 questionnaires.

Pure functions over item responses: a mapping of item number to response for one
questionnaire, or a DataFrame with one row per questionnaire and one column per item.
Nothing here reads or writes the database; nothing here imports Flask or SQLAlchemy.

The rules (items summed, prorating thresholds, severity bands) live in frozen
:class:`ScoringRule` objects, so that a protocol's analysis plan may override a default with
:func:`dataclasses.replace` (for example ``replace(PHQ8, min_answered=7)`` to allow one
missing PHQ-8 item) and record the override.

References
----------
.. [1] Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief depression
   severity measure. J Gen Intern Med. 2001;16(9):606-613.
   doi:10.1046/j.1525-1497.2001.016009606.x
.. [2] Spitzer RL, Kroenke K, Williams JBW, Loewe B. A brief measure for assessing
   generalized anxiety disorder: the GAD-7. Arch Intern Med. 2006;166(10):1092-1097.
   doi:10.1001/archinte.166.10.1092
.. [3] Kroenke K, Strine TW, Spitzer RL, Williams JBW, Berry JT, Mokdad AH. The PHQ-8 as a
   measure of current depression in the general population. J Affect Disord.
   2009;114(1-3):163-173. doi:10.1016/j.jad.2008.06.026
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and pandas are imported where frames are scored, not at start-up
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

__all__ = [
    "GAD7",
    "PHQ8",
    "PHQ9",
    "RULES",
    "SCORE_COLUMNS",
    "ItemResponseError",
    "ScoreResult",
    "ScoringRule",
    "default_item_columns",
    "prorated_total",
    "round_half_up",
    "score_frame",
    "severity_band",
    "total_score",
]

#: Columns of the frame returned by :func:`score_frame` and :meth:`ScoreResult.to_frame`.
SCORE_COLUMNS: tuple[str, ...] = ("total", "prorated", "items_answered", "severity")


class ItemResponseError(ValueError):
    """An item response that the instrument does not allow.

    Raised for an unknown item number, a value outside the response scale, or a value that
    is not an integer (``bool`` is not accepted as an integer). The message names the
    instrument and the item.
    """


@dataclass(frozen=True)
class ScoringRule:
    """How one instrument is totalled, prorated and banded.

    Parameters
    ----------
    code : str
        Instrument code, e.g. ``"PHQ-9"``.
    n_items : int
        Number of items on the form, numbered 1 to `n_items`, including items that are
        recorded but not scored (PHQ-9 item 10, the difficulty question).
    scored_items : tuple of int
        Item numbers summed for the total (PHQ-9: 1-9).
    item_min, item_max : int
        Lowest and highest allowed response of every item (0 and 3).
    min_answered : int
        Smallest number of answered scored items for which a missing-item total is prorated.
        Setting it to ``len(scored_items)`` switches prorating off.
    required_items : tuple of int
        Scored items that must be answered for a prorated total (PHQ-9: item 9).
    bands : tuple of (int, int, str)
        Severity bands as ordered, contiguous ``(low, high, label)`` tuples, both ends
        inclusive, covering every total from ``min_total`` to ``max_total``.

    Raises
    ------
    ValueError
        If the rule is inconsistent (items out of range, bands with gaps or overlaps, ...).
    """

    code: str
    n_items: int
    scored_items: tuple[int, ...]
    item_min: int
    item_max: int
    min_answered: int
    required_items: tuple[int, ...]
    bands: tuple[tuple[int, int, str], ...]

    def __post_init__(self) -> None:
        """Check that the rule is internally consistent."""
        scored = self.scored_items
        if not scored or len(set(scored)) != len(scored):
            raise ValueError(f"{self.code}: scored_items must be distinct and non-empty")
        if tuple(sorted(scored)) != scored:
            raise ValueError(f"{self.code}: scored_items must be in ascending order")
        if scored[0] < 1 or scored[-1] > self.n_items:
            raise ValueError(f"{self.code}: scored_items must lie in 1-{self.n_items}")
        if self.item_min >= self.item_max:
            raise ValueError(f"{self.code}: item_min must be below item_max")
        if not 1 <= self.min_answered <= len(scored):
            raise ValueError(f"{self.code}: min_answered must lie in 1-{len(scored)}")
        if not set(self.required_items) <= set(scored):
            raise ValueError(f"{self.code}: required_items must be scored items")
        expected_low = self.min_total
        for low, high, label in self.bands:
            if low != expected_low or high < low or not label:
                raise ValueError(
                    f"{self.code}: severity bands must be contiguous and ordered, "
                    f"starting at {self.min_total}; got {self.bands!r}"
                )
            expected_low = high + 1
        if expected_low != self.max_total + 1:
            raise ValueError(f"{self.code}: severity bands must end at {self.max_total}")

    @property
    def n_scored(self) -> int:
        """Number of items summed for the total."""
        return len(self.scored_items)

    @property
    def min_total(self) -> int:
        """Lowest possible total."""
        return self.item_min * self.n_scored

    @property
    def max_total(self) -> int:
        """Highest possible total."""
        return self.item_max * self.n_scored

    @property
    def band_labels(self) -> tuple[str, ...]:
        """Severity labels from lowest to highest."""
        return tuple(label for _, _, label in self.bands)


@dataclass(frozen=True)
class ScoreResult:
    """Total of one questionnaire.

    Attributes
    ----------
    total : int or None
        Exact sum of the scored items when all are answered, the prorated total when the
        prorating rule allows it, otherwise None (never 0 for missing).
    prorated : bool
        True only when `total` was prorated from fewer than all scored items.
    items_answered : int
        Number of scored items answered (unscored items such as PHQ-9 item 10 not counted).
    severity : str or None
        Severity band of `total`, None when `total` is None.
    """

    total: int | None
    prorated: bool
    items_answered: int
    severity: str | None

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a one-row frame with the columns of :func:`score_frame`.

        Returns
        -------
        pandas.DataFrame
            Columns ``total`` (nullable ``Int64``), ``prorated`` (bool), ``items_answered``
            (int64) and ``severity`` (object, None when missing).
        """
        import numpy as np
        import pandas as pd

        return pd.DataFrame(
            {
                "total": pd.array([self.total], dtype="Int64"),
                "prorated": np.array([self.prorated], dtype=bool),
                "items_answered": np.array([self.items_answered], dtype=np.int64),
                "severity": np.array([self.severity], dtype=object),
            }
        )


# Severity bands. PHQ-9: Kroenke, Spitzer & Williams 2001, table 4 / scoring instructions.
# PHQ-8: the same cut-points (Kroenke et al. 2009), ending at 24.
# GAD-7: Spitzer et al. 2006 (cut-points 5, 10, 15).
PHQ9 = ScoringRule(
    code="PHQ-9",
    n_items=10,
    scored_items=(1, 2, 3, 4, 5, 6, 7, 8, 9),
    item_min=0,
    item_max=3,
    min_answered=7,
    required_items=(9,),
    bands=(
        (0, 4, "minimal"),
        (5, 9, "mild"),
        (10, 14, "moderate"),
        (15, 19, "moderately severe"),
        (20, 27, "severe"),
    ),
)

# PHQ-8 is its own instrument, defined here in full; it is never PHQ-9 with item 9 dropped.
# Prorating default: none. DOMAIN.md section 1 prorates only the PHQ-9 and the GAD-7 ("otherwise
# the total is missing"), and the published PHQ-8 papers give no rule: every item must be
# answered (min_answered = 8) unless a protocol's analysis plan overrides it.
PHQ8 = ScoringRule(
    code="PHQ-8",
    n_items=8,
    scored_items=(1, 2, 3, 4, 5, 6, 7, 8),
    item_min=0,
    item_max=3,
    min_answered=8,
    required_items=(),
    bands=(
        (0, 4, "minimal"),
        (5, 9, "mild"),
        (10, 14, "moderate"),
        (15, 19, "moderately severe"),
        (20, 24, "severe"),
    ),
)

GAD7 = ScoringRule(
    code="GAD-7",
    n_items=7,
    scored_items=(1, 2, 3, 4, 5, 6, 7),
    item_min=0,
    item_max=3,
    min_answered=6,
    required_items=(),
    bands=(
        (0, 4, "minimal"),
        (5, 9, "mild"),
        (10, 14, "moderate"),
        (15, 21, "severe"),
    ),
)

RULES: dict[str, ScoringRule] = {rule.code: rule for rule in (PHQ9, PHQ8, GAD7)}


def round_half_up(x: float | Decimal) -> int:
    """Round to the nearest integer, halves away from zero.

    Python's :func:`round` rounds halves to the even neighbour (``round(2.5) == 2``); scoring
    manuals and SAS ``ROUND`` round them up (``2.5 -> 3``).

    Parameters
    ----------
    x : float or Decimal
        A finite number.

    Returns
    -------
    int
        The nearest integer; exact halves go away from zero (2.5 -> 3, -2.5 -> -3).

    Raises
    ------
    ValueError
        If `x` is NaN or infinite.

    Notes
    -----
    For x >= 0 the result is floor(x + 1/2); for x < 0 it is -floor(-x + 1/2). The float is
    converted to :class:`decimal.Decimal` exactly before rounding, so a float just below a half
    (``0.49999999999999994``) is not pushed up by the addition.

    References
    ----------
    .. [1] SAS Institute. ROUND function. SAS Functions and CALL Routines: Reference.

    Examples
    --------
    >>> round_half_up(2.5), round(2.5)
    (3, 2)
    >>> round_half_up(21.4)
    21
    """
    d = x if isinstance(x, Decimal) else Decimal(float(x))
    if not d.is_finite():
        raise ValueError(f"cannot round {x!r}")
    return int(d.to_integral_value(rounding=ROUND_HALF_UP))


def _is_int(value: object) -> bool:
    """Return whether `value` is an integer response (Python or NumPy int, not bool)."""
    # NumPy's bool_ is not a numbers.Integral, so it is refused along with Python's bool.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _answered(items: Mapping[int, int | None], rule: ScoringRule) -> dict[int, int]:
    """Validate `items` against `rule` and return the answered items (missing left out)."""
    answered: dict[int, int] = {}
    for item, value in items.items():
        if not _is_int(item) or not 1 <= int(item) <= rule.n_items:
            raise ItemResponseError(
                f"{rule.code} item {item!r}: unknown item number ({rule.code} has items 1-{rule.n_items})"
            )
        if value is None:
            continue
        if not _is_int(value):
            raise ItemResponseError(
                f"{rule.code} item {item}: response {value!r} ({type(value).__name__}) is not "
                f"an integer from {rule.item_min} to {rule.item_max}; use None for missing"
            )
        if not rule.item_min <= int(value) <= rule.item_max:
            raise ItemResponseError(
                f"{rule.code} item {item}: response {value!r} outside {rule.item_min}-{rule.item_max}"
            )
        answered[int(item)] = int(value)
    return answered


def _prorate(item_sum: int, n_answered: int, n_scored: int) -> int:
    """Return round_half_up(item_sum / n_answered * n_scored) in exact integer arithmetic."""
    return (2 * item_sum * n_scored + n_answered) // (2 * n_answered)


def total_score(items: Mapping[int, int | None], rule: ScoringRule) -> int | None:
    """Sum the scored items of one questionnaire, without prorating.

    Parameters
    ----------
    items : Mapping[int, int or None]
        Item number (1-based) to response. A missing item is None or absent from the
        mapping; it is never read as 0. Unscored items (PHQ-9 item 10) may be present and
        are validated but not added.
    rule : ScoringRule
        The instrument's rule, e.g. :data:`PHQ9`.

    Returns
    -------
    int or None
        The sum of the scored items when every one is answered, otherwise None.

    Raises
    ------
    ItemResponseError
        If an item number is unknown to the instrument or a response is not an integer in
        ``item_min``-``item_max``.

    See Also
    --------
    prorated_total : the total with the prorating rule for missing items.

    Notes
    -----
    total = sum of x_i over the scored items i in ``rule.scored_items``, x_i in {0, 1, 2, 3}
    (PHQ-9: items 1-9, range 0-27, item 10 never added; PHQ-8: items 1-8, 0-24; GAD-7:
    items 1-7, 0-21).

    References
    ----------
    .. [1] Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief depression
       severity measure. J Gen Intern Med. 2001;16(9):606-613.
    .. [2] Spitzer RL, Kroenke K, Williams JBW, Loewe B. A brief measure for assessing
       generalized anxiety disorder: the GAD-7. Arch Intern Med. 2006;166(10):1092-1097.
    .. [3] Kroenke K, Strine TW, Spitzer RL, et al. The PHQ-8 as a measure of current
       depression in the general population. J Affect Disord. 2009;114(1-3):163-173.

    Examples
    --------
    >>> total_score({1: 1, 2: 2, 3: 0, 4: 1, 5: 1, 6: 0, 7: 2, 8: 1, 9: 0, 10: 3}, PHQ9)
    8
    >>> total_score({1: 1, 2: 2}, GAD7) is None
    True
    """
    answered = _answered(items, rule)
    if any(item not in answered for item in rule.scored_items):
        return None
    return sum(answered[item] for item in rule.scored_items)


def severity_band(total: int | None, rule: ScoringRule) -> str | None:
    """Return the severity label of a total.

    Parameters
    ----------
    total : int or None
        A total (exact or prorated); None for a missing total.
    rule : ScoringRule
        The instrument's rule.

    Returns
    -------
    str or None
        The label of the band containing `total` (``"minimal"``, ``"mild"``,
        ``"moderate"``, ``"moderately severe"`` or ``"severe"``; the GAD-7 has no
        ``"moderately severe"``), None when `total` is None.

    Raises
    ------
    ValueError
        If `total` is not an integer or lies outside ``rule.min_total``-``rule.max_total``.

    Notes
    -----
    Bands, both ends inclusive: PHQ-9 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19
    moderately severe, 20-27 severe [1]_; PHQ-8 the same with severe 20-24 [3]_; GAD-7 0-4
    minimal, 5-9 mild, 10-14 moderate, 15-21 severe [2]_.

    References
    ----------
    .. [1] Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief depression
       severity measure. J Gen Intern Med. 2001;16(9):606-613.
    .. [2] Spitzer RL, Kroenke K, Williams JBW, Loewe B. A brief measure for assessing
       generalized anxiety disorder: the GAD-7. Arch Intern Med. 2006;166(10):1092-1097.
    .. [3] Kroenke K, Strine TW, Spitzer RL, et al. The PHQ-8 as a measure of current
       depression in the general population. J Affect Disord. 2009;114(1-3):163-173.

    Examples
    --------
    >>> severity_band(10, PHQ9)
    'moderate'
    >>> severity_band(15, GAD7)
    'severe'
    """
    if total is None:
        return None
    if not _is_int(total):
        raise ValueError(f"{rule.code}: total {total!r} is not an integer")
    for low, high, label in rule.bands:
        if low <= total <= high:
            return label
    raise ValueError(f"{rule.code}: total {total!r} outside {rule.min_total}-{rule.max_total}")


def prorated_total(items: Mapping[int, int | None], rule: ScoringRule) -> ScoreResult:
    """Total one questionnaire, prorating missing items where the rule allows.

    Parameters
    ----------
    items : Mapping[int, int or None]
        Item number (1-based) to response; None or absent means missing, never 0.
    rule : ScoringRule
        The instrument's rule, e.g. :data:`PHQ9`; a protocol may pass an overridden copy.

    Returns
    -------
    ScoreResult
        ``total``: the exact sum when all scored items are answered; the prorated total when
        at least ``rule.min_answered`` scored items and every ``rule.required_items`` item
        are answered; otherwise None.
        ``prorated``: True only for a prorated total.
        ``items_answered``: number of scored items answered.
        ``severity``: the band of ``total`` (:func:`severity_band`), None when ``total`` is.

    Raises
    ------
    ItemResponseError
        If an item number is unknown to the instrument or a response is not an integer in
        ``item_min``-``item_max``.

    See Also
    --------
    total_score : the exact total without prorating (sensitivity analysis).
    score_frame : the same for a DataFrame of questionnaires.

    Notes
    -----
    With k answered scored items out of n, and s the sum of the answered items:

        total = round_half_up(mean of answered items x n) = round_half_up(s * n / k)
              = floor((2 * s * n + k) / (2 * k))

    computed in exact integer arithmetic, so a half (e.g. mean 1.5 x 7 = 10.5) always rounds
    up to 11. Defaults (the project's, DOMAIN.md section 1; a protocol may override them):

    - PHQ-9: k >= 7 of 9 **and** item 9 answered (a missing item 9 is a safety
      follow-up, never a 0 and never prorated over).
    - PHQ-8: not prorated (k = 8 of 8): DOMAIN.md prorates only the PHQ-9 and GAD-7, and
      the published PHQ-8 papers give no rule. Kept as ``PHQ8.min_answered`` so that a
      protocol can set 7 to allow one missing item.
    - GAD-7: k >= 6 of 7.

    The result of a prorated total is a derived value and belongs in ADaM (flagged), never in
    SDTM QS.

    References
    ----------
    .. [1] Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief depression
       severity measure. J Gen Intern Med. 2001;16(9):606-613.
    .. [2] Spitzer RL, Kroenke K, Williams JBW, Loewe B. A brief measure for assessing
       generalized anxiety disorder: the GAD-7. Arch Intern Med. 2006;166(10):1092-1097.
    .. [3] Kroenke K, Strine TW, Spitzer RL, et al. The PHQ-8 as a measure of current
       depression in the general population. J Affect Disord. 2009;114(1-3):163-173.

    Examples
    --------
    >>> prorated_total({1: 2, 2: 1, 3: 2, 4: 1, 5: 2, 6: 1, 7: None}, GAD7)
    ScoreResult(total=11, prorated=True, items_answered=6, severity='moderate')
    """
    answered = _answered(items, rule)
    values = [answered[item] for item in rule.scored_items if item in answered]
    k = len(values)
    total: int | None
    if k == rule.n_scored:
        total, prorated = sum(values), False
    elif k >= rule.min_answered and all(item in answered for item in rule.required_items):
        total, prorated = _prorate(sum(values), k, rule.n_scored), True
    else:
        total, prorated = None, False
    return ScoreResult(
        total=total,
        prorated=prorated,
        items_answered=k,
        severity=severity_band(total, rule),
    )


def default_item_columns(rule: ScoringRule) -> dict[int, str]:
    """Return the default item-to-column mapping of :func:`score_frame`.

    Parameters
    ----------
    rule : ScoringRule
        The instrument's rule.

    Returns
    -------
    dict of int to str
        ``{i: f"item{i}"}`` for every scored item (PHQ-9: ``item1`` to ``item9``).
    """
    return {item: f"item{item}" for item in rule.scored_items}


def _item_matrix(
    frame: pd.DataFrame, rule: ScoringRule, item_columns: Mapping[int, str]
) -> npt.NDArray[np.float64]:
    """Validate the item columns and return them as a float matrix with NaN for missing."""
    import numpy as np

    for item in item_columns:
        if not _is_int(item) or not 1 <= int(item) <= rule.n_items:
            raise ItemResponseError(
                f"{rule.code} item {item!r}: unknown item number ({rule.code} has items 1-{rule.n_items})"
            )
    absent = [item for item in rule.scored_items if item not in item_columns]
    if absent:
        raise ValueError(f"{rule.code}: no column given for scored item(s) {absent}")
    missing_cols = [col for col in item_columns.values() if col not in frame.columns]
    if missing_cols:
        raise KeyError(f"{rule.code}: columns not in frame: {missing_cols}")

    columns: list[npt.NDArray[np.float64]] = []
    for item in rule.scored_items:
        col = item_columns[item]
        columns.append(_item_column(frame[col], rule, item))
    for item, col in item_columns.items():  # unscored items: validated, never summed
        if item not in rule.scored_items:
            _item_column(frame[col], rule, item)
    return np.column_stack(columns)


def _item_column(series: pd.Series[Any], rule: ScoringRule, item: int) -> npt.NDArray[np.float64]:
    """Return one item column as floats (NaN = missing) after checking every value."""
    import numpy as np
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise ItemResponseError(f"{rule.code} item {item}: column {series.name!r} is boolean, not integer")
    is_object = pd.api.types.is_object_dtype(dtype)
    if isinstance(dtype, pd.CategoricalDtype) or not (pd.api.types.is_numeric_dtype(dtype) or is_object):
        raise ItemResponseError(
            f"{rule.code} item {item}: column {series.name!r} has dtype {dtype}, not integer"
        )
    if is_object:
        present = series[series.notna()]
        bad = present[~present.map(_is_int).astype(bool)]
        if len(bad):
            value = bad.iloc[0]
            raise ItemResponseError(
                f"{rule.code} item {item}: response {value!r} ({type(value).__name__}) at row "
                f"{bad.index[0]!r} is not an integer from {rule.item_min} to {rule.item_max}"
            )
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    present_mask = ~np.isnan(values)
    nonint = present_mask & (values != np.floor(np.where(present_mask, values, 0.0)))
    if nonint.any():
        pos = int(np.flatnonzero(nonint)[0])
        raise ItemResponseError(
            f"{rule.code} item {item}: response {values[pos]:g} at row {series.index[pos]!r} "
            f"is not an integer from {rule.item_min} to {rule.item_max}"
        )
    out_of_range = present_mask & (
        (np.where(present_mask, values, rule.item_min) < rule.item_min)
        | (np.where(present_mask, values, rule.item_max) > rule.item_max)
    )
    if out_of_range.any():
        pos = int(np.flatnonzero(out_of_range)[0])
        raise ItemResponseError(
            f"{rule.code} item {item}: response {values[pos]:g} at row {series.index[pos]!r} "
            f"outside {rule.item_min}-{rule.item_max}"
        )
    return values


def score_frame(
    frame: pd.DataFrame,
    rule: ScoringRule,
    *,
    item_columns: Mapping[int, str] | None = None,
    prorate: bool = True,
) -> pd.DataFrame:
    """Score many questionnaires at once, one row each.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per completed questionnaire, one column per item. Missing responses are
        None, NaN or ``pd.NA`` (never 0); present responses are integers (integer, float
        with integral values, nullable ``Int64`` or object columns of ints; not bool).
    rule : ScoringRule
        The instrument's rule, e.g. :data:`PHQ9`.
    item_columns : Mapping[int, str], optional
        Item number to column name. Must cover every scored item; may include unscored items
        (PHQ-9 item 10), which are validated and never summed. Default
        :func:`default_item_columns` (``item1``, ``item2``, ...).
    prorate : bool, default True
        Apply the prorating rule (:func:`prorated_total`). False gives the exact totals of
        :func:`total_score`, the sensitivity analysis without prorating.

    Returns
    -------
    pandas.DataFrame
        Indexed like `frame`, with columns:

        - ``total`` (``Int64``, ``<NA>`` when missing): exact or prorated total.
        - ``prorated`` (bool): True only where the total was prorated.
        - ``items_answered`` (int64): scored items answered.
        - ``severity`` (object, None when missing): band of the total.

        Row by row, the result equals :func:`prorated_total` (or, with ``prorate=False``,
        :func:`total_score` with ``prorated`` False).

    Raises
    ------
    ItemResponseError
        If a response is not an integer in ``item_min``-``item_max`` or an item number is
        unknown; the message names the instrument, the item and the row.
    ValueError
        If a scored item has no column.
    KeyError
        If a named column is not in `frame`.

    Notes
    -----
    Vectorised over rows with NumPy (no Python loop per row). With k answered of n scored
    items and s their sum:

        total = s                                  if k == n
              = floor((2 * s * n + k) / (2 * k))   if k >= rule.min_answered and every
                                                   rule.required_items item is answered
              = missing                            otherwise

    where floor((2sn + k) / (2k)) = round_half_up(s * n / k) in exact integer arithmetic.

    References
    ----------
    .. [1] Kroenke K, Spitzer RL, Williams JBW. The PHQ-9: validity of a brief depression
       severity measure. J Gen Intern Med. 2001;16(9):606-613.
    .. [2] Spitzer RL, Kroenke K, Williams JBW, Loewe B. A brief measure for assessing
       generalized anxiety disorder: the GAD-7. Arch Intern Med. 2006;166(10):1092-1097.
    .. [3] Kroenke K, Strine TW, Spitzer RL, et al. The PHQ-8 as a measure of current
       depression in the general population. J Affect Disord. 2009;114(1-3):163-173.

    Examples
    --------
    >>> df = pd.DataFrame({f"item{i}": [1, 2] for i in range(1, 8)})
    >>> df.loc[1, "item7"] = None
    >>> score_frame(df, GAD7)
       total  prorated  items_answered  severity
    0      7     False               7      mild
    1     14      True               6  moderate
    """
    import numpy as np
    import pandas as pd

    columns = default_item_columns(rule) if item_columns is None else dict(item_columns)
    x = _item_matrix(frame, rule, columns)
    n = rule.n_scored
    answered = ~np.isnan(x)
    k = answered.sum(axis=1).astype(np.int64)
    s = np.where(answered, x, 0.0).sum(axis=1).astype(np.int64)

    complete = k == n
    if prorate:
        required_ok = np.ones(len(frame), dtype=bool)
        for item in rule.required_items:
            required_ok &= answered[:, rule.scored_items.index(item)]
        can_prorate = ~complete & (k >= rule.min_answered) & required_ok
    else:
        can_prorate = np.zeros(len(frame), dtype=bool)
    safe_k = np.where(k > 0, k, 1)
    prorated_values = (2 * s * n + safe_k) // (2 * safe_k)
    has_total = complete | can_prorate
    total_values = np.where(complete, s, prorated_values)

    severity = np.full(len(frame), None, dtype=object)
    for low, high, label in rule.bands:
        severity[has_total & (total_values >= low) & (total_values <= high)] = label

    total = pd.arrays.IntegerArray(np.where(has_total, total_values, 0), ~has_total)
    return pd.DataFrame(
        {
            "total": total,
            "prorated": can_prorate,
            "items_answered": k,
            "severity": severity,
        },
        index=frame.index,
    )
