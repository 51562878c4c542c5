"""The end of a trial in a browser: on a trial simulated to its end, the sponsor locks the
database (reason and confirmation), the unblinded statistician unblinds the trial (reason and
confirmation) and generates the final report, follows its job on the reports page until it
ends, and downloads the PDF whose SHA-256 the page shows."""

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    CODE,
    Journey,
    Served,
    download_report,
    generate_report,
    serve_trial,
    sign_in,
    simulated,
)

STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "unblinded": "ulf:statistician_unblinded:TRIAL",
    "coordinator": "cora:coordinator:TRIAL:LDS",
}


@pytest.fixture(scope="module")
def ended_trial(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A trial simulated to its end (60 participants), its database still open, its arms blinded."""
    with serve_trial(backend, tmp_path_factory.mktemp("ended"), STAFF, simulated(60)) as served:
        yield served


def test_the_sponsor_locks_the_statistician_unblinds_and_generates_the_final_report(
    ended_trial: Served,
    open_page: Callable[..., Page],
    journey: Callable[[str], Journey],
    tmp_path: Path,
) -> None:
    shots = journey("lock-unblind-final")
    sponsor = open_page(ended_trial)
    sign_in(sponsor, "sam")
    sponsor.get_by_role("link", name="Database lock").click()
    expect(sponsor.get_by_role("heading", level=1)).to_have_text(f"{CODE} · database lock")
    expect(sponsor.locator("#lock-state")).to_contain_text("Open: data can be entered and changed.")
    shots.shot(sponsor, "lock-page")
    # Without the confirmation nothing is locked; the message sits beside the checkbox.
    reason = "All data queries closed; last participant's week 12 visit entered"
    sponsor.get_by_label("Reason for locking").fill(reason)
    sponsor.get_by_role("button", name="Lock the database").click()
    confirm = sponsor.get_by_label("I understand that no data of this trial can be entered or changed")
    expect(confirm).to_have_attribute("aria-invalid", "true")
    expect(sponsor.locator("#confirm-error")).to_contain_text("tick to confirm the lock")
    shots.shot(sponsor, "lock-unconfirmed")
    assert ended_trial.count("database_lock") == 0
    confirm.check()
    sponsor.get_by_role("button", name="Lock the database").click()
    expect(sponsor.get_by_role("status")).to_have_text(f"The database of {CODE} is locked.")
    expect(sponsor.locator("#lock-state")).to_contain_text(f"by sam: {reason}.")
    shots.shot(sponsor, "locked")

    statistician = open_page(ended_trial)
    sign_in(statistician, "ulf")
    statistician.get_by_role("link", name="Unblinding").click()
    expect(statistician.get_by_role("heading", level=1)).to_have_text(f"{CODE} · unblinding")
    expect(statistician.locator("#unblinding-state")).to_contain_text("Blinded.")
    expect(statistician.locator("#unblinding-state")).to_contain_text("Database: locked")
    why = "Final analysis per the locked statistical analysis plan"
    statistician.get_by_label("Reason for unblinding").fill(why)
    statistician.get_by_label("I understand that unblinding releases arm-level results").check()
    shots.shot(statistician, "unblinding-form")
    statistician.get_by_role("button", name="Unblind the trial").click()
    expect(statistician.get_by_role("status")).to_have_text(
        f"Trial {CODE} is unblinded: arm-level results are released."
    )
    expect(statistician.locator("#unblinding-state")).to_contain_text(f"by ulf: {why}")
    shots.shot(statistician, "unblinded")

    statistician.get_by_role("link", name="Evidence reports").click()
    expect(statistician.get_by_role("heading", level=1)).to_have_text(f"Evidence reports · {CODE}")
    number = generate_report(statistician, shots, "Final report (by arm; after the unblinding)", "final")
    pdf, shown = download_report(statistician, number, tmp_path)
    assert pdf.startswith(b"%PDF-")
    assert hashlib.sha256(pdf).hexdigest() == shown
    rows = ended_trial.rows("SELECT variant, generated_by, pdf_sha256 FROM generated_report")
    assert [tuple(r) for r in rows] == [("final", "ulf", shown)]
    rows = ended_trial.rows("SELECT locked_by, reason FROM database_lock")
    assert [tuple(r) for r in rows] == [("sam", reason)]
    rows = ended_trial.rows("SELECT unblinded_by, reason FROM trial_unblinding")
    assert [tuple(r) for r in rows] == [("ulf", why)]

    statistician.goto(f"/trials/{CODE}/dashboard")
    expect(statistician.locator("#database-state")).to_contain_text("locked")
    expect(statistician.locator("#blinding-state")).to_contain_text("unblinded")
    expect(statistician.locator("#arms")).to_contain_text("MoodStep CBT")
    shots.shot(statistician, "dashboard-unblinded")
