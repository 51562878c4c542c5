"""The import page: coordinators upload a CSV, see the validation report of a refused file as
a table, and the batch history of their sites; oversize uploads get a clear 413."""

import html
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from tests.assessments.conftest import day
from tests.conftest import app_config, csrf_token, sign_in
from tests.imports.conftest import ASSESSMENT_HEADER, assessment_row, csv_bytes, stored
from trials import create_app

PAGE = "/trials/MOOD-CBT-01/import"
CLEAN = (1, 1, 1, 1, 1, 1, 1, 1, 0)


def upload(client: Any, content: bytes, *, kind: str = "assessments", filename: str = "visits.csv") -> Any:
    page = client.get(PAGE)
    assert page.status_code == 200, page.get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "kind": kind,
        "file": (io.BytesIO(content), filename),
    }
    return client.post(PAGE, data=data, content_type="multipart/form-data")


def report_rows(page: str) -> list[list[str]]:
    match = re.search(r'<article[^>]*id="report"[^>]*>(.*?)</article>', page, re.S)
    assert match, "no #report in the page"
    body = match.group(1).split("<tbody>", 1)[1]
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_a_coordinator_imports_a_file_and_sees_it_in_the_history(
    client: Any, session: Session, people: Any, make_participant: Any
) -> None:
    label = make_participant()
    sign_in(client, "cora")
    assert f'href="{PAGE}"' in client.get("/").get_data(as_text=True)
    response = upload(client, csv_bytes(ASSESSMENT_HEADER, [assessment_row(label, day(14), *CLEAN)]))
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(PAGE).get_data(as_text=True)
    assert "Imported 1 assessments rows from visits.csv" in page
    history = page.split("Imported files", 1)[1]
    assert "visits.csv" in history
    assert "cora" in history
    assert 'href="/trials/MOOD-CBT-01/import/templates/engagement.csv"' in page


def test_a_refused_file_shows_its_report_and_stores_nothing(
    client: Any, session: Session, people: Any, make_participant: Any
) -> None:
    mine, theirs = make_participant(), make_participant("MAN")
    rows = [
        assessment_row(mine, day(14), 1, 1, "two", *CLEAN[3:]),
        assessment_row(theirs, day(14), *CLEAN),
        assessment_row(mine, "2026-02-30", *CLEAN),
    ]
    sign_in(client, "cora")
    before = stored(session)
    response = upload(client, csv_bytes(ASSESSMENT_HEADER, rows))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "nothing was stored" in page
    assert [r[:3] for r in report_rows(page)] == [
        ["2", "item_3", "int_type"],
        ["3", "participant", "unknown_participant"],
        ["4", "assessed_on", "date_format"],
    ]
    assert stored(session) == before


def test_the_form_needs_a_file_and_its_csrf_token(client: Any, session: Session, people: Any) -> None:
    sign_in(client, "cora")
    token = csrf_token(client.get(PAGE).get_data(as_text=True))
    no_file = client.post(
        PAGE, data={"csrf_token": token, "kind": "assessments"}, content_type="multipart/form-data"
    )
    assert no_file.status_code == 422
    assert "Choose a CSV file" in no_file.get_data(as_text=True)
    no_token = client.post(
        PAGE,
        data={"kind": "assessments", "file": (io.BytesIO(b"x"), "a.csv")},
        content_type="multipart/form-data",
    )
    assert no_token.status_code == 400


def test_the_page_is_for_those_who_enter_data(client: Any, session: Session, people: Any) -> None:
    sign_in(client, "sam")
    assert PAGE not in client.get("/").get_data(as_text=True)
    assert client.get(PAGE).status_code == 403
    template = client.get(f"{PAGE}/templates/assessments.csv")
    assert template.status_code == 200
    assert template.get_data(as_text=True) == ",".join(ASSESSMENT_HEADER) + "\r\n"
    client.post("/sign-out", data={"csrf_token": csrf_token(client.get("/").get_data(as_text=True))})
    assert client.get(PAGE).status_code == 302  # to sign in


@pytest.fixture
def small_app(database_url: str, connection: Connection) -> Iterator[Any]:
    """The app with a 4 KiB request limit."""
    app = create_app(app_config(database_url, MAX_CONTENT_LENGTH=4096))
    state = app.extensions["trials_db"]
    state.session_factory = sessionmaker(
        bind=connection, class_=Session, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    yield app
    state.engine.dispose()


def test_an_oversize_upload_is_a_clear_413_on_the_page_and_the_api(
    small_app: Any, session: Session, people: Any, h: Any
) -> None:
    client = small_app.test_client()
    content = b"x" * 10_000
    sign_in(client, "cora")
    page = upload(client, content)
    assert page.status_code == 413
    assert "Request Entity Too Large" in page.get_data(as_text=True)
    api = client.post(
        "/api/v1/trials/MOOD-CBT-01/imports/assessments",
        data=content,
        headers={**h["lds"], "Content-Type": "text/csv"},
    )
    assert api.status_code == 413
    assert api.mimetype == "application/problem+json"
