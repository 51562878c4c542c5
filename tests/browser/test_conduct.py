"""The conduct of a live trial in a browser: the coordinator screens, enrols, randomizes and
enters a PHQ-9 whose item 9 raises a safety event; the clinician follows an event up; bad input
is shown beside its fields with nothing stored; a form is completed with the keyboard alone;
the pages fit a tablet; and every role is refused what it may not do."""

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session

from tests.browser.conftest import (
    CODE,
    TABLET,
    Journey,
    Served,
    assert_no_horizontal_overflow,
    serve_trial,
    sign_in,
)
from tests.conftest import PASSWORD
from trials.assessments import services as assessments
from trials.assessments.models import AssessmentCreate
from trials.core.accounts.permissions import Principal
from trials.core.db import utctoday
from trials.participants import services as participants
from trials.participants.models import ScreeningCreate
from trials.randomization import services as randomization

STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "man": "manny:coordinator:TRIAL:MAN",
    "clinician": "cleo:clinician:TRIAL:LDS",
    "blinded": "bea:statistician_blinded:TRIAL",
    "unblinded": "ulf:statistician_unblinded:TRIAL",
    "monitor": "mona:monitor:TRIAL",
    "admin": "ada:admin",
}


def randomized(session: Session, by: Principal, site: str) -> str:
    """A participant screened, enrolled and randomized today at `site`; their label."""
    today = utctoday()
    data = ScreeningCreate.model_validate(
        {
            "site_code": site,
            "screened_on": today - timedelta(days=7),
            "age_years": 41,
            "screening_phq9": 13,
            "inclusion_met": True,
            "exclusion_present": False,
        }
    )
    label = participants.screen(CODE, data, session=session, by=by, today=today).label
    participants.enrol(CODE, label, today - timedelta(days=7), session=session, by=by, today=today)
    randomization.randomize(CODE, label, session=session, by=by)
    session.flush()
    return label


def build(session: Session, people: dict[str, Principal]) -> dict[str, Any]:
    """Three randomized participants: one at LDS for data entry, one at LDS whose baseline PHQ-9
    has item 9 = 3 (an open safety event), one at MAN (another site's)."""
    ready = randomized(session, people["lds"], "LDS")
    alert = randomized(session, people["lds"], "LDS")
    items = {str(n): v for n, v in enumerate((2, 2, 1, 1, 2, 1, 1, 0, 3), start=1)}
    data = AssessmentCreate.model_validate(
        {"instrument": "PHQ-9", "assessed_on": utctoday().isoformat(), "items": items}
    )
    _assessment, events = assessments.submit(
        CODE, alert, data, session=session, by=people["lds"], today=utctoday()
    )
    assert len(events) == 1
    other = randomized(session, people["man"], "MAN")
    return {"ready": ready, "alert": alert, "other": other}


@pytest.fixture(scope="module")
def served(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_trial(
        backend, tmp_path_factory.mktemp("conduct"), STAFF, build, live_seed=b"\x08" * 32
    ) as served:
        yield served


def item(page: Page, number: int) -> Any:
    """The radio group of item `number` of a questionnaire, found by its legend."""
    return page.get_by_role("group", name=re.compile(rf"^{number}\. "))


def answer(page: Page, number: int, choice: str) -> None:
    item(page, number).get_by_role("radio", name=choice, exact=True).check()


# -- 1. the coordinator -----------------------------------------------------------------------


def test_the_coordinator_screens_enrols_randomizes_and_enters_a_phq9_that_raises_a_safety_event(
    served: Served, open_page: Callable[..., Page], journey: Callable[[str], Journey]
) -> None:
    shots = journey("coordinator")
    page = open_page(served)
    page.goto("/sign-in")
    shots.shot(page, "sign-in")
    sign_in(page, "cora")
    shots.shot(page, "home")

    page.get_by_role("link", name="Participants").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{CODE} · participants")
    page.get_by_role("button", name="Screen a participant").click()
    form = page.locator("#screen-form")
    expect(form.get_by_label("Site")).to_have_value("LDS")
    form.get_by_label("Screening date").fill(utctoday().isoformat())
    form.get_by_label("Age (years)").fill("34")
    form.get_by_label("Screening PHQ-9 total (0-27)").fill("14")
    form.get_by_label("Every inclusion criterion is met").check()
    expect(form.get_by_label("An exclusion criterion is present")).not_to_be_checked()
    shots.shot(page, "screening-answers")
    form.get_by_role("button", name="Screen").click()

    status = page.get_by_role("status").filter(has_text="screened: eligible")
    expect(status).to_be_visible()
    label = re.search(r"(LDS-\d{4}) screened", status.inner_text()).group(1)  # type: ignore[union-attr]
    expect(page.get_by_role("heading", level=1)).to_contain_text(label)
    expect(page.get_by_role("heading", level=1)).to_contain_text("screened")
    shots.shot(page, "screened")

    page.get_by_label("Date of informed consent").fill(utctoday().isoformat())
    page.get_by_role("button", name=f"Enrol {label}").click()
    expect(page.get_by_role("status")).to_have_text(f"{label} enrolled (consent {utctoday().isoformat()}).")
    shots.shot(page, "enrolled")

    page.get_by_role("button", name=f"Randomize {label}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Randomize {label}")
    confirm = page.get_by_label("I confirm: this participant has consented")
    expect(confirm).not_to_be_checked()
    confirm.check()
    shots.shot(page, "randomize-confirmed")
    page.get_by_role("button", name=f"Randomize {label}").click()
    expect(page.get_by_role("status")).to_have_text(
        re.compile(rf"^{label} randomized to arm (CBT|ATTN|WAIT)\.$")
    )
    expect(page.locator("#arm")).to_have_text(re.compile("^(CBT|ATTN|WAIT)$"))
    shots.shot(page, "randomized")

    # Randomized today: the baseline visit is due, and the page says so.
    expect(page.locator("#due-now")).to_contain_text("Due now: BL PHQ-9")
    page.get_by_role("button", name="PHQ-9 (due)", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"PHQ-9 for {label}")
    expect(page.locator("#visit-due")).to_contain_text("Today falls in BL Baseline")
    total = page.locator("output#live-total")
    expect(total).to_have_text("Not scorable: 0 of 9 items answered (needs at least 7 of 9 and item 9)")
    for number, choice in enumerate(
        ("Nearly every day", "Nearly every day", "Nearly every day", "More than half the days"), start=1
    ):
        answer(page, number, choice)
    answer(page, 5, "More than half the days")
    answer(page, 6, "More than half the days")
    expect(total).to_have_text("Not scorable: 6 of 9 items answered (needs at least 7 of 9 and item 9)")
    answer(page, 9, "More than half the days")
    # 3+3+3+2+2+2+2 = 17 from 7 of 9 items, prorated: 17 x 9 / 7 = 21.9 -> 22
    expect(total).to_have_text("Total 22 · severe · prorated from 7 of 9 items")
    shots.shot(page, "phq9-prorated")
    answer(page, 7, "Not at all")
    expect(total).to_have_text("Total 19 · moderately severe · prorated from 8 of 9 items")
    answer(page, 8, "Not at all")
    expect(total).to_have_text("Total 17 · moderately severe")
    answer(page, 10, "Very difficult")  # recorded, not scored
    expect(total).to_have_text("Total 17 · moderately severe")
    shots.shot(page, "phq9-complete")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(label)
    saved = page.get_by_role("status").filter(has_text="PHQ-9 of")
    expect(saved).to_have_text(
        f"PHQ-9 of {utctoday().isoformat()} saved for {label}, visit BL. Total 17 · moderately severe."
    )
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        re.compile(r"^Safety event raised: .*the site's clinicians have been notified\.$")
    )
    expect(page.locator("#safety-events")).to_contain_text("(item 9 = 2)")
    expect(page.locator("#safety-link")).to_contain_text("1 in all · 1 open")
    shots.shot(page, "safety-alert")
    items = ", ".join(f"a.item_{n}" for n in range(1, 11))
    rows = served.rows(
        f"SELECT {items}, a.entered_by, s.kind, s.item9, s.status FROM assessment a "
        "JOIN participant p ON p.id = a.participant_id "
        "JOIN safety_event s ON s.assessment_id = a.id WHERE p.label = :label",
        label=label,
    )
    assert [tuple(r) for r in rows] == [(3, 3, 3, 2, 2, 2, 0, 0, 2, 2, "cora", "item9_positive", 2, "open")]


# -- 2. the clinician -------------------------------------------------------------------------


def test_the_clinician_records_the_follow_up_of_a_safety_event(
    served: Served, open_page: Callable[..., Page], journey: Callable[[str], Journey]
) -> None:
    shots = journey("clinician")
    label = served.data["alert"]
    page = open_page(served)
    sign_in(page, "cleo")
    # The clinician's home page lists what needs them: the open safety events of their site.
    page.get_by_role("link", name=re.compile(r"^\d+ safety events to follow up")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{CODE} · safety events")
    row = page.locator("#safety-events tbody tr").filter(has=page.get_by_role("link", name=label, exact=True))
    expect(row).to_contain_text("(item 9 = 3)")
    expect(row.get_by_role("cell").nth(5)).to_have_text("open")
    shots.shot(page, "safety-events")

    row.get_by_role("button", name="Record follow-up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Safety follow-up for {label}")
    expect(page.locator("#safety-event")).to_contain_text("(item 9 = 3) · site LDS")
    page.get_by_role("group", name="Was a risk assessment done?").get_by_label("Yes").check()
    page.get_by_label("Referral (to whom, and when), if any").fill("GP informed today; crisis line given")
    page.get_by_label("Notes (kept on the audit trail as the reason)").fill(
        "Telephone risk assessment: no plan"
    )
    shots.shot(page, "follow-up-form")
    page.get_by_role("button", name="Record the follow-up").click()

    expect(page.get_by_role("status")).to_have_text(f"Follow-up of the safety event of {label} recorded.")
    expect(row.get_by_role("cell").nth(5)).to_have_text("closed")
    expect(row.get_by_role("cell").nth(6)).to_contain_text("by cleo")
    expect(row.get_by_role("cell").nth(6)).to_contain_text(
        "risk assessment done · referral: GP informed today; crisis line given"
    )
    expect(row.get_by_role("button", name="Record follow-up")).to_have_count(0)
    shots.shot(page, "followed-up")
    rows = served.rows(
        "SELECT s.status, s.followed_up_by, s.risk_assessment_done, s.referral FROM safety_event s "
        "JOIN participant p ON p.id = s.participant_id WHERE p.label = :label",
        label=label,
    )
    assert [tuple(r) for r in rows] == [("closed", "cleo", True, "GP informed today; crisis line given")]

    page.get_by_role("link", name=label, exact=True).click()
    expect(page.locator("#safety-events")).to_contain_text("None open.")
    expect(page.locator("#safety-link")).to_contain_text("1 in all · 0 open")
    shots.shot(page, "participant-page")


# -- 3. bad entry -----------------------------------------------------------------------------


def stored(served: Served) -> dict[str, int]:
    """What a refused form must not change."""
    return {
        table: served.count(table)
        for table in ("participant", "assessment", "safety_event", "data_query", "audit_entry")
    }


def error_beside(page: Page, control: Any, message: str | re.Pattern[str]) -> None:
    """`control` is marked invalid and described by its error, which sits inside the control's
    own label or fieldset and says `message`."""
    expect(control).to_have_attribute("aria-invalid", "true")
    error_id = control.get_attribute("aria-describedby")
    assert error_id, "the invalid control is described by no error"
    error = page.locator(f"[id='{error_id}']")
    expect(error).to_have_text(message)
    expect(error).to_have_class(re.compile(r"\bfield-error\b"))
    container = control.locator("xpath=ancestor::*[self::label or self::fieldset][1]")
    expect(container.locator(f"[id='{error_id}']")).to_have_count(1)


def test_bad_entry_is_shown_beside_its_fields_and_nothing_is_stored(
    served: Served, open_page: Callable[..., Page], journey: Callable[[str], Journey]
) -> None:
    shots = journey("bad-entry")
    tomorrow = (utctoday() + timedelta(days=1)).isoformat()
    page = open_page(served)
    sign_in(page, "cora")
    before = stored(served)

    page.goto(f"/trials/{CODE}/participants")
    page.get_by_role("button", name="Screen a participant").click()
    form = page.locator("#screen-form")
    form.get_by_label("Screening date").fill(tomorrow)
    form.get_by_label("Screening PHQ-9 total (0-27)").fill("31")
    form.get_by_label("Every inclusion criterion is met").check()
    shots.shot(page, "screening-bad-answers")
    form.get_by_role("button", name="Screen").click()

    # Each message beside its field; the summary above the form says nothing was stored.
    expect(page.get_by_role("alert")).to_contain_text("Not saved: nothing was stored.")
    error_beside(page, form.get_by_label("Age (years)"), re.compile(r"^must be a whole number$"))
    error_beside(page, form.get_by_label("Screening PHQ-9 total (0-27)"), re.compile(r"^must be at most 27$"))
    # What was typed is kept.
    expect(form.get_by_label("Screening PHQ-9 total (0-27)")).to_have_value("31")
    expect(form.get_by_label("Screening date")).to_have_value(tomorrow)
    expect(form.get_by_label("Every inclusion criterion is met")).to_be_checked()
    shots.shot(page, "screening-refused")
    assert stored(served) == before

    # The date in the future is refused once the other answers are right.
    form.get_by_label("Age (years)").fill("34")
    form.get_by_label("Screening PHQ-9 total (0-27)").fill("12")
    form.get_by_role("button", name="Screen").click()
    expect(page.get_by_role("alert")).to_contain_text("Not saved: nothing was stored.")
    error_beside(page, form.get_by_label("Screening date"), f"{tomorrow} is in the future")
    expect(form.get_by_label("Age (years)")).not_to_have_attribute("aria-invalid", "true")
    shots.shot(page, "screening-date-refused")
    assert stored(served) == before

    # An assessment dated tomorrow: refused beside its date, the answers chosen kept.
    page.goto(f"/trials/{CODE}/participants/{served.data['ready']}")
    page.get_by_role("button", name=re.compile(r"^PHQ-9( \(due\))?$")).click()
    page.get_by_label("Date of the assessment").fill(tomorrow)
    for number in range(1, 7):
        answer(page, number, "Several days")
    shots.shot(page, "phq9-bad-answers")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Not saved: nothing was stored.")
    error_beside(
        page, page.get_by_label("Date of the assessment"), re.compile(rf"{tomorrow} is in the future$")
    )
    for number in range(1, 7):
        expect(item(page, number).get_by_role("radio", name="Several days", exact=True)).to_be_checked()
    expect(item(page, 9).get_by_role("radio", name="Not answered", exact=True)).to_be_checked()
    expect(page.locator("#live-total")).to_have_text(
        "Not scorable: 6 of 9 items answered (needs at least 7 of 9 and item 9)"
    )
    shots.shot(page, "phq9-refused")
    assert stored(served) == before


# -- 4. the keyboard alone --------------------------------------------------------------------


def tab_to(page: Page, target: Any, limit: int = 80) -> int:
    """Press Tab until `target` has the focus; how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return presses
    raise AssertionError(f"{limit} presses of Tab never reached {target}")


def focus_is_visible(page: Page) -> None:
    """The focused element matches :focus-visible and draws an outline or a focus ring."""
    focus = page.evaluate(
        """() => {
            const element = document.activeElement;
            const style = getComputedStyle(element);
            return {
                visible: element.matches(':focus-visible'),
                outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
                ring: style.boxShadow !== 'none',
            };
        }"""
    )
    assert focus["visible"], focus
    assert focus["outline"] or focus["ring"], focus


def test_screening_and_enrolment_with_the_keyboard_alone(
    served: Served, open_page: Callable[..., Page], journey: Callable[[str], Journey]
) -> None:
    shots = journey("keyboard")
    page = open_page(served)
    page.goto("/sign-in")
    expect(page.get_by_label("Username")).to_be_focused()  # autofocus
    page.keyboard.type("cora")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Cora")
    count = served.count("participant")

    page.goto(f"/trials/{CODE}/participants")
    toggle = page.get_by_role("button", name="Screen a participant")
    tab_to(page, toggle)
    focus_is_visible(page)
    shots.shot(page, "focus-on-screen-a-participant")
    page.keyboard.press("Enter")
    form = page.locator("#screen-form")
    expect(form).to_be_visible()
    site = form.get_by_label("Site")
    assert tab_to(page, site) == 1
    focus_is_visible(page)
    expect(site).to_have_value("LDS")
    tab_to(page, form.get_by_label("Screening date"))
    expect(form.get_by_label("Screening date")).to_have_value(utctoday().isoformat())
    age = form.get_by_label("Age (years)")
    tab_to(page, age, limit=4)  # past the date's day, month and year
    page.keyboard.type("29")
    assert tab_to(page, form.get_by_label("Screening PHQ-9 total (0-27)")) == 1
    page.keyboard.type("11")
    focus_is_visible(page)
    shots.shot(page, "typed")
    inclusion = form.get_by_label("Every inclusion criterion is met")
    assert tab_to(page, inclusion) == 1
    page.keyboard.press("Space")
    expect(inclusion).to_be_checked()
    focus_is_visible(page)
    shots.shot(page, "inclusion-ticked")
    assert tab_to(page, form.get_by_label("An exclusion criterion is present")) == 1
    screen = form.get_by_role("button", name="Screen")
    assert tab_to(page, screen) == 1
    focus_is_visible(page)
    shots.shot(page, "focus-on-screen")
    page.keyboard.press("Enter")

    status = page.get_by_role("status").filter(has_text="screened: eligible")
    expect(status).to_be_visible()
    label = status.inner_text().split(" ", 1)[0]
    shots.shot(page, "screened")
    assert served.count("participant") == count + 1
    rows = served.rows(
        "SELECT s.code, p.screened_on, p.age_years, p.screening_phq9, p.eligible, p.status "
        "FROM participant p JOIN site s ON s.id = p.site_id WHERE p.label = :label",
        label=label,
    )
    assert [(r[0], str(r[1]), r[2], r[3], bool(r[4]), r[5]) for r in rows] == [
        ("LDS", utctoday().isoformat(), 29, 11, True, "screened")
    ]

    # Enrolment: the consent date is today's; Tab to the button and press Enter.
    enrol = page.get_by_role("button", name=f"Enrol {label}")
    tab_to(page, enrol)
    focus_is_visible(page)
    shots.shot(page, "focus-on-enrol")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(f"{label} enrolled (consent {utctoday().isoformat()}).")
    shots.shot(page, "enrolled")
    rows = served.rows("SELECT status, consent_date FROM participant WHERE label = :label", label=label)
    assert [(r[0], str(r[1])) for r in rows] == [("enrolled", utctoday().isoformat())]


# -- a tablet ---------------------------------------------------------------------------------


def test_the_dashboard_and_the_participant_page_fit_a_tablet(
    served: Served, open_page: Callable[..., Page], journey: Callable[[str], Journey]
) -> None:
    shots = journey("tablet")
    page = open_page(served, viewport=TABLET)
    sign_in(page, "cora")
    page.goto(f"/trials/{CODE}/dashboard")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{CODE} · dashboard")
    assert_no_horizontal_overflow(page)
    shots.shot(page, "dashboard")
    page.goto(f"/trials/{CODE}/participants/{served.data['alert']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(served.data["alert"])
    assert_no_horizontal_overflow(page)
    shots.shot(page, "participant-page")


# -- 7. refusals ------------------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in(
    served: Served, open_page: Callable[..., Page], journey: Callable[[str], Journey]
) -> None:
    shots = journey("refusal-anonymous-dashboard")
    page = open_page(served)
    response = page.goto(f"/trials/{CODE}/dashboard")
    assert response is not None
    assert response.request.redirected_from is not None
    assert response.request.redirected_from.url.endswith(f"/trials/{CODE}/dashboard")
    expect(page).to_have_url(re.compile(rf"/sign-in\?next=%2Ftrials%2F{CODE}%2Fdashboard$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_role("status")).to_have_text("Please sign in to continue.")
    expect(page.get_by_text("At a glance")).to_have_count(0)
    shots.shot(page, "sign-in")
    # Signing in leads on to the page that was asked for.
    page.get_by_label("Username").fill("cora")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{CODE} · dashboard")
    shots.shot(page, "dashboard-after-sign-in")


LOCK = "only the trial's sponsor may lock or unlock its database"
REFUSALS = {
    # name: (who, the page they open, its status, the refusal the page shows)
    "coordinator-database-lock": ("cora", "database-lock", 403, LOCK),
    "coordinator-other-sites-participant": (
        "cora",
        "participants/{other}",
        404,
        f"no participant '{{other}}' in trial {CODE}",
    ),
    "clinician-csv-import": ("cleo", "import", 403, "your account is not allowed to enter data"),
    "blinded-statistician-unblinding": (
        "bea",
        "unblinding",
        403,
        "only the sponsor or the unblinded statistician may unblind the trial",
    ),
    "monitor-reports": ("mona", "reports", 403, "your account is not allowed to view results"),
    "sponsor-assessment-entry": (
        "sam",
        "participants/{ready}/assessments/new",
        403,
        "your account is not allowed to enter data",
    ),
    "unblinded-statistician-database-lock": ("ulf", "database-lock", 403, LOCK),
    "admin-dashboard": ("ada", "dashboard", 403, "your account is not allowed to view trial"),
}
TITLES = {403: "403 · Forbidden", 404: "404 · Not found"}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_each_role_is_refused_what_it_may_not_do(
    served: Served, open_page: Callable[..., Page], journey: Callable[[str], Journey], name: str
) -> None:
    username, path, status, detail = REFUSALS[name]
    shots = journey(f"refusal-{name}")
    page = open_page(served)
    sign_in(page, username)
    response = page.goto(f"/trials/{CODE}/" + path.format(**served.data))
    assert response is not None
    assert response.status == status
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLES[status])
    expect(page.get_by_role("article").get_by_text(detail.format(**served.data), exact=True)).to_be_visible()
    expect(page.locator("main form")).to_have_count(0)  # no form to fill in
    expect(page.get_by_role("link", name="Back to the home page")).to_be_visible()
    shots.shot(page, "refused")
