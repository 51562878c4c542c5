"""The database lock and unblinding pages: each act through its service with a reason, an
explicit confirmation and its audit entry; bad input or a missing lock or plan stores nothing
and says why; the roles that may not act are refused."""

import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from tests.assessments.conftest import CODE
from tests.conftest import csrf_token, set_up_example_trial, sign_in
from trials.analyses.models import TrialUnblinding
from trials.core.accounts.permissions import Principal
from trials.core.audit.models import AuditEntry
from trials.dblock import services as dblock
from trials.dblock.models import DatabaseLock

LOCK = f"/trials/{CODE}/database-lock"
UNBLIND = f"/trials/{CODE}/unblinding"
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "clin_lds": "cleo:clinician:TRIAL:LDS",
    "blinded": "bea:statistician_blinded:TRIAL",
    "unblinded": "ulf:statistician_unblinded:TRIAL",
    "monitor": "mona:monitor:TRIAL",
    "admin": "ada:admin",
}


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    return set_up_example_trial(session, make_site, make_user, STAFF)


@pytest.fixture
def as_user(app: Any) -> Any:
    def make(username: str) -> Any:
        client = app.test_client()
        assert sign_in(client, username).status_code == 302
        return client

    return make


def text_of(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def post(client: Any, path: str, **data: str) -> Any:
    token = csrf_token(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def audit_reason(session: Session, table: str) -> tuple[str, str | None]:
    entry = session.scalars(
        select(AuditEntry)
        .where(col(AuditEntry.table_name) == table, col(AuditEntry.action) != "sign_in")
        .order_by(col(AuditEntry.seq).desc())
    ).first()
    assert entry is not None
    return entry.username, entry.reason


# -- database lock -----------------------------------------------------------------------------


def test_the_sponsor_locks_with_a_reason_and_a_confirmation(
    session: Session, people: dict[str, Principal], as_user: Any
) -> None:
    client = as_user("sam")
    page = text_of(client.get(LOCK))
    assert "Open" in page
    assert 'name="reason"' in page
    assert 'name="confirm"' in page
    response = post(client, LOCK, reason="Last participant's final visit entered and cleaned", confirm="y")
    assert response.status_code == 302, response.get_data(as_text=True)
    lock = session.scalars(select(DatabaseLock)).one()
    assert (lock.locked_by, lock.reason) == ("sam", "Last participant's final visit entered and cleaned")
    assert audit_reason(session, "database_lock") == (
        "sam",
        "Last participant's final visit entered and cleaned",
    )
    locked = text_of(client.get(LOCK))
    assert "Locked" in locked
    assert "lock-form" not in locked
    assert f'href="{UNBLIND}"' in locked  # the next step, for the sponsor


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"reason": "Data cleaned"}, "confirm"),
        ({"confirm": "y"}, "reason"),
        ({"reason": "  ", "confirm": "y"}, "reason"),
    ],
)
def test_a_lock_without_reason_or_confirmation_shows_the_field_error_and_stores_nothing(
    session: Session, people: dict[str, Principal], as_user: Any, data: dict[str, str], field: str
) -> None:
    response = post(as_user("sam"), LOCK, **data)
    assert response.status_code == 422
    # The message beside its field, without the field's name.
    assert re.search(rf'id="{field}-error">(?!{field})[^<]+<', response.get_data(as_text=True))
    assert count(session, DatabaseLock) == 0


def test_locking_a_locked_database_says_why_and_changes_nothing(
    session: Session, people: dict[str, Principal], as_user: Any
) -> None:
    client = as_user("sam")
    token = csrf_token(client.get(LOCK).get_data(as_text=True))
    dblock.lock_database(CODE, reason="first", session=session, by=people["sponsor"])
    session.flush()
    response = client.post(LOCK, data={"csrf_token": token, "reason": "second", "confirm": "y"})
    assert response.status_code == 409
    assert "already locked" in text_of(response)
    assert session.scalars(select(DatabaseLock.reason)).one() == "first"


@pytest.mark.parametrize("username", ["cora", "cleo", "bea", "ulf", "mona", "ada"])
def test_only_the_sponsor_gets_the_lock_page(
    session: Session, people: dict[str, Principal], as_user: Any, username: str
) -> None:
    client = as_user(username)
    assert client.get(LOCK).status_code == 403
    token = csrf_token(client.get("/account").get_data(as_text=True))
    response = client.post(LOCK, data={"csrf_token": token, "reason": "x", "confirm": "y"})
    assert response.status_code == 403
    assert count(session, DatabaseLock) == 0
    assert f'href="{LOCK}"' not in client.get("/").get_data(as_text=True)


# -- unblinding --------------------------------------------------------------------------------


def test_unblinding_before_the_lock_is_refused_with_the_services_message(
    session: Session, people: dict[str, Principal], as_user: Any
) -> None:
    client = as_user("ulf")
    page = text_of(client.get(UNBLIND))
    assert "not locked" in page
    response = post(client, UNBLIND, reason="Final analysis", confirm="y")
    assert response.status_code == 409
    assert "is not locked: lock it before unblinding" in text_of(response)
    assert count(session, TrialUnblinding) == 0


def test_unblinding_without_a_locked_plan_is_refused_with_the_services_message(
    session: Session, people: dict[str, Principal], make_trial: Any, make_user: Any, as_user: Any
) -> None:
    make_trial("NO-PLAN", "A trial without a locked plan")
    make_user("sid", "sponsor:NO-PLAN")
    response = post(as_user("sid"), "/trials/NO-PLAN/unblinding", reason="Final analysis", confirm="y")
    assert response.status_code == 409
    assert "has no locked protocol" in text_of(response)
    assert count(session, TrialUnblinding) == 0


@pytest.mark.parametrize(
    ("data", "field"), [({"reason": "Final analysis"}, "confirm"), ({"confirm": "y"}, "reason")]
)
def test_an_unblinding_without_reason_or_confirmation_shows_the_field_error_and_stores_nothing(
    session: Session, people: dict[str, Principal], as_user: Any, data: dict[str, str], field: str
) -> None:
    dblock.lock_database(CODE, reason="cleaned", session=session, by=people["sponsor"])
    session.flush()
    response = post(as_user("ulf"), UNBLIND, **data)
    assert response.status_code == 422
    # The message beside its field, without the field's name.
    assert re.search(rf'id="{field}-error">(?!{field})[^<]+<', response.get_data(as_text=True))
    assert count(session, TrialUnblinding) == 0


def test_the_unblinded_statistician_unblinds_after_the_lock(
    session: Session, people: dict[str, Principal], as_user: Any
) -> None:
    dblock.lock_database(CODE, reason="cleaned", session=session, by=people["sponsor"])
    session.flush()
    client = as_user("ulf")
    response = post(client, UNBLIND, reason="Final analysis per the locked SAP", confirm="y")
    assert response.status_code == 302, response.get_data(as_text=True)
    record = session.scalars(select(TrialUnblinding)).one()
    assert (record.unblinded_by, record.reason) == ("ulf", "Final analysis per the locked SAP")
    assert audit_reason(session, "trial_unblinding") == ("ulf", "Final analysis per the locked SAP")
    page = text_of(client.get(UNBLIND))
    assert "Unblinded" in page
    assert "unblind-form" not in page
    dashboard = text_of(client.get(f"/trials/{CODE}/dashboard"))
    assert "unblinded" in dashboard


@pytest.mark.parametrize("username", ["cora", "cleo", "bea", "mona", "ada"])
def test_roles_that_may_not_unblind_are_refused(
    session: Session, people: dict[str, Principal], as_user: Any, username: str
) -> None:
    dblock.lock_database(CODE, reason="cleaned", session=session, by=people["sponsor"])
    session.flush()
    client = as_user(username)
    assert client.get(UNBLIND).status_code == 403
    token = csrf_token(client.get("/account").get_data(as_text=True))
    response = client.post(UNBLIND, data={"csrf_token": token, "reason": "x", "confirm": "y"})
    assert response.status_code == 403
    assert count(session, TrialUnblinding) == 0
