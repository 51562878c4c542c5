"""Import batches: audited field by field with one summarized entry per table of rows, whose
digest matches the stored rows; never changed or deleted; their history per site; uploads as
text/csv or multipart; templates."""

import csv
import io
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from tests.assessments.conftest import BASE, chain_verifies, day, ok, problem
from tests.conftest import bearer
from tests.imports.conftest import (
    ASSESSMENT_HEADER,
    ENGAGEMENT_HEADER,
    assessment_row,
    csv_bytes,
    engagement_row,
    post_csv,
    refused,
    stored,
)
from trials.assessments.models import Assessment, DataQuery
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.errors import Conflict
from trials.imports import services
from trials.imports.models import ImportBatch
from trials.safety.models import Notification, OutboxMessage, SafetyEvent

CLEAN = (1, 1, 1, 1, 1, 1, 1, 1, 0)


def imported(client: Any, h: Any, make_participant: Any, who: str = "lds") -> dict[str, Any]:
    """A file with an item-9 positive row and an out-of-window row, imported."""
    site = "LDS" if who == "lds" else "MAN"
    a, b = make_participant(site), make_participant(site)
    rows = [assessment_row(a, day(14), *CLEAN[:8], 1), assessment_row(b, day(21), *CLEAN)]
    result: dict[str, Any] = ok(
        post_csv(client, "assessments", csv_bytes(ASSESSMENT_HEADER, rows), h[who]), 201
    )
    return result


def summary_entries(session: Session, batch_id: str) -> dict[str, AuditEntry]:
    entries = session.scalars(
        select(AuditEntry).where(col(AuditEntry.record_id) == batch_id, col(AuditEntry.field) == "*")
    ).all()
    return {str(e.table_name): e for e in entries}


# -- audit -------------------------------------------------------------------------------------


def test_the_batch_is_audited_and_each_table_of_rows_has_one_entry_whose_digest_matches(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    summary = imported(client, h, make_participant)
    batch_id = summary["id"]
    batch_fields = {
        e.field: e
        for e in session.scalars(
            select(AuditEntry).where(
                col(AuditEntry.table_name) == "import_batch", col(AuditEntry.record_id) == batch_id
            )
        ).all()
    }
    assert json.loads(batch_fields["sha256"].new_value or "") == summary["sha256"]
    assert json.loads(batch_fields["rows_sha256"].new_value or "") == summary["rows_sha256"]
    assert json.loads(batch_fields["row_count"].new_value or "") == 2
    assert "content" not in batch_fields  # fixed by its SHA-256, not copied into the trail
    assert {e.username for e in batch_fields.values()} == {"cora"}

    entries = summary_entries(session, batch_id)
    assert set(entries) == {"assessment", "data_query", "safety_event", "notification", "outbox_message"}
    for entry in entries.values():
        assert (entry.action, entry.username, entry.role, entry.channel) == (
            "insert",
            "cora",
            "coordinator",
            "api",
        )
        assert entry.reason == f"CSV import of assessments.csv (sha256 {summary['sha256']})"
        assert str(entry.trial_id) == str(session.scalar(select(ImportBatch.trial_id)))

    def rows_of(model: Any, where: Any) -> list[dict[str, Any]]:
        table = model.__table__
        return [dict(r) for r in session.connection().execute(select(table).where(where)).mappings()]

    batch = uuid.UUID(batch_id)
    assessment_ids = select(Assessment.id).where(col(Assessment.import_batch_id) == batch)
    event_ids = select(SafetyEvent.id).where(col(SafetyEvent.assessment_id).in_(assessment_ids))
    tables = {
        "assessment": (Assessment, col(Assessment.import_batch_id) == batch),
        "data_query": (DataQuery, col(DataQuery.assessment_id).in_(assessment_ids)),
        "safety_event": (SafetyEvent, col(SafetyEvent.id).in_(event_ids)),
        "notification": (Notification, col(Notification.safety_event_id).in_(event_ids)),
        "outbox_message": (OutboxMessage, col(OutboxMessage.safety_event_id).in_(event_ids)),
    }
    for name, (model, where) in tables.items():
        rows = rows_of(model, where)
        recorded = json.loads(entries[name].new_value or "")
        assert recorded["rows"] == len(rows) > 0
        assert set(recorded) == {"rows", "rows_sha256", "import_batch_id"}
        assert recorded["import_batch_id"] == batch_id
        assert recorded["rows_sha256"] == audit.rows_digest(model, rows).rows_sha256, name
    assert (
        summary["rows_sha256"]
        == audit.rows_digest(
            Assessment, services.rows_of_batch(Assessment, batch, session=session)
        ).rows_sha256
    )
    chain_verifies(session)


def test_a_changed_value_no_longer_matches_the_digest(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    summary = imported(client, h, make_participant)
    batch = uuid.UUID(summary["id"])
    rows = services.rows_of_batch(Assessment, batch, session=session)
    assert audit.rows_digest(Assessment, rows).rows_sha256 == summary["rows_sha256"]
    assert audit.rows_digest(Assessment, list(reversed(rows))).rows_sha256 == summary["rows_sha256"]
    rows[0]["item_3"] = 3 if rows[0]["item_3"] != 3 else 2
    assert audit.rows_digest(Assessment, rows).rows_sha256 != summary["rows_sha256"]


def test_the_audit_api_shows_the_batch_entries_to_an_administrator(
    client: Any, session: Session, h: Any, make_participant: Any, make_user: Any
) -> None:
    summary = imported(client, h, make_participant)
    _user, admin = make_user("ada", "admin")
    page = ok(
        client.get("/api/v1/audit", query_string={"record_id": summary["id"]}, headers=bearer(session, admin))
    )
    shown = {(e["table_name"], e["field"]) for e in page["entries"]}
    assert ("assessment", "*") in shown
    assert ("import_batch", "sha256") in shown
    assert ok(client.get("/api/v1/audit/verify", headers=bearer(session, admin)))["ok"] is True


def test_a_batch_cannot_be_changed_or_deleted_by_the_orm_nor_by_sql(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    summary = imported(client, h, make_participant)
    batch = session.get(ImportBatch, uuid.UUID(summary["id"]))
    assert batch is not None
    batch.filename = "other.csv"
    session.add(batch)
    with pytest.raises(Conflict, match="cannot be changed or deleted"), audit.reason(session, "rename"):
        session.flush()
    session.expunge_all()
    batch = session.get(ImportBatch, uuid.UUID(summary["id"]))
    session.delete(batch)
    with pytest.raises(Conflict, match="cannot be changed or deleted"), audit.reason(session, "remove"):
        session.flush()
    session.expunge_all()
    for statement in ("UPDATE import_batch SET filename = 'x'", "DELETE FROM import_batch"):
        with pytest.raises(DBAPIError, match="cannot be changed or deleted"), session.begin_nested():
            session.connection().execute(text(statement))
    assert session.get(ImportBatch, uuid.UUID(summary["id"])) is not None
    chain_verifies(session)


# -- history, uploads and templates ----------------------------------------------------------------


def test_the_history_shows_site_staff_their_sites_batches_only(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    lds = imported(client, h, make_participant)
    man = imported(client, h, make_participant, who="man")
    assert [b["id"] for b in ok(client.get(f"{BASE}/imports", headers=h["lds"]))] == [lds["id"]]
    assert [b["id"] for b in ok(client.get(f"{BASE}/imports", headers=h["man"]))] == [man["id"]]
    everything = ok(client.get(f"{BASE}/imports", headers=h["sponsor"]))
    assert {b["id"] for b in everything} == {lds["id"], man["id"]}
    assert {tuple(b["site_codes"]) for b in everything} == {("LDS",), ("MAN",)}
    assert "content" not in everything[0]
    problem(client.get("/api/v1/trials/NOPE/imports", headers=h["sponsor"]), 404)


def test_a_multipart_upload_is_accepted_and_other_bodies_are_refused(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    content = csv_bytes(ASSESSMENT_HEADER, [assessment_row(label, day(14), *CLEAN)])
    before = stored(session)
    url = f"{BASE}/imports/assessments"
    missing = problem(client.post(url, data={"other": (io.BytesIO(content), "a.csv")}, headers=h["lds"]), 422)
    assert {(e["field"], e["rule"]) for e in missing["errors"]} == {("file", "required")}
    wrong = problem(client.post(url, json={"rows": []}, headers=h["lds"]), 422)
    assert {(e["field"], e["rule"]) for e in wrong["errors"]} == {("body", "media_type")}
    unknown = problem(post_csv(client, "patients", content, h["lds"]), 422)
    assert {(e["field"], e["rule"]) for e in unknown["errors"]} == {("kind", "known")}
    assert stored(session) == before
    summary = ok(
        client.post(url, data={"file": (io.BytesIO(content), "visit export.csv")}, headers=h["lds"]), 201
    )
    assert summary["filename"] == "visit export.csv"
    problem(client.post(url, data={"file": (io.BytesIO(content), "again.csv")}, headers=h["lds"]), 409)


def test_an_assessments_file_is_not_an_engagement_file(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    content = csv_bytes(ASSESSMENT_HEADER, [assessment_row(label, day(14), *CLEAN)])
    errors = refused(post_csv(client, "engagement", content, h["lds"]))
    assert {(e["column"], e["rule"]) for e in errors} >= {
        ("instrument", "unknown_column"),
        ("sessions", "missing_column"),
    }


@pytest.mark.parametrize(
    ("kind", "header"), [("assessments", ASSESSMENT_HEADER), ("engagement", ENGAGEMENT_HEADER)]
)
def test_templates_are_the_header_and_import_nothing(
    client: Any, session: Session, h: Any, people: Any, kind: str, header: tuple[str, ...]
) -> None:
    response = client.get(f"{BASE}/imports/templates/{kind}.csv", headers=h["blinded"])
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert f"{kind}-template.csv" in response.headers["Content-Disposition"]
    assert list(csv.reader(io.StringIO(response.get_data(as_text=True)))) == [list(header)]
    errors = refused(post_csv(client, kind, response.get_data(), h["lds"]))
    assert [(e["row"], e["rule"]) for e in errors] == [(2, "no_rows")]
    problem(client.get(f"{BASE}/imports/templates/people.csv", headers=h["lds"]), 422)


def test_the_openapi_document_describes_the_csv_upload(client: Any) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    upload = document["paths"]["/api/v1/trials/{code}/imports/{kind}"]["post"]
    assert set(upload["requestBody"]["content"]) == {"text/csv", "multipart/form-data"}
    assert {"201", "409", "413", "422"} <= set(upload["responses"])


def test_an_engagement_batch_names_its_rows(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    rows = [engagement_row(label, day(n)) for n in range(1, 4)]
    summary = ok(post_csv(client, "engagement", csv_bytes(ENGAGEMENT_HEADER, rows), h["lds"]), 201)
    assert (summary["kind"], summary["row_count"], summary["safety_events"]) == ("engagement", 3, 0)
    entries = summary_entries(session, summary["id"])
    assert set(entries) == {"engagement_day"}
    chain_verifies(session)


def test_a_file_stored_meanwhile_by_another_request_is_a_conflict_not_an_error(
    client: Any, session: Session, h: Any, make_participant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two uploads of one file at once: both pass the re-upload check, the database's unique
    constraints stop the second, which is answered 409 with nothing of it stored."""
    label = make_participant()
    content = csv_bytes(ASSESSMENT_HEADER, [assessment_row(label, day(14), *CLEAN)])
    ok(post_csv(client, "assessments", content, h["lds"]), 201)
    before = stored(session)
    monkeypatch.setattr(services, "_earlier", lambda *args, **kwargs: None)
    monkeypatch.setattr(services._People, "__init__", _people_without_rows(services._People.__init__))
    found = problem(post_csv(client, "assessments", content, h["lds"]), 409)
    assert "another request" in found["detail"]
    assert stored(session) == before
    # Another file (a blank line more) with the same row: its batch is new, its row is not.
    found = problem(post_csv(client, "assessments", content + b"\r\n", h["lds"]), 409)
    assert "another request" in found["detail"]
    assert stored(session) == before


def _people_without_rows(original: Any) -> Any:
    """The participants as before, but blind to stored assessments: the duplicate check passes."""

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.ids = lambda: [uuid.uuid4() for _ in range(2)]  # the stored rows are not found

    return init
