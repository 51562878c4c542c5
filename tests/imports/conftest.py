"""A live example trial with site staff and clinicians, and helpers to build and upload CSV files.

The trial is the one of the assessment tests, with longer allocation sequences: the large
imports randomize a few hundred participants.
"""

import csv
import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from tests.assessments.conftest import CODE, CONSENTED, TODAY, counts, h, make_participant
from tests.conftest import set_up_example_trial, site_and_user_makers
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.db import make_engine
from trials.engagement.models import EngagementDay
from trials.imports.models import ImportBatch
from trials.participants import services as participants
from trials.participants.models import ScreeningCreate
from trials.randomization import services as randomization

__all__ = ["h", "make_participant"]

BASE = f"/api/v1/trials/{CODE}"
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "man": "manny:coordinator:TRIAL:MAN",
    "clin_lds": "cleo:clinician:TRIAL:LDS",
    "clin_lds2": "clara:clinician:TRIAL:LDS",
    "clin_man": "max:clinician:TRIAL:MAN",
    "blinded": "bea:statistician_blinded:TRIAL",
    "monitor": "moe:monitor:TRIAL",
}
ASSESSMENT_HEADER = ("participant", "instrument", "assessed_on", *(f"item_{n}" for n in range(1, 11)))
ENGAGEMENT_HEADER = ("participant", "day", "sessions", "minutes", "modules_completed")


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    """The example protocol locked and live (300 slots per stratum); staff at LDS and MAN."""
    return set_up_example_trial(
        session, make_site, make_user, STAFF, live_seed=b"\x04" * 32, slots_per_stratum=300
    )


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]], *, bom: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return ("\ufeff" if bom else "").encode("utf-8") + buffer.getvalue().encode("utf-8")


def assessment_row(label: str, assessed_on: str, *items: Any, instrument: str = "PHQ-9") -> list[Any]:
    """A row of an assessments file: items 1.. as given, the others empty."""
    return [label, instrument, assessed_on, *items, *([None] * (10 - len(items)))]


def engagement_row(label: str, day: str, sessions: Any = 1, minutes: Any = 20, modules: Any = 0) -> list[Any]:
    return [label, day, sessions, minutes, modules]


def post_csv(client: Any, kind: str, content: bytes, headers: dict[str, str], **params: str) -> Any:
    return client.post(
        f"{BASE}/imports/{kind}",
        data=content,
        headers={**headers, "Content-Type": "text/csv"},
        query_string=params,
    )


def stored(session: Session) -> dict[str, int]:
    """What a refused file must not change: the assessment tables, safety events and
    notifications, the audit trail, engagement days and import batches."""
    found = counts(session)
    for name, model in (("engagement", EngagementDay), ("batches", ImportBatch)):
        found[name] = int(session.scalar(select(func.count()).select_from(model)) or 0)
    return found


def refused(response: Any) -> list[dict[str, Any]]:
    """The row errors of a 422 refusal, checking the problem's shape."""
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["title"] == "File refused"
    assert "nothing was stored" in body["detail"]
    rows = [e for e in body["errors"] if "row" in e]
    for error in rows:
        assert set(error) == {"field", "row", "column", "rule", "message"}
        where = f"row {error['row']}, {error['column']}" if error["column"] else f"row {error['row']}"
        assert error["message"].startswith(where + ": "), error
    return rows


def cells(errors: list[dict[str, Any]]) -> set[tuple[int, str, str]]:
    return {(e["row"], e["column"], e["rule"]) for e in errors}


def committed_trial(url: str, participants_per_site: int = 2, randomized_days_ago: int = 40) -> list[str]:
    """On a database of its own: the live example trial, its staff, and randomized participants
    at LDS (randomized `randomized_days_ago` days ago), committed. Returns their labels."""
    engine = make_engine(url)
    labels = []
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system())

        make_site, make_user = site_and_user_makers(session)

        people = set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)
        for _ in range(participants_per_site):
            labels.append(randomize_in_the_past(session, people["lds"], "LDS", days_ago=randomized_days_ago))
        session.commit()
    engine.dispose()
    return labels


def randomize_in_the_past(
    session: Session, by: Principal, site: str, *, days_ago: int, randomize: bool = True
) -> str:
    data = ScreeningCreate.model_validate(
        {
            "site_code": site,
            "screened_on": CONSENTED,
            "age_years": 30,
            "screening_phq9": 12,
            "inclusion_met": True,
            "exclusion_present": False,
        }
    )
    label = participants.screen(CODE, data, session=session, by=by, today=TODAY).label
    participants.enrol(CODE, label, CONSENTED, session=session, by=by, today=TODAY)
    if randomize:
        slot = randomization.randomize(CODE, label, session=session, by=by)
        with audit.reason(session, "test: randomization dated in the past"):
            slot.randomized_at = datetime.now(UTC) - timedelta(days=days_ago)
            session.add(slot)
    session.flush()
    return label


@pytest.fixture
def many_participants(session: Session, people: dict[str, Principal]) -> Callable[..., list[str]]:
    """many_participants(n, site="LDS", randomized_days_ago=100) -> labels."""

    def make(n: int, site: str = "LDS", randomized_days_ago: int = 100) -> list[str]:
        by = people["lds" if site == "LDS" else "man"]
        return [randomize_in_the_past(session, by, site, days_ago=randomized_days_ago) for _ in range(n)]

    return make


def withdraw(session: Session, by: Principal, label: str, on: str) -> None:
    """Record the participant's withdrawal on the ISO date `on`."""
    from trials.events import services as events
    from trials.events.models import DispositionCreate

    data = DispositionCreate.model_validate(
        {"kind": "withdrawal_by_subject", "event_date": on, "reason": "no longer wishes to take part"}
    )
    events.record_disposition(CODE, label, data, session=session, by=by, today=TODAY)
    session.flush()
