"""A live example trial with site staff and clinicians, and randomized participants whose
randomization date lies in the past (so that visits can be dated)."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from tests.conftest import bearer, set_up_example_trial
from trials.assessments.models import Assessment, DataQuery
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.participants import services as participants
from trials.participants.models import Participant, ScreeningCreate
from trials.randomization import services as randomization
from trials.safety.models import Notification, OutboxMessage, SafetyEvent

CODE = "MOOD-CBT-01"
BASE = f"/api/v1/trials/{CODE}"
ARMS = ("CBT", "ATTN", "WAIT")
TODAY = datetime.now(UTC).date()
CONSENTED = TODAY - timedelta(days=90)


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    """The example protocol locked and live; coordinators and clinicians at LDS and MAN."""
    staff = {
        "sponsor": "sam:sponsor:TRIAL",
        "lds": "cora:coordinator:TRIAL:LDS",
        "man": "manny:coordinator:TRIAL:MAN",
        "clin_lds": "cleo:clinician:TRIAL:LDS",
        "clin_lds2": "clara:clinician:TRIAL:LDS",
        "clin_man": "max:clinician:TRIAL:MAN",
        "blinded": "bea:statistician_blinded:TRIAL",
    }
    return set_up_example_trial(session, make_site, make_user, staff, live_seed=b"\x02" * 32)


@pytest.fixture
def h(session: Session, people: dict[str, Principal]) -> dict[str, dict[str, str]]:
    """A write token's headers for each person of the trial."""
    return {name: bearer(session, principal) for name, principal in people.items()}


@pytest.fixture
def make_participant(session: Session, people: dict[str, Principal]) -> Callable[..., str]:
    """make_participant(site="LDS", randomized_days_ago=40, randomize=True) -> label."""

    def make(site: str = "LDS", randomized_days_ago: int = 40, randomize: bool = True) -> str:
        by = people["lds" if site == "LDS" else "man"]
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
                slot.randomized_at = datetime.now(UTC) - timedelta(days=randomized_days_ago)
                session.add(slot)
        session.flush()
        return label

    return make


def day(n: int, randomized_days_ago: int = 40) -> str:
    """The ISO date `n` days after a randomization `randomized_days_ago` days ago."""
    return (TODAY - timedelta(days=randomized_days_ago) + timedelta(days=n)).isoformat()


def phq9(*values: int | None, **extra: Any) -> dict[str, int | None]:
    """PHQ-9 items 1-9 (then 10 when given) from positional values."""
    items: dict[str, int | None] = {str(n): v for n, v in enumerate(values, start=1)}
    items.update(extra)
    return items


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    return body


def rules(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["field"], e["rule"]) for e in body.get("errors", [])}


def counts(session: Session) -> dict[str, int]:
    """What a refused request must not change."""
    session.expire_all()

    def count(model: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)

    return {
        "assessments": count(Assessment),
        "queries": count(DataQuery),
        "events": count(SafetyEvent),
        "notifications": count(Notification),
        "outbox": count(OutboxMessage),
        "audit": count(AuditEntry),
    }


def chain_verifies(session: Session) -> None:
    session.flush()
    report = audit.verify_chain(session.connection())
    assert report.ok, report


def participant_id(session: Session, label: str) -> Any:
    return session.scalars(select(Participant.id).where(col(Participant.label) == label)).one()


def no_arm_in(text: str) -> None:
    text = text.replace(CODE, "")
    for arm in ARMS:
        assert arm not in text, text
