"""Assessments by CSV: every bad input refuses the whole file naming row, column and rule, and
nothing is stored; a good file stores its rows as the API would, with the same visit windows,
data queries and safety events, in one request."""

import random
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from tests.assessments.conftest import CONSENTED, TODAY, day, ok, participant_id, problem
from tests.imports.conftest import (
    ASSESSMENT_HEADER,
    assessment_row,
    cells,
    csv_bytes,
    post_csv,
    refused,
    stored,
    withdraw,
)
from trials.assessments.models import Assessment, DataQuery
from trials.assessments.services import validate_items
from trials.core.errors import InvalidInput
from trials.imports.models import ImportBatch
from trials.safety.models import Notification, OutboxMessage, SafetyEvent

CLEAN = (1, 1, 1, 1, 1, 1, 1, 1, 0)


def upload(client: Any, h: Any, rows: list[list[Any]], who: str = "lds", **params: str) -> Any:
    return post_csv(client, "assessments", csv_bytes(ASSESSMENT_HEADER, rows), h[who], **params)


def api_submit(client: Any, h: Any, label: str, items: dict[str, Any], assessed_on: str) -> Any:
    body = {"instrument": "PHQ-9", "assessed_on": assessed_on, "items": items}
    return client.post(
        f"/api/v1/trials/MOOD-CBT-01/participants/{label}/assessments", json=body, headers=h["lds"]
    )


# -- each bad input of the acceptance list, through CSV ----------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "rule"),
    [
        ("4", "range"),
        ("-1", "range"),
        ("two", "int_type"),
        ("1.0", "int_type"),
        (" 1", "int_type"),
        ("+1", "int_type"),
    ],
)
def test_a_bad_item_refuses_the_file_naming_row_column_and_rule(
    client: Any, session: Session, h: Any, make_participant: Any, cell: str, rule: str
) -> None:
    first, second = make_participant(), make_participant()
    rows = [assessment_row(first, day(14), *CLEAN), assessment_row(second, day(0), 1, 1, cell, *CLEAN[3:])]
    before = stored(session)
    errors = refused(upload(client, h, rows))
    assert cells(errors) == {(3, "item_3", rule)}
    assert cell.strip() in errors[0]["message"]
    assert stored(session) == before


def test_a_missing_item_9_is_stored_as_missing_and_raises_its_safety_event(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    summary = ok(upload(client, h, [assessment_row(label, day(14), *CLEAN[:8], None, 2)]), 201)
    assert (summary["row_count"], summary["safety_events"]) == (1, 1)
    stored_row = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == participant_id(session, label))
    ).one()
    assert stored_row.item_9 is None  # never 0
    assert stored_row.item_10 == 2
    [event] = session.scalars(
        select(SafetyEvent).where(col(SafetyEvent.assessment_id) == stored_row.id)
    ).all()
    assert (event.kind, event.item9, event.status) == ("item9_missing", None, "open")
    notified = session.scalars(
        select(Notification).where(col(Notification.safety_event_id) == event.id)
    ).all()
    assert len(notified) == 2  # the site's two clinicians
    assert "not answered" in notified[0].body


def test_a_positive_item_9_raises_an_event_and_notifies_the_sites_clinicians_in_the_same_import(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    lds, man = make_participant(), make_participant("MAN")
    ok(upload(client, h, [assessment_row(lds, day(14), *CLEAN[:8], 2)]), 201)
    ok(upload(client, h, [assessment_row(man, day(14), *CLEAN[:8], 1)], who="man"), 201)
    events = {e.participant_id: e for e in session.scalars(select(SafetyEvent)).all()}
    event = events[participant_id(session, lds)]
    assert (event.kind, event.item9) == ("item9_positive", 2)
    notified = session.scalars(
        select(Notification.user_id).where(col(Notification.safety_event_id) == event.id)
    ).all()
    outbox = session.scalars(
        select(OutboxMessage).where(col(OutboxMessage.safety_event_id) == event.id)
    ).all()
    assert len(notified) == len(outbox) == 2  # cleo and clara, LDS's clinicians; not max (MAN)
    assert {m.to for m in outbox} == {"cleo", "clara"}
    assert f"participant {lds}" in outbox[0].body
    assert "item 9 = 2" in outbox[0].body
    # The same event and message as the API raises for the same answers.
    api_label = make_participant()
    ok(
        api_submit(
            client, h, api_label, {str(n): v for n, v in enumerate((*CLEAN[:8], 2), start=1)}, day(14)
        ),
        201,
    )
    api_event = session.scalars(
        select(SafetyEvent).where(col(SafetyEvent.participant_id) == participant_id(session, api_label))
    ).one()
    api_message = session.scalars(
        select(OutboxMessage).where(col(OutboxMessage.safety_event_id) == api_event.id)
    ).first()
    assert api_message is not None
    assert api_message.subject.replace(api_label, lds) == outbox[0].subject
    assert (api_event.due_at - api_event.created_at) == (event.due_at - event.created_at)


def test_unknown_and_other_sites_participants_are_refused_alike(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    other_site = make_participant("MAN")
    mine = make_participant()
    before = stored(session)
    errors = refused(
        upload(
            client,
            h,
            [
                assessment_row(mine, day(14), *CLEAN),
                assessment_row("LDS-9999", day(14), *CLEAN),
                assessment_row(other_site, day(14), *CLEAN),
                assessment_row("", day(14), *CLEAN),
            ],
        )
    )
    assert cells(errors) == {
        (3, "participant", "unknown_participant"),
        (4, "participant", "unknown_participant"),
        (5, "participant", "required"),
    }
    messages = {e["row"]: e["message"] for e in errors}
    assert messages[3].partition(": ")[2].replace("LDS-9999", "X") == messages[4].partition(": ")[2].replace(
        other_site, "X"
    )
    assert stored(session) == before


def test_a_participant_not_yet_randomized_is_refused(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    waiting = make_participant(randomize=False)
    before = stored(session)
    errors = refused(upload(client, h, [assessment_row(waiting, CONSENTED.isoformat(), *CLEAN)]))
    assert cells(errors) == {(2, "participant", "not_randomized")}
    assert stored(session) == before


@pytest.mark.parametrize(
    ("when", "rule"),
    [
        ((TODAY.toordinal() + 1), "not_future"),
        ((CONSENTED.toordinal() - 1), "not_before_consent"),
    ],
)
def test_a_date_in_the_future_or_before_consent_is_refused(
    client: Any, session: Session, h: Any, make_participant: Any, when: int, rule: str
) -> None:
    label = make_participant()
    before = stored(session)
    errors = refused(upload(client, h, [assessment_row(label, TODAY.fromordinal(when).isoformat(), *CLEAN)]))
    assert cells(errors) == {(2, "assessed_on", rule)}
    assert stored(session) == before


def test_a_date_after_the_participants_withdrawal_is_refused(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    label = make_participant()
    withdraw(session, people["lds"], label, day(20))
    before = stored(session)
    errors = refused(
        upload(client, h, [assessment_row(label, day(14), *CLEAN), assessment_row(label, day(28), *CLEAN)])
    )
    assert cells(errors) == {(3, "assessed_on", "not_after_withdrawal")}
    assert stored(session) == before
    assert ok(upload(client, h, [assessment_row(label, day(14), *CLEAN)]), 201)["row_count"] == 1


@pytest.mark.parametrize("cell", ["2026-13-01", "01/02/2026", "2026-1-5", "20261105", "", "tomorrow"])
def test_a_date_not_written_yyyy_mm_dd_is_refused(
    client: Any, session: Session, h: Any, make_participant: Any, cell: str
) -> None:
    label = make_participant()
    errors = refused(upload(client, h, [assessment_row(label, cell, *CLEAN)]))
    assert cells(errors) == {(2, "assessed_on", "required" if not cell else "date_format")}


def test_duplicates_of_a_stored_assessment_or_of_another_row_are_refused(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    entered, other = make_participant(), make_participant()
    ok(api_submit(client, h, entered, {str(n): v for n, v in enumerate(CLEAN, start=1)}, day(14)), 201)
    before = stored(session)
    errors = refused(
        upload(
            client,
            h,
            [
                assessment_row(entered, day(15), *CLEAN),  # W02 again: stored through the API
                assessment_row(other, day(13), *CLEAN),
                assessment_row(other, day(16), *CLEAN),  # the same visit as the row above
                assessment_row(other, day(16), *CLEAN[:7], instrument="GAD-7"),  # another instrument: fine
            ],
        )
    )
    assert cells(errors) == {(2, "assessed_on", "duplicate"), (4, "assessed_on", "duplicate_in_file")}
    assert "row 3" in next(e["message"] for e in errors if e["row"] == 4)
    assert "correct it" in next(e["message"] for e in errors if e["row"] == 2)
    assert stored(session) == before


def test_phq8_and_gad7_rows_leave_the_other_item_columns_empty(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    errors = refused(
        upload(
            client,
            h,
            [
                assessment_row(label, day(14), *CLEAN[:8], 0, instrument="PHQ-8"),
                assessment_row(label, day(14), *CLEAN[:7], 1, instrument="GAD-7"),
                assessment_row(label, day(28), *CLEAN, instrument="BDI-II"),
                assessment_row(label, day(42), *CLEAN, instrument=""),
            ],
        )
    )
    assert cells(errors) == {
        (2, "item_9", "unknown_item"),
        (3, "item_8", "unknown_item"),
        (4, "instrument", "unknown_instrument"),
        (5, "instrument", "required"),
    }


def test_the_items_are_judged_exactly_as_validate_items_judges_each_row(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    """The import judges each distinct (instrument, item, cell) once: the same verdicts as
    calling `validate_items` on every row."""
    rng = random.Random(7)
    pool = ["", "", "0", "1", "2", "3", "3", "4", "-1", "two", "1.0", " 1", "01", "99999999999", "٣"]
    instruments = ["PHQ-9", "PHQ-8", "GAD-7"]
    labels = [make_participant() for _ in range(3)]
    rows, expected = [], set()
    for i in range(36):
        instrument = instruments[i % 3]
        items = [rng.choice(pool) for _ in range(10)]
        rows.append([labels[i // 12], instrument, day(14 * (i % 12 // 3)), *items])
        given: dict[str, Any] = {}
        for n, cell in enumerate(items, start=1):
            if cell:
                # An integer is written without leading zeros ("01" is refused as text).
                given[str(n)] = int(cell) if re.fullmatch(r"0|-?[1-9][0-9]*", cell) else cell
        try:
            validate_items(instrument, given)
        except InvalidInput as exc:
            expected |= {(i + 2, "item_" + e.field.split(".")[1], e.rule) for e in exc.errors}
    errors = refused(upload(client, h, rows))
    found = {c for c in cells(errors) if c[1].startswith("item_")}
    assert expected
    assert found == expected


# -- the file as a whole -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "column", "rule"),
    [
        (
            ("participant", "instrument", "assessed_on", *(f"item_{n}" for n in range(1, 10))),
            "item_10",
            "missing_column",
        ),
        ((*ASSESSMENT_HEADER, "site"), "site", "unknown_column"),
        ((*ASSESSMENT_HEADER, "item_3"), "item_3", "duplicate_column"),
        (("Participant", *ASSESSMENT_HEADER[1:]), "Participant", "unknown_column"),
        ((" participant", *ASSESSMENT_HEADER[1:]), " participant", "unknown_column"),
    ],
)
def test_the_header_must_name_exactly_the_columns(
    client: Any,
    session: Session,
    h: Any,
    make_participant: Any,
    header: tuple[str, ...],
    column: str,
    rule: str,
) -> None:
    label = make_participant()
    row = assessment_row(label, day(14), *CLEAN)
    content = csv_bytes(header, [row + [""] * (len(header) - len(row))])
    errors = refused(post_csv(client, "assessments", content, h["lds"]))
    assert (1, column, rule) in cells(errors)


def test_columns_may_come_in_any_order_and_a_bom_is_allowed(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    header = tuple(reversed(ASSESSMENT_HEADER))
    row = list(reversed(assessment_row(label, day(14), *CLEAN)))
    content = csv_bytes(header, [row, [""] * len(header)], bom=True)  # and an empty spreadsheet row
    assert ok(post_csv(client, "assessments", content, h["lds"]), 201)["row_count"] == 1


@pytest.mark.parametrize(
    ("content", "row", "rule"),
    [
        (b"", 1, "empty"),
        (",".join(ASSESSMENT_HEADER).encode() + b"\r\n", 2, "no_rows"),
        (",".join(ASSESSMENT_HEADER).encode() + b"\r\nLDS-0001,PHQ-9\r\n", 2, "cell_count"),
        (",".join(ASSESSMENT_HEADER).encode() + b"\r\n\xff\xfeLDS", 2, "encoding"),
        (";".join(ASSESSMENT_HEADER).encode() + b"\r\n", 1, "unknown_column"),
        (",".join(ASSESSMENT_HEADER).encode() + b'\r\n"LDS-0001"x,PHQ-9\r\n', 2, "csv_syntax"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_naming_the_row(
    client: Any, session: Session, h: Any, people: Any, content: bytes, row: int, rule: str
) -> None:
    before = stored(session)
    errors = refused(post_csv(client, "assessments", content, h["lds"]))
    assert (row, rule) in {(e["row"], e["rule"]) for e in errors}, errors
    if rule == "unknown_column":
        assert "separator" in errors[0]["message"]
    assert stored(session) == before


def test_one_bad_row_among_many_stores_nothing_at_all(
    client: Any, session: Session, h: Any, many_participants: Any
) -> None:
    labels = many_participants(30)
    rows = [assessment_row(label, day(14, 100), *CLEAN[:8], n % 2) for n, label in enumerate(labels)]
    rows += [assessment_row(label, day(35, 100), *CLEAN) for label in labels]  # out of window
    rows.insert(47, assessment_row(labels[3], day(14, 100), 1, 1, 1, 7, 1, 1, 1, instrument="GAD-7"))
    before = stored(session)
    errors = refused(upload(client, h, rows))
    assert cells(errors) == {(49, "item_4", "range")}
    assert stored(session) == before  # no assessment, query, event, notification, batch nor entry


def test_every_error_is_listed_in_file_order_up_to_a_cap_with_the_total(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    rows = [assessment_row(label, "soon", 9, *CLEAN[1:]) for _ in range(600)]  # 2 errors a row
    response = upload(client, h, rows)
    errors = refused(response)
    body = response.get_json()
    assert len(errors) == 1000
    assert [(e["row"], e["column"]) for e in errors[:3]] == [
        (2, "assessed_on"),
        (2, "item_1"),
        (3, "assessed_on"),
    ]
    assert errors[-1]["row"] == 501
    assert body["errors"][-1] == {
        "field": "file",
        "rule": "more_errors",
        "message": "200 more errors are not listed (1200 in all)",
    }
    assert "1200 errors in 600 rows" in body["detail"]


# -- what a good file stores ---------------------------------------------------------------------


def test_a_good_file_stores_rows_as_the_api_would_with_windows_queries_and_the_batch(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    a, b = make_participant(), make_participant()
    rows = [
        assessment_row(a, day(-3), 2, 2, 2, 2, 2, 2, 2, 2, 0, 1),  # baseline window: 14 days before
        assessment_row(a, day(-3), 1, 1, 1, 1, 1, 1, 1, instrument="GAD-7"),
        assessment_row(a, day(14), 2, None, 2, 2, 2, 2, 2, 2, 0),  # item 2 missing
        assessment_row(b, day(21), 0, 0, 0, 0, 0, 0, 0, 0, instrument="PHQ-8"),  # out of window
    ]
    content = csv_bytes(ASSESSMENT_HEADER, rows)
    summary = ok(post_csv(client, "assessments", content, h["lds"], filename="week-2 export.csv"), 201)
    assert summary["row_count"] == 4
    assert (summary["kind"], summary["filename"], summary["imported_by"]) == (
        "assessments",
        "week-2 export.csv",
        "cora",
    )
    assert summary["site_codes"] == ["LDS"]
    assert (summary["data_queries"], summary["safety_events"]) == (1, 0)
    batch = session.get(ImportBatch, uuid.UUID(summary["id"]))
    assert batch is not None
    assert batch.content == content
    got = {
        (r.participant_id, r.instrument): r
        for r in session.scalars(select(Assessment).where(col(Assessment.import_batch_id) == batch.id)).all()
    }
    pa, pb = participant_id(session, a), participant_id(session, b)
    baseline = session.scalars(
        select(Assessment).where(
            col(Assessment.participant_id) == pa,
            col(Assessment.visit_code) == "BL",
            col(Assessment.instrument) == "PHQ-9",
        )
    ).one()
    assert [baseline.item_1, baseline.item_9, baseline.item_10] == [2, 0, 1]
    week2 = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == pa, col(Assessment.visit_code) == "W02")
    ).one()
    assert week2.item_2 is None
    assert week2.item_3 == 2
    phq8 = got[pb, "PHQ-8"]
    assert (phq8.visit_code, phq8.in_window, phq8.item_9) == ("W02", False, None)
    assert all((r.source, r.entered_by) == ("site", "cora") for r in got.values())
    [query] = session.scalars(select(DataQuery).where(col(DataQuery.assessment_id) == phq8.id)).all()
    assert query.rule == "out_of_window"
    assert query.message == (
        f"PHQ-8 of {day(21)} is on day 21 from randomization, outside every visit window; "
        "assigned to the nearest visit W02 (day 14)"
    )


def test_deterioration_over_a_baseline_in_the_same_file_or_already_stored(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    in_file, entered = make_participant(), make_participant()
    ok(api_submit(client, h, entered, {str(n): 1 for n in range(1, 10)} | {"9": 0}, day(-1)), 201)  # total 8
    rows = [
        assessment_row(in_file, day(28), 2, 2, 2, 2, 2, 2, 2, 2, 0),  # 16: +8 over the baseline below
        assessment_row(in_file, day(-2), 1, 1, 1, 1, 1, 1, 1, 1, 0),  # baseline total 8
        assessment_row(entered, day(28), 2, 2, 2, 2, 2, 2, 1, 1, 0),  # 14: +6 over the stored 8
        assessment_row(entered, day(14), 2, 2, 1, 1, 1, 1, 1, 1, 0),  # 10: +2, no event
    ]
    summary = ok(upload(client, h, rows), 201)
    assert summary["safety_events"] == 2
    events = session.scalars(select(SafetyEvent).where(col(SafetyEvent.kind) == "deterioration")).all()
    assert {e.participant_id for e in events} == {
        participant_id(session, in_file),
        participant_id(session, entered),
    }


def test_the_same_file_is_imported_once_and_its_second_upload_names_the_first(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    content = csv_bytes(ASSESSMENT_HEADER, [assessment_row(label, day(14), *CLEAN)])
    first = ok(post_csv(client, "assessments", content, h["lds"], filename="a.csv"), 201)
    before = stored(session)
    again = problem(post_csv(client, "assessments", content, h["lds"], filename="renamed.csv"), 409)
    assert first["id"] in again["detail"]
    assert "cora" in again["detail"]
    assert first["created_at"][:10] in again["detail"]
    assert stored(session) == before


def test_a_locked_database_refuses_the_file(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    ok(
        client.post(
            "/api/v1/trials/MOOD-CBT-01/database-lock", json={"reason": "final review"}, headers=h["sponsor"]
        ),
        201,
    )
    before = stored(session)
    found = problem(upload(client, h, [assessment_row(label, day(14), *CLEAN)]), 409)
    assert "locked" in found["detail"]
    assert stored(session) == before


def test_only_those_who_enter_data_may_import(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    rows = [assessment_row(label, day(14), *CLEAN)]
    before = stored(session)
    for who in ("sponsor", "clin_lds", "blinded", "monitor"):
        problem(upload(client, h, rows, who=who), 403)
    assert stored(session) == before


def test_a_large_file_is_stored_row_for_row(
    client: Any, session: Session, h: Any, many_participants: Any
) -> None:
    """2,004 rows: 167 participants, twelve assessments each (PHQ-9 and GAD-7 at six visits)."""
    labels = many_participants(167, randomized_days_ago=87)
    rng = random.Random(3)
    rows, expected_events, expected = [], 0, {}
    visits = {"BL": -2, "W02": 14, "W04": 28, "W06": 42, "W08": 56, "W12": 84}
    for label in labels:
        baseline_total = None
        for visit, offset in visits.items():
            items = [rng.choice((0, 1, 2, 3)) for _ in range(8)] + [rng.choice((0, 0, 0, 0, 1, None))]
            total = None if None in items else sum(v for v in items if v is not None)
            if visit == "BL":
                baseline_total = total
            rows.append(assessment_row(label, day(offset, 87), *items, 1))
            gad = [rng.choice((0, 1, 2, 3)) for _ in range(7)]
            rows.append(assessment_row(label, day(offset + 1, 87), *gad, instrument="GAD-7"))
            expected[label, visit] = (items, gad)
            expected_events += items[8] != 0  # a positive or missing item 9
            if (
                visit != "BL"
                and total is not None
                and baseline_total is not None
                and total - baseline_total >= 6
            ):
                expected_events += 1
    rng.shuffle(rows)
    summary = ok(upload(client, h, rows), 201)
    assert summary["row_count"] == len(rows) == 2004
    assert summary["safety_events"] == expected_events
    assert summary["data_queries"] == 0
    ids = {participant_id(session, label): label for label in labels}
    stored_rows = session.scalars(
        select(Assessment).where(col(Assessment.import_batch_id) == uuid.UUID(summary["id"]))
    ).all()
    assert len(stored_rows) == 2004
    for row in stored_rows:
        items, gad = expected[ids[row.participant_id], row.visit_code]
        if row.instrument == "PHQ-9":
            assert [
                row.item_1,
                row.item_2,
                row.item_3,
                row.item_4,
                row.item_5,
                row.item_6,
                row.item_7,
                row.item_8,
                row.item_9,
                row.item_10,
            ] == [*items, 1]
        else:
            assert [row.item_1, row.item_2, row.item_3, row.item_4, row.item_5, row.item_6, row.item_7] == gad
            assert row.item_8 is row.item_9 is row.item_10 is None
        assert row.in_window
    assert len(session.scalars(select(SafetyEvent)).all()) == expected_events
