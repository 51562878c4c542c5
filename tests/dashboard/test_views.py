"""The trial dashboard: what each role sees, site scoping, arm counts only for those who may see
the allocation, and the roles refused."""

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from tests.assessments.conftest import ARMS, CODE, make_participant, phq9
from tests.conftest import set_up_example_trial, sign_in
from trials.assessments import services as assessments
from trials.assessments.models import AssessmentCreate
from trials.core.accounts.permissions import Principal

__all__ = ["make_participant"]

DASHBOARD = f"/trials/{CODE}/dashboard"
ARM_NAMES = ("MoodStep CBT", "Attention-control app", "Waitlist")
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "man": "manny:coordinator:TRIAL:MAN",
    "clin_lds": "cleo:clinician:TRIAL:LDS",
    "blinded": "bea:statistician_blinded:TRIAL",
    "unblinded": "ulf:statistician_unblinded:TRIAL",
    "monitor": "mona:monitor:TRIAL",
    "admin": "ada:admin",
}
STAFF_NAMES = [spec.split(":")[0] for spec in STAFF.values()]


# The example protocol with the sponsor and the investigators (site staff) blinded as well.
BLINDED = ["investigator", "outcome_assessor", "statistician", "data_manager", "sponsor"]


@pytest.fixture
def people(
    request: pytest.FixtureRequest, session: Session, make_site: Any, make_user: Any
) -> dict[str, Principal]:
    """The trial's staff; indirect parametrization with None keeps the example's own blinding."""
    blinded = getattr(request, "param", BLINDED)
    return set_up_example_trial(
        session, make_site, make_user, STAFF, live_seed=b"\x06" * 32, blinded_roles=blinded
    )


@pytest.fixture
def as_user(app: Any) -> Any:
    def make(username: str) -> Any:
        client = app.test_client()
        assert sign_in(client, username).status_code == 302
        return client

    return make


@pytest.fixture
def trial_data(session: Session, people: dict[str, Principal], make_participant: Any) -> dict[str, str]:
    """Two LDS participants and one MAN participant randomized 40 days ago, one not randomized;
    a baseline PHQ-9 with item 9 = 2 for the first (a safety event), and an out-of-window GAD-7
    (a data query)."""
    labels = {
        "lds1": make_participant("LDS"),
        "lds2": make_participant("LDS"),
        "man1": make_participant("MAN"),
        "man_screened": make_participant("MAN", randomize=False),
    }
    today = datetime.now(UTC).date()
    randomized_on = today - timedelta(days=40)
    for instrument, assessed_on, items in (
        ("PHQ-9", randomized_on, phq9(1, 1, 1, 1, 1, 1, 1, 1, 2)),
        ("GAD-7", randomized_on + timedelta(days=20), {str(n): 1 for n in range(1, 8)}),
    ):
        data = AssessmentCreate.model_validate(
            {"instrument": instrument, "assessed_on": assessed_on.isoformat(), "items": items}
        )
        assessments.submit(CODE, labels["lds1"], data, session=session, by=people["lds"], today=today)
    session.flush()
    return labels


def text_of(response: Any) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True))


def cell(page: str, element_id: str) -> str:
    match = re.search(rf'id="{re.escape(element_id)}"[^>]*>(.*?)</t[dr]>', page, re.S)
    assert match, f"no #{element_id} in the page"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def no_arm_in(page: str) -> None:
    page = re.sub(r"<input[^>]*csrf_token[^>]*>", "", page).replace(CODE, "")
    for arm in (*ARMS, *ARM_NAMES):
        assert arm not in page, f"arm {arm} shown"


def test_the_sponsor_sees_the_whole_trial_without_arm_detail(
    people: dict[str, Principal], trial_data: dict[str, str], as_user: Any
) -> None:
    page = text_of(as_user("sam").get(DASHBOARD))
    assert cell(page, "randomized") == "3"
    assert cell(page, "open-safety") == "1"
    assert cell(page, "open-queries") == "1"
    assert cell(page, "database-state") == "open"
    assert cell(page, "blinding-state") == "blinded"
    assert "<svg" in page
    assert "enrolment-table" in page
    for site in ("LDS", "MAN", "BRS"):
        assert f"<td>{site}</td>" in page
    # Baseline: 3 randomized x 2 questionnaires expected, the PHQ-9 of lds1 done, the rest missed.
    baseline = re.search(r'id="visit-BL">(.*?)</tr>', page, re.S)
    assert baseline is not None
    assert re.findall(r"<td>(\d+)</td>", baseline.group(1))[:3] == ["6", "1", "0"]
    assert "17%" in baseline.group(1)
    assert 'id="overdue"' in page
    assert f"/trials/{CODE}/participants/{trial_data['lds2']}" in page  # an overdue visit listed
    assert f'href="/trials/{CODE}/database-lock"' in page
    assert f'href="/trials/{CODE}/unblinding"' in page
    assert 'id="arms"' not in page
    no_arm_in(page)


@pytest.mark.parametrize("username", ["bea", "mona", "cora", "cleo"])
def test_blinded_roles_see_no_arm_code_or_name(
    people: dict[str, Principal], trial_data: dict[str, str], as_user: Any, username: str
) -> None:
    page = text_of(as_user(username).get(DASHBOARD))
    assert 'id="arms"' not in page
    no_arm_in(page)


@pytest.mark.parametrize("people", [None], indirect=True, ids=["example-blinding"])
def test_arms_show_on_the_dashboard_exactly_where_the_participant_list_shows_them(
    people: dict[str, Principal], session: Session, make_participant: Any, as_user: Any
) -> None:
    """With the example protocol as it is (the sponsor and the site staff not blinded), they see
    arm counts on the dashboard as they see the arm column of the participant list; the blinded
    statistician sees neither."""
    make_participant("LDS")
    session.flush()
    for username, visible in (("sam", True), ("cora", True), ("bea", False)):
        client = as_user(username)
        board = text_of(client.get(DASHBOARD))
        listing = text_of(client.get(f"/trials/{CODE}/participants"))
        assert ('id="arms"' in board) is visible, username
        assert any(arm in listing.replace(CODE, "") for arm in ARMS) is visible, username


def test_the_unblinded_statistician_sees_counts_by_arm(
    people: dict[str, Principal], trial_data: dict[str, str], as_user: Any
) -> None:
    page = text_of(as_user("ulf").get(DASHBOARD))
    arms = re.search(r'id="arms".*?</section>', page, re.S)
    assert arms is not None
    rows = re.findall(r"<td>(\w+) · [^<]+</td><td>(\d+)</td>", arms.group(0))
    assert sorted(code for code, _n in rows) == sorted(ARMS)
    assert sum(int(n) for _code, n in rows) == 3
    assert f'href="/trials/{CODE}/unblinding"' in page
    assert f'href="/trials/{CODE}/database-lock"' not in page  # the sponsor's act


def test_a_coordinator_sees_their_site_only(
    people: dict[str, Principal], trial_data: dict[str, str], as_user: Any
) -> None:
    page = text_of(as_user("manny").get(DASHBOARD))
    assert cell(page, "randomized") == "1"
    assert cell(page, "open-safety") == "0"  # the LDS participant's event
    assert cell(page, "open-queries") == "0"
    assert "<td>MAN</td>" in page
    assert "<td>LDS</td>" not in page
    assert trial_data["lds1"] not in page
    assert "database-lock" not in page
    assert "/unblinding" not in page


def test_an_empty_trial_renders(people: dict[str, Principal], as_user: Any) -> None:
    page = text_of(as_user("sam").get(DASHBOARD))
    assert "No participant enrolled yet" in page
    assert cell(page, "randomized") == "0"


def test_home_links_the_dashboard_for_trial_roles_only(people: dict[str, Principal], as_user: Any) -> None:
    assert f'href="{DASHBOARD}"' in as_user("cora").get("/").get_data(as_text=True)
    assert f'href="{DASHBOARD}"' not in as_user("ada").get("/").get_data(as_text=True)


def test_an_account_without_a_role_in_the_trial_is_refused(
    people: dict[str, Principal], make_user: Any, as_user: Any
) -> None:
    assert as_user("ada").get(DASHBOARD).status_code == 403
    make_user("otto")
    assert as_user("otto").get(DASHBOARD).status_code == 403
    assert as_user("sam").get("/trials/NO-SUCH-TRIAL/dashboard").status_code == 404


def test_before_the_protocol_is_locked_the_dashboard_says_so(
    session: Session, make_site: Any, make_user: Any, app: Any
) -> None:
    from protocols import services as protocols
    from protocols.document import example_protocol_path
    from trials.core.accounts import services as accounts

    source = protocols.Source(example_protocol_path().read_bytes(), "yaml")
    for site in source.parse().document.sites:
        make_site(site.code, site.name, site.country)
    protocols.register(source, session=session, by=accounts.SYSTEM)
    make_user("sam", f"sponsor:{CODE}")
    make_user("cora", f"coordinator:{CODE}:LDS")
    make_user("ada", "admin")
    session.flush()
    for username in ("sam", "cora"):
        client = app.test_client()
        assert sign_in(client, username).status_code == 302
        page = text_of(client.get(DASHBOARD))
        assert "has no locked protocol yet" in page
        assert 'id="randomized"' not in page
    client = app.test_client()
    assert sign_in(client, "ada").status_code == 302
    assert client.get(DASHBOARD).status_code == 403


def tasks_of(page: str) -> dict[str, int]:
    """The home page's "needs your attention" lines: text -> count."""
    line = r'<li(?: class="urgent")?><a href="[^"]*"><strong>(\d+)</strong> ([^<]+)</a></li>'
    found = re.findall(line, page)
    return {text.split(" (")[0]: int(count) for count, text in found}


def test_the_home_page_lists_what_needs_each_roles_attention(
    people: dict[str, Principal], as_user: Any, trial_data: dict[str, str]
) -> None:
    pages = {u: html.unescape(as_user(u).get("/").get_data(as_text=True)) for u in STAFF_NAMES}
    boards = {u: text_of(as_user(u).get(DASHBOARD)) for u in STAFF_NAMES if u != "ada"}
    # Site staff act on their site's safety events; the event is at LDS.
    assert tasks_of(pages["cora"])["safety events to follow up"] == 1
    assert tasks_of(pages["cleo"])["safety events to follow up"] == 1
    assert "safety events to follow up" not in tasks_of(pages["manny"])
    # Those who enter or monitor data see overdue visits and open queries, as their dashboard counts them.
    for username in ("cora", "manny", "mona"):
        tasks = tasks_of(pages[username])
        overdue = int(re.sub(r"\D", "", cell(boards[username], "overdue-visits")))
        assert tasks.get("overdue visits", 0) == overdue, username
        assert tasks.get("open data queries", 0) == int(cell(boards[username], "open-queries")), username
    assert tasks_of(pages["cora"])["open data queries"] == 1
    assert tasks_of(pages["cora"])["overdue visits"] > tasks_of(pages["manny"])["overdue visits"] > 0
    assert "safety events to follow up" not in tasks_of(pages["mona"])
    # The clinician follows up safety only; sponsors, statisticians and the admin have no such list.
    assert set(tasks_of(pages["cleo"])) == {"safety events to follow up"}
    for username in ("sam", "bea", "ulf", "ada"):
        assert tasks_of(pages[username]) == {}, username
    for page in pages.values():
        no_arm_in(page)


def test_every_month_of_the_enrolment_chart_has_a_marker(
    people: dict[str, Principal], as_user: Any, trial_data: dict[str, str]
) -> None:
    page = text_of(as_user("sam").get(DASHBOARD))
    svg = re.search(r"<svg.*?</svg>", page, re.S)
    assert svg, "no chart"
    # A marker per site and month, so that a trial enrolling in its first month (a line needs two
    # points) still shows its enrolment.
    lines = re.findall(r'<polyline points="([^"]+)"', svg.group(0))
    assert len(lines) == 3
    assert len(re.findall(r"<circle ", svg.group(0))) == sum(len(points.split()) for points in lines)
