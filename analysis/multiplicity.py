"""The testing hierarchy: fixed-sequence (hierarchical) testing and Holm's procedure.

The analysis plan lists the primary and key secondary hypotheses in order; by default they are
tested in that fixed sequence, each at the full alpha, and testing stops at the first one not
rejected (gatekeeping). Holm's step-down procedure is the alternative.

References
----------
.. [1] Maurer W, Hothorn LA, Lehmacher W. Multiple comparisons in drug clinical trials and
   preclinical assays: a-priori ordered hypotheses. In: Vollmar J, ed. Biometrie in der
   chemisch-pharmazeutischen Industrie 6. Fischer; 1995:3-18.
.. [2] Holm S. A simple sequentially rejective multiple test procedure. Scand J Stat.
   1979;6(2):65-70.
.. [3] EMA. Guideline on multiplicity issues in clinical trials (EMA/CHMP/44762/2017), 2022.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from analysis._frames import check_alpha, require_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HypothesisDecision", "MultiplicityResult", "fixed_sequence", "holm"]


@dataclass(frozen=True)
class HypothesisDecision:
    """The decision on one hypothesis.

    Attributes
    ----------
    hypothesis : str
        Its name.
    position : int
        Its place in the pre-specified order, from 1.
    raw_p : float
        The unadjusted p-value.
    adjusted_p : float
        The multiplicity-adjusted p-value (rejected exactly when it is at most alpha).
    tested : bool
        Whether the procedure reached it: in a fixed sequence, every earlier hypothesis was
        rejected; in Holm's step-down, every hypothesis with a smaller p-value was.
    rejected : bool
        Whether the null hypothesis is rejected.
    """

    hypothesis: str
    position: int
    raw_p: float
    adjusted_p: float
    tested: bool
    rejected: bool


@dataclass(frozen=True)
class MultiplicityResult:
    """Decisions on a family of hypotheses.

    Attributes
    ----------
    procedure : str
        ``"fixed sequence"`` or ``"Holm"``.
    alpha : float
        Family-wise (two-sided) alpha.
    decisions : tuple of HypothesisDecision
        In the pre-specified order.
    method : str
        Description for the report.
    """

    procedure: Literal["fixed sequence", "Holm"]
    alpha: float
    decisions: tuple[HypothesisDecision, ...]
    method: str

    def to_frame(self) -> pd.DataFrame:
        """Return one row per hypothesis.

        Returns
        -------
        pandas.DataFrame
            Columns ``hypothesis, position, raw_p, adjusted_p, tested, rejected``.
        """
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "hypothesis": d.hypothesis,
                    "position": d.position,
                    "raw_p": d.raw_p,
                    "adjusted_p": d.adjusted_p,
                    "tested": d.tested,
                    "rejected": d.rejected,
                }
                for d in self.decisions
            ]
        )


def _p_values(
    frame: pd.DataFrame, hypothesis: str, p_value: str, alpha: float
) -> tuple[list[str], list[float]]:
    import pandas as pd

    check_alpha(alpha)
    require_columns(frame, [hypothesis, p_value])
    if frame.empty:
        raise ValueError("no hypotheses")
    names = [str(h) for h in frame[hypothesis]]
    if len(set(names)) != len(names):
        raise ValueError("hypothesis names must be unique")
    p = pd.to_numeric(frame[p_value], errors="coerce")
    if p.isna().any() or ((p < 0) | (p > 1)).any():
        raise ValueError(f"every hypothesis needs a p-value in [0, 1] in column {p_value!r}")
    return names, [float(v) for v in p]


def fixed_sequence(
    frame: pd.DataFrame, *, hypothesis: str = "hypothesis", p_value: str = "p_value", alpha: float = 0.05
) -> MultiplicityResult:
    r"""Fixed-sequence (hierarchical) testing in the order of the rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per hypothesis, in the pre-specified order (primary first).
    hypothesis : str
        Column of the hypothesis names.
    p_value : str
        Column of the unadjusted two-sided p-values.
    alpha : float
        Family-wise alpha; each hypothesis is tested at the full alpha.

    Returns
    -------
    MultiplicityResult
        ``procedure`` ``"fixed sequence"``, ``alpha``, ``method`` and ``decisions``
        (``hypothesis``, ``position``, ``raw_p``, ``adjusted_p``, ``tested``, ``rejected``).

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If a p-value is missing or outside [0, 1], or names repeat.

    Notes
    -----
    :math:`H_k` is tested only if :math:`H_1, \dots, H_{k-1}` were all rejected, and rejected
    when :math:`p_k \le \alpha`. Equivalently the adjusted p-value is
    :math:`\tilde p_k = \max(p_1, \dots, p_k)` and :math:`H_k` is rejected when
    :math:`\tilde p_k \le \alpha`. The first non-rejection stops testing: later hypotheses
    are reported as not tested whatever their p-values.

    References
    ----------
    .. [1] Maurer W, Hothorn LA, Lehmacher W. 1995 (see module references).
    .. [2] Westfall PH, Krishen A. Optimally weighted, fixed sequence and gatekeeper multiple
       testing procedures. J Stat Plan Inference. 2001;99(1):25-40.
    """
    names, p = _p_values(frame, hypothesis, p_value, alpha)
    decisions = []
    running = 0.0
    gate_open = True
    for k, (name, pk) in enumerate(zip(names, p, strict=True), start=1):
        running = max(running, pk)
        tested = gate_open
        rejected = tested and pk <= alpha
        gate_open = rejected
        decisions.append(HypothesisDecision(name, k, pk, running, tested, rejected))
    return MultiplicityResult(
        procedure="fixed sequence",
        alpha=alpha,
        decisions=tuple(decisions),
        method=f"fixed-sequence testing at alpha = {alpha:g}; testing stops at the first non-rejection",
    )


def holm(
    frame: pd.DataFrame, *, hypothesis: str = "hypothesis", p_value: str = "p_value", alpha: float = 0.05
) -> MultiplicityResult:
    r"""Holm's step-down procedure.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per hypothesis (the order is kept in the output).
    hypothesis : str
        Column of the hypothesis names.
    p_value : str
        Column of the unadjusted two-sided p-values.
    alpha : float
        Family-wise alpha.

    Returns
    -------
    MultiplicityResult
        ``procedure`` ``"Holm"``, ``alpha``, ``method`` and ``decisions`` (``hypothesis``,
        ``position``, ``raw_p``, ``adjusted_p``, ``tested``, ``rejected``), in the input order.

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        If a p-value is missing or outside [0, 1], or names repeat.

    Notes
    -----
    With the p-values sorted :math:`p_{(1)} \le \dots \le p_{(m)}` (ties in input order),
    :math:`\tilde p_{(i)} = \min(1, \max_{j \le i} (m - j + 1) p_{(j)})`, as R's
    ``p.adjust(method = "holm")``; :math:`H_{(i)}` is rejected when
    :math:`\tilde p_{(i)} \le \alpha`. Step-down: :math:`H_{(i)}` is tested only if
    :math:`H_{(1)}, \dots, H_{(i-1)}` were rejected.

    References
    ----------
    .. [1] Holm S. Scand J Stat. 1979;6(2):65-70.
    """
    import numpy as np

    names, p = _p_values(frame, hypothesis, p_value, alpha)
    m = len(p)
    p_arr = np.asarray(p)
    order = np.argsort(p_arr, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p_arr[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    tested = np.empty(m, dtype=bool)
    gate_open = True
    for rank, idx in enumerate(order):
        tested[idx] = gate_open
        gate_open = gate_open and bool(adjusted_sorted[rank] <= alpha)
    decisions = tuple(
        HypothesisDecision(
            names[i],
            i + 1,
            p[i],
            float(adjusted[i]),
            bool(tested[i]),
            bool(tested[i] and adjusted[i] <= alpha),
        )
        for i in range(m)
    )
    return MultiplicityResult(
        procedure="Holm",
        alpha=alpha,
        decisions=decisions,
        method=f"Holm step-down procedure at family-wise alpha = {alpha:g}",
    )
