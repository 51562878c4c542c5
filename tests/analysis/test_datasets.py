"""Analysis datasets: windowing, baseline, change, flags, populations and time to event on
small hand-checked data (every expected value worked out by hand in the comments)."""

from datetime import date, timedelta

import pandas as pd
import pytest

from analysis import datasets as d

R = date(2025, 3, 10)  # randomization day of every test participant
SPEC = d.DatasetSpec(
    visits=(
        d.VisitSpec("BL", 0, -14, 0),
        d.VisitSpec("W02", 14, 11, 17),
        d.VisitSpec("W04", 28, 23, 33),
        d.VisitSpec("W08", 56, 49, 63),
    ),
    app_arms=frozenset({"CBT"}),
    pp_min_modules=2,
    pp_by_day=56,
    pp_visit="W08",
    treatment_end_day=56,
    follow_up_day=56,
)


def subjects(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "subject": s,
                "site": "LDS",
                "arm": arm,
                "severity_stratum": "PHQ-9 0-14",
                "randomized_on": R,
                "consent_date": R - timedelta(days=3),
                "age": 30,
                "screening_phq9": 12,
            }
            for s, arm in rows
        ]
    )


def phq9(subject: str, day: int, *items: int | None) -> dict[str, object]:
    row: dict[str, object] = {
        "subject": subject,
        "instrument": "PHQ-9",
        "assessed_on": R + timedelta(days=day),
    }
    row.update({f"item_{n}": (items[n - 1] if n <= len(items) else None) for n in range(1, 11)})
    return row


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_windows_split_at_the_midpoints_with_the_tie_to_the_earlier_visit() -> None:
    windows = [(v.code, first, last) for v, first, last in d.analysis_windows(SPEC)]
    # 14 and 28: midpoint 21 goes to W02; 28 and 56: midpoint 42 to W04; W08 up to its window end 63.
    assert windows == [("W02", 1, 21), ("W04", 22, 42), ("W08", 43, 63)]
    later = d.DatasetSpec(visits=SPEC.visits, tie_break="later")
    assert [(f, last) for _v, f, last in d.analysis_windows(later)] == [(1, 20), (21, 41), (42, 63)]


def test_baseline_change_and_the_record_analysed_per_visit() -> None:
    s = subjects(("A", "CBT"))
    a = frame(
        phq9("A", -10, 3, 3, 3, 3, 2, 2, 2, 2, 0),  # 20: an earlier baseline record
        phq9("A", 0, 2, 2, 2, 2, 2, 2, 2, 2, 0),  # 16: the last on or before day 0 is the baseline
        phq9("A", 12, 2, 2, 2, 1, 1, 1, 1, 1, 0),  # 11 on day 12: 2 days from W02's target
        phq9("A", 15, 1, 1, 1, 1, 1, 1, 1, 1, 0),  # 8 on day 15: 1 day from target -> analysed
        phq9("A", 56, 1, 1, 1, 1, 0, 0, 0, 0, 0),  # 4 at W08: remission (< 5), -75%: response
    )
    r = d.parameter_by_visit(s, a, SPEC)
    assert list(r["ady"]) == [-10, 0, 12, 15, 56]
    assert list(r["avisit"]) == ["BL", "BL", "W02", "W02", "W08"]
    assert list(r["aval"]) == [20, 16, 11, 8, 4]
    assert list(r["ablfl"]) == [None, "Y", None, None, None]
    assert list(r["anl01fl"]) == [None, "Y", None, "Y", "Y"]
    assert list(r["base"]) == [16] * 5
    assert list(r["chg"].astype(object).where(r["chg"].notna(), None)) == [None, None, -5.0, -8.0, -12.0]
    assert r["pchg"].iloc[3] == pytest.approx(-50.0)  # -8 / 16: exactly 50 %, a response
    assert list(r["crit1fl"]) == [None, None, "N", "Y", "Y"]
    assert list(r["crit2fl"]) == [None, None, "N", "N", "Y"]


def test_an_unscorable_record_is_kept_but_not_analysed_and_prorating_is_flagged() -> None:
    s = subjects(("A", "CBT"))
    a = frame(
        phq9("A", 0, 2, 2, 2, 2, 2, 2, 2, 2, 1),  # 17
        phq9("A", 16, 2, 2, 2, 2, 2, 2, None, None, 0),  # 7 of 9 answered, item 9 too: prorated
        phq9("A", 14, 2, 2, 2, 2, 2, 2, 2, 2, None),  # item 9 missing: no total, not analysed
    )
    r = d.parameter_by_visit(s, a, SPEC)
    by_day = r.set_index("ady")
    # 12 over 7 items x 9 = 15.43 -> 15.
    assert by_day.loc[16, "aval"] == 15
    assert by_day.loc[16, "dtype"] == "PRORATED"
    assert by_day.loc[16, "items_answered"] == 7
    assert pd.isna(by_day.loc[14, "aval"])
    assert by_day.loc[14, "anl01fl"] is None
    assert by_day.loc[16, "anl01fl"] == "Y"  # day 14 is on the target but not scorable
    unprorated = d.parameter_by_visit(s, a, d.DatasetSpec(visits=SPEC.visits, prorate=False))
    assert pd.isna(unprorated.set_index("ady").loc[16, "aval"])


def test_response_needs_a_positive_baseline() -> None:
    s = subjects(("A", "CBT"))
    a = frame(phq9("A", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), phq9("A", 14, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    r = d.parameter_by_visit(s, a, SPEC)
    assert list(r["crit1fl"]) == [None, None]  # no response defined from a baseline of 0
    assert pd.isna(r["pchg"].iloc[1])
    assert list(r["crit2fl"]) == [None, "Y"]


def test_subject_level_populations_dates_and_app_use() -> None:
    s = subjects(("A", "CBT"), ("B", "CBT"), ("C", "WAIT"), ("D", "WAIT"))
    a = frame(
        *(phq9(x, 0, 2, 2, 2, 2, 2, 2, 2, 2, 0) for x in "ABCD"),
        phq9("C", 56, 1, 1, 1, 1, 1, 1, 1, 1, 0),
    )
    r = d.parameter_by_visit(s, a, SPEC)
    events = pd.DataFrame(
        [
            {"subject": "B", "kind": "stopped_app_use", "on": R + timedelta(days=5)},
            {"subject": "B", "kind": "withdrawal_by_subject", "on": R + timedelta(days=20)},
            {"subject": "C", "kind": "completed", "on": R + timedelta(days=56)},
        ]
    )
    use = pd.DataFrame(
        [
            {
                "subject": "A",
                "day": R + timedelta(days=1),
                "sessions": 2,
                "minutes": 30,
                "modules_completed": 1,
            },
            {
                "subject": "A",
                "day": R + timedelta(days=9),
                "sessions": 1,
                "minutes": 12,
                "modules_completed": 1,
            },
            {
                "subject": "A",
                "day": R + timedelta(days=60),
                "sessions": 1,
                "minutes": 5,
                "modules_completed": 1,
            },
            {
                "subject": "B",
                "day": R + timedelta(days=2),
                "sessions": 1,
                "minutes": 4,
                "modules_completed": 0,
            },
            {
                "subject": "B",
                "day": R + timedelta(days=9),
                "sessions": 0,
                "minutes": 0,
                "modules_completed": 0,
            },
        ]
    )
    adsl = d.subject_level(s, r, events, use, SPEC).set_index("subject")
    assert adsl.loc["B", "use_days"] == 1  # the day recorded with no session is not use
    assert adsl.loc["B", "last_use_on"] == R + timedelta(days=2)
    assert list(adsl["fasfl"]) == ["Y"] * 4
    assert list(adsl["saffl"]) == ["Y", "Y", "Y", "Y"]  # B opened the app once; waitlist: all
    # PP: A 2 modules by day 56 (the third is later); B none; C attended W08; D did not.
    assert list(adsl["modules_by_pp_day"]) == [2, 0, 0, 0]
    assert list(adsl["pprotfl"]) == ["Y", "N", "Y", "N"]
    assert adsl.loc["A", "use_minutes"] == 47
    assert adsl.loc["A", "use_days"] == 3
    assert adsl.loc["B", "eos_status"] == "withdrawal_by_subject"
    assert adsl.loc["B", "left_trial_on"] == R + timedelta(days=20)
    assert adsl.loc["B", "stopped_app_use_on"] == R + timedelta(days=5)
    assert adsl.loc["C", "eos_status"] == "completed"
    assert adsl.loc["D", "eos_status"] == "ongoing"
    assert adsl.loc["A", "base_phq9"] == 16


def test_time_to_event_events_and_censoring_with_cdisc_cnsr() -> None:
    s = subjects(("A", "CBT"), ("B", "CBT"), ("C", "WAIT"))
    a = frame(
        phq9("A", 0, 2, 2, 2, 2, 2, 2, 2, 2, 0),  # 16
        phq9("A", 14, 2, 2, 2, 2, 1, 1, 1, 1, 0),  # 12
        phq9("A", 28, 1, 1, 1, 1, 1, 1, 1, 1, 0),  # 8: first response (-50 %) on day 28
        phq9("A", 56, 1, 1, 0, 0, 0, 0, 0, 0, 0),  # 2: first remission on day 56
        phq9("B", 0, 2, 2, 2, 2, 2, 2, 2, 2, 0),
        phq9("B", 14, 2, 2, 2, 2, 2, 2, 2, 2, 0),  # no response; B leaves on day 20
        phq9("C", 0, 2, 2, 2, 2, 2, 2, 2, 2, 0),
        phq9("C", 56, 2, 2, 2, 2, 2, 2, 1, 1, 0),  # no response; completed
    )
    r = d.parameter_by_visit(s, a, SPEC)
    events = pd.DataFrame(
        [
            {"subject": "B", "kind": "lost_to_follow_up", "on": R + timedelta(days=20)},
            {"subject": "C", "kind": "completed", "on": R + timedelta(days=56)},
        ]
    )
    use = pd.DataFrame(
        [
            {
                "subject": "A",
                "day": R + timedelta(days=50),
                "sessions": 1,
                "minutes": 10,
                "modules_completed": 0,
            },
            {
                "subject": "B",
                "day": R + timedelta(days=3),
                "sessions": 1,
                "minutes": 10,
                "modules_completed": 0,
            },
        ]
    )
    adsl = d.subject_level(s, r, events, use, SPEC)
    tte = d.time_to_event(adsl, r, SPEC).set_index(["paramcd", "subject"])
    assert tuple(tte.loc[("TTRESP", "A"), ["aval", "cnsr"]]) == (28, 0)
    assert tuple(tte.loc[("TTREMIT", "A"), ["aval", "cnsr"]]) == (56, 0)
    assert tuple(tte.loc[("TTRESP", "B"), ["aval", "cnsr"]]) == (14, 1)  # censored at the last PHQ-9
    assert tuple(tte.loc[("TTRESP", "C"), ["aval", "cnsr"]]) == (56, 1)
    # A used the app on day 50: 6 days before the end of treatment, not a stop: censored at 56.
    assert tuple(tte.loc[("TTSTOPAP", "A"), ["aval", "cnsr"]]) == (56, 1)
    # B's last use on day 3 and followed until day 20 (>= 3 + 14): stopped on day 3.
    assert tuple(tte.loc[("TTSTOPAP", "B"), ["aval", "cnsr"]]) == (3, 0)
    assert ("TTSTOPAP", "C") not in tte.index  # no app in the waitlist arm
    assert tuple(tte.loc[("TTLEAVE", "B"), ["aval", "cnsr"]]) == (20, 0)
    assert tuple(tte.loc[("TTLEAVE", "C"), ["aval", "cnsr"]]) == (56, 1)
    assert set(tte["cnsr"]) == {0, 1}
    assert tte.loc[("TTLEAVE", "B"), "evntdesc"] == "left the trial"
    assert tte.loc[("TTLEAVE", "C"), "cnsdtdsc"] == "end of follow-up"


def _window_records(rule: str) -> pd.DataFrame:
    s = subjects(("A", "CBT"))
    a = frame(
        phq9("A", -3, 2, 2, 2, 2, 2, 2, 2, 2, 0),  # 16: baseline under every rule (last <= day 0)
        phq9("A", -1, 2, 2, 2, 2, 2, 2, 2, 1, 0),  # 15
        phq9("A", 12, 2, 2, 2, 1, 1, 1, 1, 1, 0),  # 11: first of W02's window (1-21)
        phq9("A", 14, 1, 1, 1, 1, 1, 1, 1, 1, 0),  # 8: on target
        phq9("A", 20, 1, 1, 1, 1, 1, 1, 1, 0, 0),  # 7: last of W02's window
        phq9("A", 21, 1, 1, 1, 1, 1, 1, 1, None, None),  # unscorable: never analysed
        phq9("A", 30, 1, 1, 1, 1, 1, 1, 1, 1, 1),  # 9: the only W04 record
    )
    spec = d.DatasetSpec(visits=SPEC.visits, window_rule=rule)  # type: ignore[arg-type]
    r = d.parameter_by_visit(s, a, spec)
    return r[r["anl01fl"] == "Y"].set_index("avisit")


def test_windowing_rules_choose_the_closest_the_first_or_the_last_scorable_record() -> None:
    closest = _window_records("closest_to_target")
    first = _window_records("first_in_window")
    last = _window_records("last_in_window")
    for chosen in (closest, first, last):
        assert chosen.loc["BL", "ady"] == -1  # baseline: the last record on or before day 0
        assert chosen.loc["W04", "ady"] == 30
        assert chosen.loc["W02", "base"] == 15
    assert closest.loc["W02", "ady"] == 14
    assert first.loc["W02", "ady"] == 12
    assert last.loc["W02", "ady"] == 20  # day 21 is in the window but has no total


def test_an_unknown_windowing_rule_is_refused() -> None:
    spec = d.DatasetSpec(visits=SPEC.visits, window_rule="median_in_window")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window_rule"):
        d.parameter_by_visit(subjects(("A", "CBT")), frame(phq9("A", 0, *[1] * 9)), spec)


def gad7(subject: str, day: int, *items: int | None) -> dict[str, object]:
    row = phq9(subject, day, *items)
    row["instrument"] = "GAD-7"
    return row


def test_the_plans_prorating_rules_replace_the_defaults() -> None:
    s = subjects(("A", "CBT"))
    a = frame(
        phq9("A", 0, 2, 2, 2, 2, 2, 2, 2, None, 1),  # 8 of 9, item 9 answered: 15 x 9 / 8 = 16.875 -> 17
        phq9("A", 14, 2, 2, 2, 2, 2, 2, None, None, 1),  # 7 of 9: 13 x 9 / 7 = 16.71 -> 17 by default
        phq9("A", 28, 2, 2, 2, 2, 2, 2, 2, 2, None),  # item 9 missing
        gad7("A", 0, 1, 1, 1, 1, 1, None, None),  # 5 of 7: prorated only under a rule allowing 5
    )
    default = d.parameter_by_visit(s, a, SPEC).set_index(["paramcd", "ady"])
    assert default.loc[("PHQ9TOT", 0), "aval"] == 17
    assert default.loc[("PHQ9TOT", 14), "aval"] == 17
    assert pd.isna(default.loc[("PHQ9TOT", 28), "aval"])
    assert pd.isna(default.loc[("GAD7TOT", 0), "aval"])

    # PHQ-9: 8 of 9 with item 9 required; GAD-7: 5 of 7 (5 x 7 / 5 = 7, flagged as prorated).
    strict = d.DatasetSpec(
        visits=SPEC.visits,
        prorating={"PHQ-9": d.ProratingSpec(8, (9,)), "GAD-7": d.ProratingSpec(5)},
    )
    r = d.parameter_by_visit(s, a, strict).set_index(["paramcd", "ady"])
    assert r.loc[("PHQ9TOT", 0), "aval"] == 17
    assert r.loc[("PHQ9TOT", 0), "dtype"] == "PRORATED"
    assert pd.isna(r.loc[("PHQ9TOT", 14), "aval"])  # 7 answered is now too few
    assert pd.isna(r.loc[("PHQ9TOT", 28), "aval"])
    assert r.loc[("GAD7TOT", 0), "aval"] == 7
    assert r.loc[("GAD7TOT", 0), "items_answered"] == 5

    # Item 1 required as well as 9: the record missing item 8 but answering 1 and 9 still counts.
    required = d.DatasetSpec(visits=SPEC.visits, prorating={"PHQ-9": d.ProratingSpec(7, (1, 9))})
    r = d.parameter_by_visit(s, a, required).set_index(["paramcd", "ady"])
    assert r.loc[("PHQ9TOT", 0), "aval"] == 17
    # GAD-7 has no rule in that plan: never prorated.
    assert pd.isna(r.loc[("GAD7TOT", 0), "aval"])
    assert d.DatasetSpec(visits=SPEC.visits, prorating={}).scoring_rule("GAD-7").min_answered == 7


def test_a_required_item_missing_blocks_prorating() -> None:
    s = subjects(("A", "CBT"))
    a = frame(phq9("A", 0, None, 2, 2, 2, 2, 2, 2, 2, 1))  # 8 of 9 but item 1 missing
    spec = d.DatasetSpec(visits=SPEC.visits, prorating={"PHQ-9": d.ProratingSpec(7, (1, 9))})
    assert pd.isna(d.parameter_by_visit(s, a, spec)["aval"].iloc[0])
    assert d.parameter_by_visit(s, a, SPEC)["aval"].iloc[0] == 17  # 15 x 9 / 8 = 16.875 -> 17


def test_withdrawal_date_is_kept_apart_from_loss_to_follow_up() -> None:
    s = subjects(("A", "CBT"), ("B", "CBT"))
    a = frame(phq9("A", 0, *[1] * 9), phq9("B", 0, *[1] * 9))
    events = pd.DataFrame(
        [
            {"subject": "A", "kind": "withdrawal_by_investigator", "on": R + timedelta(days=9)},
            {"subject": "B", "kind": "lost_to_follow_up", "on": R + timedelta(days=30)},
        ]
    )
    use = pd.DataFrame(columns=["subject", "day", "sessions", "minutes", "modules_completed"])
    adsl = d.subject_level(s, d.parameter_by_visit(s, a, SPEC), events, use, SPEC).set_index("subject")
    assert adsl.loc["A", "withdrawal_on"] == R + timedelta(days=9)
    assert pd.isna(adsl.loc["B", "withdrawal_on"])
    assert adsl.loc["B", "left_trial_on"] == R + timedelta(days=30)
