"""The audit trail as a mechanism: entries for every audited write, reasons, hash chain, tamper evidence."""

import json
import threading
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from trials.core.accounts import services
from trials.core.accounts.models import GrantCreate, Role, Site, SiteCreate, User, UserCreate
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.db import make_engine
from trials.core.errors import InvalidInput

ALICE = audit.Actor(None, "alice", "Alice Example", "admin", "cli")


def entries(session: Session, **where: object) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.seq)
    for key, value in where.items():
        query = query.where(getattr(AuditEntry, key) == value)
    return list(session.exec(query).all())


def test_insert_writes_an_entry_per_field_with_who_and_when(session: Session) -> None:
    audit.set_actor(session, ALICE)
    site = Site(code="LON", name="London Clinic", country="GB")
    session.add(site)
    session.flush()
    rows = entries(session, record_id=str(site.id))
    assert {r.field for r in rows} == {"id", "code", "name", "country", "created_at"}
    name = next(r for r in rows if r.field == "name")
    assert (name.action, name.table_name, name.old_value, name.new_value) == (
        "insert",
        "site",
        None,
        '"London Clinic"',
    )
    assert (name.username, name.printed_name, name.role, name.channel) == (
        "alice",
        "Alice Example",
        "admin",
        "cli",
    )
    assert name.occurred_at.utcoffset().total_seconds() == 0


def test_update_needs_a_reason_and_records_old_and_new(session: Session) -> None:
    audit.set_actor(session, ALICE)
    site = Site(code="LON", name="London Clinic", country="GB")
    session.add(site)
    session.flush()
    site.name = "London Central Clinic"
    with pytest.raises(InvalidInput) as refused:
        session.flush()
    assert refused.value.errors[0].field == "reason"
    session.rollback()

    session.add(site := Site(code="MAN", name="Manchester", country="GB"))
    session.flush()
    with audit.reason(session, "site renamed by sponsor letter"):
        site.name = "Manchester Royal"
    change = entries(session, record_id=str(site.id), action="update")
    assert len(change) == 1
    assert (change[0].field, change[0].old_value, change[0].new_value) == (
        "name",
        '"Manchester"',
        '"Manchester Royal"',
    )
    assert change[0].reason == "site renamed by sponsor letter"


def test_update_of_a_value_never_loaded_still_records_the_old_value(session: Session) -> None:
    audit.set_actor(session, ALICE)
    session.add(site := Site(code="EDI", name="Edinburgh", country="GB"))
    session.flush()
    session.expire(site, ["name"])
    with audit.reason(session, "typo"):
        site.name = "Edinburgh Royal"
    change = entries(session, record_id=str(site.id), action="update")
    assert (change[0].old_value, change[0].new_value) == ('"Edinburgh"', '"Edinburgh Royal"')


def test_delete_records_the_old_values_and_reason(session: Session) -> None:
    audit.set_actor(session, ALICE)
    session.add(site := Site(code="BRI", name="Bristol", country="GB"))
    session.flush()
    with audit.reason(session, "entered in error"):
        session.delete(site)
    deleted = entries(session, record_id=str(site.id), action="delete")
    assert {r.field: r.old_value for r in deleted}["code"] == '"BRI"'
    assert all(r.new_value is None and r.reason == "entered in error" for r in deleted)


def test_a_blank_reason_is_refused(session: Session) -> None:
    with pytest.raises(InvalidInput), audit.reason(session, "   "):
        pass


def test_secrets_are_redacted_and_bookkeeping_is_not_audited(session: Session) -> None:
    password = "a long enough password"
    user = services.create_user(
        UserCreate(username="bob", printed_name="Bob", password=password), session=session, by=services.SYSTEM
    )
    rows = entries(session, record_id=str(user.id))
    assert {r.field: r.new_value for r in rows}["password_hash"] == json.dumps(audit.REDACTED)
    assert not any(user.password_hash in (r.new_value or "") for r in rows)
    before = len(entries(session))
    user.failed_sign_ins = 3  # excluded: the sign-in events record it
    session.add(user)
    session.flush()
    assert len(entries(session)) == before


def test_no_actor_no_write(session: Session) -> None:
    session.info.clear()
    session.add(Site(code="CAR", name="Cardiff", country="GB"))
    with pytest.raises(audit.AuditError, match="no actor"):
        session.flush()


def test_orm_paths_around_the_trail_are_refused(session: Session) -> None:
    session.add(Site(code="LEE", name="Leeds", country="GB"))
    session.flush()
    with pytest.raises(audit.AuditError, match="bypass"):
        session.exec(update(Site).values(name="x"))  # type: ignore[call-overload]
    entry = entries(session)[-1]
    entry.reason = "rewritten"
    session.add(entry)
    with pytest.raises(audit.AuditError, match="append-only"):
        session.flush()
    session.rollback()
    with pytest.raises(audit.AuditError, match="append-only"):
        session.exec(update(AuditEntry).values(reason="x"))  # type: ignore[call-overload]


def test_the_database_refuses_to_change_or_delete_entries(session: Session) -> None:
    session.add(Site(code="YOR", name="York", country="GB"))
    session.flush()
    connection = session.connection()
    for statement in ("UPDATE audit_entry SET reason = 'x'", "DELETE FROM audit_entry"):
        savepoint = connection.begin_nested()
        with pytest.raises(Exception, match="append-only"):
            connection.execute(text(statement))
        savepoint.rollback()


def test_bulk_insert_audits_every_row(session: Session) -> None:
    audit.set_actor(session, ALICE)
    rows = [Site(code=f"S{i}", name=f"Site {i}", country="GB").model_dump() for i in range(3)]
    assert audit.bulk_insert(session, Site, rows) == 3
    assert len(session.exec(select(Site)).all()) == 3
    assert len(entries(session, table_name="site", field="code")) == 3
    assert audit.verify_chain(session.connection()).ok


def test_the_chain_verifies_and_links(session: Session) -> None:
    for code in ("AAA", "BBB"):
        services.create_site(
            SiteCreate(code=code, name=code, country="GB"), session=session, by=services.SYSTEM
        )
    rows = entries(session)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(rows, rows[1:], strict=False))
    report = audit.verify_chain(session.connection())
    assert report.ok
    assert report.entries_checked == len(rows)


def test_concurrent_writers_extend_one_chain(fresh_database_url: str) -> None:
    """Two connections writing at once never fork the chain nor reuse a sequence number."""
    engine = make_engine(fresh_database_url)
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            for i in range(15):
                with Session(engine) as s:
                    audit.set_actor(s, ALICE)
                    s.add(Site(code=f"{prefix}{i}", name=f"{prefix} {i}", country="GB"))
                    s.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with engine.connect() as conn:
        report = audit.verify_chain(conn)
        count = conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one()
    engine.dispose()
    assert report.ok, report.problem
    assert report.entries_checked == count == 30 * 5


def test_user_changes_are_audited_with_the_acting_admin(session: Session) -> None:
    admin = services.create_user(
        UserCreate(username="root1", printed_name="Root One", password="x" * 14),
        session=session,
        by=services.SYSTEM,
    )
    del admin
    services.grant_role("root1", GrantCreate(role=Role.ADMIN), session=session, by=services.SYSTEM)
    principal = services.load_principal(
        session.exec(select(User).where(User.username == "root1")).one(), session=session
    )
    audit.set_actor(session, services.actor_for(principal, "web"))
    services.create_user(
        UserCreate(username="carl", printed_name="Carl", password="y" * 14),
        session=session,
        by=principal,
    )
    services.set_active("carl", False, session=session, by=principal, reason="left the study team")
    row = entries(session, table_name="user_account", field="is_active")[-1]
    assert (row.username, row.role, row.channel, row.old_value, row.new_value, row.reason) == (
        "root1",
        "admin",
        "web",
        "true",
        "false",
        "left the study team",
    )


def test_core_statements_around_the_trail_are_refused(session: Session) -> None:
    from trials.core.audit.models import ENTRY_TABLE, HEAD_TABLE

    session.add(site := Site(code="NEW", name="Newcastle", country="GB"))
    session.flush()
    connection = session.connection()
    site_table = Site.__table__  # type: ignore[attr-defined]
    for statement in (
        update(site_table).values(name="x"),
        site_table.delete(),
        site_table.insert().values(
            id=site.id, code="ZZZ", name="z", country="GB", created_at=site.created_at
        ),
    ):
        with pytest.raises(audit.AuditError, match="bypass"):
            connection.execute(statement)
    for statement in (update(ENTRY_TABLE).values(reason="x"), update(HEAD_TABLE).values(last_seq=0)):
        with pytest.raises(audit.AuditError, match="append-only"):
            connection.execute(statement)
    assert audit.verify_chain(connection).ok


def test_a_connection_lost_while_the_trail_writes_raises_its_own_error(engine: Any) -> None:
    # The error that lost the connection reaches the caller (and becomes a 503), not a
    # PendingRollbackError from the audit mechanism's clean-up touching the dead connection.
    from trials.core.audit.services import _writing

    with engine.connect() as connection:
        connection.begin()
        lost = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

        def lose_the_connection_while_writing() -> None:
            with _writing(connection):
                connection.invalidate()
                raise lost

        with pytest.raises(OperationalError) as raised:
            lose_the_connection_while_writing()
        assert raised.value is lost
