"""Input checks and small numeric helpers shared by the statistics modules.

Private to ``analysis``: the public functions validate their frames through these, so that a
wrong column name or an unusable value fails with a message that names the column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def require_columns(frame: pd.DataFrame, columns: Iterable[str | None]) -> None:
    """Raise ``KeyError`` naming every column of `columns` that `frame` lacks."""
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        raise KeyError(f"column(s) not in the frame: {', '.join(map(repr, missing))}")


def check_alpha(alpha: float) -> None:
    """Raise ``ValueError`` unless 0 < alpha < 1."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")


def z_value(alpha: float) -> float:
    """Two-sided standard normal quantile, ``Phi^-1(1 - alpha / 2)``."""
    from scipy.stats import norm

    check_alpha(alpha)
    return float(norm.ppf(1 - alpha / 2))


def arm_levels(frame: pd.DataFrame, arm: str, reference: str) -> list[str]:
    """Return the arms other than `reference`, in order of first appearance.

    Raises
    ------
    ValueError
        If `reference` is not an arm of `frame`, or there is no other arm.
    """
    levels = [str(a) for a in frame[arm].dropna().unique()]
    if reference not in levels:
        raise ValueError(f"reference arm {reference!r} not found in column {arm!r}")
    others = [a for a in levels if a != reference]
    if not others:
        raise ValueError(f"column {arm!r} has no arm other than the reference {reference!r}")
    return others


def as_tuple(values: Sequence[str] | str | None) -> tuple[str, ...]:
    """Return a column name or names as a tuple (``None`` gives an empty tuple)."""
    if values is None:
        return ()
    if isinstance(values, str):
        return (values,)
    return tuple(values)


def finite_or_nan(value: float | None) -> float:
    """``value`` as a float, with ``None`` as NaN."""
    return math.nan if value is None else float(value)
