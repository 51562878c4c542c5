"""`trials protocol ...`: invalid documents store nothing; register, lock, refused edit, amend, diff."""

import json
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.conftest import PASSWORD, query_rows, run_cli
from tests.protocols.invalid_cases import EXAMPLE_TEXT, INVALID_CASES, case_text, dump, example_data
from tests.protocols.test_document import EXAMPLE_HASH

CODE = "MOOD-CBT-01"


def run(url: str, *args: str, input: str | None = None) -> Result:
    return run_cli(url, *args, input=input)


def rows(url: str, sql: str, **params: Any) -> list[Any]:
    return query_rows(url, sql, **params)


def counts(url: str) -> tuple[int, ...]:
    return tuple(
        rows(url, f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608 - fixed table names
        for table in ("protocol_version", "trial", "audit_entry", "signature")
    )


def audit_actions(url: str, action: str) -> list[Any]:
    return rows(
        url,
        "SELECT username, channel, table_name, new_value FROM audit_entry"
        " WHERE action = :action ORDER BY seq",
        action=action,
    )


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return str(path)


def create_admin(url: str) -> None:
    result = run(
        url, "users", "create", "ada", "--name", "Ada Admin", "--password", PASSWORD, "--role", "admin"
    )
    assert result.exit_code == 0, result.output


def test_every_invalid_document_is_refused_with_its_field_path_and_nothing_is_stored(
    fresh_database_url: str, tmp_path: Path
) -> None:
    url = fresh_database_url
    create_admin(url)
    before = counts(url)
    for case in INVALID_CASES:
        content = case_text(case)
        suffix = ".json" if content.lstrip().startswith("{") else ".yaml"
        path = write(tmp_path, case.case_id + suffix, content)
        result = run(url, "protocol", "register", path, "--as", "ada")
        assert result.exit_code == 1, (case.case_id, result.output)
        assert f"{case.expected_path or 'document'}: " in result.output, (case.case_id, result.output)
        assert "the protocol document is not valid" in result.output
        assert "Traceback" not in result.output
        checked = run(url, "protocol", "validate", path, "--json")
        assert checked.exit_code == 1, (case.case_id, checked.output)
        report = json.loads(checked.output)
        assert report["valid"] is False
        assert {"field": case.expected_path, "rule": case.expected_rule} in [
            {"field": e["field"], "rule": e["rule"]} for e in report["errors"]
        ], case.case_id
    assert counts(url) == before  # no version, no trial, no audit entry


def test_validate_prints_the_hash_of_the_example(fresh_database_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "mood-cbt.yaml", EXAMPLE_TEXT)
    result = run(fresh_database_url, "protocol", "validate", path)
    assert result.exit_code == 0, result.output
    assert EXAMPLE_HASH in result.output
    as_json = run(fresh_database_url, "protocol", "validate", path, "--json")
    assert json.loads(as_json.output) == {"valid": True, "content_hash": EXAMPLE_HASH}
    assert counts(fresh_database_url) == (0, 0, 0, 0)


def test_register_lock_refused_edit_amend_diff_and_show(fresh_database_url: str, tmp_path: Path) -> None:
    url = fresh_database_url
    create_admin(url)
    example = write(tmp_path, "mood-cbt.yaml", EXAMPLE_TEXT)
    data = example_data()
    data["sap"]["alpha"] = 0.04
    data["arms"][0]["name"] = "MoodStep CBT programme"
    amended = write(tmp_path, "amended.yaml", dump(data))

    # the administrator registers the protocol, which creates the trial
    registered = run(url, "protocol", "register", example, "--as", "ada", "--json")
    assert registered.exit_code == 0, registered.output
    out = json.loads(registered.output)
    assert (out["trial"], out["version"], out["status"], out["content_hash"]) == (
        CODE,
        1,
        "draft",
        EXAMPLE_HASH,
    )
    assert rows(url, "SELECT code FROM trial") == [(CODE,)]
    sponsor = run(
        url, "users", "create", "sam", "--name", "Sam Sponsor", "--password", PASSWORD,
        "--role", f"sponsor:{CODE}", "--as", "ada",
    )  # fmt: skip
    assert sponsor.exit_code == 0, sponsor.output
    again = run(url, "protocol", "register", example, "--as", "sam")
    assert again.exit_code == 1
    assert "already" in again.output

    # a wrong password is refused and recorded; the right one locks and prints the hash
    wrong = run(url, "protocol", "lock", CODE, "--as", "sam", "--password-stdin", input="not the password\n")
    assert wrong.exit_code == 1
    assert "password" in wrong.output
    assert rows(url, "SELECT status FROM protocol_version") == [("draft",)]
    locked = run(url, "protocol", "lock", CODE, "--as", "sam", "--password-stdin", input=PASSWORD + "\n")
    assert locked.exit_code == 0, locked.output
    assert f"sha256 {EXAMPLE_HASH}" in locked.output
    assert "Sam Sponsor (sam)" in locked.output
    assert "approval" in locked.output
    assert rows(url, "SELECT meaning, printed_name, content_hash FROM signature") == [
        ("approval", "Sam Sponsor", EXAMPLE_HASH)
    ]

    # editing the locked version is refused (that the attempt is recorded: see the next test)
    refused = run(url, "protocol", "update", CODE, "1", amended, "--reason", "x", "--as", "sam")
    assert refused.exit_code == 1
    assert "locked" in refused.output
    relock = run(
        url, "protocol", "lock", CODE, "--version", "1", "--as", "sam", "--password-stdin", input=PASSWORD
    )
    assert relock.exit_code == 1
    assert "locked" in relock.output
    assert rows(url, "SELECT status, content_hash FROM protocol_version") == [("locked", EXAMPLE_HASH)]

    # an amendment: a new version with its reason, and a diff that lists each change
    reason = "DMC advice: alpha 0.04; arm renamed"
    no_reason = run(url, "protocol", "amend", CODE, amended, "--as", "sam")
    assert no_reason.exit_code == 2  # --reason is required
    done = run(url, "protocol", "amend", CODE, amended, "--reason", reason, "--as", "sam", "--json")
    assert done.exit_code == 0, done.output
    assert (json.loads(done.output)["version"], json.loads(done.output)["amendment_reason"]) == (2, reason)
    recorded = rows(url, "SELECT new_value FROM audit_entry WHERE field = 'amendment_reason'")
    assert recorded == [(json.dumps(reason),)]

    diff = run(url, "protocol", "diff", CODE, "1", "2", "--as", "sam", "--json")
    assert diff.exit_code == 0, diff.output
    assert sorted((c["path"], c["kind"], c["old"], c["new"]) for c in json.loads(diff.output)) == [
        ("arms[CBT].name", "changed", "MoodStep CBT", "MoodStep CBT programme"),
        ("sap.alpha", "changed", 0.05, 0.04),
    ]
    as_text = run(url, "protocol", "diff", CODE, "1", "2", "--as", "sam")
    assert "sap.alpha: 0.05 -> 0.04" in as_text.output

    shown = run(url, "protocol", "show", CODE, "--as", "sam", "--json")
    assert shown.exit_code == 0, shown.output
    latest = json.loads(shown.output)
    assert (latest["version"], latest["status"], latest["amendment_reason"]) == (2, "draft", reason)
    assert latest["signature"] is None
    first = json.loads(run(url, "protocol", "show", CODE, "--version", "1", "--as", "sam", "--json").output)
    assert (first["status"], first["content_hash"]) == ("locked", EXAMPLE_HASH)
    assert "Sam Sponsor" in first["signature"]
    assert first["locked_at"]
    text_view = run(url, "protocol", "show", CODE, "--version", "1", "--as", "sam")
    assert "signed" in text_view.output
    assert "approval" in text_view.output
    # the administrator manages accounts, not the trial's protocol
    assert run(url, "protocol", "show", CODE, "--as", "ada").exit_code == 1
    assert run(url, "audit", "verify").exit_code == 0


def test_refusals_that_put_themselves_on_record_are_committed(
    fresh_database_url: str, tmp_path: Path
) -> None:
    url = fresh_database_url
    create_admin(url)
    example = write(tmp_path, "mood-cbt.yaml", EXAMPLE_TEXT)
    assert run(url, "protocol", "register", example, "--as", "ada").exit_code == 0
    created = run(
        url, "users", "create", "sam", "--name", "Sam Sponsor", "--password", PASSWORD,
        "--role", f"sponsor:{CODE}", "--as", "ada",
    )  # fmt: skip
    assert created.exit_code == 0, created.output

    wrong = run(url, "protocol", "lock", CODE, "--as", "sam", "--password-stdin", input="not the password\n")
    assert wrong.exit_code == 1
    assert rows(url, "SELECT failed_sign_ins FROM user_account WHERE username = 'sam'") == [(1,)]
    assert [r[:3] for r in audit_actions(url, "signature_failed")] == [("sam", "cli", "user_account")]

    assert (
        run(url, "protocol", "lock", CODE, "--as", "sam", "--password-stdin", input=PASSWORD).exit_code == 0
    )
    refused = run(url, "protocol", "update", CODE, "1", example, "--reason", "x", "--as", "sam")
    assert refused.exit_code == 1
    attempts = audit_actions(url, "edit_refused")
    assert [r[:3] for r in attempts] == [("sam", "cli", "protocol_version")]
    assert "locked" in attempts[0][3]
