"""`trials participants ...`, `trials go-live`, `trials randomize`, `trials allocation export`:
the coordinator's day on the command line, refusals that store nothing, sites and blinding."""

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlmodel import Session

from protocols import services as protocols
from protocols.document import example_protocol_path
from tests.conftest import PASSWORD, query_rows, run_cli
from trials.core.accounts import services as accounts
from trials.core.accounts.models import GrantCreate, Role, SiteCreate, UserCreate
from trials.core.audit import services as audit
from trials.core.db import make_engine

CODE = "MOOD-CBT-01"
ARMS = ("CBT", "ATTN", "WAIT")
TODAY = datetime.now(UTC).date()
SCREENED = (TODAY - timedelta(days=7)).isoformat()
FUTURE = (TODAY + timedelta(days=2)).isoformat()
PEOPLE = {
    "sam": ("sponsor", None),
    "cora": ("coordinator", "LDS"),
    "manny": ("coordinator", "MAN"),
    "bea": ("statistician_blinded", None),
    "moe": ("monitor", None),
    "una": ("statistician_unblinded", None),
}


def run(url: str, *args: str) -> Result:
    return run_cli(url, *args)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def refused(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def rows(url: str, sql: str, **params: Any) -> list[Any]:
    return query_rows(url, sql, **params)


def counts(url: str) -> tuple[int, ...]:
    return tuple(
        rows(url, f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608 - fixed table names
        for table in ("participant", "allocation_list", "audit_entry")
    ) + (rows(url, "SELECT count(*) FROM allocation_slot WHERE participant_id IS NOT NULL")[0][0],)


def no_arm_in(output: str) -> None:
    output = output.replace(CODE, "")  # the trial's code, MOOD-CBT-01, is no arm
    for arm in ARMS:
        assert arm not in output, output


@pytest.fixture
def url(fresh_database_url: str) -> str:
    """A committed database: the example protocol, its sites and people, locked by the sponsor."""
    engine = make_engine(fresh_database_url)
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system())
        source = protocols.Source(example_protocol_path().read_bytes(), "yaml")
        for site in source.parse().document.sites:
            accounts.create_site(
                SiteCreate(code=site.code, name=site.name, country=site.country),
                session=session,
                by=accounts.SYSTEM,
            )
        protocols.register(source, session=session, by=accounts.SYSTEM)
        for username, (role, site_code) in PEOPLE.items():
            accounts.create_user(
                UserCreate(username=username, printed_name=username.title(), password=PASSWORD),
                session=session,
                by=accounts.SYSTEM,
            )
            accounts.grant_role(
                username,
                GrantCreate(role=Role(role), trial_code=CODE, site_code=site_code),
                session=session,
                by=accounts.SYSTEM,
            )
        sponsor = accounts.load_principal(accounts.get_user("sam", session=session), session=session)
        protocols.lock(CODE, 1, password=PASSWORD, session=session, by=sponsor, lockout_threshold=6)
        session.commit()
    engine.dispose()
    return fresh_database_url


def go_live(url: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        ok(run(url, "go-live", CODE, "--slots-per-stratum", "12", "--as", "sam", "--json")).output
    )
    return out


def screen(url: str, *extra: str, site: str = "LDS", user: str = "cora") -> Result:
    args = ["--age", "30", "--phq9", "12", "--inclusion-met", "--no-exclusion", *extra]
    return run(
        url, "participants", "screen", CODE, "--site", site, "--screened-on", SCREENED, "--as", user, *args
    )


def enrolled(url: str, site: str = "LDS", user: str = "cora") -> str:
    label = str(json.loads(ok(screen(url, "--json", site=site, user=user)).output)["label"])
    ok(run(url, "participants", "enrol", CODE, label, "--consent-date", SCREENED, "--as", user))
    return label


def test_go_live_screen_enrol_randomize_list_and_export(url: str, tmp_path: Path) -> None:
    live = go_live(url)
    assert live["trial_code"] == CODE
    assert len(live["strata"]) == 6
    no_arm_in(json.dumps(live))
    assert "already live" in refused(run(url, "go-live", CODE, "--as", "sam"))

    text_out = ok(screen(url)).output
    assert text_out.startswith("screened LDS-0001")
    failure = json.loads(ok(screen(url, "--json", "--age", "70")).output)  # the last --age counts
    assert failure["status"] == "screen_failed"
    assert failure["screen_failure_reasons"][0]["rule"] == "age"

    enrolment = ok(
        run(url, "participants", "enrol", CODE, "LDS-0001", "--consent-date", SCREENED, "--as", "cora")
    )
    assert "enrolled LDS-0001" in enrolment.output
    result = json.loads(ok(run(url, "randomize", CODE, "LDS-0001", "--as", "cora", "--json")).output)
    assert result["status"] == "enrolled"
    assert result["randomized_at"]
    assert result["arm_code"] in ARMS  # investigators are not blinded in the example protocol
    stored = rows(
        url,
        "SELECT s.arm_code, s.randomized_by FROM allocation_slot s JOIN participant p"
        " ON p.id = s.participant_id WHERE p.label = 'LDS-0001'",
    )
    assert [tuple(r) for r in stored] == [(result["arm_code"], "cora")]
    channels = rows(url, "SELECT DISTINCT channel FROM audit_entry WHERE username = 'cora'")
    assert [r[0] for r in channels] == ["cli"]

    listing = json.loads(ok(run(url, "participants", "list", CODE, "--as", "cora", "--json")).output)
    assert [(p["label"], p["arm_code"]) for p in listing] == [
        ("LDS-0001", result["arm_code"]),
        ("LDS-0002", None),
    ]
    people = ok(run(url, "participants", "list", CODE, "--as", "cora")).output
    assert f"arm {result['arm_code']}" in people
    assert "screen failure: age 70" in people

    out_file = tmp_path / "allocation.csv"
    report = json.loads(
        ok(run(url, "allocation", "export", CODE, "--as", "una", "--out", str(out_file), "--json")).output
    )
    assert report["list_sha256"] == live["list_sha256"]
    with out_file.open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == report["rows"] >= 6 * 12
    assert [(r["participant_label"], r["arm_code"]) for r in table if r["participant_label"]] == [
        ("LDS-0001", result["arm_code"])
    ]
    assert (
        rows(url, "SELECT username FROM audit_entry WHERE action = 'allocation_list_viewed'")[0][0] == "una"
    )
    assert json.loads(ok(run(url, "audit", "verify", "--json")).output)["ok"] is True


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--age", "200"), "age_years"),
        (("--phq9", "28"), "screening_phq9"),
        (("--phq9", "-1"), "screening_phq9"),
        (("--screened-on", FUTURE), "screened_on"),
        (("--site", "XYZ"), "site_code"),
    ],
)
def test_bad_screening_is_refused_naming_the_field_and_nothing_is_stored(
    url: str, extra: tuple[str, ...], named: str
) -> None:
    go_live(url)
    before = counts(url)
    output = refused(screen(url, *extra))
    assert f"{named}: " in output
    assert counts(url) == before


def test_malformed_options_and_unanswered_criteria_are_usage_errors(url: str) -> None:
    before = counts(url)
    assert "'two' is not a valid integer" in refused(screen(url, "--age", "two"), 2)
    assert "'2026-13-01' does not match" in refused(screen(url, "--screened-on", "2026-13-01"), 2)
    unanswered = run(
        url, "participants", "screen", CODE, "--site", "LDS", "--screened-on", SCREENED,
        "--age", "30", "--phq9", "12", "--no-exclusion", "--as", "cora",
    )  # fmt: skip
    assert "--inclusion-met or --inclusion-not-met" in refused(unanswered, 2)
    assert counts(url) == before


def test_enrolment_and_randomization_refusals(url: str) -> None:
    go_live(url)
    screened_label = json.loads(ok(screen(url, "--json")).output)["label"]
    before = counts(url)
    output = refused(
        run(url, "participants", "enrol", CODE, screened_label, "--consent-date", FUTURE, "--as", "cora")
    )
    assert "consent_date: " in output
    assert "is not enrolled" in refused(run(url, "randomize", CODE, screened_label, "--as", "cora"))
    assert "no participant 'LDS-0099'" in refused(run(url, "randomize", CODE, "LDS-0099", "--as", "cora"))
    assert counts(url) == before
    label = enrolled(url)
    ok(run(url, "randomize", CODE, label, "--as", "cora"))
    before = counts(url)
    assert "already randomized" in refused(run(url, "randomize", CODE, label, "--as", "cora"))
    assert counts(url) == before


def test_a_coordinator_cannot_touch_another_sites_participants(url: str, tmp_path: Path) -> None:
    go_live(url)
    theirs = enrolled(url, "MAN", "manny")
    screened_theirs = json.loads(ok(screen(url, "--json", site="MAN", user="manny")).output)["label"]
    before = counts(url)
    assert f"no participant {theirs!r}" in refused(run(url, "randomize", CODE, theirs, "--as", "cora"))
    assert f"no participant {screened_theirs!r}" in refused(
        run(url, "participants", "enrol", CODE, screened_theirs, "--consent-date", SCREENED, "--as", "cora")
    )
    assert "not allowed to enter data" in refused(screen(url, site="MAN"))
    assert json.loads(ok(run(url, "participants", "list", CODE, "--as", "cora", "--json")).output) == []
    # Allocation concealment: no coordinator reads the list of upcoming assignments.
    out_file = tmp_path / "allocation.csv"
    no_arm_in(refused(run(url, "allocation", "export", CODE, "--as", "cora", "--out", str(out_file))))
    assert not out_file.exists()
    assert counts(url) == before


@pytest.mark.parametrize("user", ["bea", "moe"])
def test_blinded_users_see_no_arm_and_cannot_export_the_list(url: str, tmp_path: Path, user: str) -> None:
    go_live(url)
    label = enrolled(url)
    ok(run(url, "randomize", CODE, label, "--as", "cora"))
    listing = json.loads(ok(run(url, "participants", "list", CODE, "--as", user, "--json")).output)
    assert len(listing) == 1
    assert listing[0]["randomized_at"]
    assert listing[0]["arm_code"] is None
    no_arm_in(ok(run(url, "participants", "list", CODE, "--as", user)).output)
    out_file = tmp_path / "allocation.csv"
    output = refused(run(url, "allocation", "export", CODE, "--as", user, "--out", str(out_file)))
    assert "allocation" in output
    no_arm_in(output)
    assert not out_file.exists()
