"""A database that cannot be reached answers 503 (problem+json with Retry-After on the API, an
HTML page on the web), whereas a fault of the schema or the code stays a 500. In process, on
databases that need no server: a SQLite file that cannot be opened, a PostgreSQL port where
nothing listens."""

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError, PendingRollbackError

from tests.conftest import app_config, csrf_token
from tests.faults.conftest import free_port
from trials import create_app
from trials.core.accounts.services import TOKEN_PREFIX
from trials.core.error_handlers import database_unavailable

API_READ = "/api/v1/trials/MOOD-CBT-01/participants"
# A token of the right form, which the server must look up in the database.
BEARER = {"Authorization": f"Bearer {TOKEN_PREFIX}{'x' * 43}"}


def unreachable_databases(tmp_path: Path) -> dict[str, str]:
    return {
        "sqlite file in a missing folder": f"sqlite:///{tmp_path}/missing/trials.sqlite",
        "postgresql port where nothing listens": (
            f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/trials?connect_timeout=5"
        ),
    }


@pytest.mark.parametrize(
    "which", ["sqlite file in a missing folder", "postgresql port where nothing listens"]
)
def test_an_unreachable_database_is_a_503_on_the_api_and_the_web(tmp_path: Path, which: str) -> None:
    app = create_app(app_config(unreachable_databases(tmp_path)[which]))
    client = app.test_client()
    try:
        answer = client.get(API_READ, headers=BEARER)
        assert answer.status_code == 503
        assert answer.mimetype == "application/problem+json"
        assert answer.headers["Retry-After"] == "5"
        problem = answer.get_json()
        assert problem == {
            "type": "about:blank",
            "title": "Service unavailable",
            "status": 503,
            "detail": "The database is unavailable; try again in a moment.",
        }
        # The web: signing in needs the database.
        page = client.get("/sign-in")
        assert page.status_code == 200
        form = {
            "username": "ann",
            "password": "secret",
            "csrf_token": csrf_token(page.get_data(as_text=True)),
        }
        answer = client.post("/sign-in", data=form, headers={"Accept": "text/html"})
        assert answer.status_code == 503
        assert answer.mimetype == "text/html"
        assert answer.headers["Retry-After"] == "5"
        html = answer.get_data(as_text=True)
        assert "503 · Service unavailable" in html
        assert "The database is unavailable" in html
        for leak in ("Traceback", "OperationalError", "unable to open", "Connection refused", "127.0.0.1"):
            assert leak not in html
            assert leak not in str(problem)
    finally:
        app.extensions["trials_db"].engine.dispose()


def test_a_missing_table_is_not_unavailability_but_a_500(tmp_path: Path) -> None:
    app = create_app(app_config(f"sqlite:///{tmp_path}/not-migrated.sqlite"))
    try:
        answer = app.test_client().get(API_READ, headers=BEARER)
        assert answer.status_code == 500
        assert "Retry-After" not in answer.headers
    finally:
        app.extensions["trials_db"].engine.dispose()


def _operational(orig: Exception) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (_operational(sqlite3.OperationalError("database is locked")), True),
        (_operational(sqlite3.OperationalError("unable to open database file")), True),
        (_operational(sqlite3.OperationalError("no such table: trial")), False),
        (_operational(sqlite3.OperationalError('near "SELEC": syntax error')), False),
        (_operational(psycopg.OperationalError("connection refused")), True),
        (_operational(psycopg.errors.AdminShutdown("terminating connection")), True),
        (ValueError("not a database error"), False),
        (None, False),
    ],
)
def test_which_errors_mean_the_database_is_unavailable(error: Any, unavailable: bool) -> None:
    assert database_unavailable(error) is unavailable


def test_an_error_raised_while_handling_a_lost_connection_counts_as_unavailability() -> None:
    lost = _operational(psycopg.OperationalError("server closed the connection unexpectedly"))
    during_clean_up = PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
    during_clean_up.__context__ = lost  # as Python sets it when raised in an except block
    assert database_unavailable(during_clean_up)
    assert not database_unavailable(PendingRollbackError("on its own"))
