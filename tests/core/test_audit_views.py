"""The audit page, its API and CSV export: admins see everything, monitors only their trials."""

import csv
import io
from typing import Any

from sqlmodel import Session

from tests.conftest import csrf_token, sign_in
from trials.core.accounts import services
from trials.core.accounts.models import SiteCreate, TokenCreate


def _setup(session: Session, make_site: Any, make_trial: Any, make_user: Any) -> None:
    make_site("LON")
    make_trial("MOOD-CBT")
    make_trial("OTHER-TRIAL")
    make_user("ada", "admin")
    make_user("mona", "monitor:MOOD-CBT")
    make_user("cora", "coordinator:MOOD-CBT:LON")
    session.commit()


def test_admin_sees_every_entry_and_can_filter(
    client: Any, session: Session, make_site: Any, make_trial: Any, make_user: Any
) -> None:
    _setup(session, make_site, make_trial, make_user)
    assert sign_in(client, "ada").status_code == 302
    page = client.get("/audit").get_data(as_text=True)
    assert "OTHER-TRIAL" in page
    assert "MOOD-CBT" in page
    filtered = client.get("/audit?table=trial&action=insert&username=system").get_data(as_text=True)
    assert "OTHER-TRIAL" in filtered
    assert "user_account" not in filtered
    assert client.get("/audit?since=not-a-date").status_code == 422


def test_monitor_sees_only_their_trial(
    client: Any, session: Session, make_site: Any, make_trial: Any, make_user: Any
) -> None:
    _setup(session, make_site, make_trial, make_user)
    sign_in(client, "mona")
    page = client.get("/audit").get_data(as_text=True)
    assert "MOOD-CBT" in page
    assert "OTHER-TRIAL" not in page
    assert "<td>sign_in</td>" not in page  # account events belong to no trial: admins only


def test_coordinator_is_refused(
    client: Any, session: Session, make_site: Any, make_trial: Any, make_user: Any
) -> None:
    _setup(session, make_site, make_trial, make_user)
    sign_in(client, "cora")
    assert client.get("/audit").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403


def test_csv_export_lists_the_entries_and_is_audited(
    client: Any, session: Session, make_site: Any, make_trial: Any, make_user: Any
) -> None:
    _setup(session, make_site, make_trial, make_user)
    sign_in(client, "ada")
    response = client.get("/audit/export.csv?table=site")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows
    assert {r["table_name"] for r in rows} == {"site"}
    assert {r["field"] for r in rows} >= {"code", "name", "country"}
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    again = client.get("/audit?action=audit_export").get_data(as_text=True)
    assert "table=site" in again


def test_audit_api_pages_and_scopes(
    client: Any, session: Session, make_site: Any, make_trial: Any, make_user: Any
) -> None:
    _setup(session, make_site, make_trial, make_user)
    _mona, monitor = make_user("mona2", "monitor:MOOD-CBT")
    _token, secret = services.create_token(TokenCreate(name="t", scope="read"), session=session, by=monitor)
    services.create_site(
        SiteCreate(code="MAN", name="Manchester", country="GB"), session=session, by=services.SYSTEM
    )
    session.commit()
    body = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert body["total"] > 0
    assert all(e["table_name"] != "site" for e in body["entries"])  # sites belong to no trial
    verify = client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {secret}"})
    assert verify.status_code == 200
    assert verify.get_json()["ok"] is True


def test_csv_export_does_not_carry_formulas(client: Any, session: Session, make_user: Any) -> None:
    make_user("ada", "admin")
    session.commit()
    client.post(
        "/sign-in",
        data={
            "username": '=HYPERLINK("http://x")',
            "password": "x",
            "csrf_token": csrf_token(client.get("/sign-in").get_data(as_text=True)),
        },
    )
    sign_in(client, "ada")
    text = client.get("/audit/export.csv?action=sign_in_failed").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["username"] for r in rows] == ['\'=hyperlink("http://x")']
