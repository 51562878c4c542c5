"""A sponsor whom the protocol blinds, in a browser: no arm on the dashboard, the participant
list or a participant's page; the final report refused before the unblinding; the blinded
progress report generated, its job followed on the reports page until it ends, and the PDF
downloaded is the one whose SHA-256 the page shows."""

import hashlib
import re
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
    no_arm_shown,
    serve_trial,
    sign_in,
    simulated,
)

STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "unblinded": "ulf:statistician_unblinded:TRIAL",
    "coordinator": "cora:coordinator:TRIAL:LDS",
}
# The example protocol with the sponsor blinded as well.
SPONSOR_BLINDED = ["outcome_assessor", "statistician", "data_manager", "sponsor"]


@pytest.fixture(scope="module")
def blinded_trial(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A trial under way (20 participants) whose protocol blinds the sponsor."""
    with serve_trial(
        backend,
        tmp_path_factory.mktemp("blinded"),
        STAFF,
        simulated(20),
        blinded_roles=SPONSOR_BLINDED,
    ) as served:
        yield served


def test_a_blinded_sponsor_sees_no_arm_and_generates_the_blinded_report(
    blinded_trial: Served,
    open_page: Callable[..., Page],
    journey: Callable[[str], Journey],
    tmp_path: Path,
) -> None:
    shots = journey("blinded-sponsor")
    page = open_page(blinded_trial)
    sign_in(page, "sam")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{CODE} · dashboard")
    expect(page.locator("#randomized")).not_to_have_text("0")
    expect(page.locator("#blinding-state")).to_have_text("blinded")
    expect(page.locator("#arms")).to_have_count(0)
    expect(page.get_by_role("heading", name=re.compile("by arm"))).to_have_count(0)
    no_arm_shown(page)
    shots.shot(page, "dashboard")

    page.get_by_role("link", name="Participants", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{CODE} · participants")
    table = page.locator("table#participants")
    expect(table.get_by_role("columnheader")).to_have_text(
        ["Label", "Site", "Status", "Screened", "Consent", "Randomized (UTC)"]
    )
    expect(table.get_by_role("cell", name="randomized", exact=True).first).to_be_visible()
    no_arm_shown(page)
    shots.shot(page, "participants")
    table.locator("tbody tr", has_text="randomized").first.get_by_role("link").click()
    expect(page.locator("#participant")).to_contain_text("Randomized")
    expect(page.locator("#participant th").filter(has_text=re.compile("^Arm$"))).to_have_count(0)
    expect(page.locator("#arm")).to_have_count(0)
    no_arm_shown(page)
    shots.shot(page, "participant")

    page.goto("/")
    page.get_by_role("link", name="Evidence reports").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Evidence reports · {CODE}")
    expect(page.get_by_text("No report has been generated yet.")).to_be_visible()
    shots.shot(page, "reports")
    # The final report is refused before the unblinding, beside the choice of report.
    page.get_by_label("Report").select_option(label="Final report (by arm; after the unblinding)")
    page.get_by_role("button", name="Generate").click()
    choice = page.get_by_label("Report")
    expect(choice).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#variant-error")).to_contain_text(f"the final report of trial {CODE} waits for")
    shots.shot(page, "final-report-refused")
    assert blinded_trial.count("report_job") == 0

    number = generate_report(page, shots, "Blinded progress report (pooled data)", "blinded")
    pdf, shown = download_report(page, number, tmp_path)
    assert pdf.startswith(b"%PDF-")
    assert hashlib.sha256(pdf).hexdigest() == shown
    rows = blinded_trial.rows("SELECT variant, generated_by, pdf_sha256 FROM generated_report")
    assert [tuple(r) for r in rows] == [("blinded", "sam", shown)]
