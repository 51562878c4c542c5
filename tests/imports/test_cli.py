"""`trials import CODE FILE` with its progress bars, `trials import-history`, `trials
import-template`, on a committed database."""

import json
from pathlib import Path
from typing import Any

from tests.assessments.conftest import day
from tests.conftest import query_rows, run_cli
from tests.imports.conftest import (
    ASSESSMENT_HEADER,
    ENGAGEMENT_HEADER,
    assessment_row,
    committed_trial,
    csv_bytes,
    engagement_row,
)

CODE = "MOOD-CBT-01"
CLEAN = (1, 1, 1, 1, 1, 1, 1, 1, 0)


def counts(url: str) -> tuple[int, ...]:
    return tuple(
        query_rows(url, f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608 - fixed table names
        for table in ("assessment", "engagement_day", "import_batch", "safety_event", "audit_entry")
    )


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_a_file_is_imported_with_progress_and_reported(fresh_database_url: str, tmp_path: Path) -> None:
    url = fresh_database_url
    a, b = committed_trial(url)
    rows = [assessment_row(a, day(14), *CLEAN[:8], 1), assessment_row(b, day(14), *CLEAN)]
    path = write(tmp_path, "week2.csv", csv_bytes(ASSESSMENT_HEADER, rows))
    result = run_cli(url, "import", CODE, path, "--as", "cora")
    assert result.exit_code == 0, result.output
    assert "Validating rows" in result.stderr
    assert "Writing rows" in result.stderr
    assert "imported 2 assessments rows from week2.csv" in result.stdout
    assert "1 safety events (2 notifications)" in result.stdout
    assert counts(url)[:4] == (2, 0, 1, 1)
    entered = query_rows(url, "SELECT DISTINCT entered_by, source FROM assessment")
    assert [tuple(r) for r in entered] == [("cora", "site")]
    channels = query_rows(url, "SELECT DISTINCT channel FROM audit_entry WHERE field = '*'")
    assert [r[0] for r in channels] == ["cli"]

    again = run_cli(url, "import", CODE, path, "--as", "cora")
    assert again.exit_code == 1
    assert "already imported" in again.output
    assert "Traceback" not in again.output

    history = run_cli(url, "import-history", CODE, "--as", "sam", "--json")
    assert history.exit_code == 0, history.output
    [batch] = json.loads(history.stdout)
    assert (batch["filename"], batch["row_count"], batch["imported_by"]) == ("week2.csv", 2, "cora")
    verified = run_cli(url, "audit", "verify", "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["ok"] is True


def test_a_refused_file_lists_its_errors_and_stores_nothing(fresh_database_url: str, tmp_path: Path) -> None:
    url = fresh_database_url
    a, b = committed_trial(url)
    rows = [assessment_row(a, day(14), *CLEAN), assessment_row(b, day(14), 1, 1, 4, *CLEAN[3:])]
    path = write(tmp_path, "bad.csv", csv_bytes(ASSESSMENT_HEADER, rows))
    before = counts(url)
    result = run_cli(url, "import", CODE, path, "--kind", "assessments", "--as", "cora")
    assert result.exit_code == 1, result.output
    assert "nothing was stored" in result.output
    assert "row 3, item_3: 4 is outside 0-3" in result.output
    assert "Traceback" not in result.output
    assert counts(url) == before
    refused = run_cli(url, "import", CODE, path, "--as", "sam")  # the sponsor does not enter data
    assert refused.exit_code == 1
    assert counts(url) == before


def test_the_kind_is_read_from_the_header_and_templates_are_printed(
    fresh_database_url: str, tmp_path: Path
) -> None:
    url = fresh_database_url
    [a] = committed_trial(url, participants_per_site=1)
    path = write(
        tmp_path, "app.csv", csv_bytes(ENGAGEMENT_HEADER, [engagement_row(a, day(n)) for n in range(1, 8)])
    )
    result = run_cli(url, "import", CODE, path, "--as", "cora", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == "engagement"
    assert counts(url)[1] == 7
    neither = write(tmp_path, "other.csv", b"name,value\r\nx,1\r\n")
    unknown = run_cli(url, "import", CODE, neither, "--as", "cora")
    assert unknown.exit_code == 1
    assert "--kind" in unknown.output
    for kind, header in (("assessments", ASSESSMENT_HEADER), ("engagement", ENGAGEMENT_HEADER)):
        template = run_cli(url, "import-template", kind)
        assert template.exit_code == 0
        assert template.stdout == ",".join(header) + "\n"


def test_progress_is_reported_by_phase_in_chunks(session: Any, people: Any, many_participants: Any) -> None:
    from tests.assessments.conftest import TODAY
    from trials.imports import services

    labels = many_participants(75, randomized_days_ago=85)
    rows = [engagement_row(label, day(n, 85), 1, 5, 0) for label in labels for n in range(80)]
    seen: list[tuple[str, int, int]] = []
    summary = services.import_csv(
        CODE,
        "engagement",
        csv_bytes(ENGAGEMENT_HEADER, rows),
        filename="six-thousand.csv",
        session=session,
        by=people["lds"],
        today=TODAY,
        progress=lambda phase, done, total: seen.append((phase, done, total)),
    )
    assert summary.row_count == 6000
    assert [s for s in seen if s[0] == "validating"] == [
        ("validating", 0, 6000),
        ("validating", 5000, 6000),
        ("validating", 6000, 6000),
    ]
    assert [s for s in seen if s[0] == "writing"] == [("writing", 5000, 6000), ("writing", 6000, 6000)]
