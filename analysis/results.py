"""Result types shared by the analyses: frozen, with our own field names.

Every public analysis returns a frozen dataclass built on `Result` (or a collection of them).
Library output columns never leak past `analysis/`; statistical warnings raised while fitting
are captured into ``notes`` so that the report can print them.
"""

import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Result:
    """One estimate with its uncertainty.

    Attributes
    ----------
    estimate : float
        The point estimate (a difference, ratio, proportion, median, ...).
    se : float or None
        Its standard error, where the method gives one.
    df : float or None
        Degrees of freedom of the reference distribution, where one is used.
    ci_low, ci_high : float or None
        Confidence limits at ``1 - alpha``.
    p_value : float or None
        Two-sided p-value of the null hypothesis named in ``parameters`` (by default: no
        difference), where one applies.
    n : int or None
        Number of participants contributing.
    method : str
        What was computed, precisely enough to reproduce it.
    parameters : Mapping[str, Any]
        The settings that identify the result (arms compared, visit, alpha, ...).
    notes : tuple of str
        Warnings and remarks raised while computing it.
    """

    estimate: float
    se: float | None = None
    df: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n: int | None = None
    method: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain values (non-finite floats become None), for JSON.

        Returns
        -------
        dict
            Field name to value; ``parameters`` as a plain dict, ``notes`` as a list.
        """
        out = asdict(self)
        out["parameters"] = dict(self.parameters)
        out["notes"] = list(self.notes)
        return {k: _finite(v) for k, v in out.items()}

    def to_frame(self) -> "pd.DataFrame":
        """One-row DataFrame of the fields.

        Returns
        -------
        pandas.DataFrame
            Columns named as the fields.
        """
        import pandas as pd

        return pd.DataFrame([{f.name: getattr(self, f.name) for f in fields(self)}])


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect the warnings raised inside the block as text, instead of emitting them.

    Yields
    ------
    list of str
        Filled with ``"Category: message"`` for each warning, in order.
    """
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield notes
    seen: set[str] = set()
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.add(text)
            notes.append(text)


def as_parameters(**values: Any) -> Mapping[str, Any]:
    """Parameters in a stable order, for reproducible output.

    Parameters
    ----------
    **values
        Parameter name to value.

    Returns
    -------
    Mapping[str, Any]
        The same, sorted by name.
    """
    return dict(sorted(values.items()))
