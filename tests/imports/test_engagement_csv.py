"""Engagement days by CSV: the API's rules, row by row, all or nothing."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from tests.assessments.conftest import BASE, TODAY, day, ok, participant_id
from tests.imports.conftest import (
    ENGAGEMENT_HEADER,
    cells,
    csv_bytes,
    engagement_row,
    post_csv,
    refused,
    stored,
    withdraw,
)
from trials.engagement.models import EngagementDay


def upload(client: Any, h: Any, rows: list[list[Any]], who: str = "lds") -> Any:
    return post_csv(client, "engagement", csv_bytes(ENGAGEMENT_HEADER, rows), h[who])


def test_a_good_file_stores_the_days_marked_as_imported(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    a, b = make_participant(), make_participant()
    rows = [engagement_row(a, day(n), n % 3, 10 * (n % 3), n % 2 if n % 3 else 0) for n in range(0, 40)]
    rows.append(engagement_row(b, day(0), 1, 1440, 100))
    summary = ok(upload(client, h, rows), 201)
    assert summary["row_count"] == 41
    days = session.scalars(
        select(EngagementDay).where(col(EngagementDay.participant_id) == participant_id(session, a))
    ).all()
    assert len(days) == 40
    assert all(d.source == "import" and d.import_batch_id == uuid.UUID(summary["id"]) for d in days)
    read = ok(client.get(f"{BASE}/participants/{a}/engagement", headers=h["lds"]))
    assert read["totals"]["sessions"] == sum(n % 3 for n in range(40))
    assert read["totals"]["days_used"] == sum(1 for n in range(40) if n % 3)


@pytest.mark.parametrize(
    ("values", "column", "rule"),
    [
        ((1, 1441, 0), "minutes", "range"),
        ((1, -1, 0), "minutes", "range"),
        ((1441, 10, 0), "sessions", "range"),
        ((1, 10, 101), "modules_completed", "range"),
        ((1, "two", 0), "minutes", "int_type"),
        ((1, "10.0", 0), "minutes", "int_type"),
        ((1, " 10", 0), "minutes", "int_type"),
        ((1, "", 0), "minutes", "required"),
        ((0, 10, 0), "sessions", "use_needs_a_session"),
        ((0, 0, 1), "sessions", "use_needs_a_session"),
    ],
)
def test_a_bad_count_refuses_the_file(
    client: Any,
    session: Session,
    h: Any,
    make_participant: Any,
    values: tuple[Any, ...],
    column: str,
    rule: str,
) -> None:
    label = make_participant()
    before = stored(session)
    errors = refused(
        upload(client, h, [engagement_row(label, day(1)), engagement_row(label, day(2), *values)])
    )
    assert cells(errors) == {(3, column, rule)}
    assert stored(session) == before


def test_bad_days_participants_and_duplicates_are_refused(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label, other_site, waiting = (
        make_participant(),
        make_participant("MAN"),
        make_participant(randomize=False),
    )
    ok(
        client.post(
            f"{BASE}/participants/{label}/engagement",
            json={"days": [{"day": day(5), "sessions": 1, "minutes": 5, "modules_completed": 0}]},
            headers=h["lds"],
        )
    )
    before = stored(session)
    errors = refused(
        upload(
            client,
            h,
            [
                engagement_row(label, (TODAY + timedelta(days=1)).isoformat()),
                engagement_row(label, day(-1)),  # the day before randomization
                engagement_row(label, "2026/11/01"),
                engagement_row(label, day(5)),  # stored through the API
                engagement_row(label, day(6)),
                engagement_row(label, day(6), 2, 30, 1),
                engagement_row(other_site, day(6)),
                engagement_row("MAN-9999", day(6)),
                engagement_row(waiting, day(6)),
            ],
        )
    )
    assert cells(errors) == {
        (2, "day", "not_future"),
        (3, "day", "not_before_randomization"),
        (4, "day", "date_format"),
        (5, "day", "duplicate"),
        (7, "day", "duplicate_in_file"),
        (8, "participant", "unknown_participant"),
        (9, "participant", "unknown_participant"),
        (10, "participant", "not_randomized"),
    }
    assert stored(session) == before


def test_a_day_after_the_participants_withdrawal_is_refused(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    label = make_participant()
    withdraw(session, people["lds"], label, day(20))
    before = stored(session)
    errors = refused(upload(client, h, [engagement_row(label, day(20)), engagement_row(label, day(21))]))
    assert cells(errors) == {(3, "day", "not_after_withdrawal")}
    assert stored(session) == before
    api = client.post(
        f"{BASE}/participants/{label}/engagement",
        json={"days": [{"day": day(21), "sessions": 1, "minutes": 5, "modules_completed": 0}]},
        headers=h["lds"],
    )
    assert api.status_code == 422
    assert {(e["field"], e["rule"]) for e in api.get_json()["errors"]} == {
        ("days[0].day", "not_after_withdrawal")
    }
