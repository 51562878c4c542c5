"""Browser tests: the real application served on a committed database and driven by headless
Chromium (Debian's /usr/bin/chromium, through Playwright's sync API).

Each test module builds a database of its own per backend, sets its data up through the
services and commits it (the server's requests run in their own transactions, so the rolled-back
`connection` fixture cannot serve them), and serves `create_app` on a free port from a thread of
the test process. Report jobs run on a background thread of that process (no Redis).

Every journey saves numbered full-page screenshots under
`test-artifacts/browser/<backend>/<journey>/NN-<step>.png` at the repository root.
"""

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from sqlmodel import Session
from werkzeug.serving import make_server

from tests.conftest import (
    EXAMPLE_TRIAL,
    PASSWORD,
    app_config,
    create_database,
    drop_database,
    query_rows,
    set_up_example_trial,
    site_and_user_makers,
)
from trials import create_app
from trials.core import migrate
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.db import make_engine

CODE = EXAMPLE_TRIAL
# Debian's Chromium (`scripts/test` installs the package when it is missing); Playwright's own
# browser downloads are not used.
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
TIMEOUT_MS = 20_000  # for any one action or expectation; a loaded 2-core machine is slow
TABLET = {"width": 768, "height": 1024}


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """One headless Chromium per test process. Missing Chromium fails the tests: the test
    command installs it, so its absence is a broken set-up, not a reason to skip."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (scripts/test does)")
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield browser
    browser.close()


# -- the server -------------------------------------------------------------------------------


@dataclass
class Served:
    """The application served on a committed database."""

    base_url: str
    database_url: str
    app: Flask
    data: dict[str, Any] = field(default_factory=dict)

    def count(self, table: str) -> int:
        """Rows of `table`, read outside the server's transactions."""
        return int(query_rows(self.database_url, f"SELECT count(*) FROM {table}")[0][0])

    def rows(self, sql: str, **params: Any) -> list[Any]:
        return query_rows(self.database_url, sql, **params)


def _people(session: Session, staff: dict[str, str], **options: Any) -> dict[str, Principal]:
    """The example trial set up through the services (`tests.conftest.set_up_example_trial`)."""

    make_site, make_user = site_and_user_makers(session)

    return set_up_example_trial(session, make_site, make_user, staff, **options)


@contextmanager
def serve_trial(
    backend: str,
    tmp_dir: Path,
    staff: dict[str, str],
    build: Callable[[Session, dict[str, Principal]], dict[str, Any]] | None = None,
    **options: Any,
) -> Iterator[Served]:
    """A new database of `backend` with the example trial (its staff from `staff`, `options` as
    for `set_up_example_trial`) and whatever `build(session, people)` adds, committed; the app
    served on it until the block ends, then the database dropped."""
    url = create_database(backend, tmp_dir)
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        try:
            with Session(engine, expire_on_commit=False) as session:
                audit.set_actor(session, audit.Actor.system("system"))
                people = _people(session, staff, **options)
                session.commit()
                data = build(session, people) if build is not None else {}
                session.commit()
        finally:
            engine.dispose()
        # No Redis: report jobs run on a background thread of this process.
        app = create_app(app_config(url, REDIS_URL=None))
        assert app.config["REDIS_URL"] is None
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="browser-tests-server", daemon=True)
        thread.start()
        try:
            yield Served(f"http://127.0.0.1:{server.server_port}", url, app, data)
        finally:
            server.shutdown()
            thread.join()
            from reports import jobs

            jobs.wait_inline(app, timeout=120)
            app.extensions["trials_db"].engine.dispose()
    finally:
        drop_database(url)


# -- pages and screenshots --------------------------------------------------------------------


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """open_page(served, viewport=None) -> a page in a browser context of its own (its own
    cookies: one signed-in person); every context is closed after the test."""
    contexts: list[BrowserContext] = []

    def make(served: Served, viewport: dict[str, int] | None = None) -> Page:
        context = browser.new_context(
            base_url=served.base_url, viewport=viewport or {"width": 1280, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


class Journey:
    """Numbered full-page screenshots of one journey: `shot("signed-in")` writes
    test-artifacts/browser/<backend>/<journey>/01-signed-in.png."""

    def __init__(self, backend: str, name: str) -> None:
        self.folder = ARTIFACTS / backend / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def shot(self, page: Page, step: str) -> Path:
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
        path = self.folder / f"{self.count:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        return path


@pytest.fixture
def journey(backend: str) -> Callable[[str], Journey]:
    def make(name: str) -> Journey:
        return Journey(backend, name)

    return make


def sign_in(page: Page, username: str) -> None:
    """Sign in through the sign-in page, as a person would."""
    page.goto("/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {username.title()}")


def assert_no_horizontal_overflow(page: Page) -> None:
    """The page never scrolls sideways, and nothing reaches past the viewport's right edge except
    inside an element that scrolls sideways itself (the wide tables' scroll wrappers)."""
    widths = page.evaluate("() => ({page: document.documentElement.scrollWidth, view: window.innerWidth})")
    assert widths["page"] <= widths["view"], widths
    outside = page.evaluate(
        """() => {
            const scrolls = (element) => {
                for (let a = element.parentElement; a && a !== document.body; a = a.parentElement) {
                    const overflow = getComputedStyle(a).overflowX;
                    if (overflow === 'auto' || overflow === 'scroll') return true;
                }
                return false;
            };
            return Array.from(document.body.querySelectorAll('*'))
                .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                .filter((e) => !scrolls(e))
                .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : ''));
        }"""
    )
    assert outside == [], f"past the right edge: {outside}"


# -- trials simulated through the services, and their reports ---------------------------------

ARMS = ("CBT", "ATTN", "WAIT")
ARM_NAMES = ("MoodStep CBT", "Attention-control app", "Waitlist")
REPORT_TIMEOUT_MS = 120_000  # a report renders for seconds; a loaded machine takes longer


def simulated(participants: int) -> Callable[[Session, dict[str, Principal]], dict[str, Any]]:
    """A `serve_trial` build step: the trial simulated with `participants` randomized
    (`trials.simulate`, which also takes it live)."""

    def build(session: Session, people: dict[str, Principal]) -> dict[str, Any]:
        from trials.simulate import services as simulation

        simulation.simulate(CODE, participants_wanted=participants, seed=7, session=session)
        return {}

    return build


def no_arm_shown(page: Page) -> None:
    """Neither an arm's code nor its name is anywhere on the page (the trial's code, which holds
    "CBT", aside)."""
    text = page.locator("body").inner_text().replace(CODE, "")
    for arm in (*ARMS, *ARM_NAMES):
        assert not re.search(rf"\b{re.escape(arm)}\b", text), f"arm {arm} shown"


def generate_report(page: Page, shots: Journey, choice: str, variant: str) -> int:
    """Generate a report on the reports page (`choice` is the option's text) and follow its job,
    as the page polls it, until it is done and the page shows the new report; its number."""
    page.get_by_label("Report").select_option(label=choice)
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_role("status")).to_have_text(f"The {variant} report is being generated.")
    job = page.locator("#report-jobs tbody tr").first  # the newest job
    expect(job.get_by_role("cell").nth(2)).to_have_text(variant)
    # The page polls the job: its status and step change while it renders.
    expect(job.locator(".job-status")).to_have_text("running", timeout=REPORT_TIMEOUT_MS)
    expect(job.locator(".job-step")).not_to_be_empty()
    shots.shot(page, f"{variant}-report-running")
    # When the job ends the page reloads and the report shows in the history.
    expect(job.locator(".job-status")).to_have_text("done", timeout=REPORT_TIMEOUT_MS)
    link = job.get_by_role("link", name=re.compile(r"^report \d+$"))
    expect(link).to_be_visible()
    expect(job.locator("progress")).to_have_attribute("value", "100")
    shots.shot(page, f"{variant}-report-done")
    return int(link.inner_text().split()[-1])


def download_report(page: Page, number: int, folder: Path) -> tuple[bytes, str]:
    """Report `number` downloaded from the history as a person would; its bytes and the SHA-256
    the page shows beside it."""
    history = page.locator("table", has=page.get_by_role("columnheader", name="PDF (SHA-256)"))
    row = history.locator("tbody tr").filter(has=page.get_by_role("cell", name=str(number), exact=True))
    expect(row).to_have_count(1)
    shown = row.locator("code.secret").inner_text().strip()
    with page.expect_download() as info:
        row.get_by_role("link", name="report.pdf").click()
    download = info.value
    assert download.suggested_filename.endswith(".pdf"), download.suggested_filename
    target = folder / download.suggested_filename
    download.save_as(target)
    return target.read_bytes(), shown
