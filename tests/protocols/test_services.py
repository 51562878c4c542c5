"""Protocol registry services: register, edit a draft, amend, lock with a signature, immutability."""

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Uuid, bindparam, func, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from protocols import services
from protocols.document import content_hash
from protocols.models import ProtocolVersion
from tests.conftest import PASSWORD, create_database, drop_database
from tests.protocols.invalid_cases import EXAMPLE_TEXT, Data, dump, example_data
from tests.protocols.test_document import EXAMPLE_HASH
from trials.core import migrate
from trials.core.accounts import services as accounts
from trials.core.accounts.models import GrantCreate, Role, Trial, User, UserCreate
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.db import make_engine
from trials.core.errors import Conflict, Forbidden, InvalidInput
from trials.core.signatures.models import Signature

CODE = "MOOD-CBT-01"
LOCKOUT = 6


def submission(text_: str = EXAMPLE_TEXT) -> services.Submission:
    return services.parse_submission(text_, "yaml")


def changed(*edits: Callable[[Data], None]) -> services.Submission:
    data = example_data()
    for edit in edits:
        edit(data)
    return submission(dump(data))


def set_alpha(data: Data) -> None:
    data["sap"]["alpha"] = 0.04


def rename_cbt_arm(data: Data) -> None:
    data["arms"][0]["name"] = "MoodStep CBT programme"


def later_week_8_window(data: Data) -> None:
    data["visits"][4]["window_after"] = 5


def entries(session: Session, **where: Any) -> list[AuditEntry]:
    query = select(AuditEntry)
    for name, value in where.items():
        query = query.where(getattr(AuditEntry, name) == value)
    return list(session.exec(query.order_by(col(AuditEntry.seq))).all())


def count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def trial(make_trial: Any) -> Trial:
    result: Trial = make_trial(CODE, "MoodStep")
    return result


def acting(session: Session, principal: Principal) -> Principal:
    """Record `principal` as the actor of the session's changes, as the web, API and CLI do."""
    audit.set_actor(session, accounts.actor_for(principal, "web"))
    return principal


@pytest.fixture
def sponsor(session: Session, trial: Trial, make_user: Any) -> tuple[User, Principal]:
    user, principal = make_user("sam", f"sponsor:{CODE}", name="Sam Sponsor")
    return user, acting(session, principal)


@pytest.fixture
def draft(session: Session, sponsor: tuple[User, Principal]) -> ProtocolVersion:
    return services.register(submission(), session=session, by=sponsor[1])


def lock(
    session: Session, by: Principal, number: int = 1, password: str = PASSWORD
) -> tuple[ProtocolVersion, Signature]:
    return services.lock(CODE, number, password=password, session=session, by=by, lockout_threshold=LOCKOUT)


@pytest.fixture
def locked(session: Session, draft: ProtocolVersion, sponsor: tuple[User, Principal]) -> ProtocolVersion:
    version, _signature = lock(session, sponsor[1])
    return version


# -- register ---------------------------------------------------------------------------------


def test_an_admin_registers_a_new_trial(session: Session, make_user: Any) -> None:
    _, admin = make_user("ada", "admin", name="Ada Admin")
    version = services.register(submission(), session=session, by=acting(session, admin))
    trial = session.exec(select(Trial).where(Trial.code == CODE)).one()
    assert trial.title.startswith("MoodStep: a three-arm randomised controlled trial")
    assert (version.trial_id, version.version, version.status) == (trial.id, 1, "draft")
    assert version.content_hash == EXAMPLE_HASH
    assert version.created_by == "ada"
    assert version.source_text == EXAMPLE_TEXT
    assert version.source_format == "yaml"
    assert version.amendment_reason is None
    assert version.locked_at is None
    assert version.signature_id is None
    inserted = entries(session, table_name="protocol_version", record_id=str(version.id))
    assert {e.action for e in inserted} == {"insert"}
    assert {e.username for e in inserted} == {"ada"}
    hashes = [e.new_value for e in inserted if e.field == "content_hash"]
    assert hashes == [json.dumps(EXAMPLE_HASH)]
    assert entries(session, table_name="trial", record_id=str(trial.id), action="insert")


def test_a_sponsor_registers_for_an_existing_trial_once(
    session: Session, trial: Trial, sponsor: tuple[User, Principal]
) -> None:
    version = services.register(submission(), session=session, by=sponsor[1])
    assert version.trial_id == trial.id
    assert version.created_by == "sam"
    assert [v.version for v in services.list_versions(CODE, session=session, by=sponsor[1])] == [1]
    with pytest.raises(Conflict) as refused:
        services.register(submission(), session=session, by=sponsor[1])
    assert refused.value.status == 409
    assert [(e.field, e.rule) for e in refused.value.errors] == [("trial.code", "registered")]
    assert count(session, ProtocolVersion) == 1


def test_a_coordinator_may_not_register(
    session: Session, trial: Trial, make_site: Any, make_user: Any
) -> None:
    make_site("LON")
    _, coordinator = make_user("cora", f"coordinator:{CODE}:LON")
    before = count(session, AuditEntry), count(session, Trial)
    with pytest.raises(Forbidden) as refused:
        services.register(submission(), session=session, by=coordinator)
    assert refused.value.status == 403
    # a new trial needs an administrator
    other = changed(lambda d: d["trial"].update(code="OTHER-01"))
    with pytest.raises(Forbidden):
        services.register(other, session=session, by=coordinator)
    assert (count(session, AuditEntry), count(session, Trial)) == before
    assert count(session, ProtocolVersion) == 0


def test_a_sponsor_of_another_trial_may_neither_register_nor_view(
    session: Session, draft: ProtocolVersion, make_trial: Any, make_user: Any
) -> None:
    make_trial("OTHER-01", "Another trial")
    _, stranger = make_user("olga", "sponsor:OTHER-01")
    with pytest.raises(Forbidden):
        services.register(submission(), session=session, by=stranger)
    with pytest.raises(Forbidden):
        services.list_versions(CODE, session=session, by=stranger)
    with pytest.raises(Forbidden):
        services.get_version(CODE, 1, session=session, by=stranger)
    assert services.list_protocols(session=session, by=stranger) == []


# -- drafts -----------------------------------------------------------------------------------


def test_a_draft_is_updated_with_a_reason_and_audited(
    session: Session, draft: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    old_json = draft.document_json
    new = changed(set_alpha)
    with pytest.raises(InvalidInput) as no_reason:
        services.update_draft(CODE, 1, new, reason="  ", session=session, by=sponsor[1])
    assert [e.field for e in no_reason.value.errors] == ["reason"]

    updated = services.update_draft(
        CODE, 1, new, reason="alpha per DMC advice", session=session, by=sponsor[1]
    )
    assert updated.id == draft.id
    assert updated.content_hash != EXAMPLE_HASH
    assert json.loads(updated.document_json)["sap"]["alpha"] == 0.04
    changes = {
        e.field: e
        for e in entries(session, table_name="protocol_version", record_id=str(draft.id), action="update")
    }
    assert {"document_json", "source_text", "content_hash"} <= set(changes)
    document_change = changes["document_json"]
    assert json.loads(document_change.old_value or "") == old_json  # the earlier value is kept
    assert json.loads(document_change.new_value or "") == updated.document_json
    assert json.loads(changes["content_hash"].old_value or "") == EXAMPLE_HASH
    assert {e.reason for e in changes.values()} == {"alpha per DMC advice"}
    assert {e.username for e in changes.values()} == {"sam"}
    assert {e.role for e in changes.values()} == {"sponsor"}


def test_a_draft_cannot_move_to_another_trial(
    session: Session, draft: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    other = changed(lambda d: d["trial"].update(code="OTHER-01"))
    with pytest.raises(InvalidInput) as refused:
        services.update_draft(CODE, 1, other, reason="move", session=session, by=sponsor[1])
    assert [(e.field, e.rule) for e in refused.value.errors] == [("trial.code", "unchanged")]


# -- lock ---------------------------------------------------------------------------------------


def test_lock_signs_for_approval_and_binds_the_hash(
    session: Session, draft: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    version, signed = lock(session, sponsor[1])
    assert version.status == "locked"
    assert version.signature_id == signed.id
    assert version.locked_at == signed.signed_at
    session.expire_all()
    stored = session.get(ProtocolVersion, draft.id)
    signature = session.get(Signature, signed.id)
    assert stored is not None
    assert signature is not None
    assert stored.locked
    assert signature.meaning == "approval"
    assert signature.printed_name == "Sam Sponsor"
    assert signature.username == "sam"
    assert signature.user_id == sponsor[0].id
    assert (signature.table_name, signature.record_id) == ("protocol_version", str(draft.id))
    assert signature.trial_id == draft.trial_id
    signed_at = signature.signed_at
    assert signed_at.utcoffset() == timedelta(0)  # time-stamped in UTC, read back as UTC
    assert stored.locked_at == signed_at
    assert signature.content_hash == stored.content_hash == EXAMPLE_HASH
    manifestation = signature.manifestation
    assert "Sam Sponsor" in manifestation
    assert "approval" in manifestation
    assert signed_at.strftime("%Y-%m-%d %H:%M:%S UTC") in manifestation
    assert EXAMPLE_HASH in manifestation
    assert services.signature_of(stored, session=session) == signature
    lock_entries = entries(
        session, table_name="protocol_version", record_id=str(draft.id), field="status", action="update"
    )
    assert [(e.old_value, e.new_value) for e in lock_entries] == [('"draft"', '"locked"')]
    assert lock_entries[0].reason == "locked with an approval signature by Sam Sponsor"
    assert entries(session, table_name="signature", record_id=str(signature.id), action="insert")


def test_a_wrong_password_does_not_lock_and_counts_towards_lockout(
    session: Session, draft: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    user, principal = sponsor
    for attempt in range(1, LOCKOUT):
        with pytest.raises(InvalidInput) as refused:
            lock(session, principal, password="not the password")
        assert [e.field for e in refused.value.errors] == ["password"]
        assert refused.value.keep_changes  # the failed attempt is kept on record
        assert user.failed_sign_ins == attempt
        assert user.locked_at is None
    assert len(entries(session, action="signature_failed", record_id=str(user.id))) == LOCKOUT - 1
    with pytest.raises(accounts.AccountLocked):
        lock(session, principal, password="not the password")
    assert user.locked_at is not None
    assert entries(session, action="account_locked", record_id=str(user.id))
    # a locked account cannot sign, even with the right password
    with pytest.raises(Forbidden):
        lock(session, principal)
    session.expire_all()
    stored = session.get(ProtocolVersion, draft.id)
    assert stored is not None
    assert stored.status == "draft"
    assert count(session, Signature) == 0


def test_a_right_password_resets_the_failure_count(
    session: Session, draft: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    user, principal = sponsor
    with pytest.raises(InvalidInput):
        lock(session, principal, password="not the password")
    assert user.failed_sign_ins == 1
    lock(session, principal)
    assert user.failed_sign_ins == 0


def test_a_coordinator_cannot_lock(
    session: Session, draft: ProtocolVersion, make_site: Any, make_user: Any
) -> None:
    make_site("LON")
    _, coordinator = make_user("cora", f"coordinator:{CODE}:LON")
    with pytest.raises(Forbidden):
        lock(session, coordinator)
    assert count(session, Signature) == 0


# -- amend --------------------------------------------------------------------------------------


def test_amending_needs_a_locked_version_and_a_reason(
    session: Session, draft: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    principal = sponsor[1]
    new = changed(set_alpha)
    with pytest.raises(Conflict):  # the latest version is a draft: edit it instead
        services.amend(CODE, new, reason="tighter alpha", session=session, by=principal)
    lock(session, principal)
    for reason in ("", "   "):
        with pytest.raises(InvalidInput) as refused:
            services.amend(CODE, new, reason=reason, session=session, by=principal)
        assert [e.field for e in refused.value.errors] == ["reason"]
    with pytest.raises(InvalidInput) as unchanged:
        services.amend(CODE, submission(), reason="nothing", session=session, by=principal)
    assert [(e.field, e.rule) for e in unchanged.value.errors] == [("document", "unchanged")]
    assert count(session, ProtocolVersion) == 1


def test_an_amendment_is_a_new_version_with_its_reason_and_diff(
    session: Session, locked: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    principal = sponsor[1]
    new = changed(set_alpha, rename_cbt_arm, later_week_8_window)
    reason = "DMC advice: alpha 0.04; arm renamed; wider week-8 window"
    amended = services.amend(CODE, new, reason=f"  {reason} ", session=session, by=principal)
    assert (amended.version, amended.status, amended.amendment_reason) == (2, "draft", reason)
    assert amended.trial_id == locked.trial_id
    assert amended.content_hash == content_hash(new.document) != locked.content_hash
    assert [v.version for v in services.list_versions(CODE, session=session, by=principal)] == [1, 2]
    assert services.get_version(CODE, None, session=session, by=principal).id == amended.id
    changes = services.diff(CODE, 1, 2, session=session, by=principal)
    assert {(c.path, c.kind, c.old, c.new) for c in changes} == {
        ("sap.alpha", "changed", 0.05, 0.04),
        ("arms[CBT].name", "changed", "MoodStep CBT", "MoodStep CBT programme"),
        ("visits[W08].window_after", "changed", 7, 5),
    }
    assert services.diff(CODE, 2, 2, session=session, by=principal) == []
    recorded = entries(
        session, table_name="protocol_version", record_id=str(amended.id), field="amendment_reason"
    )
    assert [(e.action, e.new_value, e.username) for e in recorded] == [("insert", json.dumps(reason), "sam")]
    # the locked version is untouched, and the amendment may be locked in turn
    assert locked.locked
    assert locked.content_hash == EXAMPLE_HASH
    version, signature = lock(session, principal, number=2)
    assert version.locked
    assert signature.content_hash == amended.content_hash


# -- a locked version is immutable, on every path ----------------------------------------------


def test_the_service_refuses_to_edit_a_locked_version_and_records_the_attempt(
    session: Session, locked: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    with pytest.raises(Conflict) as refused:
        services.update_draft(CODE, 1, changed(set_alpha), reason="sneak", session=session, by=sponsor[1])
    assert refused.value.keep_changes
    attempts = entries(session, action="edit_refused", record_id=str(locked.id))
    assert len(attempts) == 1
    assert attempts[0].table_name == "protocol_version"
    assert attempts[0].username == "sam"
    assert attempts[0].trial_id == locked.trial_id
    assert "locked" in (attempts[0].new_value or "")
    with pytest.raises(Conflict):
        lock(session, sponsor[1])
    assert len(entries(session, action="edit_refused", record_id=str(locked.id))) == 2
    session.expire_all()
    stored = session.get(ProtocolVersion, locked.id)
    assert stored is not None
    assert stored.content_hash == EXAMPLE_HASH
    assert count(session, Signature) == 1


def test_an_invalid_edit_of_a_locked_version_is_refused_as_locked_and_recorded(
    session: Session, locked: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    """The lock is checked before the document is read: the attempt is on record either way."""
    with pytest.raises(Conflict):
        services.update_draft(
            CODE, 1, services.Source("arms: [", "yaml"), reason="x", session=session, by=sponsor[1]
        )
    assert len(entries(session, action="edit_refused", record_id=str(locked.id))) == 1


def audit_count(session: Session) -> int:
    """Entries written so far, read without flushing the session."""
    return int(session.connection().execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def test_the_orm_refuses_to_change_or_delete_a_locked_version(
    session: Session, locked: ProtocolVersion
) -> None:
    audit_before = audit_count(session)
    edits: list[Callable[[ProtocolVersion], None]] = [
        lambda v: setattr(v, "source_text", "tampered"),
        lambda v: setattr(v, "content_hash", "0" * 64),
        lambda v: setattr(v, "status", "draft"),
        lambda v: setattr(v, "amendment_reason", "afterthought"),
        session.delete,
    ]
    for expire_first in (False, True):
        for edit in edits:
            savepoint = session.begin_nested()  # rolled back: the refused change leaves the session
            if expire_first:  # old values unloaded, as after a commit in another request
                session.expire(locked)
            edit(locked)
            with pytest.raises(Conflict, match="locked"):
                session.flush()  # refused before the audit mechanism: no reason is even asked
            assert audit_count(session) == audit_before  # no entry for a change that never was
            savepoint.rollback()
    session.expire_all()
    stored = session.get(ProtocolVersion, locked.id)
    assert stored is not None
    assert (stored.status, stored.content_hash, stored.source_text) == ("locked", EXAMPLE_HASH, EXAMPLE_TEXT)


def _raw(session: Session, sql: str, **params: Any) -> None:
    """Run a raw statement inside a savepoint that survives its failure."""
    connection = session.connection()
    savepoint = connection.begin_nested()
    try:
        statement = text(sql).bindparams(*(bindparam(name, type_=Uuid) for name in params))
        connection.execute(statement, params)
    finally:
        savepoint.rollback()


def test_the_database_refuses_raw_updates_and_deletes_of_a_locked_version(
    session: Session, locked: ProtocolVersion, sponsor: tuple[User, Principal]
) -> None:
    session.flush()
    for sql in (
        "UPDATE protocol_version SET source_text = 'tampered' WHERE id = :id",
        "UPDATE protocol_version SET status = 'draft', locked_at = NULL, signature_id = NULL WHERE id = :id",
        "DELETE FROM protocol_version WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="protocol version is locked"):
            _raw(session, sql, id=locked.id)
    # the trigger is about locked rows: a draft may still be changed underneath (control)
    amended = services.amend(CODE, changed(set_alpha), reason="alpha", session=session, by=sponsor[1])
    _raw(session, "UPDATE protocol_version SET created_by = 'x' WHERE id = :id", id=amended.id)
    session.expire_all()
    stored = session.get(ProtocolVersion, locked.id)
    assert stored is not None
    assert stored.source_text == EXAMPLE_TEXT
    assert stored.locked


def test_the_database_refuses_raw_changes_of_a_signature(session: Session, locked: ProtocolVersion) -> None:
    session.flush()
    for sql in (
        "UPDATE signature SET printed_name = 'Someone Else' WHERE id = :id",
        "UPDATE signature SET content_hash = 'x' WHERE id = :id",
        "DELETE FROM signature WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="signatures cannot be changed or deleted"):
            _raw(session, sql, id=locked.signature_id)
    session.expire_all()
    signature = session.get(Signature, locked.signature_id)
    assert signature is not None
    assert signature.printed_name == "Sam Sponsor"


# -- the content hash ---------------------------------------------------------------------------


def _register_in_fresh_database(url: str) -> tuple[str, str]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            audit.set_actor(session, audit.Actor.system())
            accounts.create_user(
                UserCreate(username="ada", printed_name="Ada Admin", password=PASSWORD),
                session=session,
                by=accounts.SYSTEM,
            )
            accounts.grant_role("ada", GrantCreate(role=Role.ADMIN), session=session, by=accounts.SYSTEM)
            admin = accounts.load_principal(accounts.get_user("ada", session=session), session=session)
            services.register(submission(), session=session, by=admin)
            session.commit()
        with Session(engine) as session:
            stored = session.exec(select(ProtocolVersion)).one()
            return stored.content_hash, stored.document_json
    finally:
        engine.dispose()


def test_the_hash_is_the_same_in_two_fresh_databases(
    backend: str, fresh_database_url: str, tmp_path: Path
) -> None:
    other_url = create_database(backend, tmp_path)
    try:
        migrate.upgrade(other_url)
        first = _register_in_fresh_database(fresh_database_url)
        second = _register_in_fresh_database(other_url)
    finally:
        drop_database(other_url)
    assert first == second
    assert first[0] == EXAMPLE_HASH


@pytest.mark.parametrize(
    "edit",
    [
        set_alpha,
        rename_cbt_arm,
        later_week_8_window,
        lambda d: d["trial"].update(short_title="MoodStep"),
        lambda d: d["sites"][0].update(name="Leeds Research Unit"),
    ],
    ids=["sap.alpha", "arms.name", "visits.window", "trial.short_title", "sites.name"],
)
def test_the_hash_changes_when_any_field_changes(
    session: Session, draft: ProtocolVersion, sponsor: tuple[User, Principal], edit: Callable[[Data], None]
) -> None:
    updated = services.update_draft(CODE, 1, changed(edit), reason="edit", session=session, by=sponsor[1])
    assert updated.content_hash != EXAMPLE_HASH
    back = services.update_draft(CODE, 1, submission(), reason="undo", session=session, by=sponsor[1])
    assert back.content_hash == EXAMPLE_HASH
