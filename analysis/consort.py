"""CONSORT flow counts from screening and disposition, with the diagram's invariants checked.

The counts of the CONSORT 2010 flow diagram (enrolment, allocation, follow-up, analysis) are
taken from the screening log and the subject-level analysis table (ADSL, see
:func:`analysis.datasets.subject_level`). Every count is derived from the participant rows
independently, then the invariants of the diagram are checked; a violation means the inputs
disagree (a randomized participant missing from the screening log, a screen failure who was
randomized, an arm outside the plan) and raises :class:`ConsortError` rather than printing a
diagram that does not add up.

References
----------
.. [1] Schulz KF, Altman DG, Moher D, for the CONSORT Group. CONSORT 2010 statement: updated
   guidelines for reporting parallel group randomised trials. BMJ. 2010;340:c332.
.. [2] Eysenbach G, CONSORT-EHEALTH Group. CONSORT-EHEALTH: improving and standardizing
   evaluation reports of Web-based and mobile health interventions. J Med Internet Res.
   2011;13(4):e126.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis._frames import require_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ConsortArm", "ConsortCounts", "ConsortError", "consort_counts"]

LOST = "lost_to_follow_up"
DISCONTINUED = ("withdrawal_by_subject", "withdrawal_by_investigator")


class ConsortError(ValueError):
    """The inputs give CONSORT counts that violate an invariant of the flow diagram."""


@dataclass(frozen=True)
class ConsortArm:
    """The flow of one arm after randomization.

    Attributes
    ----------
    arm : str
        Arm code.
    allocated : int
        Participants randomized to the arm.
    received, not_received : int
        Who received the allocated intervention (arms with an app: used it at least once;
        other arms: everyone) and who did not.
    lost_to_follow_up : int
        Participants whose end of study is a loss to follow-up.
    discontinued : int
        Participants withdrawn (by themselves or the investigator).
    discontinued_reasons : tuple of (str, int)
        The withdrawals by kind, in sorted order.
    analysed, excluded_from_analysis : int
        In and out of the analysis set.
    """

    arm: str
    allocated: int
    received: int
    not_received: int
    lost_to_follow_up: int
    discontinued: int
    discontinued_reasons: tuple[tuple[str, int], ...]
    analysed: int
    excluded_from_analysis: int


@dataclass(frozen=True)
class ConsortCounts:
    """The counts of a CONSORT flow diagram.

    Attributes
    ----------
    screened : int or None
        Assessed for eligibility (None without a screening log).
    excluded : int or None
        Screened but not randomized: ``not_eligible + declined``.
    not_eligible : int or None
        Screen failures.
    excluded_reasons : tuple of (str, int)
        Screen failures by failed rule, in sorted order (one person may fail several rules,
        so these need not add up to ``not_eligible``).
    declined : int or None
        Eligible but not randomized (declined or other reasons).
    randomized : int
        Participants randomized.
    lost_to_follow_up, discontinued : int
        Over all arms.
    arms : tuple of ConsortArm
        One per arm in the plan's order; empty for pooled counts.
    notes : tuple of str
        Invariants that could not be checked.
    """

    screened: int | None
    excluded: int | None
    not_eligible: int | None
    excluded_reasons: tuple[tuple[str, int], ...]
    declined: int | None
    randomized: int
    lost_to_follow_up: int
    discontinued: int
    arms: tuple[ConsortArm, ...]
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """Return one row per box of the diagram.

        Returns
        -------
        pandas.DataFrame
            Columns ``stage``, ``arm`` (None for pooled boxes), ``count``.
        """
        import pandas as pd

        rows: list[dict[str, Any]] = [
            {"stage": "screened", "arm": None, "count": self.screened},
            {"stage": "excluded", "arm": None, "count": self.excluded},
            {"stage": "not_eligible", "arm": None, "count": self.not_eligible},
            {"stage": "declined", "arm": None, "count": self.declined},
            {"stage": "randomized", "arm": None, "count": self.randomized},
            {"stage": "lost_to_follow_up", "arm": None, "count": self.lost_to_follow_up},
            {"stage": "discontinued", "arm": None, "count": self.discontinued},
        ]
        for a in self.arms:
            for stage in (
                "allocated",
                "received",
                "not_received",
                "lost_to_follow_up",
                "discontinued",
                "analysed",
                "excluded_from_analysis",
            ):
                rows.append({"stage": stage, "arm": a.arm, "count": getattr(a, stage)})
        return pd.DataFrame(rows)


def _reasons(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [values] if values else []
    try:
        return [str(v) for v in values]
    except TypeError:  # a missing value (NaN)
        return []


def _check(name: str, left: int, right: int, detail: str) -> None:
    if left != right:
        raise ConsortError(f"CONSORT invariant violated: {name} ({detail}: {left} != {right})")


def consort_counts(
    adsl: pd.DataFrame,
    *,
    screening: pd.DataFrame | None = None,
    arm: str | None = "arm",
    arms: Sequence[str] = (),
    app_arms: Collection[str] = (),
    subject: str = "subject",
    analysed_flag: str = "fasfl",
) -> ConsortCounts:
    r"""Count the boxes of the CONSORT flow diagram and check that they add up.

    Parameters
    ----------
    adsl : pandas.DataFrame
        One row per randomized participant: `subject`, ``eos_status`` (end-of-study kind or
        "ongoing"), `analysed_flag`, and with `arm` given, `arm` and (when `app_arms` is not
        empty) ``use_days``.
    screening : pandas.DataFrame, optional
        The screening log, one row per person assessed for eligibility: `subject`,
        ``eligible`` (bool) and ``failure_reasons`` (the failed rules: a sequence of codes,
        a single code, or empty). Without it the enrolment boxes are None.
    arm : str or None
        Column of the randomized arm. None gives pooled counts only (``arms`` empty): the
        blinded diagram.
    arms : sequence of str
        The plan's arms, in order. Default: the arms found, in order of first appearance.
    app_arms : collection of str
        Arms whose intervention is an app: received means used at least once.
    subject : str
        Column of the participant identifier (in both frames).
    analysed_flag : str
        Column of the analysis-set flag ("Y" = analysed).

    Returns
    -------
    ConsortCounts
        ``screened``, ``excluded``, ``not_eligible``, ``excluded_reasons``, ``declined``,
        ``randomized``, ``lost_to_follow_up``, ``discontinued``, ``arms`` (per arm:
        ``arm``, ``allocated``, ``received``, ``not_received``, ``lost_to_follow_up``,
        ``discontinued``, ``discontinued_reasons``, ``analysed``,
        ``excluded_from_analysis``) and ``notes``.

    Raises
    ------
    KeyError
        If a column is missing.
    ConsortError
        If a participant appears twice, or an invariant fails (see Notes).

    Notes
    -----
    Each box is counted from the rows, then the invariants of DOMAIN.md section 4 are
    checked: assessed = excluded + randomized (with excluded = screen failures + eligible
    people not randomized); randomized = the sum of the allocated; for each arm allocated =
    received + not received and analysed + excluded from analysis = allocated.

    References
    ----------
    .. [1] Schulz KF, Altman DG, Moher D. BMJ. 2010;340:c332 (flow diagram, item 13).
    """
    require_columns(adsl, [subject, "eos_status", analysed_flag, arm])
    if adsl[subject].duplicated().any():
        raise ConsortError("a participant appears twice in the subject-level table")
    randomized_ids = set(adsl[subject])
    randomized = len(adsl)
    notes: list[str] = []

    screened = excluded = not_eligible = declined = None
    reasons: dict[str, int] = {}
    if screening is not None:
        require_columns(screening, [subject, "eligible", "failure_reasons"])
        if screening[subject].duplicated().any():
            raise ConsortError("a person appears twice in the screening log")
        eligible = screening["eligible"].astype(bool).to_numpy()
        in_adsl = screening[subject].isin(randomized_ids).to_numpy()
        screened = len(screening)
        not_eligible = int((~eligible).sum())
        declined = int((eligible & ~in_adsl).sum())
        excluded = not_eligible + declined
        for values in screening.loc[~eligible, "failure_reasons"]:
            for reason in dict.fromkeys(_reasons(values)):
                reasons[reason] = reasons.get(reason, 0) + 1
        _check(
            "assessed = excluded + randomized",
            screened,
            excluded + randomized,
            "a randomized participant missing from the screening log, or a screen failure randomized",
        )
    else:
        notes.append("no screening log: the enrolment boxes and their invariant are not available")

    status = adsl["eos_status"].astype(str)
    lost = int((status == LOST).sum())
    discontinued = int(status.isin(DISCONTINUED).sum())

    per_arm: list[ConsortArm] = []
    if arm is not None:
        codes = list(arms) if arms else list(dict.fromkeys(adsl[arm].dropna().astype(str)))
        arm_values = adsl[arm].astype("string")
        analysed_all = (adsl[analysed_flag] == "Y").to_numpy()
        if set(app_arms):
            require_columns(adsl, ["use_days"])
        for code in codes:
            mine = (arm_values == code).fillna(False).to_numpy(dtype=bool)
            allocated = int(mine.sum())
            if code in app_arms:
                used = (adsl["use_days"].fillna(0).to_numpy() > 0) & mine
                received = int(used.sum())
                not_received = int((mine & ~used).sum())
            else:
                received, not_received = allocated, 0
            withdrawn = status[mine]
            kinds = withdrawn[withdrawn.isin(DISCONTINUED)].value_counts()
            analysed = int((analysed_all & mine).sum())
            excluded_from_analysis = int((~analysed_all & mine).sum())
            _check(f"allocated = received + not received ({code})", allocated, received + not_received, code)
            _check(
                f"analysed + excluded from analysis = allocated ({code})",
                analysed + excluded_from_analysis,
                allocated,
                code,
            )
            per_arm.append(
                ConsortArm(
                    arm=code,
                    allocated=allocated,
                    received=received,
                    not_received=not_received,
                    lost_to_follow_up=int((withdrawn == LOST).sum()),
                    discontinued=int(withdrawn.isin(DISCONTINUED).sum()),
                    discontinued_reasons=tuple(sorted((str(k), int(v)) for k, v in kinds.items())),
                    analysed=analysed,
                    excluded_from_analysis=excluded_from_analysis,
                )
            )
        _check(
            "randomized = sum of allocated",
            randomized,
            sum(a.allocated for a in per_arm),
            "a participant without an arm or in an arm outside the plan",
        )
    return ConsortCounts(
        screened=screened,
        excluded=excluded,
        not_eligible=not_eligible,
        excluded_reasons=tuple(sorted(reasons.items())),
        declined=declined,
        randomized=randomized,
        lost_to_follow_up=lost,
        discontinued=discontinued,
        arms=tuple(per_arm),
        notes=tuple(notes),
    )
