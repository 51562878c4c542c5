"""ADaM datasets (ADSL, ADQS, ADTTE) from the analysis engine's own frames.

One code path: the derivations are those of `analysis.datasets` (the frames the locked plan's
analyses ran on, `trials.analyses.datasets.AnalysisFrames`); this module only renames their
columns to ADaM variables, adds the identifiers and the subject-level variables carried from
SDTM DM, and describes every variable for Define-XML. It computes no total, window, baseline,
change, flag or censoring of its own.
"""

from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from analysis.datasets import LEFT_TRIAL, PARAMCD
from protocols.document import ProtocolDocument
from reports.submission import terminology as ct
from reports.submission.metadata import Comment, Dataset, Method, Package, Variable, sponsor_codelist, usubjid
from reports.submission.terminology import Codelist, Term
from trials.core.errors import InvalidInput
from trials.events.terms import SDTM

if TYPE_CHECKING:
    import pandas as pd

    from trials.analyses.datasets import AnalysisFrames

ADAMIG_VERSION = "1.3"

PARAM = {
    "PHQ9TOT": "PHQ-9 Total Score (0-27)",
    "PHQ8TOT": "PHQ-8 Total Score (0-24)",
    "GAD7TOT": "GAD-7 Total Score (0-21)",
}
PARAMN = {"PHQ9TOT": 1, "PHQ8TOT": 2, "GAD7TOT": 3}
TTE_PARAM = {
    "TTRESP": "Time to First PHQ-9 Response (Days)",
    "TTREMIT": "Time to First PHQ-9 Remission (Days)",
    "TTSTOPAP": "Time to Stopping App Use (Days)",
    "TTLEAVE": "Time to Leaving the Trial (Days)",
}
TTE_PARAMN = {"TTRESP": 1, "TTREMIT": 2, "TTSTOPAP": 3, "TTLEAVE": 4}
INTERCURRENT_DATES = {
    "stopped_app_use_on": ("STOPAPDT", "Date Stopped Using the App"),
    "started_other_treatment_on": ("OTHTRTDT", "Date Started Other Treatment"),
    "changed_other_treatment_on": ("CHGTRTDT", "Date Changed Other Treatment"),
    "crisis_treatment_change_on": ("CRISISDT", "Date of Crisis Changing Treatment"),
}

M = {
    "total": Method(
        "MT.TOTAL",
        "Questionnaire total score",
        "Computation",
        "Sum of the scored items as collected in SDTM QS (PHQ-9 items 1-9, PHQ-8 items 1-8, GAD-7 "
        "items 1-7; PHQ-9 item 10 is never added). The total is missing when an item is missing, "
        "unless it is prorated (MT.PRORATE).",
    ),
    "prorate": Method(
        "MT.PRORATE",
        "Prorated total",
        "Imputation",
        "When some items are missing, the total is round_half_up(mean of the answered items x "
        "number of scored items) if the analysis plan's rule holds (default: PHQ-9 at least 7 of 9 "
        "items answered including item 9; GAD-7 at least 6 of 7); DTYPE = PRORATED and ITEMSANS "
        "gives the items answered. Otherwise AVAL is missing.",
    ),
    "window": Method(
        "MT.AVISIT",
        "Analysis visit windowing",
        "Computation",
        "ADY = ADT - RANDDT (randomization = day 0). Baseline: records on or before day 0. "
        "Post-baseline records belong to the visit whose analysis window holds ADY; windows "
        "split the days at the midpoints between consecutive target days (AVISITN), the "
        "analysis plan's tie-break deciding a day exactly halfway; the last window ends with "
        "the last visit's conduct window.",
    ),
    "anl01fl": Method(
        "MT.ANL01FL",
        "Record analysed per visit",
        "Computation",
        "Per subject, parameter and analysis visit, the one record with a non-missing AVAL chosen "
        "by the analysis plan's window rule (closest to the target day, first or last in the "
        "window; ties by the plan's tie-break, then entry order). Baseline: the last such record "
        "on or before randomization.",
    ),
    "ablfl": Method(
        "MT.ABLFL",
        "Baseline record",
        "Computation",
        "ABLFL = Y on the analysed (ANL01FL = Y) record of the baseline visit.",
    ),
    "base": Method("MT.BASE", "Baseline value", "Computation", "AVAL of the record with ABLFL = Y."),
    "chg": Method(
        "MT.CHG",
        "Change from baseline",
        "Computation",
        "CHG = AVAL - BASE for post-baseline records (ADY > 0); missing otherwise.",
    ),
    "pchg": Method(
        "MT.PCHG",
        "Percent change from baseline",
        "Computation",
        "PCHG = 100 x CHG / BASE; missing when BASE is 0 or CHG is missing.",
    ),
    "crit1": Method(
        "MT.CRIT1FL",
        "Response",
        "Computation",
        "CRIT1FL = Y when PCHG <= -R (R = the analysis plan's minimum reduction, default 50%) "
        "and BASE > 0; N when not; missing at baseline or when AVAL or BASE is missing.",
    ),
    "crit2": Method(
        "MT.CRIT2FL",
        "Remission",
        "Computation",
        "CRIT2FL = Y when AVAL is below the analysis plan's remission threshold of the instrument "
        "(default 5); N when not; missing at baseline or when AVAL is missing.",
    ),
    "populations": Method(
        "MT.POPFL",
        "Analysis populations",
        "Computation",
        "FASFL: every randomized subject. SAFFL: subjects of app arms with at least one day of "
        "app use, everyone in arms without an app. PPROTFL: app arms, at least the plan's number "
        "of modules completed by the per-protocol visit day; other arms, an analysed PHQ-9 at "
        "that visit.",
    ),
    "eos": Method(
        "MT.EOSSTT",
        "End of study status",
        "Computation",
        "COMPLETED or DISCONTINUED from the last end-of-study disposition event (SDTM DS); "
        "ONGOING without one. DCSREAS is DSDECOD of a discontinuation.",
    ),
    "use": Method(
        "MT.APPUSE",
        "App use summaries",
        "Computation",
        "Sums over the days of app use (SDTM EX and SUPPEX; a day counts when at least one "
        "session was recorded).",
    ),
    "tte": Method(
        "MT.TTE",
        "Time to event and censoring",
        "Computation",
        "AVAL = ADT - STARTDT in days (STARTDT = randomization). Follow-up ends at the earliest "
        "of randomization + the last time-to-event visit's day, leaving the trial and the last "
        "assessment (score-based parameters). TTRESP/TTREMIT: the first analysed post-baseline "
        "PHQ-9 meeting CRIT1FL/CRIT2FL, else censored at the last analysed PHQ-9 (at "
        "randomization without one). TTSTOPAP (app arms): the last use day when it precedes the "
        "end of treatment by at least the gap the analysis plan fixes and the subject was "
        "followed that long, else censored at the end of treatment or at leaving the trial. "
        "TTLEAVE: withdrawal or loss to follow-up, else censored at the end of follow-up. "
        "CNSR = 0 event, 1 censored.",
    ),
    "trtn": Method(
        "MT.TRTN",
        "Treatment order",
        "Computation",
        "The arm's position in the protocol's list of arms (1 = first).",
    ),
    "stratum": Method(
        "MT.STRAT1R",
        "Baseline severity stratum",
        "Computation",
        "The baseline-severity level within the stratum the subject was randomized in (STRATAR), "
        "as recorded at randomization; never recomputed from later scores.",
    ),
    "aseq": Method(
        "MT.ASEQ",
        "Analysis sequence number",
        "Computation",
        "1, 2, ... per subject in the order of parameter code, analysis day and date.",
    ),
    "ady": Method(
        "MT.ADY",
        "Analysis relative day",
        "Computation",
        "ADT - RANDDT in days (randomization = day 0), the day the visit windows use.",
    ),
}


def _var(
    name: str,
    label: str,
    data_type: Any,
    *,
    origin: Any = "Derived",
    core: Any = "Perm",
    predecessor: str | None = None,
    codelist: str | None = None,
    method: str | None = None,
    comment: str | None = None,
    digits: int | None = None,
    may_be_empty: bool = False,
) -> Variable:
    return Variable(
        name=name,
        label=label,
        data_type=data_type,
        origin="Predecessor" if predecessor else origin,
        core=core,
        predecessor=predecessor,
        codelist=codelist,
        method=method,
        comment=comment,
        significant_digits=digits,
        may_be_empty=may_be_empty,
    )


def _dtype_codelist() -> Codelist:
    """CDISC's DTYPE codelist (extensible) with the one value we use, PRORATED, which is not a
    CDISC term: an extended value (no NCI code)."""
    base = ct.DTYPE
    known = {t.value: t for t in base.terms}
    term = known.get("PRORATED", Term("PRORATED", None, "Prorated total"))
    return Codelist(
        base.name, base.label, base.nci_code, (term,), extensible=base.extensible, publishing_set="ADaM"
    )


def _int(values: Any) -> "pd.Series[Any]":
    import pandas as pd

    return pd.Series(values, dtype="Int64")


def _dates(values: Any) -> list[date | None]:
    return [v if isinstance(v, date) else None for v in values]


def _text(values: Any) -> list[str | None]:
    return [None if v is None or v != v else str(v) for v in values]


def build_adam(
    frames: "AnalysisFrames",
    document: ProtocolDocument,
    *,
    study_id: str,
    dm: "pd.DataFrame",
    study_name: str,
    progress: Callable[[int, int, str], None] | None = None,
) -> Package:
    """ADSL, ADQS and ADTTE of the trial from the analysis engine's frames.

    Parameters
    ----------
    frames : AnalysisFrames
        What the locked plan's analyses ran on (`trials.analyses.datasets.analysis_frames`).
    document : ProtocolDocument
        The protocol version whose plan the analyses follow (arms, visits, definitions).
    study_id : str
        STUDYID (the trial code).
    dm : pandas.DataFrame
        SDTM DM of the same trial (USUBJID, SUBJID, SITEID, AGE, AGEU, SEX, RACE, COUNTRY,
        ARM, ACTARM, ...): the subject-level variables ADSL carries from it.
    study_name : str
        The trial's title (Define-XML StudyDescription).
    """
    import pandas as pd

    spec = frames.spec
    arms = {arm.code: (n + 1, arm) for n, arm in enumerate(document.arms)}
    visits = {v.code: v for v in document.visits}

    def subject_id(subject: Any) -> str:
        return usubjid(study_id, str(subject))

    def trt(codes: Any) -> list[str | None]:
        return [arms[c][1].name if c in arms else None for c in codes]

    def trtn(codes: Any) -> "pd.Series[Any]":
        return _int([arms[c][0] if c in arms else None for c in codes])

    step = 0

    def tick(name: str) -> None:
        nonlocal step
        step += 1
        if progress:
            progress(step, 3, name)

    # -- ADSL -----------------------------------------------------------------------------------
    src = frames.adsl.reset_index(drop=True)
    dm_by = dm.set_index("USUBJID")
    ids = [subject_id(s) for s in src["subject"]]
    missing_dm = [u for u in ids if u not in dm_by.index]
    if missing_dm:
        raise InvalidInput(f"ADSL: USUBJID {missing_dm[0]} is not in SDTM DM (rule: every subject is in DM)")

    def from_dm(column: str) -> list[Any]:
        values = dm_by[column].to_dict()
        return [values[u] for u in ids]

    actarm = from_dm("ACTARMCD")
    eos_kind = list(src["eos_status"])
    adsl = pd.DataFrame(
        {
            "STUDYID": study_id,
            "USUBJID": ids,
            "SUBJID": [str(s) for s in src["subject"]],
            "SITEID": [str(s) for s in src["site"]],
            "AGE": _int(from_dm("AGE")),
            "AGEU": from_dm("AGEU"),
            "SEX": from_dm("SEX"),
            "RACE": _text(from_dm("RACE")),
            "COUNTRY": _text(from_dm("COUNTRY")),
            "ARM": from_dm("ARM"),
            "ARMCD": from_dm("ARMCD"),
            "ACTARM": _text(from_dm("ACTARM")),
            "ACTARMCD": _text(actarm),
            "TRT01P": trt(src["arm"]),
            "TRT01PN": trtn(src["arm"]),
            "TRT01A": trt([a if isinstance(a, str) else None for a in actarm]),
            "TRT01AN": trtn([a if isinstance(a, str) else None for a in actarm]),
            "RANDDT": _dates(src["randomized_on"]),
            "TRTSDT": _dates(src["first_use_on"]),
            "TRTEDT": _dates(src["last_use_on"]),
            "RANDFL": "Y",
            "FASFL": list(src["fasfl"]),
            "SAFFL": list(src["saffl"]),
            "PPROTFL": list(src["pprotfl"]),
            "STRATAR": _text(src["stratum"]),
            "STRAT1R": _text(src["severity_stratum"]),
            "SCRPHQ9": _int(src["screening_phq9"]),
            "BPHQ9": _int(src["base_phq9"]),
            "BGAD7": _int(src["base_gad7"]),
            "EOSSTT": [
                "ONGOING" if k == "ongoing" else "COMPLETED" if k == "completed" else "DISCONTINUED"
                for k in eos_kind
            ],
            "EOSDT": _dates(src["eos_on"]),
            "DCSREAS": [SDTM["DSDECOD"][k] if k in LEFT_TRIAL else None for k in eos_kind],
            "LSTVSTDT": _dates(src["last_visit_on"]),
            "LEAVEDT": _dates(src["left_trial_on"]),
            **{name: _dates(src[column]) for column, (name, _label) in INTERCURRENT_DATES.items()},
            "USEDAYS": _int(src["use_days"]),
            "USESESS": _int(src["use_sessions"]),
            "USEMIN": _int(src["use_minutes"]),
            "MODCOMP": _int(src["modules_completed"]),
            "MODPPDY": _int(src["modules_by_pp_day"]),
        }
    )
    tick("ADSL")

    # -- ADQS -----------------------------------------------------------------------------------
    q = frames.adqs.reset_index(drop=True)
    q_ids = [subject_id(s) for s in q["subject"]]
    adsl_by = adsl.set_index("USUBJID")

    def carry(ids: list[str], column: str) -> list[Any]:
        """ADSL's `column` for each record's subject."""
        values = adsl_by[column].to_dict()
        return [values[u] for u in ids]

    response = spec.response_reduction_percent
    crit1 = {p: f"{_instrument(p)} reduction from baseline >= {response:g}%" for p in PARAM}
    crit2 = {
        p: f"{_instrument(p)} total < {spec.remission_below[_instrument(p)]}"
        for p in PARAM
        if _instrument(p) in spec.remission_below
    }
    adqs = pd.DataFrame(
        {
            "STUDYID": study_id,
            "USUBJID": q_ids,
            "SITEID": carry(q_ids, "SITEID"),
            "TRTP": trt(q["arm"]),
            "TRTPN": trtn(q["arm"]),
            "TRTA": carry(q_ids, "TRT01A"),
            "TRTAN": _int(carry(q_ids, "TRT01AN")),
            "ASEQ": _int(q.groupby("subject").cumcount() + 1),
            "PARAMCD": list(q["paramcd"]),
            "PARAM": [PARAM[p] for p in q["paramcd"]],
            "PARAMN": _int([PARAMN[p] for p in q["paramcd"]]),
            "ADT": _dates(q["adt"]),
            "ADY": _int(q["ady"]),
            "AVISIT": [visits[v].name if isinstance(v, str) else None for v in q["avisit"]],
            "AVISITN": _int(q["avisitn"]),
            "AVAL": _int(q["aval"]),
            "BASE": _int(q["base"]),
            "CHG": _int([None if pd.isna(v) else int(v) for v in q["chg"]]),
            "PCHG": pd.Series([float("nan") if pd.isna(v) else float(v) for v in q["pchg"]], dtype="float64"),
            "ABLFL": _text(q["ablfl"]),
            "ANL01FL": _text(q["anl01fl"]),
            "DTYPE": _text(q["dtype"]),
            "ITEMSANS": _int(q["items_answered"]),
            "CRIT1": [
                crit1[p] if f is not None else None for p, f in zip(q["paramcd"], q["crit1fl"], strict=True)
            ],
            "CRIT1FL": _text(q["crit1fl"]),
            "CRIT2": [
                crit2.get(p) if f is not None else None
                for p, f in zip(q["paramcd"], q["crit2fl"], strict=True)
            ],
            "CRIT2FL": _text(q["crit2fl"]),
            "FASFL": carry(q_ids, "FASFL"),
            "PPROTFL": carry(q_ids, "PPROTFL"),
        }
    )
    tick("ADQS")

    # -- ADTTE ----------------------------------------------------------------------------------
    t = frames.adtte.reset_index(drop=True)
    t_ids = [subject_id(s) for s in t["subject"]]
    adtte = pd.DataFrame(
        {
            "STUDYID": study_id,
            "USUBJID": t_ids,
            "SITEID": carry(t_ids, "SITEID"),
            "TRTP": trt(t["arm"]),
            "TRTPN": trtn(t["arm"]),
            "PARAMCD": list(t["paramcd"]),
            "PARAM": [TTE_PARAM[p] for p in t["paramcd"]],
            "PARAMN": _int([TTE_PARAMN[p] for p in t["paramcd"]]),
            "AVAL": _int(t["aval"]),
            "STARTDT": _dates(t["startdt"]),
            "ADT": _dates(t["adt"]),
            "CNSR": _int(t["cnsr"]),
            "EVNTDESC": _text(t["evntdesc"]),
            "CNSDTDSC": _text(t["cnsdtdsc"]),
            "FASFL": carry(t_ids, "FASFL"),
        }
    )
    tick("ADTTE")

    datasets = _metadata(adsl, document, intercurrent=INTERCURRENT_DATES)
    frames_out = {"ADSL": adsl, "ADQS": adqs, "ADTTE": adtte}
    codelists = _codelists(frames_out, document, crit1, crit2)
    comments = {
        c.oid: c
        for c in (
            Comment(
                "COM.ADQS.ADY",
                "ADY counts from randomization as day 0, the day the analysis windows use; it is "
                "not the SDTM study day.",
            ),
            Comment(
                "COM.ADSL.TRTSDT",
                "First and last day of app use; empty for arms without an app and for subjects "
                "who never used it.",
            ),
        )
    }
    return Package(
        folder="adam",
        standard="ADaMIG",
        version=ADAMIG_VERSION,
        study_id=study_id,
        study_name=study_id,
        study_description=study_name,
        protocol_name=study_id,
        datasets=datasets,
        frames=frames_out,
        codelists=codelists,
        methods={m.oid: m for m in M.values()},
        comments=comments,
        ct_versions={"SDTM": ct.SDTM_CT_VERSION, "ADaM": ct.ADAM_CT_VERSION},
    )


def _instrument(paramcd: str) -> str:
    return next(code for code, p in PARAMCD.items() if p == paramcd)


def _codelists(
    frames: Mapping[str, "pd.DataFrame"],
    document: ProtocolDocument,
    crit1: Mapping[str, str],
    crit2: Mapping[str, str],
) -> dict[str, Codelist]:
    """Every codelist the variables refer to, each listing the values it allows."""
    adqs, adtte = frames["ADQS"], frames["ADTTE"]
    used_params = [p for p in PARAM if p in set(adqs["PARAMCD"])]
    used_tte = [p for p in TTE_PARAM if p in set(adtte["PARAMCD"])]
    lists = [
        ct.NY,
        ct.SEX,
        ct.AGEU,
        _dtype_codelist(),
        sponsor_codelist("ARMCD", "Planned Arm Code", [(a.code, a.name) for a in document.arms]),
        sponsor_codelist("ARM", "Description of Planned Arm", [(a.name, None) for a in document.arms]),
        sponsor_codelist("TRT", "Treatment", [(a.name, None) for a in document.arms]),
        sponsor_codelist(
            "TRTN", "Treatment (N)", [(str(n + 1), a.name) for n, a in enumerate(document.arms)]
        ),
        sponsor_codelist("PARAMCD_QS", "ADQS Parameter Code", [(p, PARAM[p]) for p in used_params]),
        sponsor_codelist("PARAM_QS", "ADQS Parameter", [(PARAM[p], None) for p in used_params]),
        sponsor_codelist("PARAMCD_TTE", "ADTTE Parameter Code", [(p, TTE_PARAM[p]) for p in used_tte]),
        sponsor_codelist("PARAM_TTE", "ADTTE Parameter", [(TTE_PARAM[p], None) for p in used_tte]),
        sponsor_codelist(
            "AVISIT",
            "Analysis Visit",
            [(v.name, None) for v in sorted(document.visits, key=lambda v: v.day)],
        ),
        sponsor_codelist(
            "EOSSTT", "End of Study Status", [("COMPLETED", None), ("DISCONTINUED", None), ("ONGOING", None)]
        ),
        sponsor_codelist("CNSR", "Censoring", [("0", "Event"), ("1", "Censored")]),
        sponsor_codelist("CRIT1", "Response Criterion", [(crit1[p], None) for p in used_params]),
        sponsor_codelist(
            "CRIT2", "Remission Criterion", [(crit2[p], None) for p in used_params if p in crit2]
        ),
    ]
    ncomplt = ct.CODELISTS.get("NCOMPLT")
    reasons = sorted({r for r in frames["ADSL"]["DCSREAS"] if isinstance(r, str)})
    if ncomplt is not None:
        known = {t.value: t for t in ncomplt.terms}
        lists.append(
            Codelist(
                "DCSREAS",
                ncomplt.label,
                ncomplt.nci_code,
                tuple(known.get(r, Term(r, None)) for r in reasons),
                extensible=ncomplt.extensible,
            )
        )
    else:
        lists.append(sponsor_codelist("DCSREAS", "Reason for Discontinuation", [(r, None) for r in reasons]))
    return {c.name: c for c in lists}


def _metadata(
    adsl: "pd.DataFrame",
    document: ProtocolDocument,
    *,
    intercurrent: Mapping[str, tuple[str, str]],
) -> dict[str, Dataset]:
    dm = "DM."
    ident = [
        _var("STUDYID", "Study Identifier", "text", core="Req", predecessor=dm + "STUDYID"),
        _var("USUBJID", "Unique Subject Identifier", "text", core="Req", predecessor=dm + "USUBJID"),
    ]
    adsl_vars = (
        *ident,
        _var("SUBJID", "Subject Identifier for the Study", "text", core="Req", predecessor=dm + "SUBJID"),
        _var("SITEID", "Study Site Identifier", "text", core="Req", predecessor=dm + "SITEID"),
        _var("AGE", "Age", "integer", core="Req", predecessor=dm + "AGE"),
        _var("AGEU", "Age Units", "text", core="Req", predecessor=dm + "AGEU", codelist="AGEU"),
        _var("SEX", "Sex", "text", core="Req", predecessor=dm + "SEX", codelist="SEX"),
        _var("RACE", "Race", "text", core="Req", predecessor=dm + "RACE", may_be_empty=True),
        _var("COUNTRY", "Country", "text", predecessor=dm + "COUNTRY"),
        _var("ARM", "Description of Planned Arm", "text", core="Req", predecessor=dm + "ARM", codelist="ARM"),
        _var("ARMCD", "Planned Arm Code", "text", predecessor=dm + "ARMCD", codelist="ARMCD"),
        _var(
            "ACTARM",
            "Description of Actual Arm",
            "text",
            core="Req",
            predecessor=dm + "ACTARM",
            may_be_empty=True,
        ),
        _var("ACTARMCD", "Actual Arm Code", "text", predecessor=dm + "ACTARMCD"),
        _var(
            "TRT01P",
            "Planned Treatment for Period 01",
            "text",
            core="Req",
            predecessor=dm + "ARM",
            codelist="TRT",
        ),
        _var(
            "TRT01PN", "Planned Treatment for Period 01 (N)", "integer", method=M["trtn"].oid, codelist="TRTN"
        ),
        _var(
            "TRT01A",
            "Actual Treatment for Period 01",
            "text",
            core="Cond",
            predecessor=dm + "ACTARM",
            codelist="TRT",
        ),
        _var(
            "TRT01AN",
            "Actual Treatment for Period 01 (N)",
            "integer",
            core="Cond",
            method=M["trtn"].oid,
            codelist="TRTN",
        ),
        _var("RANDDT", "Date of Randomization", "sasdate", predecessor="DS.DSSTDTC"),
        _var(
            "TRTSDT",
            "Date of First App Use",
            "sasdate",
            core="Cond",
            predecessor="DM.RFXSTDTC",
            comment="COM.ADSL.TRTSDT",
        ),
        _var(
            "TRTEDT",
            "Date of Last App Use",
            "sasdate",
            core="Cond",
            predecessor="DM.RFXENDTC",
            comment="COM.ADSL.TRTSDT",
        ),
        _var(
            "RANDFL",
            "Randomized Population Flag",
            "text",
            core="Cond",
            method=M["populations"].oid,
            codelist="NY",
        ),
        _var(
            "FASFL",
            "Full Analysis Set Population Flag",
            "text",
            core="Cond",
            method=M["populations"].oid,
            codelist="NY",
        ),
        _var(
            "SAFFL", "Safety Population Flag", "text", core="Cond", method=M["populations"].oid, codelist="NY"
        ),
        _var(
            "PPROTFL",
            "Per-Protocol Population Flag",
            "text",
            core="Cond",
            method=M["populations"].oid,
            codelist="NY",
        ),
        _var("STRATAR", "Strata Used for Randomization", "text", predecessor="SUPPDM.QVAL"),
        _var("STRAT1R", "Baseline Severity Stratum (Randomized)", "text", method=M["stratum"].oid),
        _var("SCRPHQ9", "Screening PHQ-9 Total Score", "integer", predecessor="QS.QSSTRESN"),
        _var("BPHQ9", "Baseline PHQ-9 Total Score", "integer", predecessor="ADQS.BASE"),
        _var("BGAD7", "Baseline GAD-7 Total Score", "integer", predecessor="ADQS.BASE"),
        _var("EOSSTT", "End of Study Status", "text", method=M["eos"].oid, codelist="EOSSTT"),
        _var("EOSDT", "End of Study Date", "sasdate", predecessor="DS.DSSTDTC"),
        _var(
            "DCSREAS",
            "Reason for Discontinuation from Study",
            "text",
            predecessor="DS.DSDECOD",
            codelist="DCSREAS",
        ),
        _var("LSTVSTDT", "Date of Last Questionnaire", "sasdate", predecessor="QS.QSDTC"),
        _var("LEAVEDT", "Date Left the Trial", "sasdate", predecessor="DS.DSSTDTC"),
        *(_var(name, label, "sasdate", predecessor="DS.DSSTDTC") for name, label in intercurrent.values()),
        _var("USEDAYS", "Days of App Use", "integer", method=M["use"].oid),
        _var("USESESS", "App Sessions", "integer", method=M["use"].oid),
        _var("USEMIN", "Minutes of App Use", "integer", method=M["use"].oid),
        _var("MODCOMP", "App Modules Completed", "integer", method=M["use"].oid),
        _var("MODPPDY", "Modules Completed by Per-Protocol Day", "integer", method=M["use"].oid),
    )
    bds_trt = (
        _var("SITEID", "Study Site Identifier", "text", core="Req", predecessor="ADSL.SITEID"),
        _var("TRTP", "Planned Treatment", "text", core="Req", predecessor="ADSL.TRT01P", codelist="TRT"),
        _var("TRTPN", "Planned Treatment (N)", "integer", predecessor="ADSL.TRT01PN", codelist="TRTN"),
    )
    adqs_vars = (
        *(_var(v.name, v.label, v.data_type, core=v.core, predecessor="ADSL." + v.name) for v in ident),
        *bds_trt,
        _var("TRTA", "Actual Treatment", "text", core="Cond", predecessor="ADSL.TRT01A", codelist="TRT"),
        _var("TRTAN", "Actual Treatment (N)", "integer", predecessor="ADSL.TRT01AN", codelist="TRTN"),
        _var("ASEQ", "Analysis Sequence Number", "integer", method=M["aseq"].oid),
        _var("PARAMCD", "Parameter Code", "text", core="Req", method=M["total"].oid, codelist="PARAMCD_QS"),
        _var("PARAM", "Parameter", "text", core="Req", method=M["total"].oid, codelist="PARAM_QS"),
        _var("PARAMN", "Parameter (N)", "integer", method=M["total"].oid),
        _var("ADT", "Analysis Date", "sasdate", predecessor="QS.QSDTC"),
        _var("ADY", "Analysis Relative Day", "integer", method=M["ady"].oid, comment="COM.ADQS.ADY"),
        _var("AVISIT", "Analysis Visit", "text", core="Cond", method=M["window"].oid, codelist="AVISIT"),
        _var("AVISITN", "Analysis Visit (N)", "integer", core="Cond", method=M["window"].oid),
        _var("AVAL", "Analysis Value", "integer", core="Cond", method=M["total"].oid),
        _var("BASE", "Baseline Value", "integer", core="Cond", method=M["base"].oid),
        _var("CHG", "Change from Baseline", "integer", core="Cond", method=M["chg"].oid),
        _var("PCHG", "Percent Change from Baseline", "float", core="Cond", method=M["pchg"].oid, digits=6),
        _var("ABLFL", "Baseline Record Flag", "text", core="Cond", method=M["ablfl"].oid, codelist="NY"),
        _var("ANL01FL", "Analysis Flag 01", "text", core="Cond", method=M["anl01fl"].oid, codelist="NY"),
        _var("DTYPE", "Derivation Type", "text", core="Cond", method=M["prorate"].oid, codelist="DTYPE"),
        _var("ITEMSANS", "Number of Items Answered", "integer", method=M["prorate"].oid),
        _var("CRIT1", "Analysis Criterion 1", "text", core="Cond", method=M["crit1"].oid, codelist="CRIT1"),
        _var(
            "CRIT1FL",
            "Criterion 1 Evaluation Result Flag",
            "text",
            core="Cond",
            method=M["crit1"].oid,
            codelist="NY",
        ),
        _var("CRIT2", "Analysis Criterion 2", "text", core="Cond", method=M["crit2"].oid, codelist="CRIT2"),
        _var(
            "CRIT2FL",
            "Criterion 2 Evaluation Result Flag",
            "text",
            core="Cond",
            method=M["crit2"].oid,
            codelist="NY",
        ),
        _var(
            "FASFL",
            "Full Analysis Set Population Flag",
            "text",
            core="Cond",
            predecessor="ADSL.FASFL",
            codelist="NY",
        ),
        _var(
            "PPROTFL",
            "Per-Protocol Population Flag",
            "text",
            core="Cond",
            predecessor="ADSL.PPROTFL",
            codelist="NY",
        ),
    )
    adtte_vars = (
        *(_var(v.name, v.label, v.data_type, core=v.core, predecessor="ADSL." + v.name) for v in ident),
        *bds_trt,
        _var("PARAMCD", "Parameter Code", "text", core="Req", method=M["tte"].oid, codelist="PARAMCD_TTE"),
        _var("PARAM", "Parameter", "text", core="Req", method=M["tte"].oid, codelist="PARAM_TTE"),
        _var("PARAMN", "Parameter (N)", "integer", method=M["tte"].oid),
        _var("AVAL", "Analysis Value", "integer", core="Req", method=M["tte"].oid),
        _var(
            "STARTDT",
            "Time-to-Event Origin Date for Subject",
            "sasdate",
            core="Req",
            predecessor="ADSL.RANDDT",
        ),
        _var("ADT", "Analysis Date", "sasdate", core="Req", method=M["tte"].oid),
        _var("CNSR", "Censor", "integer", core="Req", method=M["tte"].oid, codelist="CNSR"),
        _var("EVNTDESC", "Event or Censoring Description", "text", method=M["tte"].oid),
        _var("CNSDTDSC", "Censor Date Description", "text", method=M["tte"].oid),
        _var(
            "FASFL",
            "Full Analysis Set Population Flag",
            "text",
            core="Cond",
            predecessor="ADSL.FASFL",
            codelist="NY",
        ),
    )
    return {
        "ADSL": Dataset(
            "ADSL",
            "Subject-Level Analysis Dataset",
            "SUBJECT LEVEL ANALYSIS DATASET",
            "One record per randomized subject",
            ("STUDYID", "USUBJID"),
            adsl_vars,
            repeating=False,
        ),
        "ADQS": Dataset(
            "ADQS",
            "Questionnaire Total Scores Analysis",
            "BASIC DATA STRUCTURE",
            "One record per subject, parameter and collected questionnaire",
            ("STUDYID", "USUBJID", "PARAMCD", "ADT", "ASEQ"),
            adqs_vars,
        ),
        "ADTTE": Dataset(
            "ADTTE",
            "Time-to-Event Analysis Dataset",
            "BASIC DATA STRUCTURE",
            "One record per subject and parameter",
            ("STUDYID", "USUBJID", "PARAMCD"),
            adtte_vars,
            subclass="TIME-TO-EVENT",
        ),
    }


__all__ = ["ADAMIG_VERSION", "PARAM", "TTE_PARAM", "build_adam"]
