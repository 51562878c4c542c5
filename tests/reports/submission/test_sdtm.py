"""SDTM builders on small hand-made records of the example protocol (MOOD-CBT-01): every
expected value below is worked out by hand from the records in `records()`."""

import json
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from protocols.document import load_example_protocol
from reports.submission import terminology as ct
from reports.submission.sdtm import SdtmInputError, SdtmSource, build_sdtm, split_text, study_day
from trials.analyses.datasets import ITEMS, RawData

STUDY = "MOOD-CBT-01"
R = date(2025, 3, 10)  # randomization day of the randomized participants
CUTOFF = date(2025, 5, 1)  # day 52 from randomization: W08 (window to day 63) is not yet due
LONG_REASON = (
    "The participant called the site to say that she no longer wishes to take part because the "
    "daily reminders of the app became too much alongside a new job with shifts, and she asked "
    "that no further questionnaires be sent to her; data collected so far may be used."
)


def d(day: int) -> date:
    return R + timedelta(days=day)


def screening_row(
    subject: str,
    site: str,
    status: str,
    screened: date,
    *,
    age: int = 30,
    phq9: int = 14,
    consent: date | None = None,
    reasons: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "subject": subject,
        "site": site,
        "status": status,
        "screened_on": screened,
        "age": age,
        "screening_phq9": phq9,
        "eligible": status != "screen_failed",
        "reasons": json.dumps(reasons) if reasons else None,
        "consent_date": consent,
    }


def subject_row(subject: str, site: str, arm: str, consent: date) -> dict[str, Any]:
    return {
        "subject": subject,
        "site": site,
        "arm": arm,
        "stratum": f"{site} / PHQ-9 10-14",
        "randomized_at": datetime(R.year, R.month, R.day, 10, 30),
        "consent_date": consent,
        "age": 30,
        "screening_phq9": 14,
        "randomized_on": R,
        "severity_stratum": "PHQ-9 10-14",
    }


def assessment(subject: str, instrument: str, visit: str, on: date, *items: int | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "subject": subject,
        "instrument": instrument,
        "assessed_on": on,
        "visit_code": visit,
    }
    row.update({item: (items[n] if n < len(items) else None) for n, item in enumerate(ITEMS)})
    return row


PHQ9_BL = (0, 1, 2, 3, 0, 1, 2, None, 3, 1)  # item 8 unanswered; item 10 "Somewhat difficult"
GAD7_BL = (3, 2, 1, 0, 1, 2, 3)
PHQ9_ANY = (1, 1, 1, 1, 1, 1, 1, 1, 0, 0)
GAD7_ANY = (1, 1, 1, 1, 1, 1, 1)


def adverse_event(subject: str, term: str, onset: date, end: date | None, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "subject": subject,
        "term": term,
        "onset_date": onset,
        "end_date": end,
        "serious": False,
        "serious_death": False,
        "serious_life_threatening": False,
        "serious_hospitalization": False,
        "serious_disability": False,
        "serious_congenital_anomaly": False,
        "serious_other_medically_important": False,
        "severity": "mild",
        "relatedness": "not_related",
        "action": "none",
        "outcome": "recovered_resolved",
    }
    row.update(fields)
    return row


def records(**changes: Any) -> SdtmSource:
    """Five people screened for MOOD-CBT-01.

    - LDS-0001: CBT; baseline and week 2 collected (item 8 of the baseline PHQ-9 unanswered),
      week 4 missed, withdrew on day 41 (before the week 6 window closes); app use on days 0
      and 2 (day 1 has no session); started an antidepressant on day 20; two adverse events.
    - LDS-0002: waitlist; baseline PHQ-9 only (GAD-7 missed), weeks 2, 4, 6 collected; no end
      of study; week 8 closes on day 63, after the cut-off.
    - MAN-0001: attention-control app never used; baseline only; completed on day 36.
    - LDS-0003: screen failure (age 17).
    - BRS-0001: consented, never randomized.
    """
    screening = pd.DataFrame(
        [
            screening_row("BRS-0001", "BRS", "enrolled", d(8), consent=d(10)),
            screening_row("LDS-0001", "LDS", "enrolled", d(-5), consent=d(-3)),
            screening_row("LDS-0002", "LDS", "enrolled", d(-4), consent=d(-2)),
            screening_row(
                "LDS-0003",
                "LDS",
                "screen_failed",
                d(-4),
                age=17,
                reasons=[{"rule": "age", "message": "age 17 outside 18-65"}],
            ),
            screening_row("MAN-0001", "MAN", "enrolled", d(-6), consent=d(-1)),
        ]
    )
    subjects = pd.DataFrame(
        [
            subject_row("LDS-0001", "LDS", "CBT", d(-3)),
            subject_row("LDS-0002", "LDS", "WAIT", d(-2)),
            subject_row("MAN-0001", "MAN", "ATTN", d(-1)),
        ]
    )
    assessments = pd.DataFrame(
        [
            assessment("LDS-0001", "PHQ-9", "BL", d(0), *PHQ9_BL),
            assessment("LDS-0001", "GAD-7", "BL", d(0), *GAD7_BL),
            assessment("LDS-0001", "PHQ-9", "W02", d(14), *PHQ9_ANY),
            assessment("LDS-0001", "GAD-7", "W02", d(15), *GAD7_ANY),
            assessment("LDS-0002", "PHQ-9", "BL", d(-1), *PHQ9_ANY),
            *(
                assessment("LDS-0002", instrument, visit, d(day), *items)
                for visit, day in (("W02", 14), ("W04", 28), ("W06", 42))
                for instrument, items in (("PHQ-9", PHQ9_ANY), ("GAD-7", GAD7_ANY))
            ),
            assessment("MAN-0001", "PHQ-9", "BL", d(0), *PHQ9_ANY),
            assessment("MAN-0001", "GAD-7", "BL", d(0), *GAD7_ANY),
        ]
    )
    disposition = pd.DataFrame(
        [
            {
                "subject": "LDS-0001",
                "kind": "started_other_treatment",
                "on": d(20),
                "other_treatment": "antidepressant",
                "reason": "Sertraline started by the GP",
            },
            {
                "subject": "LDS-0001",
                "kind": "withdrawal_by_subject",
                "on": d(41),
                "other_treatment": None,
                "reason": LONG_REASON,
            },
            {
                "subject": "MAN-0001",
                "kind": "completed",
                "on": d(36),
                "other_treatment": None,
                "reason": "Completed the final scheduled visit",
            },
        ]
    )
    events = disposition[["subject", "kind", "on", "other_treatment"]]
    adverse_events = pd.DataFrame(
        [
            adverse_event("LDS-0001", "Headache", d(5), d(7), relatedness="possible"),
            adverse_event(
                "LDS-0001",
                "Hospitalisation for depression",
                d(22),
                None,
                serious=True,
                serious_hospitalization=True,
                severity="severe",
                action="app_use_interrupted",
                outcome="recovering_resolving",
            ),
        ]
    )
    app_use = pd.DataFrame(
        [
            {"subject": "LDS-0001", "day": d(0), "sessions": 2, "minutes": 15, "modules_completed": 1},
            {"subject": "LDS-0001", "day": d(1), "sessions": 0, "minutes": 0, "modules_completed": 0},
            {"subject": "LDS-0001", "day": d(2), "sessions": 1, "minutes": 7, "modules_completed": 0},
        ]
    )
    sites = pd.DataFrame(
        [
            {"code": "LDS", "name": "Leeds", "country": "GB"},
            {"code": "MAN", "name": "Manchester", "country": "GB"},
            {"code": "BRS", "name": "Bristol", "country": "IE"},
        ]
    )
    parts: dict[str, Any] = {
        "screening": screening,
        "subjects": subjects,
        "assessments": assessments,
        "events": events,
        "adverse_events": adverse_events,
        "app_use": app_use,
        "disposition": disposition,
        "sites": sites,
    }
    parts.update(changes)
    raw = RawData(
        *(parts[k] for k in ("screening", "subjects", "assessments", "events", "adverse_events", "app_use"))
    )
    return SdtmSource(STUDY, load_example_protocol(), raw, parts["disposition"], parts["sites"], CUTOFF)


@pytest.fixture(scope="module")
def package() -> Any:
    return build_sdtm(records())


def rows(frame: pd.DataFrame, **where: Any) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column] == value
    return frame[mask]


def plain(value: Any) -> Any:
    return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) else value


# -- QS --------------------------------------------------------------------------------------------


def test_a_known_phq9_gives_its_item_records(package: Any) -> None:
    qs = rows(package.frames["QS"], USUBJID="MOOD-CBT-01-LDS-0001", VISIT="Baseline", QSCAT="PHQ-9")
    got = [
        (
            r.QSTESTCD,
            r.QSTEST,
            plain(r.QSORRES),
            plain(r.QSSTRESC),
            plain(r.QSSTRESN),
            plain(r.QSSTAT),
            plain(r.QSREASND),
        )
        for r in qs.itertuples()
    ]
    assert got == [
        ("PHQ0101", "PHQ01-Little Interest/Pleasure in Things", "Not at all", "0", 0, None, None),
        ("PHQ0102", "PHQ01-Feeling Down Depressed or Hopeless", "Several days", "1", 1, None, None),
        ("PHQ0103", "PHQ01-Trouble Falling or Staying Asleep", "More than half the days", "2", 2, None, None),
        ("PHQ0104", "PHQ01-Feeling Tired or Little Energy", "Nearly every day", "3", 3, None, None),
        ("PHQ0105", "PHQ01-Poor Appetite or Overeating", "Not at all", "0", 0, None, None),
        ("PHQ0106", "PHQ01-Feeling Bad About Yourself", "Several days", "1", 1, None, None),
        ("PHQ0107", "PHQ01-Trouble Concentrating on Things", "More than half the days", "2", 2, None, None),
        ("PHQ0108", "PHQ01-Moving Slowly or Fidgety/Restless", None, None, None, "NOT DONE", "NOT ANSWERED"),
        ("PHQ0109", "PHQ01-Thoughts You Be Better Off Dead", "Nearly every day", "3", 3, None, None),
        ("PHQ0110", "PHQ01-Difficult to Work/Take Care Things", "Somewhat difficult", "1", 1, None, None),
    ]
    assert set(qs["QSEVLINT"]) == {"-P2W"}
    assert set(qs["QSDTC"]) == {"2025-03-10"}
    assert set(qs["QSDY"]) == {1}
    assert set(qs["VISITNUM"]) == {2}
    assert set(qs["EPOCH"]) == {"TREATMENT"}
    # No derived total in QS: the PHQ-9 total of a visit is in ADaM.
    assert "PHQ0111" not in set(rows(package.frames["QS"], VISIT="Baseline")["QSTESTCD"])


def test_a_known_gad7_gives_its_item_records(package: Any) -> None:
    qs = rows(package.frames["QS"], USUBJID="MOOD-CBT-01-LDS-0001", VISIT="Week 2", QSCAT="GAD-7 V2")
    assert list(qs["QSTESTCD"]) == [f"GAD020{n}" for n in range(1, 8)]
    assert list(qs["QSTEST"]) == [t.decode for t in ct.GAD02TC.terms[:7]]
    assert list(qs["QSORRES"]) == ["Several days"] * 7
    assert list(qs["QSSTRESC"]) == ["1"] * 7
    assert list(qs["QSSTRESN"]) == [1] * 7
    assert set(qs["QSDTC"]) == {"2025-03-25"}  # day 15
    assert set(qs["QSDY"]) == {16}
    assert set(qs["QSEVLINT"]) == {"-P2W"}
    baseline = rows(package.frames["QS"], USUBJID="MOOD-CBT-01-LDS-0001", VISIT="Baseline", QSCAT="GAD-7 V2")
    assert list(baseline["QSORRES"]) == [
        "Nearly every day",
        "More than half the days",
        "Several days",
        "Not at all",
        "Several days",
        "More than half the days",
        "Nearly every day",
    ]
    assert list(baseline["QSSTRESN"]) == list(GAD7_BL)


def test_the_screening_phq9_total_is_a_collected_record_at_the_screening_visit(package: Any) -> None:
    qs = rows(package.frames["QS"], QSTESTCD="PHQ0111")
    assert len(qs) == 5  # everyone screened, screen failures included
    failure = rows(qs, USUBJID="MOOD-CBT-01-LDS-0003").iloc[0]
    assert (failure.QSTEST, failure.QSCAT, failure.QSORRES, failure.QSSTRESC, failure.QSSTRESN) == (
        "PHQ01-Total Score",
        "PHQ-9",
        "14",
        "14",
        14,
    )
    assert (failure.VISITNUM, failure.VISIT, failure.QSDTC, failure.EPOCH) == (
        1,
        "Screening",
        "2025-03-06",
        "SCREENING",
    )
    assert plain(failure.QSDY) is None  # never randomized: no reference start
    randomized = rows(qs, USUBJID="MOOD-CBT-01-LDS-0001").iloc[0]
    assert randomized.QSDY == -5  # 2025-03-05, five days before randomization (no day 0)


def test_missed_visits_before_the_cutoff_and_the_end_of_study_are_not_done(package: Any) -> None:
    qsall = rows(package.frames["QS"], QSTESTCD="QSALL")
    got = sorted((r.USUBJID.removeprefix("MOOD-CBT-01-"), r.VISIT, r.QSCAT) for r in qsall.itertuples())
    assert got == [
        # LDS-0001: week 4 closed (day 33) before the withdrawal (day 41); week 6 closes on day 47.
        ("LDS-0001", "Week 4", "GAD-7 V2"),
        ("LDS-0001", "Week 4", "PHQ-9"),
        # LDS-0002: GAD-7 missing at baseline; week 8 closes on day 63, after the cut-off.
        ("LDS-0002", "Baseline", "GAD-7 V2"),
        # MAN-0001: weeks 2 and 4 closed before completion on day 36.
        ("MAN-0001", "Week 2", "GAD-7 V2"),
        ("MAN-0001", "Week 2", "PHQ-9"),
        ("MAN-0001", "Week 4", "GAD-7 V2"),
        ("MAN-0001", "Week 4", "PHQ-9"),
    ]
    record = rows(qsall, USUBJID="MOOD-CBT-01-LDS-0001", QSCAT="PHQ-9").iloc[0]
    assert (record.QSTEST, record.QSSTAT, record.VISITNUM) == ("Questionnaire", "NOT DONE", 4)
    assert plain(record.QSORRES) is None
    assert plain(record.QSDTC) is None
    assert plain(record.QSREASND) is None


def test_last_observation_before_exposure_is_flagged_per_test(package: Any) -> None:
    qs = package.frames["QS"]
    flagged = rows(qs, USUBJID="MOOD-CBT-01-LDS-0001", QSLOBXFL="Y")
    # Baseline items answered on the randomization day (item 8 unanswered: its last result is
    # none), and the screening total.
    assert sorted(flagged["QSTESTCD"]) == sorted(
        [f"PHQ010{n}" for n in (1, 2, 3, 4, 5, 6, 7, 9)]
        + ["PHQ0110", "PHQ0111"]
        + [f"GAD020{n}" for n in range(1, 8)]
    )
    assert set(rows(flagged, QSTESTCD="PHQ0101")["VISIT"]) == {"Baseline"}
    assert rows(qs, USUBJID="MOOD-CBT-01-LDS-0003", QSLOBXFL="Y").empty  # not randomized


def test_qs_value_level_metadata_covers_each_result_test_code(package: Any) -> None:
    qs_codes = set(package.frames["QS"]["QSTESTCD"]) - {"QSALL"}
    for variable in ("QSORRES", "QSSTRESC", "QSSTRESN"):
        entries = [v for v in package.value_level if v.dataset == "QS" and v.variable == variable]
        assert sorted(dict(v.where)["QSTESTCD"] for v in entries) == sorted(qs_codes)
    orres = {dict(v.where)["QSTESTCD"]: v for v in package.value_level if v.variable == "QSORRES"}
    item = package.codelists[orres["PHQ0101"].codelist]
    assert [t.value for t in item.terms] == [
        "Not at all",
        "Several days",
        "More than half the days",
        "Nearly every day",
    ]
    assert item.nci_code is None  # sponsor-defined
    difficulty = package.codelists[orres["PHQ0110"].codelist]
    assert [t.value for t in difficulty.terms][0] == "Not difficult at all"
    stresc = {dict(v.where)["QSTESTCD"]: v for v in package.value_level if v.variable == "QSSTRESC"}
    assert [(t.value, t.decode) for t in package.codelists[stresc["GAD0201"].codelist].terms][3] == (
        "3",
        "Nearly every day",
    )
    testcd = {t.value: t.nci_code for t in package.codelists["QSTESTCD"].terms}
    assert testcd["PHQ0101"] == "C103705"
    assert testcd["GAD0207"] == "C163838"
    assert testcd["QSALL"] is None


def test_an_instrument_without_cdisc_codes_is_refused() -> None:
    source = records()
    assessments = pd.DataFrame(
        [
            *source.raw.assessments.to_dict("records"),
            assessment("LDS-0002", "PHQ-8", "W02", d(14), *PHQ9_ANY[:8]),
        ]
    )
    with pytest.raises(SdtmInputError, match="instrument PHQ-8 has no CDISC QSCAT/QSTESTCD"):
        build_sdtm(records(assessments=assessments))


def test_an_answer_outside_the_form_is_refused() -> None:
    source = records()
    assessments = source.raw.assessments.copy()
    assessments.loc[0, "item_1"] = 4
    with pytest.raises(SdtmInputError, match=r"QS.QSORRES of MOOD-CBT-01-LDS-0001 \(PHQ0101, visit BL\): 4"):
        build_sdtm(records(assessments=assessments))


# -- DM --------------------------------------------------------------------------------------------


def test_dm_for_randomized_screen_failed_and_unassigned_participants(package: Any) -> None:
    dm = package.frames["DM"].set_index("SUBJID")
    assert list(dm.index) == ["BRS-0001", "LDS-0001", "LDS-0002", "LDS-0003", "MAN-0001"]
    cbt = dm.loc["LDS-0001"]
    assert (cbt.USUBJID, cbt.SITEID, cbt.ARMCD, cbt.ARM, cbt.ACTARMCD, cbt.ACTARM) == (
        "MOOD-CBT-01-LDS-0001",
        "LDS",
        "CBT",
        "MoodStep CBT",
        "CBT",
        "MoodStep CBT",
    )
    assert (cbt.RFSTDTC, cbt.RFENDTC, cbt.RFPENDTC, cbt.RFICDTC) == (
        "2025-03-10",
        "2025-04-20",
        "2025-04-20",
        "2025-03-07",
    )
    assert (cbt.RFXSTDTC, cbt.RFXENDTC) == ("2025-03-10", "2025-03-12")
    assert (cbt.AGE, cbt.AGEU, cbt.SEX, cbt.COUNTRY) == (30, "YEARS", "U", "GBR")
    assert plain(cbt.RACE) is None
    assert plain(cbt.ETHNIC) is None
    assert plain(cbt.ARMNRS) is None
    assert plain(cbt.DTHFL) is None
    waitlist = dm.loc["LDS-0002"]  # no app: received as randomized; last record week 6 (day 42)
    assert (waitlist.ACTARMCD, plain(waitlist.ARMNRS), waitlist.RFENDTC) == ("WAIT", None, "2025-04-21")
    assert plain(waitlist.RFXSTDTC) is None
    unused = dm.loc["MAN-0001"]
    assert (unused.ARMCD, plain(unused.ACTARMCD), plain(unused.ACTARM), unused.ARMNRS) == (
        "ATTN",
        None,
        None,
        "ASSIGNED, NOT TREATED",
    )
    failure = dm.loc["LDS-0003"]
    assert [
        plain(failure[c]) for c in ("ARMCD", "ARM", "ACTARMCD", "ACTARM", "RFSTDTC", "RFENDTC", "RFICDTC")
    ] == [None] * 7
    assert (failure.ARMNRS, failure.RFPENDTC, failure.AGE) == ("SCREEN FAILURE", "2025-03-06", 17)
    unassigned = dm.loc["BRS-0001"]
    assert (unassigned.ARMNRS, plain(unassigned.ARMCD), unassigned.COUNTRY) == ("NOT ASSIGNED", None, "IRL")
    assert package.codelists["ARMCD"].nci_code is None
    assert [(t.value, t.decode) for t in package.codelists["ARMCD"].terms] == [
        ("CBT", "MoodStep CBT"),
        ("ATTN", "Attention-control app"),
        ("WAIT", "Waitlist"),
    ]
    supp = package.frames["SUPPDM"]
    assert list(supp["QNAM"]) == ["RANDSTR"] * 3
    assert rows(supp, USUBJID="MOOD-CBT-01-LDS-0001").iloc[0].QVAL == "LDS / PHQ-9 10-14"
    assert "COM.DM.SEX" in package.comments
    assert "not collected" in package.comments["COM.DM.SEX"].text


@pytest.mark.parametrize(
    ("outcome", "death"),
    [("fatal", True), ("fatal", False), ("unknown", True)],
    ids=["both", "outcome", "serious"],
)
def test_a_fatal_adverse_event_flags_death(outcome: str, death: bool) -> None:
    """Death is an AE with a fatal outcome or one serious because it resulted in death."""
    source = records()
    fatal = adverse_event(
        "LDS-0002",
        "Suicide",
        d(30),
        d(30),
        serious=True,
        serious_death=death,
        severity="severe",
        outcome=outcome,
    )
    package = build_sdtm(
        records(adverse_events=pd.DataFrame([*source.raw.adverse_events.to_dict("records"), fatal]))
    )
    dm = package.frames["DM"].set_index("SUBJID")
    assert (dm.loc["LDS-0002"].DTHFL, dm.loc["LDS-0002"].DTHDTC) == ("Y", "2025-04-09")
    ae = rows(package.frames["AE"], USUBJID="MOOD-CBT-01-LDS-0002").iloc[0]
    expected = ("Y", "Y" if death else "N", "FATAL" if outcome == "fatal" else "UNKNOWN")
    assert expected == (ae.AESER, ae.AESDTH, ae.AEOUT)


# -- DS --------------------------------------------------------------------------------------------


def test_ds_milestones_disposition_and_other_events(package: Any) -> None:
    ds = package.frames["DS"]
    got = [
        (r.DSSEQ, r.DSTERM[:30], r.DSDECOD, r.DSCAT, r.DSSTDTC, plain(r.DSSTDY), r.EPOCH)
        for r in rows(ds, USUBJID="MOOD-CBT-01-LDS-0001").itertuples()
    ]
    assert got == [
        (
            1,
            "INFORMED CONSENT OBTAINED",
            "INFORMED CONSENT OBTAINED",
            "PROTOCOL MILESTONE",
            "2025-03-07",
            -3,
            "SCREENING",
        ),
        (2, "RANDOMIZED", "RANDOMIZED", "PROTOCOL MILESTONE", "2025-03-10", 1, "TREATMENT"),
        (
            3,
            "Sertraline started by the GP",
            "STARTED OTHER TREATMENT",
            "OTHER EVENT",
            "2025-03-30",
            21,
            "TREATMENT",
        ),
        (4, LONG_REASON[:30], "WITHDRAWAL BY SUBJECT", "DISPOSITION EVENT", "2025-04-20", 42, "TREATMENT"),
    ]
    completed = rows(ds, USUBJID="MOOD-CBT-01-MAN-0001", DSCAT="DISPOSITION EVENT").iloc[0]
    assert (completed.DSTERM, completed.DSDECOD, completed.DSSTDTC) == (
        "COMPLETED",
        "COMPLETED",
        "2025-04-15",
    )
    failure = rows(ds, USUBJID="MOOD-CBT-01-LDS-0003")
    assert [(r.DSTERM, r.DSDECOD, r.DSCAT, r.DSSTDTC, r.EPOCH) for r in failure.itertuples()] == [
        ("age 17 outside 18-65", "SCREEN FAILURE", "DISPOSITION EVENT", "2025-03-06", "SCREENING")
    ]
    unassigned = rows(ds, USUBJID="MOOD-CBT-01-BRS-0001")
    assert list(unassigned["DSDECOD"]) == ["INFORMED CONSENT OBTAINED"]
    supp = rows(package.frames["SUPPDS"], USUBJID="MOOD-CBT-01-LDS-0001", QNAM="OTHTRT").iloc[0]
    assert (supp.RDOMAIN, supp.IDVAR, supp.IDVARVAL, supp.QVAL) == ("DS", "DSSEQ", "3", "ANTIDEPRESSANT")
    dsdecod = {dict(v.where)["DSCAT"]: v.codelist for v in package.value_level if v.variable == "DSDECOD"}
    assert dsdecod == {
        "DISPOSITION EVENT": "NCOMPLT",
        "PROTOCOL MILESTONE": "PROTMLST",
        "OTHER EVENT": "DSDECOD_OTHER",
    }
    assert package.codelists["DSDECOD_OTHER"].nci_code is None


def test_a_long_reason_continues_in_suppds_by_the_sdtmig_rule(package: Any) -> None:
    assert len(LONG_REASON) > 200
    ds = rows(package.frames["DS"], USUBJID="MOOD-CBT-01-LDS-0001", DSDECOD="WITHDRAWAL BY SUBJECT").iloc[0]
    supp = rows(package.frames["SUPPDS"], USUBJID="MOOD-CBT-01-LDS-0001", IDVARVAL=str(ds.DSSEQ))
    continued = rows(supp, IDVAR="DSSEQ")
    continued = continued[continued["QNAM"].str.startswith("DSTERM")]
    assert list(continued["QNAM"]) == ["DSTERM1"]
    assert len(ds.DSTERM) <= 200
    assert ds.DSTERM + "".join(continued["QVAL"]) == LONG_REASON  # nothing lost, nothing added
    assert not ds.DSTERM.endswith(" ")  # a trailing blank would not survive the transport file
    assert continued["QVAL"].iloc[0].startswith(" ")  # cut between words, before the blank


def test_split_text_keeps_every_character() -> None:
    text = ("word " * 100).strip()
    parts = split_text(text)
    assert "".join(parts) == text
    assert all(len(p) <= 200 for p in parts)
    assert not any(p.endswith(" ") for p in parts)
    assert split_text("x" * 450) == ["x" * 200, "x" * 200, "x" * 50]
    assert split_text("a" * 199 + "  b" + "c" * 10) == ["a" * 199, "  b" + "c" * 10]
    assert split_text("short") == ["short"]


def test_study_day_has_no_day_zero() -> None:
    assert study_day(R, R) == 1
    assert study_day(d(1), R) == 2
    assert study_day(d(-1), R) == -1
    assert study_day(None, R) is None
    assert study_day(R, None) is None


# -- AE --------------------------------------------------------------------------------------------


def test_ae_mapping_with_serious_flags(package: Any) -> None:
    ae = package.frames["AE"]
    assert list(ae["AESEQ"]) == [1, 2]
    headache, hospital = ae.iloc[0], ae.iloc[1]
    assert (headache.AETERM, headache.AESEV, headache.AESER, headache.AEREL, headache.AEACN) == (
        "Headache",
        "MILD",
        "N",
        "POSSIBLY RELATED",
        "DOSE NOT CHANGED",
    )
    assert (headache.AEOUT, headache.AESTDTC, headache.AEENDTC, headache.AESTDY, headache.AEENDY) == (
        "RECOVERED/RESOLVED",
        "2025-03-15",
        "2025-03-17",
        6,
        8,
    )
    assert [
        hospital[f] for f in ("AESER", "AESHOSP", "AESDTH", "AESLIFE", "AESDISAB", "AESCONG", "AESMIE")
    ] == [
        "Y",
        "Y",
        "N",
        "N",
        "N",
        "N",
        "N",
    ]
    assert (hospital.AESEV, hospital.AEACN, hospital.AEACNDEV, hospital.AEOUT) == (
        "SEVERE",
        "DRUG INTERRUPTED",
        "APP USE INTERRUPTED",
        "RECOVERING/RESOLVING",
    )
    assert plain(hospital.AEENDTC) is None
    assert plain(hospital.AEENDY) is None
    assert ae["AEDECOD"].isna().all()
    assert ae["AEBODSYS"].isna().all()
    assert "MedDRA" in package.comments["COM.AE.MEDDRA"].text
    assert package.datasets["AE"].variable("AEDECOD").comment == "COM.AE.MEDDRA"
    assert package.codelists["AEREL"].nci_code is None
    assert package.codelists["AESEV"].nci_code == "C66769"


# -- EX, SV, TS ----------------------------------------------------------------------------------


def test_ex_has_one_record_per_day_of_use_with_suppex(package: Any) -> None:
    ex = package.frames["EX"]
    got = [(r.USUBJID, r.EXSEQ, r.EXTRT, r.EXSTDTC, r.EXENDTC, r.EXSTDY, r.EPOCH) for r in ex.itertuples()]
    assert got == [
        ("MOOD-CBT-01-LDS-0001", 1, "MoodStep", "2025-03-10", "2025-03-10", 1, "TREATMENT"),
        ("MOOD-CBT-01-LDS-0001", 2, "MoodStep", "2025-03-12", "2025-03-12", 3, "TREATMENT"),
    ]
    assert ex["EXDOSE"].isna().all()
    assert ex["EXDOSU"].isna().all()
    supp = package.frames["SUPPEX"]
    first = {r.QNAM: r.QVAL for r in rows(supp, IDVARVAL="1").itertuples()}
    assert first == {"EXAPPVER": "3.2.0", "EXMIN": "15", "EXMODS": "1", "EXSESS": "2"}
    assert set(supp["IDVAR"]) == {"EXSEQ"}
    assert set(supp["RDOMAIN"]) == {"EX"}


def test_app_use_in_an_arm_without_an_app_is_refused() -> None:
    use = pd.DataFrame(
        [{"subject": "LDS-0002", "day": d(3), "sessions": 1, "minutes": 5, "modules_completed": 0}]
    )
    with pytest.raises(SdtmInputError, match="EX of MOOD-CBT-01-LDS-0002: .*WAIT, an arm without an app"):
        build_sdtm(records(app_use=use))


def test_sv_has_the_screening_visit_and_the_visits_attended(package: Any) -> None:
    sv = rows(package.frames["SV"], USUBJID="MOOD-CBT-01-LDS-0001")
    got = [
        (r.VISITNUM, r.VISIT, plain(r.VISITDY), r.SVSTDTC, r.SVENDTC, r.SVSTDY, r.SVENDY)
        for r in sv.itertuples()
    ]
    assert got == [
        (1, "Screening", None, "2025-03-05", "2025-03-05", -5, -5),
        (2, "Baseline", 1, "2025-03-10", "2025-03-10", 1, 1),
        (3, "Week 2", 15, "2025-03-24", "2025-03-25", 15, 16),
    ]
    assert list(rows(package.frames["SV"], USUBJID="MOOD-CBT-01-LDS-0003")["VISIT"]) == ["Screening"]


def test_ts_from_the_protocol(package: Any) -> None:
    ts = package.frames["TS"]
    values = {r.TSPARMCD: r.TSVAL for r in ts.itertuples()}
    assert values == {
        "TITLE": load_example_protocol().trial.title,
        "SPONSOR": "Northbridge Digital Therapeutics Ltd",
        "REGID": "ISRCTN48215937",
        "STYPE": "INTERVENTIONAL",
        "INTMODEL": "PARALLEL",
        "RANDOM": "Y",
        "TBLIND": "SINGLE BLIND",  # only the outcome assessor of participant/investigator/assessor
        "TPHASE": "NOT APPLICABLE",
        "NARMS": "3",
        "ACTSUB": "3",  # randomized
        "TRT": "MoodStep",
        "AGEMIN": "P18Y",
        "AGEMAX": "P65Y",
        "SSTDTC": "2025-03-07",
        "SDTMVER": "2.0",
        "SDTIGVER": "3.4",
    }
    random = rows(ts, TSPARMCD="RANDOM").iloc[0]
    assert (random.TSPARM, random.TSVALCD, random.TSVCDREF) == ("Trial is Randomized", "C49488", "CDISC CT")
    assert random.TSVCDVER == "2021-06-25"
    # TSPARM terms carry their TSPARMCD term's concept code; none is an "extended" value.
    names = {t.value: t.nci_code for t in package.codelists["TSPARM"].terms}
    codes = {t.decode: t.nci_code for t in package.codelists["TSPARMCD"].terms}
    assert names == codes
    assert all(names.values())
    title = rows(ts, TSPARMCD="TITLE").iloc[0]
    assert (title.TSPARM, plain(title.TSVALCD), plain(title.TSVCDREF)) == ("Trial Title", None, None)
    assert set(ts["TSSEQ"]) == {1}
    assert {t.value: t.nci_code for t in package.codelists["TSPARM"].terms}["Trial Title"] == "C49802"


# -- the whole package -------------------------------------------------------------------------------


def test_every_frame_matches_its_metadata(package: Any) -> None:
    assert set(package.frames) == set(package.datasets) == {
        "DM", "DS", "AE", "QS", "EX", "SV", "TS", "SUPPDM", "SUPPDS", "SUPPEX"
    }  # fmt: skip
    for name, dataset in package.datasets.items():
        frame = package.frames[name]
        assert list(frame.columns) == dataset.names, name
        for variable in dataset.variables:
            assert len(variable.label) <= 40, (name, variable.name)
            column = frame[variable.name]
            if variable.data_type == "integer":
                assert str(column.dtype) == "Int64", (name, variable.name)
            elif variable.data_type == "float":
                assert column.dtype == "float64", (name, variable.name)
            else:
                assert all(v is None or isinstance(v, str) for v in column), (name, variable.name)
            if variable.core == "Req" and not (name == "AE" and variable.name == "AEDECOD"):
                assert column.notna().all(), (name, variable.name)


def test_seq_is_unique_per_subject_and_every_subject_is_in_dm(package: Any) -> None:
    subjects = set(package.frames["DM"]["USUBJID"])
    assert package.frames["DM"]["USUBJID"].is_unique
    for name, frame in package.frames.items():
        if "USUBJID" in frame.columns:
            assert set(frame["USUBJID"]) <= subjects, name
        seq = f"{name}SEQ"
        if seq in frame.columns and name != "TS":
            assert not frame.duplicated(["USUBJID", seq]).any(), name
            assert frame.groupby("USUBJID")[seq].min().eq(1).all(), name
    for name, dataset in package.datasets.items():
        if dataset.keys and name != "TS":
            assert not package.frames[name].duplicated(list(dataset.keys)).any(), name


def test_the_package_holds_exactly_what_the_datasets_refer_to(package: Any) -> None:
    variables = [v for d in package.datasets.values() for v in d.variables]
    referenced = {v.codelist for v in variables if v.codelist} | {
        v.codelist for v in package.value_level if v.codelist
    }
    assert set(package.codelists) == referenced
    methods = {v.method for v in variables if v.method} | {v.method for v in package.value_level if v.method}
    assert set(package.methods) == methods
    comments = {v.comment for v in variables if v.comment} | {
        v.comment for v in package.value_level if v.comment
    }
    comments |= {d.comment for d in package.datasets.values() if d.comment}
    assert set(package.comments) == comments
    assert (package.folder, package.standard, package.version, package.study_id) == (
        "sdtm",
        "SDTMIG",
        "3.4",
        STUDY,
    )


def test_progress_is_reported_per_step() -> None:
    seen: list[tuple[int, int, str]] = []
    build_sdtm(records(), progress=lambda done, total, name: seen.append((done, total, name)))
    assert [s[0] for s in seen] == list(range(1, 9))
    assert {s[1] for s in seen} == {8}
    assert seen[3][2] == "QS"


def test_non_ascii_free_text_is_refused_with_the_record_named() -> None:
    source = records()
    adverse = source.raw.adverse_events.copy()
    adverse.loc[0, "term"] = "Céphalée"
    with pytest.raises(SdtmInputError, match=r"AE\.AETERM of MOOD-CBT-01-LDS-0001: .*non-ASCII"):
        build_sdtm(records(adverse_events=adverse))
    disposition = source.disposition.copy()
    disposition.loc[0, "reason"] = "Sertraline started by the GP \u2013 dose 50 mg"
    with pytest.raises(SdtmInputError, match=r"DS\.DSTERM of MOOD-CBT-01-LDS-0001: .*non-ASCII"):
        build_sdtm(records(disposition=disposition))


def test_an_unknown_visit_or_site_is_refused() -> None:
    source = records()
    assessments = source.raw.assessments.copy()
    assessments.loc[0, "visit_code"] = "W99"
    with pytest.raises(SdtmInputError, match="visit 'W99' is not a visit of the protocol"):
        build_sdtm(records(assessments=assessments))
    with pytest.raises(SdtmInputError, match="site BRS is not in the sites"):
        build_sdtm(records(sites=source.sites[source.sites["code"] != "BRS"]))


def test_no_upper_age_limit_is_positive_infinity() -> None:
    source = records()
    eligibility = source.document.eligibility.model_copy(
        update={"age": source.document.eligibility.age.model_copy(update={"max": None})}
    )
    package = build_sdtm(
        SdtmSource(
            STUDY,
            source.document.model_copy(update={"eligibility": eligibility}),
            source.raw,
            source.disposition,
            source.sites,
            CUTOFF,
        )
    )
    row = rows(package.frames["TS"], TSPARMCD="AGEMAX").iloc[0]
    assert (plain(row.TSVAL), row.TSVALNF) == (None, "PINF")


def test_a_title_over_200_characters_continues_in_tsval1() -> None:
    source = records()
    title = ("A randomised trial of an app " * 10).strip()  # 289 characters
    trial = source.document.trial.model_copy(update={"title": title})
    package = build_sdtm(
        SdtmSource(
            STUDY,
            source.document.model_copy(update={"trial": trial}),
            source.raw,
            source.disposition,
            source.sites,
            CUTOFF,
        )
    )
    names = package.datasets["TS"].names
    assert names[names.index("TSVAL") + 1] == "TSVAL1"
    row = rows(package.frames["TS"], TSPARMCD="TITLE").iloc[0]
    assert len(row.TSVAL) <= 200
    assert title == row.TSVAL + row.TSVAL1
    assert plain(rows(package.frames["TS"], TSPARMCD="SPONSOR").iloc[0].TSVAL1) is None


def test_split_text_survives_the_transport_file(package: Any, tmp_path: Any) -> None:
    """The long reason and a long title, written and read back: the parts joined are the text."""
    from reports.submission.xpt import read_xpt, write_package

    source = records()
    title = ("A randomised trial of an app " * 10).strip()
    trial = source.document.trial.model_copy(update={"title": title})
    long_title = build_sdtm(
        SdtmSource(
            STUDY,
            source.document.model_copy(update={"trial": trial}),
            source.raw,
            source.disposition,
            source.sites,
            CUTOFF,
        )
    )
    write_package(long_title, tmp_path / "sdtm")
    ts, _info = read_xpt(tmp_path / "sdtm" / "ts.xpt")
    row = ts[ts["TSPARMCD"] == "TITLE"].iloc[0]
    assert row["TSVAL"] + row["TSVAL1"] == title
    ds, _info = read_xpt(tmp_path / "sdtm" / "ds.xpt")
    supp, _info = read_xpt(tmp_path / "sdtm" / "suppds.xpt")
    first = ds[(ds["USUBJID"] == "MOOD-CBT-01-LDS-0001") & (ds["DSDECOD"] == "WITHDRAWAL BY SUBJECT")].iloc[0]
    rest = supp[(supp["IDVARVAL"] == str(int(first["DSSEQ"]))) & supp["QNAM"].str.startswith("DSTERM")]
    assert first["DSTERM"] + "".join(rest.sort_values("QNAM")["QVAL"]) == LONG_REASON
