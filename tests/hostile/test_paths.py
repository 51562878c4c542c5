"""Path traversal: no route serves a file from outside its place, whatever its path says.

The only route that reads a file named in its URL is /static/ (Flask's send_from_directory,
which joins safely); reports and their results and manifests are read from the database by
trial code and number; import templates are built from a fixed list of kinds; an import's file
name is kept as text, its last part only, and names no file on disk.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.assessments.conftest import BASE, TODAY, h, make_participant, people
from tests.conftest import PASSWORD, sign_in
from tests.hostile.world import API, CODE, World
from trials.imports.models import ImportBatch

__all__ = ["h", "make_participant", "people"]

ROOT = Path(__file__).resolve().parents[2]
# Text of files an escape would serve: the application's source, its database, the system's.
SECRETS = ("def create_app", "root:x:0:0", "SQLite format 3", "[project]")
TRAVERSALS = [
    "../app.py",
    "..%2fapp.py",
    "%2e%2e/app.py",
    "%2e%2e%2fapp.py",
    "%252e%252e%252fapp.py",
    "..%252fapp.py",
    "....//app.py",
    "..\\app.py",
    "..%5capp.py",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "//etc/passwd",
    "../../../../../../etc/passwd",
    "..%c0%afapp.py",
    "..%00/app.py",
    "css/..%2f..%2f..%2fpyproject.toml",
    "C:\\Windows\\win.ini",
    "..%2f..%2finstance%2ftrials.sqlite",
]
# Where a file name or path could go: each route that serves a file or names one.
PLACES = [
    "/static/{}",
    "/static/css/{}",
    f"/trials/{CODE}/reports/{{}}/report.pdf",
    f"/trials/{CODE}/reports/1/{{}}",
    f"/trials/{CODE}/reports/{{}}/results.json",
    f"/trials/{CODE}/reports/{{}}/manifest.json",
    f"/trials/{CODE}/import/templates/{{}}.csv",
    f"{API}/imports/templates/{{}}.csv",
    f"{API}/reports/{{}}/pdf",
    f"{API}/reports/{{}}/results.json",
    f"{API}/reports/1/{{}}",
    "/{}",
    "/audit/{}",
]


def assert_refused(response: Any, where: str) -> None:
    body = response.get_data()
    response.close()
    # 404 for a file that is not there; 400 or 422 for a path that is not a name (a NUL byte).
    assert response.status_code in (400, 404, 422), (where, response.status_code)
    for secret in SECRETS:
        assert secret.encode() not in body, where


@pytest.mark.parametrize("place", PLACES)
def test_traversal_in_every_file_route_is_refused(world: World, place: str) -> None:
    web = world.app.test_client()
    assert sign_in(web, "sam", PASSWORD).status_code == 302
    for traversal in TRAVERSALS:
        path = place.format(traversal)
        client = web if not path.startswith("/api/") else world.app.test_client()
        headers = world.headers["sponsor"] if path.startswith("/api/") else {}
        # A doubled slash is first redirected to its single-slash form, then refused.
        assert_refused(client.get(path, headers=headers, follow_redirects=True), path)


def test_static_files_are_still_served(world: World) -> None:
    response = world.app.test_client().get("/static/css/trials.css")
    assert response.status_code == 200
    response.close()


def test_an_import_file_name_keeps_only_its_last_part(
    client: Any, session: Session, make_participant: Any, h: Any
) -> None:
    label = make_participant("LDS")
    names = {
        "../../../etc/passwd": "passwd",
        "..\\..\\Windows\\visits.csv": "visits.csv",
        "/var/lib/trials/visits.csv": "visits.csv",
        "C:\\Users\\ann\\week-2.csv": "week-2.csv",
        "%2e%2e%2fvisits.csv": "%2e%2e%2fvisits.csv",  # kept as text: nothing decodes it
    }
    for days_ago, (given, kept) in enumerate(names.items()):
        day = TODAY - timedelta(days=days_ago)
        content = f"participant,day,sessions,minutes,modules_completed\r\n{label},{day},1,20,0\r\n"
        response = client.post(
            f"{BASE}/imports/engagement",
            data=content.encode(),
            headers={**h["lds"], "Content-Type": "text/csv"},
            query_string={"filename": given},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.get_json()["filename"] == kept
    stored = set(session.scalars(select(ImportBatch.filename)))
    assert stored == set(names.values())
    refused = client.post(
        f"{BASE}/imports/engagement",
        data=b"participant\r\n",
        headers={**h["lds"], "Content-Type": "text/csv"},
        query_string={"filename": "a\x00.csv"},
    )
    assert refused.status_code == 422
