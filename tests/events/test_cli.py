"""`trials ae ...`, `trials disposition ...`, `trials unblind-participant` and `trials unblindings`
on a committed database: what they store, what they refuse (storing nothing), and no arm for
anyone but the unblinding clinician."""

import json
from datetime import timedelta

import pytest
from click.testing import Result

from tests.assessments.conftest import CODE, TODAY
from tests.conftest import query_rows, run_cli
from tests.events.conftest import committed_trial, no_arm_in

STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "clin_lds": "cleo:clinician:TRIAL:LDS",
    "clin_man": "max:clinician:TRIAL:MAN",
    "monitor": "moe:monitor:TRIAL",
}


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def refused(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def counts(url: str) -> tuple[int, ...]:
    return tuple(
        query_rows(url, f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608 - fixed table names
        for table in (
            "adverse_event",
            "disposition_event",
            "emergency_unblinding",
            "notification",
            "audit_entry",
        )
    )


@pytest.fixture
def url(fresh_database_url: str) -> str:
    """A committed live trial with one randomized participant at LDS, LDS-0001."""
    committed_trial(fresh_database_url, STAFF)
    return fresh_database_url


def test_adverse_events_on_the_command_line(url: str) -> None:
    onset = (TODAY - timedelta(days=1)).isoformat()
    base = ["ae", "record", CODE, "LDS-0001", "--term", "Panic attack", "--onset", onset]
    grading = ["--severity", "severe", "--relatedness", "unlikely", "--action", "app_use_interrupted"]
    before = counts(url)
    output = refused(run_cli(url, *base, *grading, "--outcome", "recovering_resolving", "--as", "cora"), 2)
    assert "--serious or --not-serious" in output
    output = refused(
        run_cli(url, *base, *grading, "--outcome", "recovering_resolving", "--serious", "--as", "cora")
    )
    assert "serious_criteria: a serious event needs at least one criterion" in output
    refused(run_cli(url, *base, *grading, "--outcome", "healed", "--not-serious", "--as", "cora"), 2)
    output = refused(
        run_cli(url, *base, *grading, "--outcome", "recovering_resolving", "--not-serious", "--as", "moe")
    )
    assert "coordinators and clinicians" in output
    assert counts(url) == before

    serious = ["--serious", "--criterion", "hospitalization", "--criterion", "other_medically_important"]
    created = json.loads(
        ok(
            run_cli(
                url, *base, *grading, "--outcome", "recovering_resolving", *serious, "--as", "cleo", "--json"
            )
        ).output
    )
    assert created["serious_criteria"] == ["hospitalization", "other_medically_important"]
    assert query_rows(url, "SELECT count(*) FROM notification WHERE adverse_event_id IS NOT NULL")[0][0] == 1

    refused(
        run_cli(url, "ae", "change", CODE, created["id"], "--outcome", "recovered_resolved", "--as", "cora"),
        2,
    )
    changed = json.loads(
        ok(
            run_cli(
                url,
                "ae",
                "change",
                CODE,
                created["id"],
                "--outcome",
                "recovered_resolved",
                "--end",
                TODAY.isoformat(),
                "--reason",
                "discharged",
                "--as",
                "cora",
                "--json",
            )
        ).output
    )
    assert (changed["outcome"], changed["end_date"]) == ("recovered_resolved", TODAY.isoformat())
    reasons = query_rows(
        url,
        "SELECT field, reason FROM audit_entry WHERE record_id = :id AND action = 'update' ORDER BY field",
        id=created["id"],
    )
    assert [tuple(r) for r in reasons] == [("end_date", "discharged"), ("outcome", "discharged")]

    listed = ok(run_cli(url, "ae", "list", CODE, "--serious", "--as", "moe")).output
    assert "SERIOUS (hospitalization, other_medically_important) 'Panic attack'" in listed
    no_arm_in(listed)
    assert (
        ok(run_cli(url, "ae", "list", CODE, "--not-serious", "--as", "moe")).output.strip()
        == "no adverse events"
    )


def test_disposition_on_the_command_line(url: str) -> None:
    day = TODAY.isoformat()  # the participant was randomized today
    before = counts(url)
    output = refused(
        run_cli(
            url,
            "disposition",
            "record",
            CODE,
            "LDS-0001",
            "--kind",
            "started_other_treatment",
            "--date",
            day,
            "--reason",
            "GP started sertraline",
            "--as",
            "cora",
        )
    )
    assert "other_treatment" in output
    assert counts(url) == before
    ok(
        run_cli(
            url,
            "disposition",
            "record",
            CODE,
            "LDS-0001",
            "--kind",
            "started_other_treatment",
            "--date",
            day,
            "--reason",
            "GP started sertraline",
            "--treatment",
            "antidepressant",
            "--as",
            "cora",
        )
    )
    lost = json.loads(
        ok(
            run_cli(
                url,
                "disposition",
                "record",
                CODE,
                "LDS-0001",
                "--kind",
                "lost_to_follow_up",
                "--date",
                TODAY.isoformat(),
                "--reason",
                "no answer",
                "--as",
                "cora",
                "--json",
            )
        ).output
    )
    output = refused(
        run_cli(
            url,
            "disposition",
            "record",
            CODE,
            "LDS-0001",
            "--kind",
            "completed",
            "--date",
            TODAY.isoformat(),
            "--reason",
            "final visit",
            "--as",
            "cora",
        )
    )
    assert "already has an end of study" in output
    retracted = json.loads(
        ok(
            run_cli(
                url,
                "disposition",
                "retract",
                CODE,
                lost["id"],
                "--reason",
                "found again",
                "--as",
                "cora",
                "--json",
            )
        ).output
    )
    assert retracted["status"] == "retracted"
    listed = ok(run_cli(url, "disposition", "list", CODE, "--as", "moe")).output
    assert "started_other_treatment (antidepressant): GP started sertraline" in listed
    assert "RETRACTED" in listed
    no_arm_in(listed)


def test_emergency_unblinding_on_the_command_line(url: str) -> None:
    arm = query_rows(url, "SELECT arm_code FROM allocation_slot WHERE participant_id IS NOT NULL")[0][0]
    before = counts(url)
    for user, code in (("cora", 1), ("sam", 1), ("moe", 1), ("max", 1)):
        output = refused(
            run_cli(url, "unblind-participant", CODE, "LDS-0001", "--reason", "emergency", "--as", user), code
        )
        no_arm_in(output)
    output = refused(run_cli(url, "unblind-participant", CODE, "LDS-0001", "--reason", "  ", "--as", "cleo"))
    assert "reason" in output
    assert counts(url) == before

    answer = json.loads(
        ok(
            run_cli(
                url,
                "unblind-participant",
                CODE,
                "LDS-0001",
                "--reason",
                "anaphylaxis in A&E",
                "--as",
                "cleo",
                "--json",
            )
        ).output
    )
    assert answer["arm_code"] == arm
    text = ok(
        run_cli(url, "unblind-participant", CODE, "LDS-0001", "--reason", "again", "--as", "cleo")
    ).output
    assert text.startswith(f"LDS-0001 is in arm {arm} (")
    listed = ok(run_cli(url, "unblindings", CODE, "--as", "moe", "--json")).output
    assert [r["reason"] for r in json.loads(listed)] == ["anaphylaxis in A&E", "again"]
    no_arm_in(listed)
    assert (
        query_rows(url, "SELECT count(*) FROM outbox_message WHERE emergency_unblinding_id IS NOT NULL")[0][0]
        == 2
    )
