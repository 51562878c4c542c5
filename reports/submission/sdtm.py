"""SDTM datasets (SDTMIG 3.4, SDTM 2.0) from a trial's records: DM, DS, AE, QS, EX, SV, TS and
the SUPP-- datasets that have records.

Pure: frames and the protocol document in, a :class:`~reports.submission.metadata.Package` out;
nothing here reads the database. Submission values come from `trials.events.terms` (adverse
events, disposition), `protocols.instruments` (questionnaires) and
`reports.submission.terminology` (CDISC controlled terminology with NCI codes); values that are
ours are put in codelists without an NCI code ("sponsor-defined").

Conventions (also stated in the Define-XML through the methods and comments below):

- USUBJID is STUDYID, a hyphen and the participant label; SUBJID is the label.
- RFSTDTC is the randomization date: a digital therapy starts when the participant is
  randomized (the app is unlocked at randomization). Study days count from it (day 1, no day 0).
- EPOCH: SCREENING before RFSTDTC, TREATMENT from RFSTDTC up to the end of the treatment period
  (the protocol's per-protocol or primary visit day), FOLLOW-UP afterwards.
- VISITNUM: the screening visit is 1, the protocol's visits follow in the order of their target
  day (the baseline visit is 2).
- --SEQ numbers the records of each USUBJID from 1 in the order given per domain in its method.
- Text is ASCII only and at most 200 bytes (SAS transport v5). Non-ASCII free text is refused
  with an error naming the record; the long free text of DSTERM is split by the SDTMIG rule
  (first 200 bytes in DSTERM, the rest in SUPPDS QNAM DSTERM1, DSTERM2, ...).
"""

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from protocols.document import Arm, ProtocolDocument, Visit
from protocols.instruments import INSTRUMENTS, Instrument, ResponseOption, get_instrument
from protocols.sap_spec import dataset_spec_of
from reports.submission import terminology as ct
from reports.submission.metadata import (
    TRANSPORT_TEXT_MAX,
    Comment,
    Core,
    Dataset,
    DataType,
    Method,
    Origin,
    OriginSource,
    Package,
    ValueLevel,
    Variable,
    sponsor_codelist,
    usubjid,
)
from reports.submission.terminology import Codelist, Term
from trials.analyses.datasets import RawData
from trials.core.errors import InvalidInput
from trials.events.terms import (
    END_OF_STUDY_KINDS,
    INTERCURRENT_KINDS,
    OTHER_TREATMENTS,
    SDTM,
    SERIOUS_CRITERION_VARIABLES,
    YES_NO,
)

__all__ = ["SDTMIG_VERSION", "SDTM_VERSION", "SdtmInputError", "SdtmSource", "build_sdtm"]

SDTMIG_VERSION = "3.4"
SDTM_VERSION = "2.0"

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SdtmSource:
    """Everything the SDTM datasets are made from.

    Attributes
    ----------
    study_id : str
        The trial code (STUDYID).
    document : ProtocolDocument
        The protocol version in force (trial, arms, visits, eligibility, blinding, sponsor).
    raw : RawData
        The trial's clinical records (`trials.analyses.datasets.load_raw`).
    disposition : pandas.DataFrame
        Current disposition and intercurrent events with their reason: ``subject``, ``kind``,
        ``on``, ``other_treatment``, ``reason``.
    sites : pandas.DataFrame
        ``code``, ``name``, ``country`` (ISO 3166-1 alpha-2).
    data_cutoff : datetime.date
        The database lock date: a visit whose window ends after it is not "not done".
    """

    study_id: str
    document: ProtocolDocument
    raw: RawData
    disposition: pd.DataFrame
    sites: pd.DataFrame
    data_cutoff: date


class SdtmInputError(InvalidInput):
    """The records cannot be mapped to SDTM as they are (the message names the record, the
    dataset and variable, and the rule)."""


# -- constants: visits, statuses, sponsor-defined values ---------------------------------------

SCREENING_VISIT = "Screening"
SCREENING_VISITNUM = 1
NOT_DONE = "NOT DONE"
NOT_ANSWERED = "NOT ANSWERED"  # QSREASND of an unanswered item: free text, no CDISC codelist
QSALL = "QSALL"
QSALL_TEST = "Questionnaire"
SCREEN_FAILURE = "SCREEN FAILURE"
# ARMNRS values (SDTMIG 3.3+ DM assumptions). The CDISC codelist (ARMNULRS) is not in
# `terminology`, so ARMNRS carries no codelist reference until it is added there.
ARMNRS_SCREEN_FAILURE = "SCREEN FAILURE"
ARMNRS_NOT_ASSIGNED = "NOT ASSIGNED"
ARMNRS_NOT_TREATED = "ASSIGNED, NOT TREATED"
# The other treatment of an intercurrent event (SUPPDS OTHTRT): sponsor-defined values.
OTHER_TREATMENT_VALUES: Mapping[str, str] = {t: t.upper() for t in OTHER_TREATMENTS}

# TS: TSPARMCD -> TSPARM. Where `terminology.TSPARM` has the name it is checked against it (and
# carries its NCI code); the others are the SDTM CT names, to be confirmed in `terminology`.
TS_PARAMETERS: Mapping[str, str] = {
    "TITLE": "Trial Title",
    "SPONSOR": "Clinical Study Sponsor",
    "REGID": "Registry Identifier",
    "STYPE": "Study Type",
    "INTMODEL": "Intervention Model",
    "RANDOM": "Trial is Randomized",
    "TBLIND": "Trial Blinding Schema",
    "TPHASE": "Trial Phase Classification",
    "NARMS": "Planned Number of Arms",
    "ACTSUB": "Actual Number of Subjects",
    "TRT": "Investigational Therapy or Treatment",
    "AGEMIN": "Planned Minimum Age of Subjects",
    "AGEMAX": "Planned Maximum Age of Subjects",
    "SSTDTC": "Study Start Date",
    "SDTMVER": "SDTM Version",
    "SDTIGVER": "SDTM IG Version",
}
# The protocol's phase -> TPHASE term (only terms present in `terminology.TPHASE`).
TPHASE_OF: Mapping[str, str] = {
    "not_applicable": "NOT APPLICABLE",
    "phase_1": "PHASE I TRIAL",
    "phase_2": "PHASE II TRIAL",
    "phase_3": "PHASE III TRIAL",
}
CDISC_CT = "CDISC CT"
# TS parameters that may have no value, and the ISO 21090 null flavor then given in TSVALNF:
# no upper age limit is positive infinity.
TS_NULL_FLAVOR: Mapping[str, str] = {"AGEMAX": "PINF"}

# -- methods and comments -----------------------------------------------------------------------


def _method(oid: str, name: str, description: str) -> Method:
    return Method(oid, name, "Computation", description)


METHODS: dict[str, Method] = {
    m.oid: m
    for m in (
        _method("MT.USUBJID", "USUBJID", "STUDYID, a hyphen and the participant label (SUBJID)."),
        _method(
            "MT.STUDYDAY",
            "Study day",
            "--DY = date - RFSTDTC + 1 when the date is on or after RFSTDTC, date - RFSTDTC when it "
            "is before (there is no day 0); empty when either date is missing.",
        ),
        _method(
            "MT.EPOCH",
            "Epoch",
            "SCREENING when the date is before RFSTDTC (or the participant was not randomized), "
            "TREATMENT from RFSTDTC up to the last day of the treatment period (RFSTDTC + the "
            "target day of the protocol's end-of-treatment visit), FOLLOW-UP afterwards; empty "
            "without a date.",
        ),
        _method(
            "MT.RFSTDTC",
            "Reference start",
            "The randomization date: the digital therapy starts at randomization.",
        ),
        _method(
            "MT.RFENDTC",
            "Reference end",
            "The date of the end-of-study disposition event (completed, withdrawal, lost to "
            "follow-up); without one, the last date of any record of the participant "
            "(screening, consent, randomization, questionnaire, app use, adverse event, "
            "disposition). RFENDTC only for randomized participants.",
        ),
        _method("MT.RFXSTDTC", "First app use", "The first day with at least one app session (EX)."),
        _method("MT.RFXENDTC", "Last app use", "The last day with at least one app session (EX)."),
        _method(
            "MT.ARMNRS",
            "Reason arm is null",
            "SCREEN FAILURE for a participant who failed screening; NOT ASSIGNED for an eligible "
            "participant never randomized; ASSIGNED, NOT TREATED for a participant randomized to "
            "an app arm without a single day of app use.",
        ),
        _method(
            "MT.ACTARM",
            "Actual arm",
            "The randomized arm, except for a participant randomized to an app arm without a "
            "day of app use (empty, ARMNRS ASSIGNED, NOT TREATED). Arms without an app (waitlist, "
            "usual care) are received as randomized.",
        ),
        _method(
            "MT.DTHFL",
            "Death flag",
            "Y when an adverse event of the participant has outcome FATAL or is serious because it "
            "resulted in death (AESDTH = Y).",
        ),
        _method("MT.DTHDTC", "Death date", "The end date of that adverse event."),
        _method(
            "MT.COUNTRY",
            "Country",
            "The site's country (ISO 3166-1 alpha-2) converted to ISO 3166-1 alpha-3 by the "
            "pycountry library.",
        ),
        _method(
            "MT.DSSEQ",
            "DSSEQ",
            "1..n per USUBJID by DSSTDTC, then consent, randomization, other "
            "events, disposition events, then DSTERM.",
        ),
        _method("MT.AESEQ", "AESEQ", "1..n per USUBJID by AESTDTC, AETERM, AEENDTC."),
        _method(
            "MT.QSSEQ",
            "QSSEQ",
            "1..n per USUBJID by VISITNUM, instrument (PHQ-9, PHQ-8, GAD-7), then item number "
            "(QSALL first, the total last).",
        ),
        _method("MT.EXSEQ", "EXSEQ", "1..n per USUBJID by EXSTDTC."),
        _method("MT.TSSEQ", "TSSEQ", "1..n within each TSPARMCD, in the order of the protocol document."),
        _method(
            "MT.QSSTRESC",
            "Standardized result",
            "The item's value on the form (0-3) for the answer text in QSORRES, as text "
            "(QSSTRESC) and number (QSSTRESN); the collected total as collected.",
        ),
        _method(
            "MT.QSSTAT",
            "Not done",
            "NOT DONE for an unanswered item of a collected questionnaire (QSREASND NOT "
            "ANSWERED) and for a QSALL record: a scheduled questionnaire of a randomized "
            "participant whose visit window ended on or before the data cut-off and before the "
            "participant's end of study, with no record for that visit.",
        ),
        _method(
            "MT.QSLOBXFL",
            "Last observation before exposure",
            "Y on the last record with a result per USUBJID and QSTESTCD dated on or before "
            "RFSTDTC (randomization, when the digital therapy starts; questionnaires of that "
            "day are completed before the app is first used).",
        ),
        _method(
            "MT.VISITNUM",
            "Visit number",
            "1 for the screening visit; the protocol's visits follow in the order of their "
            "target day (baseline is 2).",
        ),
        _method(
            "MT.VISITDY",
            "Planned visit day",
            "Target day of the visit from randomization converted to a study day (day 0 -> 1, "
            "day n > 0 -> n + 1, negative days unchanged); empty for screening.",
        ),
        _method(
            "MT.SVDTC",
            "Visit dates",
            "Screening: the screening date. Scheduled visits: the first (SVSTDTC) and last "
            "(SVENDTC) date of the questionnaires recorded for the visit.",
        ),
        _method(
            "MT.SSTDTC",
            "Study start",
            "The earliest informed consent date of any participant.",
        ),
    )
}

COMMENTS: dict[str, Comment] = {
    c.oid: c
    for c in (
        Comment(
            "COM.DM.RFSTDTC",
            "The digital therapy starts at randomization: RFSTDTC is the randomization date, "
            "RFXSTDTC/RFXENDTC the first and last day of app use.",
        ),
        Comment("COM.DM.SEX", "Sex is not collected by the platform: SEX is U (unknown) for everyone."),
        Comment(
            "COM.DM.RACE", "Race and ethnicity are not collected by the platform: RACE and ETHNIC are empty."
        ),
        Comment(
            "COM.DM.ARMNRS",
            "ARMNRS values follow the SDTMIG 3.3+ DM assumptions (codelist ARMNULRS, not yet attached).",
        ),
        Comment(
            "COM.AE.MEDDRA",
            "MedDRA coding is not done by the platform: AEDECOD, AEBODSYS and the other MedDRA "
            "variables are empty and must be coded before submission.",
        ),
        Comment(
            "COM.AE.ACN",
            "The digital therapy (the app) is the study treatment: AEACN is the action with the "
            "app in ACN terms, AEACNDEV the same action in the app's own words (sponsor-defined).",
        ),
        Comment(
            "COM.DS.DSTERM",
            "Verbatim reason as recorded; for completion and protocol milestones the standard "
            "term; for screen failures the failed eligibility rules. Text over 200 characters "
            "continues in SUPPDS (QNAM DSTERM1, DSTERM2, ...), cut before a blank: the parts "
            "joined as they are (each continuation begins with that blank) give the text back.",
        ),
        Comment(
            "COM.DS.OTHER",
            "Intercurrent events of the digital therapy (ICH E9(R1)) are DSCAT OTHER EVENT with a "
            "sponsor-defined DSDECOD; the other treatment started or changed is in SUPPDS "
            "(QNAM OTHTRT).",
        ),
        Comment(
            "COM.EX.EXTRT",
            "One record per day of app use (at least one session). EXTRT is the app's name; its "
            "version is in SUPPEX (QNAM EXAPPVER); sessions, minutes and modules completed are in "
            "SUPPEX (EXSESS, EXMIN, EXMODS).",
        ),
        Comment(
            "COM.EX.DOSE",
            "A digital therapy has no dose: EXDOSE, EXDOSU and EXDOSFRM are empty; the amount of "
            "use is in SUPPEX (sessions, minutes, modules completed).",
        ),
        Comment(
            "COM.QS.DATASET",
            "Collected item responses and the collected screening PHQ-9 total. Derived and "
            "prorated totals are in ADaM (ADQS), not here. A missed scheduled questionnaire is "
            "one QSTESTCD QSALL record with QSSTAT NOT DONE.",
        ),
        Comment(
            "COM.TS.TBLIND",
            "From the protocol's blinded roles: OPEN LABEL when none of participant, investigator "
            "and outcome assessor is blinded, SINGLE BLIND when one is, DOUBLE BLIND when two or "
            "more are.",
        ),
        Comment(
            "COM.TS.TSVCDVER",
            "The version of CDISC CT the coded value (TSVALCD) comes from.",
        ),
        Comment(
            "COM.TS.TSPARM",
            "TSPARM carries the NCI code of its TSPARMCD term (the two codelists pair their terms "
            "by concept code). Names not read in the terminology module's source are the SDTM CT "
            "names as the project records them; confirm them against the CT before submission.",
        ),
    )
}


# -- small helpers ----------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _date(value: Any, where: str) -> date | None:
    """A clinical date as `datetime.date` (None when missing); anything else is refused."""
    if _missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise SdtmInputError(f"{where}: {value!r} is not a date")


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _int(value: Any, where: str) -> int | None:
    if _missing(value):
        return None
    if isinstance(value, bool):
        raise SdtmInputError(f"{where}: {value!r} is not a whole number")
    number = float(value)
    if not number.is_integer():
        raise SdtmInputError(f"{where}: {value!r} is not a whole number")
    return int(number)


def study_day(on: date | None, reference: date | None) -> int | None:
    """SDTM study day of `on` relative to `reference` (RFSTDTC): day 1 is the reference day,
    the day before it is -1 (there is no day 0)."""
    if on is None or reference is None:
        return None
    delta = (on - reference).days
    return delta + 1 if delta >= 0 else delta


def split_text(text: str, limit: int = TRANSPORT_TEXT_MAX) -> list[str]:
    """Split ASCII `text` into parts of at most `limit` bytes, cut between words where it can.

    A part never ends with a blank (the transport file pads values with blanks, so a trailing
    blank would be lost): the cut is made before a blank, and the next part begins with it.
    The parts joined as they are give the text back exactly. Without a blank to cut at, the
    text is cut at the limit."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = next((i for i in range(limit, 0, -1) if rest[i] == " " and rest[i - 1] != " "), limit)
        parts.append(rest[:cut])
        rest = rest[cut:]
    parts.append(rest)
    return parts


def _ascii(text: str) -> bool:
    return text.isascii()


def _v(
    name: str,
    label: str,
    data_type: DataType,
    origin: Origin,
    core: Core,
    role: str,
    *,
    source: OriginSource | None = None,
    codelist: str | None = None,
    method: str | None = None,
    comment: str | None = None,
) -> Variable:
    return Variable(
        name,
        label,
        data_type,
        origin,
        core,
        role,
        source=source,
        codelist=codelist,
        method=method,
        comment=comment,
    )


STUDYID = _v("STUDYID", "Study Identifier", "text", "Protocol", "Req", "Identifier")
USUBJID = _v(
    "USUBJID", "Unique Subject Identifier", "text", "Derived", "Req", "Identifier", method="MT.USUBJID"
)


def _domain(name: str) -> Variable:
    return _v("DOMAIN", "Domain Abbreviation", "text", "Assigned", "Req", "Identifier", codelist="DOMAIN")


def _seq(prefix: str) -> Variable:
    return _v(
        f"{prefix}SEQ", "Sequence Number", "integer", "Derived", "Req", "Identifier", method=f"MT.{prefix}SEQ"
    )


EPOCH_VAR = _v("EPOCH", "Epoch", "text", "Derived", "Perm", "Timing", codelist="EPOCH", method="MT.EPOCH")


def _dy(name: str, label: str) -> Variable:
    return _v(name, label, "integer", "Derived", "Perm", "Timing", method="MT.STUDYDAY")


def _frame(dataset: Dataset, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The dataset's frame: its variables in order, typed by the metadata conventions."""
    columns: dict[str, Any] = {}
    for var in dataset.variables:
        values: list[Any] = [row.get(var.name) for row in rows]
        column: list[Any]
        if var.data_type == "integer":
            column = [pd.NA if _missing(v) else int(v) for v in values]
            columns[var.name] = pd.Series(column, dtype="Int64")
        elif var.data_type == "float":
            column = [math.nan if _missing(v) else float(v) for v in values]
            columns[var.name] = pd.Series(column, dtype="float64")
        else:
            column = [None if _missing(v) else v for v in values]
            columns[var.name] = pd.Series(column, dtype="object")
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def _check_text(name: str, dataset: Dataset, frame: pd.DataFrame) -> None:
    """Refuse text that SAS transport v5 cannot carry: non-ASCII, over 200 bytes, not text."""
    subjects = list(frame["USUBJID"]) if "USUBJID" in frame.columns else None
    for var in dataset.variables:
        if var.data_type not in ("text", "date"):
            continue
        for i, value in enumerate(frame[var.name]):
            if value is None:
                continue
            if isinstance(value, str) and value.isascii() and len(value) <= TRANSPORT_TEXT_MAX:
                continue  # an ASCII character is one byte
            who = f" of {subjects[i]}" if subjects is not None else ""
            if not isinstance(value, str):
                raise SdtmInputError(f"{name}.{var.name}{who}: {value!r} is not text")
            if not value.isascii():
                raise SdtmInputError(
                    f"{name}.{var.name}{who}: {value!r} contains non-ASCII characters; SAS transport "
                    "v5 carries ASCII only: correct the record at its source (no character is "
                    "replaced silently)"
                )
            raise SdtmInputError(
                f"{name}.{var.name}{who}: {len(value)} bytes, more than the {TRANSPORT_TEXT_MAX} "
                "that SAS transport v5 allows"
            )


def _number_seq(rows: list[dict[str, Any]], variable: str) -> None:
    """--SEQ 1..n per USUBJID, in the order of `rows` (already sorted)."""
    counters: dict[str, int] = {}
    for row in rows:
        n = counters.get(row["USUBJID"], 0) + 1
        counters[row["USUBJID"]] = n
        row[variable] = n


def _term(codelist: Codelist, value: str) -> Term:
    for term in codelist.terms:
        if term.value == value:
            return term
    raise SdtmInputError(f"{value!r} is not a term of codelist {codelist.name} in the terminology module")


# -- the context: look-ups shared by the domains -------------------------------------------------


@dataclass(frozen=True)
class _Supp:
    rdomain: str
    usubjid: str
    idvar: str | None
    idvarval: str | None
    qnam: str
    qlabel: str
    qval: str
    qorig: str


class _Context:
    def __init__(self, source: SdtmSource) -> None:
        self.source = source
        self.doc = source.document
        self.study_id = source.study_id
        raw = source.raw
        self.screening = raw.screening
        labels = [str(s) for s in raw.screening["subject"]]
        if len(set(labels)) != len(labels):
            raise SdtmInputError("raw.screening: a participant label occurs twice")
        self.screened = set(labels)
        self.rand: dict[str, date] = {}
        self.arm: dict[str, Arm] = {}
        self.stratum: dict[str, str | None] = {}
        arms = {a.code: a for a in self.doc.arms}
        for row in raw.subjects.itertuples(index=False):
            subject = str(row.subject)
            if subject not in self.screened:
                raise SdtmInputError(f"raw.subjects: participant {subject} is randomized but not screened")
            if row.arm not in arms:
                raise SdtmInputError(
                    f"raw.subjects: participant {subject} has arm {row.arm!r}, not an arm of the protocol"
                )
            randomized = _date(row.randomized_on, f"raw.subjects.randomized_on of {subject}")
            if randomized is None:
                raise SdtmInputError(f"raw.subjects.randomized_on of {subject} is missing")
            self.rand[subject] = randomized
            self.arm[subject] = arms[str(row.arm)]
            self.stratum[subject] = None if _missing(row.stratum) else str(row.stratum)
        spec = dataset_spec_of(self.doc)
        self.treatment_end_day = spec.treatment_end_day
        self.visits = sorted(self.doc.visits, key=lambda v: v.day)
        self.visitnum = {v.code: SCREENING_VISITNUM + 1 + i for i, v in enumerate(self.visits)}
        self.end_of_study = self._end_of_study(source.disposition)
        self.use_days = self._use_days(raw.app_use)
        self.fatal = self._fatal(raw.adverse_events)
        self.last_record = self._last_records()

    def usubjid(self, subject: str) -> str:
        return usubjid(self.study_id, subject)

    def known(self, subject: str, where: str) -> str:
        if subject not in self.screened:
            raise SdtmInputError(f"{where}: participant {subject} is not in the screening records (DM)")
        return subject

    def epoch(self, subject: str, on: date | None) -> str | None:
        if on is None:
            return None
        start = self.rand.get(subject)
        if start is None or on < start:
            return _term(ct.EPOCH, "SCREENING").value
        if (on - start).days <= self.treatment_end_day:
            return _term(ct.EPOCH, "TREATMENT").value
        return _term(ct.EPOCH, "FOLLOW-UP").value

    def day(self, subject: str, on: date | None) -> int | None:
        return study_day(on, self.rand.get(subject))

    def _end_of_study(self, disposition: pd.DataFrame) -> dict[str, date]:
        out: dict[str, date] = {}
        for row in disposition.itertuples(index=False):
            subject = self.known(str(row.subject), "disposition")
            if row.kind not in END_OF_STUDY_KINDS:
                continue
            if subject in out:
                raise SdtmInputError(
                    f"disposition: participant {subject} has two current end-of-study events"
                )
            on = _date(row.on, f"disposition.on of {subject}")
            if on is None:
                raise SdtmInputError(f"disposition.on of {subject} ({row.kind!s}) is missing")
            out[subject] = on
        return out

    def _use_days(self, app_use: pd.DataFrame) -> dict[str, list[tuple[date, Any]]]:
        out: dict[str, list[tuple[date, Any]]] = {}
        for row in app_use.itertuples(index=False):
            subject = self.known(str(row.subject), "raw.app_use")
            sessions = _int(row.sessions, f"raw.app_use.sessions of {subject}")
            if not sessions:
                continue
            day = _date(row.day, f"raw.app_use.day of {subject}")
            if day is None:
                raise SdtmInputError(f"raw.app_use.day of {subject} is missing")
            out.setdefault(subject, []).append((day, row))
        for days in out.values():
            days.sort(key=lambda item: item[0])
        return out

    def _fatal(self, adverse_events: pd.DataFrame) -> dict[str, date | None]:
        out: dict[str, date | None] = {}
        for row in adverse_events.itertuples(index=False):
            # A death is an AE with a fatal outcome, or serious because it resulted in death.
            if row.outcome == "fatal" or bool(row.serious_death):
                subject = str(row.subject)
                when = _date(row.end_date, f"raw.adverse_events.end_date of {subject}")
                out[subject] = when if when is not None else out.get(subject)
        return out

    def _last_records(self) -> dict[str, date]:
        raw = self.source.raw
        last: dict[str, date] = {}

        def see(subject: Any, value: Any) -> None:
            on = _date(value, f"date of {subject}")
            if on is not None and (str(subject) not in last or on > last[str(subject)]):
                last[str(subject)] = on

        for row in raw.screening.itertuples(index=False):
            see(row.subject, row.screened_on)
            see(row.subject, row.consent_date)
        for subject, on in self.rand.items():
            see(subject, on)
        for row in raw.assessments.itertuples(index=False):
            see(row.subject, row.assessed_on)
        for row in raw.app_use.itertuples(index=False):
            see(row.subject, row.day)
        for row in raw.adverse_events.itertuples(index=False):
            see(row.subject, row.onset_date)
            see(row.subject, row.end_date)
        for row in self.source.disposition.itertuples(index=False):
            see(row.subject, row.on)
        return last


# -- DM ------------------------------------------------------------------------------------------


DM = Dataset(
    "DM",
    "Demographics",
    "SPECIAL PURPOSE",
    "One record per subject",
    ("STUDYID", "USUBJID"),
    (
        STUDYID,
        _domain("DM"),
        USUBJID,
        _v("SUBJID", "Subject Identifier for the Study", "text", "Assigned", "Req", "Topic"),
        _v(
            "RFSTDTC",
            "Subject Reference Start Date/Time",
            "date",
            "Derived",
            "Exp",
            "Record Qualifier",
            method="MT.RFSTDTC",
            comment="COM.DM.RFSTDTC",
        ),
        _v(
            "RFENDTC",
            "Subject Reference End Date/Time",
            "date",
            "Derived",
            "Exp",
            "Record Qualifier",
            method="MT.RFENDTC",
        ),
        _v(
            "RFXSTDTC",
            "Date/Time of First Study Treatment",
            "date",
            "Derived",
            "Exp",
            "Record Qualifier",
            method="MT.RFXSTDTC",
        ),
        _v(
            "RFXENDTC",
            "Date/Time of Last Study Treatment",
            "date",
            "Derived",
            "Exp",
            "Record Qualifier",
            method="MT.RFXENDTC",
        ),
        _v(
            "RFICDTC",
            "Date/Time of Informed Consent",
            "date",
            "Collected",
            "Exp",
            "Record Qualifier",
            source="Investigator",
        ),
        _v(
            "RFPENDTC",
            "Date/Time of End of Participation",
            "date",
            "Derived",
            "Exp",
            "Record Qualifier",
            method="MT.RFENDTC",
        ),
        _v("DTHDTC", "Date/Time of Death", "date", "Derived", "Exp", "Record Qualifier", method="MT.DTHDTC"),
        _v(
            "DTHFL",
            "Subject Death Flag",
            "text",
            "Derived",
            "Exp",
            "Record Qualifier",
            codelist="NY",
            method="MT.DTHFL",
        ),
        _v("SITEID", "Study Site Identifier", "text", "Assigned", "Req", "Record Qualifier"),
        _v("AGE", "Age", "integer", "Collected", "Exp", "Record Qualifier", source="Investigator"),
        _v("AGEU", "Age Units", "text", "Assigned", "Exp", "Variable Qualifier", codelist="AGEU"),
        _v("SEX", "Sex", "text", "Assigned", "Req", "Record Qualifier", codelist="SEX", comment="COM.DM.SEX"),
        _v("RACE", "Race", "text", "Not Available", "Exp", "Record Qualifier", comment="COM.DM.RACE"),
        _v("ETHNIC", "Ethnicity", "text", "Not Available", "Perm", "Record Qualifier", comment="COM.DM.RACE"),
        _v("ARMCD", "Planned Arm Code", "text", "Assigned", "Exp", "Record Qualifier", codelist="ARMCD"),
        _v(
            "ARM",
            "Description of Planned Arm",
            "text",
            "Assigned",
            "Exp",
            "Synonym Qualifier",
            codelist="ARM",
        ),
        _v(
            "ACTARMCD",
            "Actual Arm Code",
            "text",
            "Derived",
            "Exp",
            "Record Qualifier",
            codelist="ARMCD",
            method="MT.ACTARM",
        ),
        _v(
            "ACTARM",
            "Description of Actual Arm",
            "text",
            "Derived",
            "Exp",
            "Synonym Qualifier",
            codelist="ARM",
            method="MT.ACTARM",
        ),
        _v(
            "ARMNRS",
            "Reason Arm and/or Actual Arm is Null",
            "text",
            "Derived",
            "Exp",
            "Record Qualifier",
            method="MT.ARMNRS",
            comment="COM.DM.ARMNRS",
        ),
        _v(
            "ACTARMUD",
            "Description of Unplanned Actual Arm",
            "text",
            "Not Available",
            "Exp",
            "Record Qualifier",
        ),
        _v(
            "COUNTRY",
            "Country",
            "text",
            "Derived",
            "Req",
            "Record Qualifier",
            codelist="COUNTRY",
            method="MT.COUNTRY",
        ),
    ),
)


def _alpha3(alpha2: str, site: str) -> str:
    import pycountry

    country = pycountry.countries.get(alpha_2=alpha2)
    if country is None:
        raise SdtmInputError(f"sites.country of site {site}: {alpha2!r} is not an ISO 3166-1 alpha-2 code")
    return str(country.alpha_3)


def _dm(ctx: _Context, supp: list[_Supp]) -> list[dict[str, Any]]:
    sites = {str(r.code): r for r in ctx.source.sites.itertuples(index=False)}
    rows: list[dict[str, Any]] = []
    for row in ctx.screening.itertuples(index=False):
        subject = str(row.subject)
        usubjid = ctx.usubjid(subject)
        site = str(row.site)
        if site not in sites:
            raise SdtmInputError(f"DM.SITEID of {usubjid}: site {site} is not in the sites")
        randomized = ctx.rand.get(subject)
        arm = ctx.arm.get(subject)
        days = ctx.use_days.get(subject, [])
        armcd = arm.code if arm else None
        actarm: Arm | None = arm
        if randomized is None:
            armnrs: str | None = (
                ARMNRS_SCREEN_FAILURE if row.status == "screen_failed" else ARMNRS_NOT_ASSIGNED
            )
        elif arm is not None and arm.app_name is not None and not days:
            armnrs, actarm = ARMNRS_NOT_TREATED, None
        else:
            armnrs = None
        end = ctx.end_of_study.get(subject, ctx.last_record.get(subject))
        age = _int(row.age, f"raw.screening.age of {subject}")
        died = subject in ctx.fatal
        rows.append(
            {
                "STUDYID": ctx.study_id,
                "DOMAIN": "DM",
                "USUBJID": usubjid,
                "SUBJID": subject,
                "RFSTDTC": _iso(randomized),
                "RFENDTC": _iso(end) if randomized is not None else None,
                "RFXSTDTC": _iso(days[0][0]) if days else None,
                "RFXENDTC": _iso(days[-1][0]) if days else None,
                "RFICDTC": _iso(_date(row.consent_date, f"raw.screening.consent_date of {subject}")),
                "RFPENDTC": _iso(end),
                "DTHDTC": _iso(ctx.fatal.get(subject)),
                "DTHFL": YES_NO[True] if died else None,
                "SITEID": site,
                "AGE": age,
                "AGEU": _term(ct.AGEU, "YEARS").value if age is not None else None,
                "SEX": _term(ct.SEX, "U").value,
                "RACE": None,
                "ETHNIC": None,
                "ARMCD": armcd,
                "ARM": arm.name if arm else None,
                "ACTARMCD": actarm.code if actarm else None,
                "ACTARM": actarm.name if actarm else None,
                "ARMNRS": armnrs,
                "ACTARMUD": None,
                "COUNTRY": _alpha3(str(sites[site].country), site),
            }
        )
        stratum = ctx.stratum.get(subject)
        if stratum is not None:
            supp.append(
                _Supp("DM", usubjid, None, None, "RANDSTR", "Randomization Stratum", stratum, "Assigned")
            )
    rows.sort(key=lambda r: r["USUBJID"])
    return rows


# -- DS ------------------------------------------------------------------------------------------

DSDECOD_OTHER = "DSDECOD_OTHER"

DS = Dataset(
    "DS",
    "Disposition",
    "EVENTS",
    "One record per disposition status or protocol milestone per subject",
    ("STUDYID", "USUBJID", "DSSTDTC", "DSDECOD", "DSSEQ"),
    (
        STUDYID,
        _domain("DS"),
        USUBJID,
        _seq("DS"),
        _v(
            "DSTERM",
            "Reported Term for the Disposition Event",
            "text",
            "Collected",
            "Req",
            "Topic",
            source="Investigator",
            comment="COM.DS.DSTERM",
        ),
        _v(
            "DSDECOD",
            "Standardized Disposition Term",
            "text",
            "Assigned",
            "Req",
            "Synonym Qualifier",
            comment="COM.DS.OTHER",
        ),
        _v(
            "DSCAT",
            "Category for Disposition Event",
            "text",
            "Assigned",
            "Perm",
            "Grouping Qualifier",
            codelist="DSCAT",
        ),
        EPOCH_VAR,
        _v(
            "DSSTDTC",
            "Start Date/Time of Disposition Event",
            "date",
            "Collected",
            "Exp",
            "Timing",
            source="Investigator",
        ),
        _dy("DSSTDY", "Study Day of Start of Disposition Event"),
    ),
)

_DS_ORDER = {"PROTOCOL MILESTONE": 0, "OTHER EVENT": 2, "DISPOSITION EVENT": 3}


def _failed_rules(text: Any, subject: str) -> str:
    if _missing(text) or not str(text).strip():
        return SCREEN_FAILURE
    try:
        reasons = json.loads(str(text))
        messages = [str(r["message"]) for r in reasons]
    except (ValueError, KeyError, TypeError) as exc:
        raise SdtmInputError(
            f"raw.screening.reasons of {subject}: not a list of failed rules ({exc})"
        ) from exc
    return "; ".join(messages) if messages else SCREEN_FAILURE


def _ds(ctx: _Context, supp: list[_Supp]) -> list[dict[str, Any]]:
    milestone = _term(ct.DSCAT, "PROTOCOL MILESTONE").value
    disposition = _term(ct.DSCAT, "DISPOSITION EVENT").value
    events: list[tuple[str, str, str, str, date, int, str | None]] = []
    # (subject, DSTERM, DSDECOD, DSCAT, date, order, other treatment)
    for row in ctx.screening.itertuples(index=False):
        subject = str(row.subject)
        consent = _date(row.consent_date, f"raw.screening.consent_date of {subject}")
        if consent is not None:
            term = _term(ct.PROTMLST, "INFORMED CONSENT OBTAINED").value
            events.append((subject, term, term, milestone, consent, 0, None))
        if row.status == "screen_failed":
            screened = _date(row.screened_on, f"raw.screening.screened_on of {subject}")
            if screened is None:
                raise SdtmInputError(f"raw.screening.screened_on of {subject} is missing")
            decod = _term(ct.NCOMPLT, SCREEN_FAILURE).value
            events.append(
                (subject, _failed_rules(row.reasons, subject), decod, disposition, screened, 3, None)
            )
    for subject, randomized in ctx.rand.items():
        term = _term(ct.PROTMLST, "RANDOMIZED").value
        events.append((subject, term, term, milestone, randomized, 1, None))
    for row in ctx.source.disposition.itertuples(index=False):
        subject, kind = str(row.subject), str(row.kind)
        if kind not in SDTM["DSDECOD"]:
            raise SdtmInputError(f"disposition.kind of {subject}: {kind!r} is not a known kind")
        on = _date(row.on, f"disposition.on of {subject}")
        if on is None:
            raise SdtmInputError(f"disposition.on of {subject} ({kind}) is missing")
        decod, cat = SDTM["DSDECOD"][kind], SDTM["DSCAT"][kind]
        if kind == "completed":
            term = decod
        else:
            if _missing(row.reason) or not str(row.reason).strip():
                raise SdtmInputError(
                    f"DS.DSTERM of {ctx.usubjid(subject)}: the reason of the {kind} event is missing"
                )
            term = str(row.reason)
        other = None if _missing(row.other_treatment) else str(row.other_treatment)
        if other is not None and other not in OTHER_TREATMENT_VALUES:
            raise SdtmInputError(
                f"disposition.other_treatment of {subject}: {other!r} is not a known treatment"
            )
        events.append((subject, term, decod, cat, on, _DS_ORDER[cat], other))
    events.sort(key=lambda e: (ctx.usubjid(e[0]), e[4], e[5], e[1]))
    rows: list[dict[str, Any]] = []
    for subject, term, decod, cat, on, _order, other in events:
        usubjid = ctx.usubjid(subject)
        if not _ascii(term):
            raise SdtmInputError(
                f"DS.DSTERM of {usubjid}: {term!r} contains non-ASCII characters; SAS transport v5 "
                "carries ASCII only: correct the record at its source"
            )
        rows.append(
            {
                "STUDYID": ctx.study_id,
                "DOMAIN": "DS",
                "USUBJID": usubjid,
                "DSTERM": term,
                "DSDECOD": decod,
                "DSCAT": cat,
                "EPOCH": ctx.epoch(subject, on),
                "DSSTDTC": _iso(on),
                "DSSTDY": ctx.day(subject, on),
                "_other": other,
            }
        )
    _number_seq(rows, "DSSEQ")
    for record in rows:
        other = record.pop("_other")
        seq = str(record["DSSEQ"])
        parts = split_text(record["DSTERM"])
        record["DSTERM"] = parts[0]
        for n, part in enumerate(parts[1:], start=1):
            supp.append(
                _Supp(
                    "DS",
                    record["USUBJID"],
                    "DSSEQ",
                    seq,
                    f"DSTERM{n}",
                    f"Reported Term for Disp Event {n}",
                    part,
                    "Collected",
                )
            )
        if other is not None:
            supp.append(
                _Supp(
                    "DS",
                    record["USUBJID"],
                    "DSSEQ",
                    seq,
                    "OTHTRT",
                    "Other Treatment Started or Changed",
                    OTHER_TREATMENT_VALUES[other],
                    "Collected",
                )
            )
    return rows


# -- AE ------------------------------------------------------------------------------------------

_MEDDRA: tuple[tuple[str, str, DataType], ...] = (
    ("AELLT", "Lowest Level Term", "text"),
    ("AELLTCD", "Lowest Level Term Code", "integer"),
    ("AEDECOD", "Dictionary-Derived Term", "text"),
    ("AEPTCD", "Preferred Term Code", "integer"),
    ("AEHLT", "High Level Term", "text"),
    ("AEHLTCD", "High Level Term Code", "integer"),
    ("AEHLGT", "High Level Group Term", "text"),
    ("AEHLGTCD", "High Level Group Term Code", "integer"),
    ("AEBODSYS", "Body System or Organ Class", "text"),
    ("AEBDSYCD", "Body System or Organ Class Code", "integer"),
    ("AESOC", "Primary System Organ Class", "text"),
    ("AESOCCD", "Primary System Organ Class Code", "integer"),
)
_SERIOUS_LABELS = {
    "AESCONG": "Congenital Anomaly or Birth Defect",
    "AESDISAB": "Persist or Signif Disability/Incapacity",
    "AESDTH": "Results in Death",
    "AESHOSP": "Requires or Prolongs Hospitalization",
    "AESLIFE": "Is Life Threatening",
    "AESMIE": "Other Medically Important Serious Event",
}
# The serious criteria flags in SDTMIG order (alphabetical), each from our criterion.
_SERIOUS_ORDER = sorted(SERIOUS_CRITERION_VARIABLES.items(), key=lambda item: item[1])

AE = Dataset(
    "AE",
    "Adverse Events",
    "EVENTS",
    "One record per adverse event per subject",
    ("STUDYID", "USUBJID", "AETERM", "AESTDTC", "AESEQ"),
    (
        STUDYID,
        _domain("AE"),
        USUBJID,
        _seq("AE"),
        _v(
            "AETERM",
            "Reported Term for the Adverse Event",
            "text",
            "Collected",
            "Req",
            "Topic",
            source="Investigator",
        ),
        *(
            _v(
                name,
                label,
                dtype,
                "Not Available",
                "Req" if name == "AEDECOD" else "Exp",
                "Synonym Qualifier" if name == "AEDECOD" else "Variable Qualifier",
                comment="COM.AE.MEDDRA",
            )
            for name, label, dtype in _MEDDRA
        ),
        _v(
            "AESEV",
            "Severity/Intensity",
            "text",
            "Collected",
            "Perm",
            "Record Qualifier",
            source="Investigator",
            codelist="AESEV",
        ),
        _v(
            "AESER",
            "Serious Event",
            "text",
            "Collected",
            "Exp",
            "Record Qualifier",
            source="Investigator",
            codelist="NY",
        ),
        _v(
            "AEACN",
            "Action Taken with Study Treatment",
            "text",
            "Collected",
            "Exp",
            "Record Qualifier",
            source="Investigator",
            codelist="ACN",
            comment="COM.AE.ACN",
        ),
        _v(
            "AEACNDEV",
            "Action Taken with Device",
            "text",
            "Collected",
            "Perm",
            "Record Qualifier",
            source="Investigator",
            codelist="AEACNDEV",
            comment="COM.AE.ACN",
        ),
        _v(
            "AEREL",
            "Causality",
            "text",
            "Collected",
            "Exp",
            "Record Qualifier",
            source="Investigator",
            codelist="AEREL",
        ),
        _v(
            "AEOUT",
            "Outcome of Adverse Event",
            "text",
            "Collected",
            "Perm",
            "Record Qualifier",
            source="Investigator",
            codelist="OUT",
        ),
        *(
            _v(
                flag,
                _SERIOUS_LABELS[flag],
                "text",
                "Collected",
                "Perm",
                "Record Qualifier",
                source="Investigator",
                codelist="NY",
            )
            for _criterion, flag in _SERIOUS_ORDER
        ),
        EPOCH_VAR,
        _v(
            "AESTDTC",
            "Start Date/Time of Adverse Event",
            "date",
            "Collected",
            "Exp",
            "Timing",
            source="Investigator",
        ),
        _v(
            "AEENDTC",
            "End Date/Time of Adverse Event",
            "date",
            "Collected",
            "Exp",
            "Timing",
            source="Investigator",
        ),
        _dy("AESTDY", "Study Day of Start of Adverse Event"),
        _dy("AEENDY", "Study Day of End of Adverse Event"),
    ),
)


def _ae(ctx: _Context, supp: list[_Supp]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for row in ctx.source.raw.adverse_events.itertuples(index=False):
        subject = ctx.known(str(row.subject), "raw.adverse_events")
        usubjid = ctx.usubjid(subject)
        onset = _date(row.onset_date, f"raw.adverse_events.onset_date of {subject}")
        end = _date(row.end_date, f"raw.adverse_events.end_date of {subject}")
        record: dict[str, Any] = {
            "STUDYID": ctx.study_id,
            "DOMAIN": "AE",
            "USUBJID": usubjid,
            "AETERM": str(row.term),
            "AESEV": _mapped("AESEV", row.severity, usubjid),
            "AESER": YES_NO[bool(row.serious)],
            "AEACN": _mapped("AEACN", row.action, usubjid),
            "AEACNDEV": _mapped("AEACNDEV", row.action, usubjid),
            "AEREL": _mapped("AEREL", row.relatedness, usubjid),
            "AEOUT": _mapped("AEOUT", row.outcome, usubjid),
            "EPOCH": ctx.epoch(subject, onset),
            "AESTDTC": _iso(onset),
            "AEENDTC": _iso(end),
            "AESTDY": ctx.day(subject, onset),
            "AEENDY": ctx.day(subject, end),
        }
        for criterion, flag in SERIOUS_CRITERION_VARIABLES.items():
            record[flag] = YES_NO[bool(getattr(row, f"serious_{criterion}"))]
        rows.append(record)
    rows.sort(key=lambda r: (r["USUBJID"], r["AESTDTC"] or "", r["AETERM"], r["AEENDTC"] or ""))
    _number_seq(rows, "AESEQ")
    return rows


def _mapped(variable: str, code: Any, usubjid: str) -> str:
    table = SDTM[variable]
    if code not in table:
        raise SdtmInputError(f"AE.{variable} of {usubjid}: {code!r} is not a known value")
    return table[code]


# -- QS ------------------------------------------------------------------------------------------

QS = Dataset(
    "QS",
    "Questionnaires",
    "FINDINGS",
    "One record per questionnaire per question per time point per visit per subject",
    ("STUDYID", "USUBJID", "QSCAT", "QSTESTCD", "VISITNUM"),
    (
        STUDYID,
        _domain("QS"),
        USUBJID,
        _seq("QS"),
        _v("QSTESTCD", "Question Short Name", "text", "Assigned", "Req", "Topic", codelist="QSTESTCD"),
        _v("QSTEST", "Question Name", "text", "Assigned", "Req", "Synonym Qualifier", codelist="QSTEST"),
        _v(
            "QSCAT", "Category of Question", "text", "Assigned", "Req", "Grouping Qualifier", codelist="QSCAT"
        ),
        _v(
            "QSORRES",
            "Finding in Original Units",
            "text",
            "Collected",
            "Exp",
            "Result Qualifier",
            source="Subject",
        ),
        _v(
            "QSSTRESC",
            "Character Result/Finding in Std Format",
            "text",
            "Derived",
            "Exp",
            "Result Qualifier",
            method="MT.QSSTRESC",
        ),
        _v(
            "QSSTRESN",
            "Numeric Finding in Standard Units",
            "integer",
            "Derived",
            "Exp",
            "Result Qualifier",
            method="MT.QSSTRESC",
        ),
        _v(
            "QSSTAT",
            "Completion Status",
            "text",
            "Derived",
            "Perm",
            "Record Qualifier",
            codelist="ND",
            method="MT.QSSTAT",
        ),
        _v(
            "QSREASND",
            "Reason Not Performed",
            "text",
            "Derived",
            "Perm",
            "Record Qualifier",
            method="MT.QSSTAT",
        ),
        _v(
            "QSLOBXFL",
            "Last Observation Before Exposure Flag",
            "text",
            "Derived",
            "Exp",
            "Record Qualifier",
            codelist="NY",
            method="MT.QSLOBXFL",
        ),
        _v("VISITNUM", "Visit Number", "integer", "Assigned", "Exp", "Timing", method="MT.VISITNUM"),
        _v("VISIT", "Visit Name", "text", "Protocol", "Perm", "Timing"),
        EPOCH_VAR,
        _v("QSDTC", "Date/Time of Finding", "date", "Collected", "Exp", "Timing", source="Subject"),
        _dy("QSDY", "Study Day of Finding"),
        _v("QSEVLINT", "Evaluation Interval", "text", "Assigned", "Perm", "Timing"),
    ),
    comment="COM.QS.DATASET",
)


@dataclass(frozen=True)
class _Test:
    """A QS test: code, name, the instrument, the options of its answers (None: a total)."""

    testcd: str
    test: str
    instrument: Instrument
    options: tuple[ResponseOption, ...] | None
    rank: int


_TEST_CODELISTS = {"PHQ-9": (ct.PHQ01TC, ct.PHQ01TN), "GAD-7": (ct.GAD02TC, ct.GAD02TN)}


def _ct_name(instrument: Instrument, testcd: str) -> str | None:
    """QSTEST of `testcd` in the CDISC test-code codelist of the terminology module, if any."""
    lists = _TEST_CODELISTS.get(instrument.code)
    if lists is None:
        return None
    for term in lists[0].terms:
        if term.value == testcd:
            return term.decode
    return None


def _tests(instrument: Instrument) -> list[_Test]:
    """The instrument's QS tests (items, then the total). QSTEST is the CDISC CT name from the
    terminology module (what the QSTEST codelist holds); the catalogue's label only where CT
    gives none. An instrument without CDISC codes is refused: codes are never made up."""
    missing = [f"item {i.number}" for i in instrument.items if i.cdisc_testcd is None]
    if instrument.cdisc_qscat is None or instrument.cdisc_total_testcd is None or missing:
        raise SdtmInputError(
            f"QS: instrument {instrument.code} has no CDISC QSCAT/QSTESTCD in the instrument "
            f"catalogue (protocols.instruments){' for ' + ', '.join(missing) if missing else ''}: its "
            "records cannot be submitted until the codes are confirmed in SDTM CT and added there"
        )
    out = []
    entries: list[tuple[str, str | None, tuple[ResponseOption, ...] | None, int]] = [
        (
            str(item.cdisc_testcd),
            item.cdisc_test_label,
            instrument.response_options if item.scored else instrument.difficulty_options,
            item.number,
        )
        for item in instrument.items
    ]
    entries.append((instrument.cdisc_total_testcd, instrument.cdisc_total_test_label, None, 99))
    for testcd, label, options, rank in entries:
        name = _ct_name(instrument, testcd) or label
        if name is None:
            raise SdtmInputError(
                f"QS: no QSTEST for {testcd} ({instrument.code}) in the terminology module or the "
                "instrument catalogue: add the CDISC CT test name before building QS"
            )
        out.append(_Test(testcd, name, instrument, options, rank))
    return out


_INSTRUMENT_RANK = {code: i for i, code in enumerate(INSTRUMENTS)}


def _qs(ctx: _Context, supp: list[_Supp]) -> tuple[list[dict[str, Any]], list[_Test]]:
    tests: dict[str, list[_Test]] = {}
    used: dict[str, _Test] = {}

    def tests_of(code: str) -> list[_Test]:
        if code not in tests:
            tests[code] = _tests(get_instrument(code))
        return tests[code]

    rows: list[dict[str, Any]] = []

    def base(
        subject: str, instrument: Instrument, visitnum: int, visit: str, on: date | None
    ) -> dict[str, Any]:
        return {
            "STUDYID": ctx.study_id,
            "DOMAIN": "QS",
            "USUBJID": ctx.usubjid(subject),
            "QSCAT": instrument.cdisc_qscat,
            "VISITNUM": visitnum,
            "VISIT": visit,
            "EPOCH": ctx.epoch(subject, on),
            "QSDTC": _iso(on),
            "QSDY": ctx.day(subject, on),
            "QSEVLINT": instrument.recall_evlint if on is not None else None,
            "_date": on,
            "_irank": _INSTRUMENT_RANK[instrument.code],
        }

    # The collected screening PHQ-9 total, at the screening visit.
    phq9 = get_instrument("PHQ-9")
    for row in ctx.screening.itertuples(index=False):
        subject = str(row.subject)
        score = _int(row.screening_phq9, f"raw.screening.screening_phq9 of {subject}")
        if score is None:
            continue
        total = tests_of("PHQ-9")[-1]
        screened = _date(row.screened_on, f"raw.screening.screened_on of {subject}")
        record = base(subject, phq9, SCREENING_VISITNUM, SCREENING_VISIT, screened)
        record.update(
            QSTESTCD=total.testcd,
            QSTEST=total.test,
            QSORRES=str(score),
            QSSTRESC=str(score),
            QSSTRESN=score,
            _trank=total.rank,
        )
        used[total.testcd] = total
        rows.append(record)

    done: set[tuple[str, str, str]] = set()
    for row in ctx.source.raw.assessments.itertuples(index=False):
        subject = ctx.known(str(row.subject), "raw.assessments")
        usubjid = ctx.usubjid(subject)
        try:
            visit = ctx.doc.visit(str(row.visit_code))
        except KeyError:
            raise SdtmInputError(
                f"QS.VISIT of {usubjid}: visit {row.visit_code!r} is not a visit of the protocol"
            ) from None
        instrument = get_instrument(str(row.instrument))
        on = _date(row.assessed_on, f"raw.assessments.assessed_on of {subject}")
        done.add((subject, visit.code, instrument.code))
        for test in tests_of(instrument.code):
            if test.options is None:
                continue  # totals are derived: ADaM, not QS
            where = f"QS.QSORRES of {usubjid} ({test.testcd}, visit {visit.code})"
            value = _int(getattr(row, f"item_{test.rank}"), where)
            record = base(subject, instrument, ctx.visitnum[visit.code], visit.name, on)
            record.update(QSTESTCD=test.testcd, QSTEST=test.test, _trank=test.rank)
            if value is None:
                record.update(QSSTAT=_term(ct.ND, NOT_DONE).value, QSREASND=NOT_ANSWERED)
            else:
                text = next((o.text for o in test.options if o.value == value), None)
                if text is None:
                    raise SdtmInputError(f"{where}: {value} is not an answer of the form")
                record.update(QSORRES=text, QSSTRESC=str(value), QSSTRESN=value)
            used[test.testcd] = test
            rows.append(record)

    # Missed scheduled questionnaires of randomized participants.
    for subject, randomized in ctx.rand.items():
        end = ctx.end_of_study.get(subject)
        for visit in ctx.visits:
            closes = randomized.toordinal() + visit.window[1]
            if closes > ctx.source.data_cutoff.toordinal() or (end is not None and closes >= end.toordinal()):
                continue
            for code in visit.instruments:
                if (subject, visit.code, code) in done:
                    continue
                instrument = get_instrument(code)
                tests_of(code)  # refuses an instrument without CDISC codes
                record = base(subject, instrument, ctx.visitnum[visit.code], visit.name, None)
                record.update(
                    QSTESTCD=QSALL, QSTEST=QSALL_TEST, QSSTAT=_term(ct.ND, NOT_DONE).value, _trank=0
                )
                rows.append(record)

    rows.sort(key=lambda r: (r["USUBJID"], r["VISITNUM"], r["_irank"], r["_trank"]))
    _lobxfl(ctx, rows)
    for record in rows:
        for key in ("_date", "_irank", "_trank"):
            record.pop(key)
    _number_seq(rows, "QSSEQ")
    return rows, sorted(used.values(), key=lambda t: (_INSTRUMENT_RANK[t.instrument.code], t.rank))


def _lobxfl(ctx: _Context, rows: list[dict[str, Any]]) -> None:
    last: dict[tuple[str, str], dict[str, Any]] = {}
    by_usubjid = {ctx.usubjid(s): r for s, r in ctx.rand.items()}
    for row in rows:
        start = by_usubjid.get(row["USUBJID"])
        on = row["_date"]
        if start is None or on is None or on > start or row.get("QSSTAT") is not None:
            continue
        key = (row["USUBJID"], row["QSTESTCD"])
        held = last.get(key)
        if held is None or (on, row["VISITNUM"]) >= (held["_date"], held["VISITNUM"]):
            last[key] = row
    for row in last.values():
        row["QSLOBXFL"] = YES_NO[True]


def _answer_codelists(tests: Iterable[_Test]) -> tuple[dict[str, Codelist], list[ValueLevel]]:
    """Sponsor-defined original and standardized result codelists per instrument and answer
    scale, and the value-level metadata of QSORRES, QSSTRESC and QSSTRESN per QSTESTCD."""
    codelists: dict[str, Codelist] = {}
    vlm: list[ValueLevel] = []
    for test in tests:
        where = (("QSTESTCD", test.testcd),)
        if test.options is None:
            vlm += [
                ValueLevel(
                    "QS",
                    "QSORRES",
                    where,
                    f"{test.test} (collected)",
                    "integer",
                    "Collected",
                    source="Investigator",
                ),
                ValueLevel("QS", "QSSTRESC", where, test.test, "integer", "Derived", method="MT.QSSTRESC"),
                ValueLevel("QS", "QSSTRESN", where, test.test, "integer", "Derived", method="MT.QSSTRESC"),
            ]
            continue
        stem = test.instrument.code.replace("-", "")
        scale = "DIF" if test.options == test.instrument.difficulty_options else ""
        orres, stresc = f"{stem}{scale}OR", f"{stem}{scale}STR"
        what = "difficulty" if scale else "frequency"
        codelists[orres] = Codelist(
            orres,
            f"{test.instrument.code} {what} answer (sponsor-defined)",
            None,
            tuple(Term(o.text, None) for o in test.options),
            False,
        )
        codelists[stresc] = Codelist(
            stresc,
            f"{test.instrument.code} {what} answer value (sponsor-defined)",
            None,
            tuple(Term(str(o.value), None, o.text) for o in test.options),
            False,
        )
        vlm += [
            ValueLevel(
                "QS", "QSORRES", where, test.test, "text", "Collected", source="Subject", codelist=orres
            ),
            ValueLevel(
                "QS", "QSSTRESC", where, test.test, "text", "Derived", codelist=stresc, method="MT.QSSTRESC"
            ),
            ValueLevel("QS", "QSSTRESN", where, test.test, "integer", "Derived", method="MT.QSSTRESC"),
        ]
    return codelists, vlm


def _test_codelists(tests: Sequence[_Test], with_qsall: bool) -> tuple[Codelist, Codelist]:
    """QSTESTCD and QSTEST codelists of the tests used: subsets of the CDISC test-code and
    test-name codelists (their NCI codes kept), plus QSALL (an SDTMIG convention, no code)."""
    codes: list[Term] = []
    names: list[Term] = []
    for test in tests:
        lists = _TEST_CODELISTS.get(test.instrument.code)
        code_term = next((t for t in lists[0].terms if t.value == test.testcd), None) if lists else None
        name_term = next((t for t in lists[1].terms if t.value == test.test), None) if lists else None
        codes.append(Term(test.testcd, code_term.nci_code if code_term else None, test.test))
        names.append(Term(test.test, name_term.nci_code if name_term else None))
    if with_qsall:
        codes.append(Term(QSALL, None, QSALL_TEST))
        names.append(Term(QSALL_TEST, None))
    sources = ", ".join(
        sorted({lst[0].name for t in tests if (lst := _TEST_CODELISTS.get(t.instrument.code))})
    )
    return (
        Codelist("QSTESTCD", f"Question Short Name (subset of {sources})", None, tuple(codes), False),
        Codelist("QSTEST", "Question Name (subset of the CDISC test names)", None, tuple(names), False),
    )


# -- EX ------------------------------------------------------------------------------------------

EX = Dataset(
    "EX",
    "Exposure",
    "INTERVENTIONS",
    "One record per day of app use per subject",
    ("STUDYID", "USUBJID", "EXTRT", "EXSTDTC"),
    (
        STUDYID,
        _domain("EX"),
        USUBJID,
        _seq("EX"),
        _v("EXTRT", "Name of Treatment", "text", "Protocol", "Req", "Topic", comment="COM.EX.EXTRT"),
        _v("EXDOSE", "Dose", "float", "Not Available", "Exp", "Record Qualifier", comment="COM.EX.DOSE"),
        _v(
            "EXDOSU",
            "Dose Units",
            "text",
            "Not Available",
            "Exp",
            "Variable Qualifier",
            comment="COM.EX.DOSE",
        ),
        _v(
            "EXDOSFRM",
            "Dose Form",
            "text",
            "Not Available",
            "Exp",
            "Variable Qualifier",
            comment="COM.EX.DOSE",
        ),
        EPOCH_VAR,
        _v("EXSTDTC", "Start Date/Time of Treatment", "date", "Collected", "Exp", "Timing", source="Vendor"),
        _v("EXENDTC", "End Date/Time of Treatment", "date", "Collected", "Exp", "Timing", source="Vendor"),
        _dy("EXSTDY", "Study Day of Start of Treatment"),
        _dy("EXENDY", "Study Day of End of Treatment"),
    ),
)

_EX_SUPP = (
    ("EXSESS", "Number of App Sessions", "sessions"),
    ("EXMIN", "Minutes of App Use", "minutes"),
    ("EXMODS", "Number of App Modules Completed", "modules_completed"),
)


def _ex(ctx: _Context, supp: list[_Supp]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for subject, days in ctx.use_days.items():
        arm = ctx.arm.get(subject)
        if arm is None or arm.app_name is None:
            where = "not randomized" if arm is None else f"randomized to {arm.code}, an arm without an app"
            raise SdtmInputError(
                f"EX of {ctx.usubjid(subject)}: app use is recorded but the participant is {where}"
            )
        for day, record in days:
            rows.append(
                {
                    "STUDYID": ctx.study_id,
                    "DOMAIN": "EX",
                    "USUBJID": ctx.usubjid(subject),
                    "EXTRT": arm.app_name,
                    "EPOCH": ctx.epoch(subject, day),
                    "EXSTDTC": _iso(day),
                    "EXENDTC": _iso(day),
                    "EXSTDY": ctx.day(subject, day),
                    "EXENDY": ctx.day(subject, day),
                    "_record": record,
                    "_version": arm.app_version,
                }
            )
    rows.sort(key=lambda r: (r["USUBJID"], r["EXSTDTC"]))
    _number_seq(rows, "EXSEQ")
    for row in rows:
        record, version = row.pop("_record"), row.pop("_version")
        seq = str(row["EXSEQ"])
        for qnam, qlabel, column in _EX_SUPP:
            value = _int(getattr(record, column), f"raw.app_use.{column} of {row['USUBJID']}")
            if value is not None:
                supp.append(_Supp("EX", row["USUBJID"], "EXSEQ", seq, qnam, qlabel, str(value), "Collected"))
        if version is not None:
            supp.append(
                _Supp("EX", row["USUBJID"], "EXSEQ", seq, "EXAPPVER", "App Version", str(version), "Protocol")
            )
    return rows


# -- SV ------------------------------------------------------------------------------------------

SV = Dataset(
    "SV",
    "Subject Visits",
    "SPECIAL PURPOSE",
    "One record per actual visit per subject",
    ("STUDYID", "USUBJID", "VISITNUM"),
    (
        STUDYID,
        _domain("SV"),
        USUBJID,
        _v("VISITNUM", "Visit Number", "integer", "Assigned", "Req", "Topic", method="MT.VISITNUM"),
        _v("VISIT", "Visit Name", "text", "Protocol", "Perm", "Synonym Qualifier"),
        _v(
            "VISITDY",
            "Planned Study Day of Visit",
            "integer",
            "Derived",
            "Perm",
            "Timing",
            method="MT.VISITDY",
        ),
        EPOCH_VAR,
        _v(
            "SVSTDTC", "Start Date/Time of Observation", "date", "Derived", "Exp", "Timing", method="MT.SVDTC"
        ),
        _v("SVENDTC", "End Date/Time of Observation", "date", "Derived", "Exp", "Timing", method="MT.SVDTC"),
        _dy("SVSTDY", "Study Day of Start of Observation"),
        _dy("SVENDY", "Study Day of End of Observation"),
    ),
)


def _planned_day(visit: Visit) -> int:
    return visit.day + 1 if visit.day >= 0 else visit.day


def _sv(ctx: _Context, supp: list[_Supp]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(
        subject: str, visitnum: int, name: str, planned: int | None, first: date | None, last: date | None
    ) -> None:
        rows.append(
            {
                "STUDYID": ctx.study_id,
                "DOMAIN": "SV",
                "USUBJID": ctx.usubjid(subject),
                "VISITNUM": visitnum,
                "VISIT": name,
                "VISITDY": planned,
                "EPOCH": ctx.epoch(subject, first),
                "SVSTDTC": _iso(first),
                "SVENDTC": _iso(last),
                "SVSTDY": ctx.day(subject, first),
                "SVENDY": ctx.day(subject, last),
            }
        )

    for row in ctx.screening.itertuples(index=False):
        subject = str(row.subject)
        screened = _date(row.screened_on, f"raw.screening.screened_on of {subject}")
        add(subject, SCREENING_VISITNUM, SCREENING_VISIT, None, screened, screened)
    spans: dict[tuple[str, str], tuple[date, date]] = {}
    for row in ctx.source.raw.assessments.itertuples(index=False):
        subject = ctx.known(str(row.subject), "raw.assessments")
        on = _date(row.assessed_on, f"raw.assessments.assessed_on of {subject}")
        code = str(row.visit_code)
        if code not in ctx.visitnum:
            raise SdtmInputError(
                f"SV.VISIT of {ctx.usubjid(subject)}: visit {code!r} is not a visit of the protocol"
            )
        if on is None:
            raise SdtmInputError(f"raw.assessments.assessed_on of {subject} ({code}) is missing")
        first, last = spans.get((subject, code), (on, on))
        spans[(subject, code)] = (min(first, on), max(last, on))
    for (subject, code), (first, last) in spans.items():
        visit = ctx.doc.visit(code)
        add(subject, ctx.visitnum[code], visit.name, _planned_day(visit), first, last)
    rows.sort(key=lambda r: (r["USUBJID"], r["VISITNUM"]))
    return rows


# -- TS ------------------------------------------------------------------------------------------

TS = Dataset(
    "TS",
    "Trial Summary",
    "TRIAL DESIGN",
    "One record per trial summary parameter value",
    ("STUDYID", "TSPARMCD", "TSSEQ"),
    (
        STUDYID,
        _domain("TS"),
        _v("TSSEQ", "Sequence Number", "integer", "Derived", "Req", "Identifier", method="MT.TSSEQ"),
        _v("TSGRPID", "Group ID", "text", "Not Available", "Perm", "Identifier"),
        _v(
            "TSPARMCD",
            "Trial Summary Parameter Short Name",
            "text",
            "Assigned",
            "Req",
            "Topic",
            codelist="TSPARMCD",
        ),
        _v(
            "TSPARM",
            "Trial Summary Parameter",
            "text",
            "Assigned",
            "Req",
            "Synonym Qualifier",
            codelist="TSPARM",
            comment="COM.TS.TSPARM",
        ),
        _v("TSVAL", "Parameter Value", "text", "Protocol", "Exp", "Result Qualifier"),
        _v("TSVALNF", "Parameter Null Flavor", "text", "Assigned", "Perm", "Result Qualifier"),
        _v("TSVALCD", "Parameter Value Code", "text", "Assigned", "Exp", "Result Qualifier"),
        _v("TSVCDREF", "Name of the Reference Terminology", "text", "Assigned", "Exp", "Result Qualifier"),
        _v(
            "TSVCDVER",
            "Version of the Reference Terminology",
            "text",
            "Assigned",
            "Exp",
            "Result Qualifier",
            comment="COM.TS.TSVCDVER",
        ),
    ),
    repeating=False,
    reference_data=True,
)


def _blinding(doc: ProtocolDocument) -> str:
    masked = {"participant", "investigator", "outcome_assessor"} & set(doc.blinding.blinded_roles)
    value = "OPEN LABEL" if not masked else "SINGLE BLIND" if len(masked) == 1 else "DOUBLE BLIND"
    return _term(ct.TBLIND, value).value


def _ts_rows(ctx: _Context) -> list[tuple[str, str | None, Codelist | None]]:
    """(TSPARMCD, TSVAL, codelist of the value) in the document's order; a None value has the
    null flavor of `TS_NULL_FLAVOR`."""
    doc = ctx.doc
    out: list[tuple[str, str | None, Codelist | None]] = [
        ("TITLE", doc.trial.title, None),
        ("SPONSOR", doc.sponsor.name, None),
        ("REGID", doc.trial.registry_id, None),
        ("STYPE", _term(ct.STYPE, "INTERVENTIONAL").value, ct.STYPE),
    ]
    if doc.design.allocation == "parallel_group":
        out.append(("INTMODEL", _term(ct.INTMODEL, "PARALLEL").value, ct.INTMODEL))
    # Every protocol of the platform randomizes (the document requires a randomization section).
    out.append(("RANDOM", YES_NO[True], ct.NY))
    out.append(("TBLIND", _blinding(doc), ct.TBLIND))
    if doc.design.phase is not None:
        if doc.design.phase not in TPHASE_OF:
            raise SdtmInputError(
                f"TS.TSVAL (TPHASE): no TPHASE term for the protocol's phase {doc.design.phase!r} in "
                "the terminology module"
            )
        out.append(("TPHASE", _term(ct.TPHASE, TPHASE_OF[doc.design.phase]).value, ct.TPHASE))
    out.append(("NARMS", str(len(doc.arms)), None))
    out.append(("ACTSUB", str(len(ctx.rand)), None))
    out += [("TRT", str(a.app_name), None) for a in doc.arms if a.kind == "digital" and a.app_name]
    out.append(("AGEMIN", f"P{doc.eligibility.age.min}Y", None))
    out.append(
        ("AGEMAX", f"P{doc.eligibility.age.max}Y" if doc.eligibility.age.max is not None else None, None)
    )
    consents = [
        d
        for d in (_date(v, "raw.screening.consent_date") for v in ctx.screening["consent_date"])
        if d is not None
    ]
    if consents:
        out.append(("SSTDTC", min(consents).isoformat(), None))
    out.append(("SDTMVER", SDTM_VERSION, None))
    out.append(("SDTIGVER", SDTMIG_VERSION, None))
    return out


def _ts(ctx: _Context) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    extra = 0
    for parmcd, value, codelist in _ts_rows(ctx):
        _term(ct.TSPARMCD, parmcd)
        counters[parmcd] = counters.get(parmcd, 0) + 1
        term = _term(codelist, value) if codelist is not None and value is not None else None
        coded = term is not None and term.nci_code is not None
        parts: list[str | None] = [None]
        if value is not None:
            parts = list(split_text(value)) if _ascii(value) else [value]
        row: dict[str, Any] = {
            "STUDYID": ctx.study_id,
            "DOMAIN": "TS",
            "TSSEQ": counters[parmcd],
            "TSPARMCD": parmcd,
            "TSPARM": TS_PARAMETERS[parmcd],
            "TSVAL": parts[0],
            "TSVALNF": TS_NULL_FLAVOR[parmcd] if value is None else None,
            "TSVALCD": term.nci_code if coded and term else None,
            "TSVCDREF": CDISC_CT if coded else None,
            "TSVCDVER": ct.SDTM_CT_VERSION if coded else None,
        }
        # SDTMIG TS assumption: a value over 200 characters continues in TSVAL1, TSVAL2, ...
        for n, part in enumerate(parts[1:], start=1):
            row[f"TSVAL{n}"] = part
        extra = max(extra, len(parts) - 1)
        rows.append(row)
    return rows, extra


def _ts_dataset(extra: int) -> Dataset:
    if not extra:
        return TS
    names = [v.name for v in TS.variables]
    at = names.index("TSVAL") + 1
    more = tuple(
        _v(f"TSVAL{n}", f"Parameter Value {n}", "text", "Protocol", "Perm", "Result Qualifier")
        for n in range(1, extra + 1)
    )
    return Dataset(
        TS.name,
        TS.label,
        TS.klass,
        TS.structure,
        TS.keys,
        (*TS.variables[:at], *more, *TS.variables[at:]),
        TS.comment,
        TS.repeating,
        TS.reference_data,
    )


def _tsparm_codelist(rows: Sequence[Mapping[str, Any]]) -> tuple[Codelist, Codelist]:
    codes, names = [], []
    for parmcd in dict.fromkeys(r["TSPARMCD"] for r in rows):
        name = TS_PARAMETERS[parmcd]
        known = next((t for t in ct.TSPARM.terms if t.value == name), None)
        code = _term(ct.TSPARMCD, parmcd)
        codes.append(Term(parmcd, code.nci_code or (known.nci_code if known else None), name))
        # TSPARMCD and TSPARM terms of one parameter share their NCI concept code (every TSPARM
        # name read in the terminology's source has its TSPARMCD term's code).
        names.append(Term(name, known.nci_code if known else code.nci_code))
    return (
        Codelist(
            ct.TSPARMCD.name, ct.TSPARMCD.label, ct.TSPARMCD.nci_code, tuple(codes), ct.TSPARMCD.extensible
        ),
        Codelist(ct.TSPARM.name, ct.TSPARM.label, ct.TSPARM.nci_code, tuple(names), ct.TSPARM.extensible),
    )


# -- SUPP-- --------------------------------------------------------------------------------------


def _supp_dataset(rdomain: str, parent: str) -> Dataset:
    return Dataset(
        f"SUPP{rdomain}",
        f"Supplemental Qualifiers for {parent}",
        "RELATIONSHIP",
        "One record per supplemental qualifier per related parent domain record",
        ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM"),
        (
            STUDYID,
            _v(
                "RDOMAIN",
                "Related Domain Abbreviation",
                "text",
                "Assigned",
                "Req",
                "Identifier",
                codelist="DOMAIN",
            ),
            USUBJID,
            _v("IDVAR", "Identifying Variable", "text", "Assigned", "Exp", "Identifier"),
            _v("IDVARVAL", "Identifying Variable Value", "text", "Assigned", "Exp", "Identifier"),
            _v("QNAM", "Qualifier Variable Name", "text", "Assigned", "Req", "Topic"),
            _v("QLABEL", "Qualifier Variable Label", "text", "Assigned", "Req", "Synonym Qualifier"),
            _v("QVAL", "Data Value", "text", "Collected", "Req", "Result Qualifier"),
            _v("QORIG", "Origin", "text", "Assigned", "Req", "Record Qualifier"),
            _v("QEVAL", "Evaluator", "text", "Not Available", "Exp", "Record Qualifier"),
        ),
    )


_SUPP_PARENTS = {"DM": "Demographics", "DS": "Disposition", "EX": "Exposure"}
_QORIG: dict[str, Origin] = {"Collected": "Collected", "Assigned": "Assigned", "Protocol": "Protocol"}


def _supp_frames(
    study_id: str, records: Sequence[_Supp]
) -> tuple[dict[str, Dataset], dict[str, list[dict[str, Any]]], list[ValueLevel]]:
    datasets: dict[str, Dataset] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    vlm: list[ValueLevel] = []
    for rdomain, parent in _SUPP_PARENTS.items():
        mine = [r for r in records if r.rdomain == rdomain]
        if not mine:
            continue
        dataset = _supp_dataset(rdomain, parent)
        datasets[dataset.name] = dataset
        mine.sort(key=lambda r: (r.usubjid, int(r.idvarval) if r.idvarval else 0, r.qnam))
        rows[dataset.name] = [
            {
                "STUDYID": study_id,
                "RDOMAIN": r.rdomain,
                "USUBJID": r.usubjid,
                "IDVAR": r.idvar,
                "IDVARVAL": r.idvarval,
                "QNAM": r.qnam,
                "QLABEL": r.qlabel,
                "QVAL": r.qval,
                "QORIG": r.qorig,
                "QEVAL": None,
            }
            for r in mine
        ]
        for qnam, first in {r.qnam: r for r in mine}.items():
            integer = qnam in {q for q, _l, _c in _EX_SUPP}
            vlm.append(
                ValueLevel(
                    dataset.name,
                    "QVAL",
                    (("QNAM", qnam),),
                    first.qlabel,
                    "integer" if integer else "text",
                    _QORIG[first.qorig],
                    source="Vendor" if integer else ("Investigator" if first.qorig == "Collected" else None),
                )
            )
    return datasets, rows, vlm


# -- codelists -----------------------------------------------------------------------------------


def _codelists(
    ctx: _Context,
    datasets: Mapping[str, Dataset],
    vlm: Sequence[ValueLevel],
    extra: Mapping[str, Codelist],
) -> dict[str, Codelist]:
    available: dict[str, Codelist] = dict(ct.CODELISTS)
    arms = ctx.doc.arms
    available["ARMCD"] = Codelist(
        "ARMCD",
        "Planned Arm Code (sponsor-defined, from the protocol)",
        None,
        tuple(Term(a.code, None, a.name) for a in arms),
        False,
    )
    available["ARM"] = sponsor_codelist("ARM", "Description of Planned Arm", (a.name for a in arms))
    available["AEREL"] = sponsor_codelist("AEREL", "Causality to the app", SDTM["AEREL"].values())
    available["AEACNDEV"] = sponsor_codelist(
        "AEACNDEV", "Action taken with the app", SDTM["AEACNDEV"].values()
    )
    available[DSDECOD_OTHER] = sponsor_codelist(
        DSDECOD_OTHER,
        "Intercurrent events of a digital therapy",
        (SDTM["DSDECOD"][k] for k in INTERCURRENT_KINDS),
    )
    available.update(extra)
    wanted = [v.codelist for d in datasets.values() for v in d.variables if v.codelist]
    wanted += [v.codelist for v in vlm if v.codelist]
    out: dict[str, Codelist] = {}
    for name in dict.fromkeys(wanted):
        if name not in available:
            raise SdtmInputError(f"codelist {name} is referenced but not defined")
        out[name] = available[name]
    return out


def _country_codelist(values: Iterable[str]) -> Codelist:
    """The countries of the trial's sites, as an enumerated subset of ISO 3166-1 alpha-3 (an
    external dictionary: no NCI codes), decoded with the country names of pycountry."""
    import pycountry

    terms = []
    for code in sorted(set(values)):
        country = pycountry.countries.get(alpha_3=code)
        terms.append(Term(code, None, str(country.name) if country is not None else None))
    return Codelist(
        "COUNTRY", "Country (ISO 3166-1 alpha-3, countries of the sites)", None, tuple(terms), False
    )


def _ds_value_level() -> list[ValueLevel]:
    """DSDECOD takes its terms from a different codelist per DSCAT."""
    return [
        ValueLevel(
            "DS",
            "DSDECOD",
            (("DSCAT", "DISPOSITION EVENT"),),
            "Standardized Disposition Term",
            "text",
            "Assigned",
            codelist="NCOMPLT",
        ),
        ValueLevel(
            "DS",
            "DSDECOD",
            (("DSCAT", "PROTOCOL MILESTONE"),),
            "Standardized Disposition Term",
            "text",
            "Assigned",
            codelist="PROTMLST",
        ),
        ValueLevel(
            "DS",
            "DSDECOD",
            (("DSCAT", "OTHER EVENT"),),
            "Standardized Disposition Term",
            "text",
            "Assigned",
            codelist=DSDECOD_OTHER,
            comment="COM.DS.OTHER",
        ),
    ]


def _ts_value_level(rows: Sequence[Mapping[str, Any]]) -> list[ValueLevel]:
    """TSVAL of the parameters whose value is derived rather than copied from the protocol."""
    present = {r["TSPARMCD"] for r in rows}
    out = []
    if "TBLIND" in present:
        out.append(
            ValueLevel(
                "TS",
                "TSVAL",
                (("TSPARMCD", "TBLIND"),),
                "Trial Blinding Schema",
                "text",
                "Derived",
                codelist="TBLIND",
                comment="COM.TS.TBLIND",
            )
        )
    if "SSTDTC" in present:
        out.append(
            ValueLevel(
                "TS",
                "TSVAL",
                (("TSPARMCD", "SSTDTC"),),
                "Study Start Date",
                "date",
                "Derived",
                method="MT.SSTDTC",
            )
        )
    return out


# -- the package ---------------------------------------------------------------------------------


def build_sdtm(source: SdtmSource, *, progress: Progress | None = None) -> Package:
    """The SDTM package (SDTMIG 3.4) of a trial: DM, DS, AE, QS, EX, SV, TS and the SUPP--
    datasets with records, with their Define-XML metadata.

    Parameters
    ----------
    source : SdtmSource
        The trial's records, protocol document, sites and data cut-off.
    progress : callable, optional
        ``progress(done, total, name)`` after each dataset.

    Returns
    -------
    Package
        ``folder`` "sdtm"; one frame per dataset, columns as the dataset's variables; the
        codelists, methods and comments the datasets refer to; value-level metadata of QS
        results (per QSTESTCD), DS.DSDECOD (per DSCAT) and SUPP-- QVAL (per QNAM).

    Raises
    ------
    SdtmInputError
        A record that cannot be submitted as it is (non-ASCII free text, an unknown visit,
        arm or site, an instrument without CDISC codes, ...): the message names the record,
        the dataset and variable, and the rule.
    """
    steps = ("DM", "DS", "AE", "QS", "EX", "SV", "TS", "SUPP--")
    total = len(steps)

    def tick(done: int) -> None:
        if progress is not None:
            progress(done, total, steps[done - 1])

    ctx = _Context(source)
    supp: list[_Supp] = []
    rows: dict[str, list[dict[str, Any]]] = {}
    datasets: dict[str, Dataset] = {}
    builders: tuple[tuple[Dataset, Callable[[_Context, list[_Supp]], list[dict[str, Any]]]], ...] = (
        (DM, _dm),
        (DS, _ds),
        (AE, _ae),
    )
    for done, (dataset, build) in enumerate(builders, start=1):
        rows[dataset.name] = build(ctx, supp)
        datasets[dataset.name] = dataset
        tick(done)
    qs_rows, tests = _qs(ctx, supp)
    rows["QS"], datasets["QS"] = qs_rows, QS
    tick(4)
    rows["EX"], datasets["EX"] = _ex(ctx, supp), EX
    tick(5)
    rows["SV"], datasets["SV"] = _sv(ctx, supp), SV
    tick(6)
    ts_rows, extra = _ts(ctx)
    rows["TS"], datasets["TS"] = ts_rows, _ts_dataset(extra)
    supp_datasets, supp_rows, supp_vlm = _supp_frames(ctx.study_id, supp)
    datasets.update(supp_datasets)
    rows.update(supp_rows)
    tick(7)

    frames = {name: _frame(datasets[name], rows[name]) for name in datasets}
    for name, frame in frames.items():
        _check_text(name, datasets[name], frame)

    answer_lists, qs_vlm = _answer_codelists(tests)
    testcd, test = _test_codelists(tests, with_qsall=bool((frames["QS"]["QSTESTCD"] == QSALL).any()))
    tsparmcd, tsparm = _tsparm_codelist(ts_rows)
    country = _country_codelist(frames["DM"]["COUNTRY"])
    vlm = [*qs_vlm, *_ds_value_level(), *_ts_value_level(ts_rows), *supp_vlm]
    codelists = _codelists(
        ctx,
        datasets,
        vlm,
        {
            **answer_lists,
            "QSTESTCD": testcd,
            "QSTEST": test,
            "TSPARMCD": tsparmcd,
            "TSPARM": tsparm,
            "COUNTRY": country,
        },
    )
    used_methods = {v.method for d in datasets.values() for v in d.variables} | {v.method for v in vlm}
    used_comments = {v.comment for d in datasets.values() for v in d.variables} | {v.comment for v in vlm}
    used_comments |= {d.comment for d in datasets.values()}
    tick(8)
    trial = ctx.doc.trial
    return Package(
        folder="sdtm",
        standard="SDTMIG",
        version=SDTMIG_VERSION,
        study_id=ctx.study_id,
        study_name=trial.code,  # StudyName is STUDYID in both packages
        study_description=trial.title,
        protocol_name=trial.code,
        datasets=datasets,
        frames=frames,
        codelists=codelists,
        methods={oid: m for oid, m in METHODS.items() if oid in used_methods},
        comments={oid: c for oid, c in COMMENTS.items() if oid in used_comments},
        value_level=tuple(vlm),
        ct_versions={"SDTM": ct.SDTM_CT_VERSION},
    )
