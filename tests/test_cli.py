"""The `trials` command line: bootstrap, --as, --json, failures as clean messages, demo."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.conftest import query_rows, run_cli
from trials.core.db import make_engine

PASSWORD = "a demo password 1"


def run(url: str, *args: str) -> Result:
    return run_cli(url, *args)


def audit_rows(url: str, sql: str) -> list[Any]:
    return query_rows(url, sql)


def test_help_does_not_load_the_heavy_stack() -> None:
    code = (
        "import sys, trials.cli; heavy = {'sqlmodel', 'sqlalchemy', 'flask', 'pandas', 'pingouin', "
        "'lifelines', 'weasyprint', 'statsmodels'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_first_admin_then_everything_acts_as_someone(fresh_database_url: str) -> None:
    url = fresh_database_url
    first = run(
        url,
        "users",
        "create",
        "ada",
        "--name",
        "Ada Admin",
        "--password",
        PASSWORD,
        "--role",
        "admin",
    )
    assert first.exit_code == 0, first.output
    second = run(url, "users", "create", "bob", "--name", "Bob", "--password", PASSWORD, "--role", "admin")
    assert second.exit_code == 1
    assert "--as" in second.output
    site = run(
        url,
        "sites",
        "create",
        "LON",
        "--name",
        "London Clinic",
        "--country",
        "GB",
        "--as",
        "ada",
        "--json",
    )
    assert site.exit_code == 0, site.output
    assert json.loads(site.output)["code"] == "LON"
    rows = audit_rows(url, "SELECT username, role, channel FROM audit_entry WHERE table_name = 'site'")
    assert rows
    assert all(tuple(r) == ("ada", "admin", "cli") for r in rows)
    listed = run(url, "users", "list", "--as", "ada", "--json")
    assert [u["username"] for u in json.loads(listed.output)] == ["ada"]
    sites = json.loads(run(url, "sites", "list", "--json").output)
    assert [s["code"] for s in sites] == ["LON"]


def test_bad_input_is_a_clean_error_and_stores_nothing(fresh_database_url: str) -> None:
    url = fresh_database_url
    run(url, "users", "create", "ada", "--name", "Ada", "--password", PASSWORD, "--role", "admin")
    before = audit_rows(url, "SELECT count(*) FROM audit_entry")[0][0]
    bad_site = run(url, "sites", "create", "lon", "--name", "x", "--country", "GBR", "--as", "ada")
    assert bad_site.exit_code == 1
    assert "code:" in bad_site.output
    assert "country:" in bad_site.output
    assert "Traceback" not in bad_site.output
    bad_role = run(
        url,
        "users",
        "create",
        "cyd",
        "--name",
        "Cy",
        "--password",
        PASSWORD,
        "--role",
        "wizard",
        "--as",
        "ada",
    )
    assert bad_role.exit_code == 1
    assert "'wizard' is not a role" in bad_role.output
    short = run(url, "users", "create", "cyd", "--name", "Cy", "--password", "short", "--as", "ada")
    assert short.exit_code == 1
    assert "password" in short.output
    unknown = run(url, "users", "list", "--as", "nobody")
    assert unknown.exit_code == 1
    assert "nobody" in unknown.output
    assert audit_rows(url, "SELECT count(*) FROM audit_entry")[0][0] == before
    assert audit_rows(url, "SELECT count(*) FROM user_account")[0][0] == 1


def test_a_coordinator_cannot_administer(fresh_database_url: str) -> None:
    url = fresh_database_url
    run(url, "users", "create", "ada", "--name", "Ada", "--password", PASSWORD, "--role", "admin")
    run(url, "sites", "create", "LON", "--name", "London", "--country", "GB", "--as", "ada")
    created = run(url, "users", "create", "cora", "--name", "Cora", "--password", PASSWORD, "--as", "ada")
    assert created.exit_code == 0, created.output
    refused = run(url, "sites", "create", "MAN", "--name", "Manchester", "--country", "GB", "--as", "cora")
    assert refused.exit_code == 1
    assert "not allowed" in refused.output


def test_disable_and_unlock_need_reasons(fresh_database_url: str) -> None:
    url = fresh_database_url
    run(url, "users", "create", "ada", "--name", "Ada", "--password", PASSWORD, "--role", "admin")
    run(url, "users", "create", "cora", "--name", "Cora", "--password", PASSWORD, "--as", "ada")
    assert run(url, "users", "disable", "cora", "--as", "ada").exit_code == 2  # --reason is required
    done = run(url, "users", "disable", "cora", "--reason", "left the team", "--as", "ada")
    assert done.exit_code == 0, done.output
    reasons = audit_rows(
        url, "SELECT reason FROM audit_entry WHERE field = 'is_active' AND action = 'update'"
    )
    assert [r[0] for r in reasons] == ["left the team"]
    not_locked = run(url, "users", "unlock", "cora", "--reason", "x", "--as", "ada")
    assert not_locked.exit_code == 1
    assert "not locked" in not_locked.output


def test_demo_plays_the_trial_to_its_end_on_the_embedded_default(tmp_path: Path) -> None:
    """The demo is the main job on the embedded default (SQLite), so it runs on SQLite only; the
    report it makes is tested on both databases in tests/reports."""
    from trials.core import migrate
    from trials.core.accounts import services

    fresh_database_url = f"sqlite:///{tmp_path}/demo.sqlite"
    migrate.upgrade(fresh_database_url)
    out = tmp_path / "out"
    result = run(fresh_database_url, "demo", "--out", str(out), "--participants", "30", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["simulation"]["simulated"] is True
    assert data["simulation"]["randomized"] == 30
    # Played to its end: locked, unblinded with a reason, the final evidence bundle written.
    assert data["end"]["unblinding_reason"]
    report = data["report"]
    assert report["variant"] == "final"
    assert report["path"] == str(out / "report.pdf")
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["report"]["pdf_sha256"] == report["pdf_sha256"]
    results = json.loads((out / "results.json").read_text())
    assert results["blinded"] is False
    assert manifest["data_snapshot_sha256"] == results["input_sha256"]
    assert manifest["protocol"]["sha256"] == data["protocol"]["content_hash"]
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    # The submission datasets beside the report, listed in the manifest and checked.
    names = {entry["name"] for entry in manifest["files"]}
    for folder, datasets in (
        ("sdtm", ("dm", "ds", "ae", "qs", "ex", "sv", "ts")),
        ("adam", ("adsl", "adqs", "adtte")),
    ):
        assert {f"{folder}/{d}.xpt" for d in datasets} | {f"{folder}/define.xml"} <= names
        assert data["submission"][folder]["errors"] == manifest["submission"]["conformance"][folder]["errors"]
    assert data["submission"]["adam"]["errors"] == 0
    roles = {a["role"] for a in data["accounts"]}
    assert roles == {
        "admin",
        "sponsor",
        "statistician_unblinded",
        "statistician_blinded",
        "coordinator",
        "clinician",
        "monitor",
    }
    assert (out / "demo.json").exists()
    again = json.loads(run(fresh_database_url, "demo", "--out", str(out), "--json").stdout)
    assert again["accounts"][0]["password"] != data["accounts"][0]["password"]
    assert again["report"] == report  # the final report made once stands
    assert again["simulation"] == {
        "simulated": False,
        "participants_on_record": data["simulation"]["screened"],
    }
    engine = make_engine(fresh_database_url)
    from sqlmodel import Session

    from trials.core.audit import services as audit

    with Session(engine) as session:
        for account in again["accounts"]:
            principal = services.sign_in(
                account["username"], account["password"], session=session, lockout_threshold=6
            )
            assert principal.username == account["username"]
        session.rollback()
    with engine.connect() as conn:
        assert audit.verify_chain(conn).ok
    engine.dispose()
    assert run(fresh_database_url, "audit", "verify").exit_code == 0


def test_commands_that_report_speak_json(fresh_database_url: str) -> None:
    url = fresh_database_url
    run(url, "users", "create", "ada", "--name", "Ada", "--password", PASSWORD, "--role", "admin")
    run(url, "users", "create", "cora", "--name", "Cora", "--password", PASSWORD, "--as", "ada")
    disabled = json.loads(
        run(url, "users", "disable", "cora", "--reason", "left", "--as", "ada", "--json").output
    )
    assert disabled["is_active"] is False
    enabled = json.loads(
        run(url, "users", "enable", "cora", "--reason", "back", "--as", "ada", "--json").output
    )
    assert enabled["is_active"] is True
    assert json.loads(run(url, "db", "current", "--json").output)["revision"].endswith("(head)")
    assert json.loads(run(url, "db", "upgrade", "--json").output)["revision"].endswith("(head)")


def test_the_app_starts_without_the_statistics_stack() -> None:
    code = (
        "import sys, trials; trials.create_app({'ENV': 'testing', 'DATABASE_URL': 'sqlite://'}); "
        "heavy = {'numpy', 'pandas', 'pingouin', 'lifelines', 'weasyprint', 'statsmodels'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
