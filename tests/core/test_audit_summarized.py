"""Bulk inserts summarized by batch: one chained entry per table and batch, whose digest is the
digest of the rows as stored; nothing written around the trail."""

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlmodel import Session

from trials.core.accounts.models import Site
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.db import utcnow
from trials.participants.models import ParticipantCounter

ALICE = audit.Actor(None, "alice", "Alice Example", "admin", "cli")


def sites(n: int, prefix: str = "S") -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {"id": uuid.uuid4(), "code": f"{prefix}{i}", "name": f"Site {i}", "country": "GB", "created_at": now}
        for i in range(n)
    ]


def test_one_entry_records_the_rows_and_their_digest(session: Session) -> None:
    audit.set_actor(session, ALICE)
    batch = uuid.uuid4()
    rows = sites(120)
    before = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0  # type: ignore[attr-defined]
    summary = audit.bulk_insert_summarized(
        session,
        Site,
        rows,
        batch_table="import_batch",
        batch_id=batch,
        reason="sites from a file",
        chunk_size=50,
    )
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.seq > before)).all()  # type: ignore[arg-type]
    assert (entry.action, entry.table_name, entry.record_id, entry.field) == (
        "insert",
        "site",
        str(batch),
        "*",
    )
    assert (entry.username, entry.reason) == ("alice", "sites from a file")
    assert json.loads(entry.new_value or "") == {
        "rows": 120,
        "rows_sha256": summary.rows_sha256,
        "import_batch_id": str(batch),
    }
    stored = [dict(r) for r in session.connection().execute(select(Site.__table__)).mappings()]  # type: ignore[attr-defined]
    assert len(stored) == 120
    assert audit.rows_digest(Site, stored) == summary
    assert audit.verify_chain(session.connection()).ok


def test_rows_and_columns_give_the_same_digest_and_any_change_another(session: Session) -> None:
    rows = sites(5)
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    assert audit.rows_digest(Site, rows) == audit.rows_digest(Site, columns)
    assert audit.rows_digest(Site, rows[::-1]) == audit.rows_digest(Site, rows)
    changed = [dict(row) for row in rows]
    changed[2]["name"] = "Site 2 "
    assert audit.rows_digest(Site, changed) != audit.rows_digest(Site, rows)
    assert audit.rows_digest(Site, rows[:4]) != audit.rows_digest(Site, rows)


@pytest.mark.parametrize(
    ("model", "rows", "message"),
    [
        (Site, [{"id": uuid.uuid4(), "code": "X"}], "every column"),
        (
            Site,
            {
                "id": [uuid.uuid4()],
                "code": ["A", "B"],
                "name": ["n"],
                "country": ["GB"],
                "created_at": [None],
            },
            "every column",
        ),
        (Site, [], "at least one row"),
        (ParticipantCounter, [{"trial_id": uuid.uuid4()}], "not an audited model"),
    ],
)
def test_incomplete_rows_and_unaudited_models_are_refused(
    session: Session, model: Any, rows: Any, message: str
) -> None:
    with pytest.raises(audit.AuditError, match=message):
        audit.bulk_insert_summarized(session, model, rows, batch_table="b", batch_id=uuid.uuid4(), reason="r")


def test_a_reason_and_an_actor_are_required_and_a_plain_insert_is_still_refused(session: Session) -> None:
    with pytest.raises(audit.AuditError, match="reason"):
        audit.bulk_insert_summarized(
            session, Site, sites(1), batch_table="b", batch_id=uuid.uuid4(), reason=" "
        )
    session.info.clear()
    with pytest.raises(audit.AuditError, match="no actor"):
        audit.bulk_insert_summarized(
            session, Site, sites(1), batch_table="b", batch_id=uuid.uuid4(), reason="r"
        )
    audit.set_actor(session, ALICE)
    with pytest.raises(audit.AuditError, match="bypass"):
        session.connection().execute(insert(Site.__table__), sites(1))  # type: ignore[attr-defined]
