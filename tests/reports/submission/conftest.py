"""Two tiny submission packages, valid as they stand: SDTM DM + QS and ADaM ADSL + ADQS.

They use the CDISC codelists of `reports.submission.terminology` where one exists (SEX, AGEU,
NY, QSCAT, PHQ01TC/TN, DTYPE) and say so where a codelist is sponsor-defined (PHQ-9 answer
texts, PARAMCD). The fixtures are factories: each call builds fresh frames that a test may
break as it likes.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from reports.submission import terminology as ct
from reports.submission.metadata import Comment, Dataset, Method, Package, ValueLevel, Variable
from reports.submission.terminology import Codelist, Term

STUDY: dict[str, Any] = {
    "study_id": "DTX-001",
    "study_name": "DTX-001",
    "study_description": "Digital therapy for depression, randomized controlled trial",
    "protocol_name": "DTX-001",
}
SUBJECTS = ("DTX-001-01-001", "DTX-001-01-002", "DTX-001-02-003")

# Sponsor-defined: no CDISC codelist holds the PHQ-9 answer texts (see terminology.py).
PHQ_ANSWERS = Codelist(
    "PHQ01OR",
    "PHQ-9 Item Answer (sponsor-defined)",
    None,
    tuple(
        Term(v, None) for v in ("Not at all", "Several days", "More than half the days", "Nearly every day")
    ),
    extensible=None,
)
PARAMCD = Codelist(
    "PARAMCD", "Parameter Code (sponsor-defined)", None, (Term("PHQ9TOT", None),), extensible=None
)
# DTYPE is extensible: the sponsor's PRORATED term has no NCI code and is marked as extended.
DTYPE = Codelist(
    "DTYPE",
    ct.DTYPE.label,
    ct.DTYPE.nci_code,
    (*(t for t in ct.DTYPE.terms if t.value == "LOCF"), Term("PRORATED", None)),
    extensible=True,
    publishing_set=ct.DTYPE.publishing_set,
)
# The PHQ-9 test codes and names used here (item 1 and 2), as CDISC spells them.
PHQ01TC = Codelist(
    "PHQ01TC",
    ct.PHQ01TC.label,
    ct.PHQ01TC.nci_code,
    tuple(t for t in ct.PHQ01TC.terms if t.value in ("PHQ0101", "PHQ0102")),
    extensible=False,
)
PHQ01TN = Codelist(
    "PHQ01TN",
    ct.PHQ01TN.label,
    ct.PHQ01TN.nci_code,
    tuple(t for t in ct.PHQ01TN.terms if t.nci_code in {x.nci_code for x in PHQ01TC.terms}),
    extensible=False,
)
QSCAT = Codelist(
    "QSCAT",
    ct.QSCAT.label,
    ct.QSCAT.nci_code,
    tuple(t for t in ct.QSCAT.terms if t.value == "PHQ-9"),
    extensible=ct.QSCAT.extensible,
)
SEX = Codelist(
    "SEX",
    ct.SEX.label,
    ct.SEX.nci_code,
    tuple(t for t in ct.SEX.terms if t.value in "FM"),
    extensible=ct.SEX.extensible,
)
NY = ct.NY
AGEU = Codelist(
    "AGEU",
    ct.AGEU.label,
    ct.AGEU.nci_code,
    tuple(t for t in ct.AGEU.terms if t.value == "YEARS"),
    extensible=ct.AGEU.extensible,
)


def _v(
    name: str, label: str, data_type: str, origin: str = "Assigned", core: str = "Req", **kw: object
) -> Variable:
    return Variable(name, label, data_type, origin, core, **kw)  # type: ignore[arg-type]


DM = Dataset(
    "DM",
    "Demographics",
    "SPECIAL PURPOSE",
    "One record per subject",
    ("STUDYID", "USUBJID"),
    (
        _v("STUDYID", "Study Identifier", "text", "Protocol", role="Identifier"),
        _v("DOMAIN", "Domain Abbreviation", "text", role="Identifier"),
        _v("USUBJID", "Unique Subject Identifier", "text", role="Identifier"),
        _v(
            "SUBJID",
            "Subject Identifier for the Study",
            "text",
            "Collected",
            role="Topic",
            source="Investigator",
        ),
        _v(
            "RFSTDTC",
            "Subject Reference Start Date/Time",
            "date",
            "Derived",
            "Exp",
            role="Record Qualifier",
            comment="COM.DM.RFSTDTC",
        ),
        _v("AGE", "Age", "integer", "Collected", "Exp", role="Record Qualifier", source="Subject"),
        _v("AGEU", "Age Units", "text", core="Exp", role="Variable Qualifier", codelist="AGEU"),
        _v("SEX", "Sex", "text", "Collected", role="Record Qualifier", source="Subject", codelist="SEX"),
    ),
    comment="COM.DM",
    repeating=False,
)
QS = Dataset(
    "QS",
    "Questionnaires",
    "FINDINGS",
    "One record per questionnaire per question per time point per visit per subject",
    ("STUDYID", "USUBJID", "QSCAT", "QSTESTCD", "QSDTC"),
    (
        _v("STUDYID", "Study Identifier", "text", "Protocol", role="Identifier"),
        _v("DOMAIN", "Domain Abbreviation", "text", role="Identifier"),
        _v("USUBJID", "Unique Subject Identifier", "text", role="Identifier"),
        _v("QSSEQ", "Sequence Number", "integer", "Derived", role="Identifier", method="MT.SEQ"),
        _v("QSTESTCD", "Question Short Name", "text", role="Topic", codelist="PHQ01TC"),
        _v("QSTEST", "Question Name", "text", role="Synonym Qualifier", codelist="PHQ01TN"),
        _v("QSCAT", "Category of Question", "text", role="Grouping Qualifier", codelist="QSCAT"),
        _v(
            "QSORRES",
            "Finding in Original Units",
            "text",
            "Collected",
            "Exp",
            role="Result Qualifier",
            source="Subject",
        ),
        _v(
            "QSSTRESN",
            "Numeric Finding in Standard Units",
            "float",
            "Derived",
            "Exp",
            role="Result Qualifier",
            method="MT.QSSTRESN",
            significant_digits=0,
        ),
        _v("QSDTC", "Date/Time of Finding", "date", "Collected", "Exp", role="Timing", source="Subject"),
        _v("QSEVLINT", "Evaluation Interval", "text", core="Perm", role="Timing"),
    ),
)
QS_VALUE_LEVEL = tuple(
    ValueLevel(
        "QS",
        "QSORRES",
        (("QSTESTCD", code),),
        label,
        "text",
        "Collected",
        source="Subject",
        codelist="PHQ01OR",
    )
    for code, label in (
        ("PHQ0101", "Little Interest/Pleasure in Things"),
        ("PHQ0102", "Feeling Down Depressed or Hopeless"),
    )
)
SDTM_METHODS = {
    "MT.SEQ": Method(
        "MT.SEQ", "Sequence number", "Computation", "Order of the records within the subject, from 1."
    ),
    "MT.QSSTRESN": Method(
        "MT.QSSTRESN",
        "Item score",
        "Computation",
        "Not at all = 0, Several days = 1, More than half the days = 2, Nearly every day = 3.",
    ),
}
SDTM_COMMENTS = {
    "COM.DM": Comment("COM.DM", "All randomized participants."),
    "COM.DM.RFSTDTC": Comment("COM.DM.RFSTDTC", "Date of randomization."),
}

ADSL = Dataset(
    "ADSL",
    "Subject-Level Analysis Dataset",
    "SUBJECT LEVEL ANALYSIS DATASET",
    "One record per subject",
    ("STUDYID", "USUBJID"),
    (
        _v("STUDYID", "Study Identifier", "text", "Predecessor", predecessor="DM.STUDYID"),
        _v("USUBJID", "Unique Subject Identifier", "text", "Predecessor", predecessor="DM.USUBJID"),
        _v("AGE", "Age", "integer", "Predecessor", predecessor="DM.AGE", may_be_empty=True),
        _v("SEX", "Sex", "text", "Predecessor", predecessor="DM.SEX", codelist="SEX"),
        _v("ITTFL", "Intent-To-Treat Population Flag", "text", "Derived", codelist="NY", comment="COM.ITTFL"),
        _v("RANDDT", "Date of Randomization", "sasdate", "Derived", "Cond"),
        _v("TRT01P", "Planned Treatment for Period 01", "text", "Assigned"),
    ),
    repeating=False,
)
ADQS = Dataset(
    "ADQS",
    "Questionnaire Analysis Dataset",
    "BASIC DATA STRUCTURE",
    "One record per subject per parameter per analysis visit",
    ("STUDYID", "USUBJID", "PARAMCD", "AVISITN"),
    (
        _v("STUDYID", "Study Identifier", "text", "Predecessor", predecessor="ADSL.STUDYID"),
        _v("USUBJID", "Unique Subject Identifier", "text", "Predecessor", predecessor="ADSL.USUBJID"),
        _v("PARAMCD", "Parameter Code", "text", codelist="PARAMCD"),
        _v("PARAM", "Parameter", "text"),
        _v("AVISIT", "Analysis Visit", "text", "Derived", "Cond", method="MT.AVISIT"),
        _v("AVISITN", "Analysis Visit (N)", "integer", "Derived", "Cond", method="MT.AVISIT"),
        _v("ADT", "Analysis Date", "sasdate", "Derived", "Cond"),
        _v("AVAL", "Analysis Value", "float", "Derived", "Cond", method="MT.TOTAL", significant_digits=1),
        _v("BASE", "Baseline Value", "float", "Derived", "Cond", method="MT.BASE"),
        _v("CHG", "Change from Baseline", "float", "Derived", "Cond", method="MT.CHG"),
        _v("ABLFL", "Baseline Record Flag", "text", "Derived", "Cond", codelist="NY", method="MT.BASE"),
        _v("DTYPE", "Derivation Type", "text", "Derived", "Cond", codelist="DTYPE", method="MT.PRORATE"),
    ),
)
ADAM_METHODS = {
    oid: Method(oid, name, kind, text)  # type: ignore[arg-type]
    for oid, name, kind, text in (
        ("MT.AVISIT", "Analysis visit", "Computation", "Baseline: day 0 or before; then nearest target day."),
        ("MT.TOTAL", "PHQ-9 total", "Computation", "Sum of items 1-9."),
        ("MT.BASE", "Baseline", "Computation", "AVAL of the baseline record (ABLFL = 'Y')."),
        ("MT.CHG", "Change from baseline", "Computation", "AVAL - BASE."),
        (
            "MT.PRORATE",
            "Prorated total",
            "Imputation",
            "Mean of answered items times 9 when 7 or more answered.",
        ),
    )
}
ADAM_COMMENTS = {"COM.ITTFL": Comment("COM.ITTFL", "Every randomized participant.")}


def make_sdtm() -> Package:
    n = len(SUBJECTS)
    dm = pd.DataFrame(
        {
            "STUDYID": ["DTX-001"] * n,
            "DOMAIN": ["DM"] * n,
            "USUBJID": list(SUBJECTS),
            "SUBJID": ["001", "002", "003"],
            "RFSTDTC": ["2024-01-15", "2024-02", None],
            "AGE": pd.array([34, None, 61], dtype="Int64"),
            "AGEU": ["YEARS", None, "YEARS"],
            "SEX": ["F", "M", "F"],
        }
    )
    rows = [
        (SUBJECTS[0], 1, "PHQ0101", "Several days", 1.0, "2024-01-15"),
        (SUBJECTS[0], 2, "PHQ0102", "Nearly every day", 3.0, "2024-01-15"),
        (SUBJECTS[1], 1, "PHQ0101", "Not at all", 0.0, "2024-02-01"),
        (SUBJECTS[1], 2, "PHQ0102", None, float("nan"), "2024-02-01"),
    ]
    names = {t.value: t.decode for t in PHQ01TC.terms}
    qs = pd.DataFrame(
        {
            "STUDYID": ["DTX-001"] * len(rows),
            "DOMAIN": ["QS"] * len(rows),
            "USUBJID": [r[0] for r in rows],
            "QSSEQ": pd.array([r[1] for r in rows], dtype="Int64"),
            "QSTESTCD": [r[2] for r in rows],
            "QSTEST": [names[r[2]] for r in rows],
            "QSCAT": ["PHQ-9"] * len(rows),
            "QSORRES": [r[3] for r in rows],
            "QSSTRESN": [r[4] for r in rows],
            "QSDTC": [r[5] for r in rows],
            "QSEVLINT": ["-P2W"] * len(rows),
        }
    )
    return Package(
        folder="sdtm",
        standard="SDTMIG",
        version="3.4",
        **STUDY,
        datasets={"DM": DM, "QS": QS},
        frames={"DM": dm, "QS": qs},
        codelists={c.name: c for c in (AGEU, SEX, PHQ01TC, PHQ01TN, QSCAT, PHQ_ANSWERS)},
        methods=SDTM_METHODS,
        comments=SDTM_COMMENTS,
        value_level=QS_VALUE_LEVEL,
    )


def make_adam() -> Package:
    adsl = pd.DataFrame(
        {
            "STUDYID": ["DTX-001"] * 3,
            "USUBJID": list(SUBJECTS),
            "AGE": pd.array([34, None, 61], dtype="Int64"),
            "SEX": ["F", "M", "F"],
            "ITTFL": ["Y", "Y", "N"],
            "RANDDT": [dt.date(2024, 1, 15), dt.date(1959, 12, 31), None],
            "TRT01P": ["App", "Waiting list", "Waiting list"],
        }
    )
    rows = [
        (SUBJECTS[0], "Baseline", 0, dt.date(2024, 1, 15), 15.0, 15.0, float("nan"), "Y", None),
        (SUBJECTS[0], "Week 4", 4, dt.date(2024, 2, 12), 11.5, 15.0, -3.5, None, "PRORATED"),
        (SUBJECTS[0], "Week 8", 8, None, 9.0, 15.0, -6.0, None, "LOCF"),
        (SUBJECTS[1], "Baseline", 0, dt.date(2024, 2, 1), 20.0, 20.0, float("nan"), "Y", None),
        (SUBJECTS[1], "Week 4", 4, dt.date(2024, 3, 1), float("nan"), 20.0, float("nan"), None, None),
    ]
    adqs = pd.DataFrame(
        {
            "STUDYID": ["DTX-001"] * len(rows),
            "USUBJID": [r[0] for r in rows],
            "PARAMCD": ["PHQ9TOT"] * len(rows),
            "PARAM": ["PHQ-9 Total Score (0-27)"] * len(rows),
            "AVISIT": [r[1] for r in rows],
            "AVISITN": pd.array([r[2] for r in rows], dtype="Int64"),
            "ADT": [r[3] for r in rows],
            "AVAL": [r[4] for r in rows],
            "BASE": [r[5] for r in rows],
            "CHG": [r[6] for r in rows],
            "ABLFL": [r[7] for r in rows],
            "DTYPE": [r[8] for r in rows],
        }
    )
    return Package(
        folder="adam",
        standard="ADaMIG",
        version="1.3",
        **STUDY,
        datasets={"ADSL": ADSL, "ADQS": ADQS},
        frames={"ADSL": adsl, "ADQS": adqs},
        codelists={c.name: c for c in (SEX, NY, PARAMCD, DTYPE)},
        methods=ADAM_METHODS,
        comments=ADAM_COMMENTS,
    )


@pytest.fixture
def sdtm_package() -> Callable[[], Package]:
    return make_sdtm


@pytest.fixture
def adam_package() -> Callable[[], Package]:
    return make_adam
