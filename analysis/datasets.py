"""Analysis datasets derived from the raw trial data by pure functions.

Three tables, named after their CDISC ADaM counterparts because the submission datasets are
written from them (one code path):

- :func:`parameter_by_visit` (ADQS, BDS): one row per participant, parameter (an instrument's
  total) and collected record, with the analysis visit from the analysis plan's windowing,
  baseline, change, percent change, the one record per visit chosen for analysis (``anl01fl``),
  prorating flag and items answered, response and remission flags;
- :func:`subject_level` (ADSL): one row per randomized participant with arm, strata,
  populations, baseline scores, key dates, disposition, intercurrent events and app use;
- :func:`time_to_event` (ADTTE): time to first response, to first remission, to stopping app
  use and to leaving the trial, with CDISC censoring (``cnsr`` 0 = event, 1 = censored).

Input frames (loaded by the application; every date a ``datetime.date``):

- ``subjects``: ``subject``, ``site``, ``arm``, ``severity_stratum``, ``randomized_on``,
  ``consent_date``, ``age``, ``screening_phq9``;
- ``assessments``: ``subject``, ``instrument``, ``assessed_on``, ``item_1`` ... ``item_10``;
- ``events``: ``subject``, ``kind``, ``on`` (disposition and intercurrent events, current ones
  only; kinds as in the platform's vocabulary);
- ``app_use``: ``subject``, ``day``, ``sessions``, ``minutes``, ``modules_completed``.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

from analysis.scoring import RULES, ScoringRule

if TYPE_CHECKING:
    import pandas as pd

PARAMCD = {"PHQ-9": "PHQ9TOT", "PHQ-8": "PHQ8TOT", "GAD-7": "GAD7TOT"}
END_OF_STUDY = ("withdrawal_by_subject", "withdrawal_by_investigator", "lost_to_follow_up", "completed")
LEFT_TRIAL = ("withdrawal_by_subject", "withdrawal_by_investigator", "lost_to_follow_up")
WITHDRAWAL = ("withdrawal_by_subject", "withdrawal_by_investigator")
WINDOW_RULES = ("closest_to_target", "first_in_window", "last_in_window")
ITEM_COLUMNS = tuple(f"item_{n}" for n in range(1, 11))


@dataclass(frozen=True)
class VisitSpec:
    """A scheduled visit: code, target day from randomization, conduct window (inclusive)."""

    code: str
    day: int
    first: int
    last: int


@dataclass(frozen=True)
class ProratingSpec:
    """An analysis plan's prorating rule for one instrument.

    Attributes
    ----------
    min_answered : int
        Smallest number of answered scored items for which a total is prorated.
    required_items : tuple of int
        Scored items that must be answered for a prorated total.
    """

    min_answered: int
    required_items: tuple[int, ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    """What the analysis plan fixes for the derivations.

    Attributes
    ----------
    visits : tuple of VisitSpec
        The schedule, baseline (day 0) included.
    tie_break : {"earlier", "later"}
        Which of two records equally close to a visit's target day is analysed.
    window_rule : {"closest_to_target", "first_in_window", "last_in_window"}
        Which scorable record of a visit's analysis window is analysed.
    prorate : bool
        Whether totals are prorated at all.
    prorating : Mapping[str, ProratingSpec] or None
        The plan's prorating rules by instrument; an instrument without a rule is never
        prorated. None keeps the default rules of `analysis.scoring` (PHQ-9 and GAD-7).
    response_reduction_percent : float
        Response: a reduction from baseline of at least this percentage (baseline > 0).
    remission_below : Mapping[str, int]
        Remission: a total below this value, by instrument.
    treatment_end_day : int
        Last day of the treatment period (stopping app use is judged up to it).
    stop_app_gap_days : int
        Days without app use that make stopping (the last use day is the event day).
    follow_up_day : int
        Day of the end of follow-up for the time-to-event endpoints.
    app_arms : frozenset of str
        Arms with an app (app use and stopping apply to them only).
    pp_min_modules : int or None
        Per-protocol rule for app arms: modules completed by `pp_by_day`.
    pp_by_day : int or None
        Day by which the modules count (and the visit non-app arms must have attended).
    pp_visit : str or None
        The visit that participants of arms without an app must have attended (per protocol).
    """

    visits: tuple[VisitSpec, ...]
    tie_break: Literal["earlier", "later"] = "earlier"
    window_rule: Literal["closest_to_target", "first_in_window", "last_in_window"] = "closest_to_target"
    prorate: bool = True
    prorating: Mapping[str, ProratingSpec] | None = None
    response_reduction_percent: float = 50.0
    remission_below: Mapping[str, int] = field(default_factory=lambda: {"PHQ-9": 5, "GAD-7": 5})
    treatment_end_day: int = 56
    stop_app_gap_days: int = 14
    follow_up_day: int = 84
    app_arms: frozenset[str] = frozenset()
    pp_min_modules: int | None = None
    pp_by_day: int | None = None
    pp_visit: str | None = None

    @property
    def baseline(self) -> VisitSpec:
        """The visit on day 0."""
        return next(v for v in self.visits if v.day == 0)

    @property
    def post_baseline(self) -> tuple[VisitSpec, ...]:
        """Visits after day 0, in order."""
        return tuple(sorted((v for v in self.visits if v.day > 0), key=lambda v: v.day))

    def scoring_rule(self, instrument: str) -> ScoringRule:
        """Return the scoring rule of an instrument with the plan's prorating rule applied.

        Parameters
        ----------
        instrument : str
            Instrument code, e.g. ``"PHQ-9"``.

        Returns
        -------
        ScoringRule
            The default rule of `analysis.scoring` when ``prorating`` is None; otherwise that
            rule with ``min_answered`` and ``required_items`` from the plan, or with
            prorating switched off (every scored item required) when the plan gives the
            instrument no rule.
        """
        rule = RULES[instrument]
        if self.prorating is None:
            return rule
        own = self.prorating.get(instrument)
        if own is None:
            return replace(rule, min_answered=rule.n_scored, required_items=())
        return replace(rule, min_answered=own.min_answered, required_items=tuple(own.required_items))


class _Row:
    """Attribute access to one record of a frame (values are plain Python objects)."""

    def __init__(self, values: Mapping[Any, Any]) -> None:
        self.__dict__.update({str(k): v for k, v in values.items()})

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def analysis_windows(spec: DatasetSpec) -> list[tuple[VisitSpec, int, int]]:
    """Analysis windows of the post-baseline visits for the rule "closest to target".

    Parameters
    ----------
    spec : DatasetSpec
        The schedule and tie-break.

    Returns
    -------
    list of (VisitSpec, int, int)
        Each post-baseline visit with the first and last day (inclusive) of its analysis
        window.

    Notes
    -----
    Days 1 up to the last visit's conduct window are divided at the midpoints between
    consecutive target days; a day exactly halfway goes to the earlier visit when
    ``tie_break`` is "earlier", else to the later one. Later days fall in no window.
    """
    visits = spec.post_baseline
    out = []
    start = 1
    for k, visit in enumerate(visits):
        if k + 1 < len(visits):
            nxt = visits[k + 1]
            total = visit.day + nxt.day
            if total % 2 == 0:  # a day exactly halfway
                end = total // 2 if spec.tie_break == "earlier" else total // 2 - 1
            else:
                end = total // 2
        else:
            end = max(visit.last, visit.day)
        out.append((visit, start, end))
        start = end + 1
    return out


def parameter_by_visit(
    subjects: "pd.DataFrame", assessments: "pd.DataFrame", spec: DatasetSpec
) -> "pd.DataFrame":
    """Derive the parameter-by-visit table (ADQS): every scored record with its analysis visit.

    Parameters
    ----------
    subjects : pandas.DataFrame
        ``subject``, ``arm`` and ``randomized_on`` at least.
    assessments : pandas.DataFrame
        ``subject``, ``instrument``, ``assessed_on``, ``item_1`` ... ``item_10``.
    spec : DatasetSpec
        The analysis plan's settings.

    Returns
    -------
    pandas.DataFrame
        One row per record, sorted by subject, parameter and day, with columns ``subject``,
        ``arm``, ``paramcd``, ``instrument``, ``adt`` (date), ``ady`` (day from
        randomization, day 0 = randomization day), ``avisit`` (visit code, None outside every
        window), ``avisitn`` (target day), ``aval`` (total, nullable), ``dtype``
        ("PRORATED" or None), ``items_answered``, ``base``, ``chg``, ``pchg``, ``ablfl``
        ("Y" or None), ``anl01fl`` ("Y" or None), ``crit1fl`` (response, "Y"/"N"/None),
        ``crit2fl`` (remission, "Y"/"N"/None).

    Notes
    -----
    Baseline is the last scorable record on or before the randomization day. A post-baseline
    record belongs to the visit whose analysis window (:func:`analysis_windows`) holds its day;
    per participant, parameter and visit one scorable record is analysed (``anl01fl``), chosen
    by ``window_rule``: the one closest to the target day (ties broken by ``tie_break``), the
    first or the last of the window (records of the same day: the first in input order).
    ``chg = aval - base``;
    ``pchg = 100 chg / base`` (missing when base is 0). Response: ``pchg <= -R`` with R the
    plan's reduction percentage and base > 0; remission: ``aval`` below the instrument's
    threshold. Totals are prorated when ``prorate`` is set, by the rule of
    :meth:`DatasetSpec.scoring_rule`.
    """
    import pandas as pd

    from analysis.scoring import score_frame

    columns = [
        "subject", "arm", "paramcd", "instrument", "adt", "ady", "avisit", "avisitn", "aval", "dtype",
        "items_answered", "base", "chg", "pchg", "ablfl", "anl01fl", "crit1fl", "crit2fl",
    ]  # fmt: skip
    if assessments.empty:
        return pd.DataFrame(columns=columns)
    if spec.window_rule not in WINDOW_RULES:
        raise ValueError(f"window_rule must be one of {WINDOW_RULES}, not {spec.window_rule!r}")
    frames = []
    for instrument, group in assessments.groupby("instrument", sort=True):
        rule = spec.scoring_rule(str(instrument))
        item_columns = {n: f"item_{n}" for n in range(1, rule.n_items + 1)}
        scored = score_frame(group, rule, item_columns=item_columns, prorate=spec.prorate)
        frames.append(
            pd.DataFrame(
                {
                    "subject": group["subject"].to_numpy(),
                    "instrument": str(instrument),
                    "paramcd": PARAMCD[str(instrument)],
                    "adt": group["assessed_on"].to_numpy(),
                    "aval": scored["total"].to_numpy(),
                    "dtype": [("PRORATED" if p else None) for p in scored["prorated"].to_numpy(dtype=bool)],
                    "items_answered": scored["items_answered"].to_numpy(),
                }
            )
        )
    records = pd.concat(frames, ignore_index=True)
    records["aval"] = records["aval"].astype("Int64")
    records = records.merge(subjects[["subject", "arm", "randomized_on"]], on="subject", how="inner")
    records["ady"] = [(a - r).days for a, r in zip(records["adt"], records["randomized_on"], strict=True)]

    baseline = spec.baseline
    records["avisit"] = None
    records["avisitn"] = pd.array([pd.NA] * len(records), dtype="Int64")
    records.loc[records["ady"] <= 0, "avisit"] = baseline.code
    records.loc[records["ady"] <= 0, "avisitn"] = baseline.day
    for visit, first, last in analysis_windows(spec):
        inside = (records["ady"] >= first) & (records["ady"] <= last)
        records.loc[inside, "avisit"] = visit.code
        records.loc[inside, "avisitn"] = visit.day

    # The analysed record per participant, parameter and visit: scorable, then by the rule.
    records["order"] = range(len(records))
    records["distance"] = (records["ady"] - records["avisitn"].astype("Float64")).abs()
    records["tie"] = records["ady"] if spec.tie_break == "earlier" else -records["ady"]
    is_baseline = records["avisit"] == baseline.code
    if spec.window_rule == "first_in_window":
        records["distance"] = records["ady"].astype("Float64")
    elif spec.window_rule == "last_in_window":
        records["distance"] = -records["ady"].astype("Float64")
    # Baseline: the last record on or before randomization (distance to day 0), whatever the rule.
    records.loc[is_baseline, "distance"] = -records.loc[is_baseline, "ady"].astype("Float64")
    candidates = records[records["avisit"].notna() & records["aval"].notna()].sort_values(
        ["subject", "paramcd", "avisitn", "distance", "tie", "order"], kind="stable"
    )
    chosen = candidates.groupby(["subject", "paramcd", "avisitn"], sort=False).head(1).index
    records["anl01fl"] = None
    records.loc[chosen, "anl01fl"] = "Y"
    records["ablfl"] = None
    records.loc[records.index.isin(chosen) & is_baseline, "ablfl"] = "Y"

    base = records.loc[records["ablfl"] == "Y", ["subject", "paramcd", "aval"]].rename(
        columns={"aval": "base"}
    )
    records = records.merge(base, on=["subject", "paramcd"], how="left")
    post = records["ady"] > 0
    aval = records["aval"].astype("Float64")
    basef = records["base"].astype("Float64")
    records["chg"] = (aval - basef).where(post).astype("Float64")
    records["pchg"] = (100 * records["chg"] / basef.where(basef != 0)).astype("Float64")

    remission = records["instrument"].map(lambda i: spec.remission_below.get(i)).astype("Float64")
    scorable = post & records["aval"].notna() & records["base"].notna()
    response = records["pchg"] <= -spec.response_reduction_percent
    records["crit1fl"] = _flag(scorable & (basef > 0).fillna(False), response.fillna(False))
    records["crit2fl"] = _flag(
        post & records["aval"].notna() & remission.notna(), (aval < remission).fillna(False)
    )
    records = records.sort_values(["subject", "paramcd", "ady", "adt"], kind="stable").reset_index(drop=True)
    return records[columns]


def _flag(applies: "pd.Series[bool]", met: "pd.Series[bool]") -> list[str | None]:
    """Return "Y" or "N" where the flag applies, None elsewhere."""
    return [
        ("Y" if m else "N") if a else None
        for a, m in zip(applies.to_numpy(dtype=bool), met.to_numpy(dtype=bool), strict=True)
    ]


def _first_date(events: "pd.DataFrame", kinds: tuple[str, ...]) -> "pd.Series[date]":
    chosen = events[events["kind"].isin(kinds)]
    return chosen.groupby("subject")["on"].min()


def subject_level(
    subjects: "pd.DataFrame",
    records: "pd.DataFrame",
    events: "pd.DataFrame",
    app_use: "pd.DataFrame",
    spec: DatasetSpec,
) -> "pd.DataFrame":
    """Derive the subject-level table (ADSL): one row per randomized participant.

    Parameters
    ----------
    subjects : pandas.DataFrame
        The randomized participants (see the module's input frames).
    records : pandas.DataFrame
        :func:`parameter_by_visit` of the same participants.
    events : pandas.DataFrame
        ``subject``, ``kind``, ``on``.
    app_use : pandas.DataFrame
        ``subject``, ``day``, ``sessions``, ``minutes``, ``modules_completed``.
    spec : DatasetSpec
        The analysis plan's settings.

    Returns
    -------
    pandas.DataFrame
        Columns of `subjects` plus ``fasfl``, ``pprotfl``, ``saffl`` ("Y"/"N"),
        ``base_phq9``, ``base_gad7``, ``last_visit_on``, ``eos_status`` (end-of-study kind or
        "ongoing"), ``eos_on``, ``left_trial_on`` (withdrawal or loss to follow-up),
        ``withdrawal_on`` (withdrawal by the participant or the investigator), one
        ``<kind>_on`` column per intercurrent event kind (first date), and app use:
        ``use_days``, ``use_sessions``, ``use_minutes``, ``modules_completed``,
        ``modules_by_pp_day``, ``first_use_on``, ``last_use_on``.

    Notes
    -----
    Full analysis set: every randomized participant, in the arm randomized. Safety set:
    participants of app arms who used the app at least once, and everyone in arms without
    an app. Per-protocol set: in app arms at least ``pp_min_modules`` modules completed by
    day ``pp_by_day``; in other arms an analysed record at visit ``pp_visit``.
    """
    out = subjects.copy().reset_index(drop=True)
    out["fasfl"] = "Y"
    analysed = records[records["anl01fl"] == "Y"]
    for paramcd, column in (("PHQ9TOT", "base_phq9"), ("GAD7TOT", "base_gad7")):
        base = analysed[(analysed["paramcd"] == paramcd) & (analysed["ablfl"] == "Y")]
        out[column] = out["subject"].map(base.set_index("subject")["aval"]).astype("Int64")
    out["last_visit_on"] = out["subject"].map(records.groupby("subject")["adt"].max())

    eos = events[events["kind"].isin(END_OF_STUDY)].sort_values("on").groupby("subject").tail(1)
    out["eos_status"] = out["subject"].map(eos.set_index("subject")["kind"]).fillna("ongoing")
    out["eos_on"] = out["subject"].map(eos.set_index("subject")["on"])
    out["left_trial_on"] = out["subject"].map(_first_date(events, LEFT_TRIAL))
    out["withdrawal_on"] = out["subject"].map(_first_date(events, WITHDRAWAL))
    for kind in (
        "stopped_app_use",
        "started_other_treatment",
        "changed_other_treatment",
        "crisis_treatment_change",
    ):
        out[f"{kind}_on"] = out["subject"].map(_first_date(events, (kind,)))

    # A day recorded with no session is not a day of use.
    used = app_use[app_use["sessions"] > 0] if not app_use.empty else app_use
    use = used.merge(out[["subject", "randomized_on"]], on="subject", how="inner")
    use["study_day"] = [(d - r).days for d, r in zip(use["day"], use["randomized_on"], strict=True)]
    grouped = use.groupby("subject")
    out["use_days"] = out["subject"].map(grouped["day"].nunique()).fillna(0).astype(int)
    out["use_sessions"] = out["subject"].map(grouped["sessions"].sum()).fillna(0).astype(int)
    out["use_minutes"] = out["subject"].map(grouped["minutes"].sum()).fillna(0).astype(int)
    out["modules_completed"] = out["subject"].map(grouped["modules_completed"].sum()).fillna(0).astype(int)
    by_day = spec.pp_by_day if spec.pp_by_day is not None else spec.treatment_end_day
    early = use[use["study_day"] <= by_day].groupby("subject")["modules_completed"].sum()
    out["modules_by_pp_day"] = out["subject"].map(early).fillna(0).astype(int)
    out["first_use_on"] = out["subject"].map(grouped["day"].min())
    out["last_use_on"] = out["subject"].map(grouped["day"].max())

    app_arm = out["arm"].isin(spec.app_arms)
    out["saffl"] = ["Y" if (not a) or u > 0 else "N" for a, u in zip(app_arm, out["use_days"], strict=True)]
    attended = set()
    if spec.pp_visit is not None:
        at_visit = analysed[(analysed["avisit"] == spec.pp_visit) & (analysed["paramcd"] == "PHQ9TOT")]
        attended = set(at_visit["subject"])
    pp = []
    for subject, is_app, modules in zip(out["subject"], app_arm, out["modules_by_pp_day"], strict=True):
        if is_app:
            pp.append(spec.pp_min_modules is None or modules >= spec.pp_min_modules)
        else:
            pp.append(spec.pp_visit is None or subject in attended)
    out["pprotfl"] = ["Y" if flag else "N" for flag in pp]
    return out


def time_to_event(
    adsl: "pd.DataFrame",
    records: "pd.DataFrame",
    spec: DatasetSpec,
    *,
    data_cutoff: date | None = None,
) -> "pd.DataFrame":
    """Derive the time-to-event table (ADTTE): one row per participant and parameter.

    Parameters
    ----------
    adsl : pandas.DataFrame
        :func:`subject_level`.
    records : pandas.DataFrame
        :func:`parameter_by_visit`.
    spec : DatasetSpec
        The analysis plan's settings.
    data_cutoff : date, optional
        Follow-up ends no later than this date (default: no cut-off).

    Returns
    -------
    pandas.DataFrame
        Columns ``subject``, ``arm``, ``paramcd`` (``TTRESP``, ``TTREMIT``, ``TTSTOPAP``,
        ``TTLEAVE``), ``startdt`` (randomization day), ``adt`` (event or censoring date),
        ``aval`` (days, ``adt - startdt``, at least 0), ``cnsr`` (0 event, 1 censored),
        ``evntdesc``, ``cnsdtdsc``. TTSTOPAP only for app arms.

    Notes
    -----
    Follow-up ends on the earliest of: randomization + ``follow_up_day``, leaving the trial,
    the last assessment (for the score-based endpoints) and the cut-off. Response and
    remission are the first analysed post-baseline PHQ-9 record meeting the criterion;
    otherwise censored at the last analysed PHQ-9 record (or at randomization without one).
    Stopping app use: the last use day, when it precedes the end of the treatment period by
    at least ``stop_app_gap_days`` and the participant was followed that long; otherwise
    censored at the end of the treatment period or at leaving the trial. Leaving the trial:
    withdrawal or loss to follow-up; otherwise censored at the end of follow-up (or the last
    contact).
    """
    import pandas as pd

    phq9 = records[(records["paramcd"] == "PHQ9TOT") & (records["anl01fl"] == "Y") & (records["ady"] > 0)]
    phq9 = phq9.sort_values(["subject", "ady"])
    by_subject: dict[Any, pd.DataFrame] = dict(iter(phq9.groupby("subject")))
    rows: list[tuple[Any, ...]] = []
    for record in adsl.to_dict("records"):
        row = _Row(record)
        start: date = row.randomized_on
        end_fu = start + timedelta(days=spec.follow_up_day)
        left = row.left_trial_on if isinstance(row.left_trial_on, date) else None
        if data_cutoff is not None:
            end_fu = min(end_fu, data_cutoff)
        own = by_subject.get(row.subject)
        own = own[own["adt"] <= end_fu] if own is not None else None
        for paramcd, flag, desc in (
            ("TTRESP", "crit1fl", "PHQ-9 response"),
            ("TTREMIT", "crit2fl", "PHQ-9 remission"),
        ):
            hit = own[own[flag] == "Y"] if own is not None else None
            if hit is not None and not hit.empty:
                rows.append((row.subject, row.arm, paramcd, start, hit["adt"].iloc[0], 0, desc, None))
            else:
                last = own["adt"].iloc[-1] if own is not None and not own.empty else start
                rows.append((row.subject, row.arm, paramcd, start, last, 1, None, "last PHQ-9 assessment"))
        if row.arm in spec.app_arms:
            treatment_end = start + timedelta(days=spec.treatment_end_day)
            followed_to = min(x for x in (treatment_end, left, end_fu) if x is not None)
            last_use = row.last_use_on if isinstance(row.last_use_on, date) else None
            stop_day = last_use if last_use is not None else start
            stopped = (treatment_end - stop_day).days >= spec.stop_app_gap_days and (
                stop_day + timedelta(days=spec.stop_app_gap_days) <= followed_to
            )
            if stopped:
                rows.append(
                    (row.subject, row.arm, "TTSTOPAP", start, stop_day, 0, "stopped using the app", None)
                )
            else:
                reason = "end of treatment period" if followed_to == treatment_end else "end of follow-up"
                rows.append((row.subject, row.arm, "TTSTOPAP", start, followed_to, 1, None, reason))
        if left is not None and left <= end_fu:
            rows.append((row.subject, row.arm, "TTLEAVE", start, left, 0, "left the trial", None))
        else:
            last_contact = row.last_visit_on if isinstance(row.last_visit_on, date) else start
            censor_at = end_fu if row.eos_status == "completed" else min(end_fu, max(start, last_contact))
            rows.append((row.subject, row.arm, "TTLEAVE", start, censor_at, 1, None, "end of follow-up"))
    out = pd.DataFrame(
        rows, columns=["subject", "arm", "paramcd", "startdt", "adt", "cnsr", "evntdesc", "cnsdtdsc"]
    )
    out["aval"] = [max(0, (a - s).days) for a, s in zip(out["adt"], out["startdt"], strict=True)]
    order = ["subject", "arm", "paramcd", "startdt", "adt", "aval", "cnsr", "evntdesc", "cnsdtdsc"]
    return out[order].sort_values(["paramcd", "subject"], kind="stable").reset_index(drop=True)
