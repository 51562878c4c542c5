"""Script and HTML in every free-text field are inert in every page and in the PDF report, and
SQL in them is stored as text.

The world (tests/hostile/world.py) is built once per database. Every text column of every
table is either a free-text field the world fills with a payload, a copy of one, or declared
not free text below: a new text column fails `test_every_text_column_is_classified` until it
is put in one of these.
"""

import io
import re

import lxml.html
import pytest
from sqlalchemy import String, Text, text
from sqlmodel import Session, SQLModel

from tests.conftest import PASSWORD, sign_in
from tests.hostile.world import CODE, IMAGE, JAVASCRIPT_URL, SCRIPT, SQL, World
from trials.core.audit import services as audit
from trials.core.db import make_engine

# Text columns that hold a copy of, or are derived from, the free text the world enters.
DERIVED = {
    "audit_entry.old_value": "the values before a change (the adverse event's first term)",
    "audit_entry.printed_name": "the acting user's printed name",
    "signature.printed_name": "the signer's printed name",
    "protocol_version.document_json": "the protocol's source, validated",
    "allocation_list.design": "the protocol's arms",
    "generated_report.context_json": "the report's content",
    "participant.screen_failure_reasons": "the protocol's eligibility rules",
    "notification.subject": "composed from a safety event's or adverse event's record",
    "notification.body": "composed from a safety event's or adverse event's record",
    "outbox_message.subject": "a notification's subject",
    "outbox_message.body": "a notification's body",
    "data_query.message": "composed by the application from its check's rule",
    "report_job.step": "the name of a report job's step",
    "report_job.error": "a report job's failure, written by the application",
}
# Text columns that are not free text: fixed vocabularies, validated codes and identifiers,
# usernames (a-z, digits, . _ -), digests, ciphertexts.
NOT_FREE_TEXT = {
    "hashes": {
        "audit_chain_head.last_hash",
        "audit_entry.prev_hash",
        "audit_entry.hash",
        "user_account.password_hash",
        "user_account.session_version",
        "api_token.prefix",
        "api_token.token_hash",
        "database_lock.content_sha256",
        "generated_report.pdf_sha256",
        "generated_report.context_sha256",
        "generated_report.results_sha256",
        "generated_report.data_snapshot_sha256",
        "generated_report.protocol_sha256",
        "import_batch.sha256",
        "import_batch.rows_sha256",
        "signature.content_hash",
        "signed_report_copy.pdf_sha256",
        "allocation_list.seed_sha256",
        "allocation_list.list_sha256",
        "epro_link.token_sha256",
        "trial_unblinding.protocol_sha256",
        "protocol_version.content_hash",
    },
    "ciphertexts": {
        "participant_identity.full_name_ciphertext",
        "participant_identity.email_ciphertext",
        "participant_identity.phone_ciphertext",
    },
    "codes and vocabularies": {
        "audit_entry.role",
        "audit_entry.channel",
        "audit_entry.action",
        "audit_entry.table_name",
        "audit_entry.field",
        "site.code",
        "site.country",
        "trial.code",
        "api_token.scope",
        "generated_report.variant",
        "import_batch.kind",
        "import_batch.site_codes",
        "participant.label",
        "participant.status",
        "role_grant.role",
        "signature.meaning",
        "signature.table_name",
        "signature.role",
        "assessment.instrument",
        "assessment.visit_code",
        "assessment.source",
        "disposition_event.kind",
        "disposition_event.other_treatment",
        "disposition_event.status",
        "engagement_day.source",
        "protocol_version.status",
        "protocol_version.source_format",
        "report_job.variant",
        "report_job.status",
        "report_job.runner",
        "report_job.channel",
        "data_query.rule",
        "data_query.status",
        "epro_link.instrument",
        "epro_link.visit_code",
        "safety_event.kind",
        "safety_event.status",
        "adverse_event.severity",
        "adverse_event.relatedness",
        "adverse_event.action",
        "adverse_event.outcome",
        "allocation_slot.stratum",
        "allocation_slot.arm_code",
        "stratum_counter.stratum",
    },
    "usernames and e-mail addresses (validated)": {
        "audit_entry.username",
        "user_account.username",
        "user_account.email",
        "signature.username",
        "database_lock.locked_by",
        "generated_report.generated_by",
        "import_batch.imported_by",
        "assessment.entered_by",
        "disposition_event.recorded_by",
        "disposition_event.retracted_by",
        "emergency_unblinding.unblinded_by",
        "protocol_version.created_by",
        "report_job.requested_by",
        "allocation_list.created_by",
        "epro_link.created_by",
        "safety_event.followed_up_by",
        "trial_unblinding.unblinded_by",
        "adverse_event.reported_by",
        "allocation_slot.randomized_by",
        "outbox_message.to",
    },
}


def text_columns() -> set[str]:
    """Every String or Text column of every table, but identifiers ("...id")."""
    import importlib
    import pkgutil

    import protocols
    import reports
    import trials

    for package in (trials, protocols, reports):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name.endswith(".models"):
                importlib.import_module(module.name)
    return {
        f"{table.name}.{column.name}"
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, String | Text) and not column.name.endswith("id")
    }


def test_every_text_column_is_classified(world: World) -> None:
    not_free = set().union(*NOT_FREE_TEXT.values())
    classified = set(world.stored) | set(DERIVED) | not_free
    assert not set(world.stored) & set(DERIVED)
    assert text_columns() - classified == set(), "a new text column: fill it in the world or classify it"
    assert classified - text_columns() == set(), "a classified column no longer exists"


def test_every_payload_is_stored_byte_for_byte_and_the_tables_are_intact(world: World) -> None:
    engine = make_engine(world.url)
    try:
        with Session(engine) as session:
            for column, payloads in world.stored.items():
                table, name = column.split(".")
                values = set(session.execute(text(f"SELECT {name} FROM {table}")).scalars())
                for value in payloads:
                    assert value in values, column
            # The SQL in them ran nowhere: the tables are there and the audit chain holds.
            assert session.execute(text("SELECT count(*) FROM participant")).scalar_one() == 1
            assert audit.verify_chain(session.connection()).ok
    finally:
        engine.dispose()


def live_markup(page: str) -> list[str]:
    """What in an HTML page would run or load: inline scripts, scripts from elsewhere, event
    handler attributes, javascript: URLs, the payloads' elements. Empty for an inert page."""
    found = []
    tree = lxml.html.fromstring(page)
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == "script" and element.get("type") == "application/json":
            if "<" in (element.text or ""):  # data for a script: markup in it must be escaped
                found.append("markup in a JSON data block")
        elif element.tag == "script" and (element.text or "").strip():
            found.append("inline script")
        elif element.tag == "script" and not (element.get("src") or "").startswith("/static/"):
            found.append(f"script from {element.get('src')!r}")
        if element.tag in ("iframe", "object", "embed", "frame") or (
            element.tag == "img" and element.get("src") == "x"
        ):
            found.append(f"<{element.tag}>")
        for name, value in element.attrib.items():
            if name.lower().startswith("on"):
                found.append(f"{element.tag}[{name}]")
            if value.strip().lower().startswith("javascript:"):
                found.append(f"{element.tag}[{name}={value!r}]")
    return found


PRINCIPALS = {
    "sponsor": "sam",
    "coordinator": "cora",
    "clinician": "cleo",
    "statistician": "una",
    "monitor": "moe",
    "admin": "ada",
}


def pages(world: World) -> list[str]:
    """Every page of the URL map a GET can show (HTML), its parameters the world's records."""
    values = {
        "code": CODE,
        "label": world.label,
        "assessment_id": world.records["assessment_id"],
        "event_id": world.records["safety_event_id"],
        "number": "1",
        "job_id": world.records.get("job_id", ""),
    }
    found = set()
    for rule in world.app.url_map.iter_rules():
        path = rule.rule
        if path.startswith(("/api/", "/static/", "/epro/")) or "GET" not in rule.methods:
            continue
        if path.endswith((".csv", ".json", ".pdf")) or path == "/sign-in":
            continue
        filled = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values.get(m.group(1), ""), path)
        if "/adverse-events/" in path and "/new" not in path:
            filled = filled.replace(values["event_id"], world.records["adverse_event_id"])
        found.add(filled)
    found |= {f"/trials/{CODE}/participants?q={world.label}", f"/protocols/{CODE}/versions/1"}
    # The audit trail a page at a time, newest first: each table's entries on a page of their own.
    tables = {"assessment", *(column.split(".")[0] for column in world.stored)}
    found |= {f"/audit?table={table}" for table in tables}
    return sorted(found)


def test_every_page_shows_the_payloads_as_text(world: World) -> None:
    shown = ""
    for principal, username in PRINCIPALS.items():
        client = world.app.test_client()
        assert sign_in(client, username, PASSWORD).status_code == 302
        for path in pages(world):
            response = client.get(path)
            if response.status_code != 200 or response.mimetype != "text/html":
                assert response.status_code in (200, 302, 403, 404, 409), (principal, path)
                continue
            page = response.get_data(as_text=True)
            assert live_markup(page) == [], (principal, path)
            shown += lxml.html.fromstring(page).text_content()
    for column, payloads in world.stored.items():
        if column in HTML_ONLY_ELSEWHERE:
            continue
        for value in payloads:
            assert value[:40] in shown, f"{column}: no page shows it"
    assert SCRIPT in shown
    assert IMAGE in shown
    assert JAVASCRIPT_URL in shown


# Stored free text that no HTML page shows (it goes to the API, the PDF or the audit export).
HTML_ONLY_ELSEWHERE = {
    "protocol_version.source_text": "the protocol page shows the document's fields, not its source",
}


def test_the_report_pdf_carries_the_payloads_as_text_and_no_actions(world: World) -> None:
    import pikepdf
    from pdfminer.high_level import extract_text

    client = world.app.test_client()
    assert sign_in(client, "sam", PASSWORD).status_code == 302
    download = client.get(f"/trials/{CODE}/reports/1/report.pdf")
    assert download.status_code == 200
    pdf = download.get_data()
    content = re.sub(r"\s+", " ", extract_text(io.BytesIO(pdf), maxpages=4))
    assert SCRIPT in content
    assert "P0 <script>" in content  # the trial's title
    document = pikepdf.open(io.BytesIO(pdf))
    assert "/OpenAction" not in document.Root
    assert "/AA" not in document.Root
    assert "/JavaScript" not in document.Root.get("/Names", {})
    for obj in document.objects:  # every object of the file, pages, annotations and outline included
        if isinstance(obj, pikepdf.Dictionary):
            assert obj.get("/S") not in ("/JavaScript", "/Launch", "/URI", "/SubmitForm", "/ImportData")
            assert "/JS" not in obj


@pytest.mark.parametrize("needle", SQL)
def test_sql_in_searches_and_filters_matches_only_as_literal_text(world: World, needle: str) -> None:
    client = world.app.test_client()
    assert sign_in(client, "moe", PASSWORD).status_code == 302
    participants = client.get(f"/trials/{CODE}/participants", query_string={"q": needle})
    assert participants.status_code == 200
    assert world.label not in participants.get_data(as_text=True)
    found = client.get(f"/trials/{CODE}/participants", query_string={"q": world.label[-4:]})
    assert world.label in found.get_data(as_text=True)
    safety = client.get(f"/trials/{CODE}/safety-events", query_string={"participant": needle})
    assert safety.status_code == 200
    assert world.label not in safety.get_data(as_text=True)
    headers = world.headers["monitor"]
    for key in ("username", "table", "record_id", "action"):
        answer = client.get("/api/v1/audit", query_string={key: needle}, headers=headers)
        assert answer.status_code == 200, key
        assert answer.get_json()["total"] == 0, key
        page = client.get("/audit", query_string={key: needle})
        assert page.status_code == 200
    everything = client.get("/api/v1/audit", headers=headers).get_json()["total"]
    assert everything > 0
    # Identifiers in URLs are looked up as text: nothing matches, nothing runs.
    assert client.get(f"/api/v1/trials/{needle}/participants", headers=headers).status_code == 404
    response = client.get(f"/api/v1/trials/{CODE}/participants/{needle}", headers=headers)
    assert response.status_code == 404
    assert client.get(f"/trials/{CODE}/participants/{needle}").status_code == 404
    engine = make_engine(world.url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM participant")).scalar_one() == 1
            assert audit.verify_chain(connection).ok
    finally:
        engine.dispose()
