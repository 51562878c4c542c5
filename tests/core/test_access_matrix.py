"""Every route of the application's URL map, for every method, asked by every principal: the
outcome each gets is declared in one table (`tests/core/access_matrix.py`).

One world per database, committed once: the example trial live with a participant at each of
its sites (LDS, MAN) carrying an assessment that raised a safety event, an adverse event, a
disposition event, an ePRO link and, trial-wide, a stored report. Each request then runs in a
transaction of its own that is rolled back after it, so that an allowed write (sent with a body
its schema accepts, so that the view's own checks decide) changes nothing the next request
sees; a refused one is also checked to have written nothing before that rollback.

Besides the outcome, each answer is read: the LDS coordinator's and clinician's answers never
name the MAN participant or any of their records (lists included), and the answers of a role
the protocol blinds (and of the administrator) never name an arm.
"""

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from tests.conftest import (
    EXAMPLE_TRIAL,
    PASSWORD,
    app_config,
    bearer,
    create_database,
    csrf_token,
    drop_database,
    set_up_example_trial,
    sign_in,
    site_and_user_makers,
)
from tests.core.access_matrix import (
    ADVERSE_EVENT,
    API_PRINCIPALS,
    GROUPS,
    MATRIX,
    SKIPPED,
    WEB_PRINCIPALS,
    Outcome,
    Protocol,
    Row,
    example_protocol,
    expected_for,
)
from tests.events.conftest import ARM_TEXTS
from trials import create_app
from trials.core import migrate
from trials.core.accounts import services as accounts
from trials.core.accounts.models import RoleGrant
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.db import make_engine

CODE = EXAMPLE_TRIAL
API = f"/api/v1/trials/{CODE}"
TODAY = datetime.now(UTC).date()
RANDOMIZED = TODAY - timedelta(days=40)  # today is day 40: the Week 6 window is open
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Who is who in the world: the web principals sign in as these users; each has an API token
# of write scope (key "<name>") and of read scope (key "<name>:read").
STAFF = {
    "admin": "ada:admin",
    "sponsor": "sam:sponsor:TRIAL",
    "statistician_blinded": "bea:statistician_blinded:TRIAL",
    "statistician_unblinded": "una:statistician_unblinded:TRIAL",
    "coordinator": "cora:coordinator:TRIAL:LDS",
    "clinician": "cleo:clinician:TRIAL:LDS",
    "monitor": "moe:monitor:TRIAL",
    # Staff of the other site, who enter its participant's records.
    "man_coordinator": "manny:coordinator:TRIAL:MAN",
}
ROLES = tuple(name for name in STAFF if name != "man_coordinator")

IDENTIFIER_KEY = base64.urlsafe_b64encode(b"access matrix identifier key 32b").decode()

# Whose answers must carry no arm code or name: the roles the example protocol blinds, and the
# administrator, who holds no role in the trial (allocation_visible is False for all three).
BLINDED = ("admin", *GROUPS["BLINDED"])


@dataclass
class WebClient:
    client: Any
    cookie: str
    csrf: str


@dataclass
class World:
    url: str
    app: Flask
    # URL parameters of each site's records: "LDS" and "MAN".
    records: dict[str, dict[str, str]]
    web: dict[str, WebClient]
    headers: dict[str, dict[str, str]]
    audit_entries: int = 0


def _ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def stored_report(url: str, *, rendered: bool = False) -> dict[str, str]:
    """A report job and a stored report (the blinded one, by the sponsor). The context is built
    as a job builds it; the PDF stored with it is rendered when `rendered`, else a placeholder:
    rendering takes most of the access matrix's time, and none of its routes reads a PDF's pages."""
    from reports import build_context, render_pdf
    from reports import services as reports
    from reports.models import Variant

    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        sponsor = accounts.load_principal(accounts.get_user("sam", session=session), session=session)
        audit.set_actor(session, accounts.actor_for(sponsor, "cli"))
        job = reports.request_report(
            CODE, Variant.BLINDED, session=session, by=sponsor, channel="cli", runner="inline"
        )
        context = build_context(CODE, session=session, by=sponsor, variant="blinded")
        pdf = render_pdf(context) if rendered else b"%PDF-1.7\n% placeholder\n"
        report = reports.store_report(CODE, Variant.BLINDED, context, pdf, session=session, by=sponsor)
        session.commit()
        values = {"report_number": str(report.number), "job_id": str(job.id)}
    engine.dispose()
    return values


def _build(url: str) -> World:
    """The world on the migrated database at `url`, committed: people, tokens, a participant
    randomized 40 days ago at each site (through the services), then each participant's records
    (through the API, as their site's coordinator), the stored report, and a signed-in web
    client per principal with its session cookie and CSRF token."""
    from trials.participants import services as participants
    from trials.participants.models import ScreeningCreate
    from trials.randomization import services as randomization

    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        audit.set_actor(session, audit.Actor.system("system"))

        make_site, make_user = site_and_user_makers(session)

        people = set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)
        for site, by in (("LDS", "coordinator"), ("MAN", "man_coordinator")):
            data = ScreeningCreate.model_validate(
                {
                    "site_code": site,
                    "screened_on": (RANDOMIZED - timedelta(days=7)).isoformat(),
                    "age_years": 30,
                    "screening_phq9": 12,
                    "inclusion_met": True,
                    "exclusion_present": False,
                }
            )
            label = participants.screen(CODE, data, session=session, by=people[by], today=TODAY).label
            participants.enrol(
                CODE, label, RANDOMIZED - timedelta(days=7), session=session, by=people[by], today=TODAY
            )
            slot = randomization.randomize(CODE, label, session=session, by=people[by])
            with audit.reason(session, "access matrix world: randomization dated in the past"):
                slot.randomized_at = datetime.combine(RANDOMIZED, datetime.min.time(), UTC)
                session.add(slot)
        headers = {}
        for name, principal in people.items():
            headers[name] = bearer(session, principal)
            headers[f"{name}:read"] = bearer(session, principal, scope="read")
        token_ids = {
            name: accounts.list_tokens(session=session, by=principal)[0].id
            for name, principal in people.items()
        }
        grant_ids = {
            name: session.scalars(select(RoleGrant.id).where(RoleGrant.user_id == principal.user_id)).one()
            for name, principal in people.items()
        }
        session.commit()
    engine.dispose()

    # Identifier keys configured, so that writing identifiers reaches its authorization.
    app = create_app(app_config(url, REDIS_URL=None, IDENTIFIER_KEYS=IDENTIFIER_KEY))
    client = app.test_client()
    records: dict[str, dict[str, str]] = {}
    for site, by in (("LDS", "coordinator"), ("MAN", "man_coordinator")):
        label = f"{site}-0001"
        base = f"{API}/participants/{label}"
        items = {str(n): 1 for n in range(1, 10)}  # item 9 answered 1: a safety event
        assessment = _ok(
            client.post(
                f"{base}/assessments",
                json={
                    "instrument": "PHQ-9",
                    "assessed_on": (RANDOMIZED + timedelta(days=14)).isoformat(),
                    "items": items,
                },
                headers=headers[by],
            )
        )
        assert assessment["safety_events"], assessment
        ae = _ok(
            client.post(
                f"{base}/adverse-events",
                json={
                    **ADVERSE_EVENT,
                    "term": "Headache after evening sessions",
                    "onset_date": (TODAY - timedelta(days=10)).isoformat(),
                },
                headers=headers[by],
            )
        )
        disposition = _ok(
            client.post(
                f"{base}/disposition-events",
                json={
                    "kind": "stopped_app_use",
                    "event_date": (TODAY - timedelta(days=30)).isoformat(),
                    "reason": "no app activity for 14 days",
                },
                headers=headers[by],
            )
        )
        link = _ok(
            client.post(
                f"{base}/epro-links", json={"visit_code": "W06", "instrument": "GAD-7"}, headers=headers[by]
            )
        )
        records[site] = {
            "label": label,
            "assessment_id": assessment["id"],
            "safety_event_id": assessment["safety_events"][0]["id"],
            "adverse_event_id": ae["id"],
            "disposition_id": disposition["id"],
            "link_id": link["id"],
            "epro_token": urlsplit(link["url"]).path.removeprefix("/epro/"),
        }
    records["LDS"]["token_id"] = str(token_ids["coordinator"])
    records["LDS"]["grant_id"] = str(grant_ids["coordinator"])

    records["LDS"].update(stored_report(url))
    # The CSRF token is kept in the session: one page read after signing in gives a token that
    # every later form of that session accepts.
    web = {}
    for name in ("anonymous", *ROLES):
        web_client = app.test_client()
        if name != "anonymous":
            username = STAFF[name].split(":")[0]
            assert sign_in(web_client, username, PASSWORD).status_code == 302
            page = web_client.get("/account")
        else:
            page = web_client.get("/sign-in")
        token = csrf_token(page.get_data(as_text=True))
        cookie = web_client.get_cookie(app.config["SESSION_COOKIE_NAME"])
        web[name] = WebClient(web_client, cookie.value if cookie else "", token)
    world = World(url, app, records, web, headers)
    engine = make_engine(url)
    with engine.connect() as connection:
        world.audit_entries = audit_entries(connection)
    engine.dispose()
    return world


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    url = create_database(backend, tmp_path_factory.mktemp("matrix"))
    try:
        migrate.upgrade(url)
        built = _build(url)
        yield built
        built.app.extensions["trials_db"].engine.dispose()
    finally:
        drop_database(url)


@contextmanager
def rolled_back(world: World) -> Iterator[Any]:
    """The app's requests inside one transaction, rolled back afterwards; yields its connection."""
    state = world.app.extensions["trials_db"]
    original = state.session_factory
    connection = state.engine.connect()
    transaction = connection.begin()
    state.session_factory = sessionmaker(
        bind=connection, class_=Session, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    try:
        yield connection
    finally:
        state.session_factory = original
        transaction.rollback()
        connection.close()


def fill(rule: str, values: dict[str, str]) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], rule)


def values_for(rule: str, records: dict[str, str]) -> dict[str, str]:
    """The URL parameters of `rule` filled with one site's records."""
    if "/adverse-events/" in rule:
        event = records.get("adverse_event_id")
    elif "/disposition-events/" in rule:
        event = records.get("disposition_id")
    else:
        event = records.get("safety_event_id")
    return {
        "code": CODE,
        "label": records["label"],
        "assessment_id": records["assessment_id"],
        "event_id": event or "",
        "link_id": records["link_id"],
        "token": records["epro_token"],
        "token_id": records.get("token_id", ""),
        "grant_id": records.get("grant_id", ""),
        "job_id": records.get("job_id", ""),
        "number": records.get("report_number", "1") if "/reports/" in rule else "1",
        "username": "cora",
        "kind": "assessments",
    }


def _filled(body: Any) -> Any:
    """`body` with the example protocol's text for each `Protocol` placeholder."""
    if body is Protocol:
        return example_protocol()
    if isinstance(body, dict):
        return {key: _filled(value) for key, value in body.items()}
    return body


def ask(world: World, principal: str, method: str, path: str, body: Any) -> Any:
    """`principal`'s request: a web client with its session cookie (and a valid CSRF token for a
    write), or the API with its bearer token. The API's requests go with the signed-in sponsor's
    session cookie, which must count for nothing there: anonymous is a request without a token."""
    body = _filled(body)
    if path.startswith("/api/"):
        headers = world.headers.get(principal, {})
        sponsor = world.web["sponsor"]
        client = sponsor.client
        client.set_cookie(world.app.config["SESSION_COOKIE_NAME"], sponsor.cookie)
        if method == "GET":
            return client.open(path, method=method, headers=headers, buffered=True)
        if isinstance(body, bytes):
            return client.open(path, method=method, headers=headers, data=body, content_type="text/csv")
        if body is None:
            return client.open(path, method=method, headers=headers)
        return client.open(path, method=method, headers=headers, json=body)
    web = world.web[principal]
    web.client.set_cookie(world.app.config["SESSION_COOKIE_NAME"], web.cookie)
    if method == "GET":
        return web.client.open(path, method=method, buffered=True)
    return web.client.open(path, method=method, data={"csrf_token": web.csrf, **(body or {})})


def outcome_of(response: Any) -> Outcome | None:
    """What a response means for access; None for anything the matrix never allows (a 500, a
    405, a 401 on the web...)."""
    status = response.status_code
    if status in (301, 302, 303, 307, 308):
        location = urlsplit(response.headers.get("Location", ""))
        if location.path == "/sign-in" and "next=" in location.query:
            return Outcome.SIGN_IN
        return Outcome.ALLOWED
    if status in (400, 422) and _never_reached_the_view(response):
        return None
    if 200 <= status < 300 or status in (400, 409, 422):
        return Outcome.ALLOWED
    if status == 401 and response.mimetype == "application/problem+json":
        return Outcome.SIGN_IN
    return {403: Outcome.REFUSED, 404: Outcome.HIDDEN}.get(status)


def _never_reached_the_view(response: Any) -> bool:
    """A refusal of the request before the view could authorize it: an API body its schema
    refuses (the row's body no longer fits the route), or a web form's CSRF token refused."""
    if response.mimetype == "application/problem+json":
        return bool(response.get_json().get("detail") == "the request body is not valid")
    return "CSRF" in response.get_data(as_text=True)


CSRF = re.compile(r'name="csrf_token"[^>]*value="[^"]*"|value="[^"]*"[^>]*name="csrf_token"')


def arms_in(text: str) -> list[str]:
    """The arm codes and names in `text`, once the trial's code and CSRF tokens are taken out."""
    text = CSRF.sub("", text.replace(CODE, ""))
    return [arm for arm in ARM_TEXTS if arm in text]


def audit_entries(connection: Any) -> int:
    return int(connection.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def check_cell(world: World, entry: Row, principal: str, site: str, expected: Outcome) -> str | None:
    """Ask `entry` as `principal` with `site`'s records; a description of what was wrong, or None."""
    path = fill(entry.rule, values_for(entry.rule, world.records[site]))
    if entry.query:
        path = f"{path}?{entry.query}"
    with rolled_back(world) as connection:
        response = ask(world, principal, entry.method, path, entry.body)
        written = audit_entries(connection) - world.audit_entries
    got = outcome_of(response)
    where = f"{entry.method} {path} as {principal}"
    if got is not expected:
        detail = response.get_data(as_text=True)
        detail = (
            re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", detail))[:300] if response.status_code >= 400 else ""
        )
        return f"{where}: expected {expected}, got {response.status_code} ({got}) {detail}"
    if got is not Outcome.ALLOWED and written:
        return f"{where}: {response.status_code} but {written} audit entries were written"
    role = principal.partition(":")[0]
    if role in GROUPS["SITE"] and 200 <= response.status_code < 300:
        text = response.get_data(as_text=True)
        seen = [value for value in world.records["MAN"].values() if value in text]
        if seen:
            return f"{where}: LDS staff see the MAN site's participant or records {seen}"
    if (
        role in BLINDED
        and 200 <= response.status_code < 300
        and entry.method == "GET"
        and not entry.names_arms
    ):
        found = arms_in(response.get_data(as_text=True))
        if found:
            return f"{where}: the blinded {role} sees the arms {found}"
    return None


def principals_of(entry: Row) -> tuple[str, ...]:
    return API_PRINCIPALS if entry.api else WEB_PRINCIPALS


def route_methods(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule not in SKIPPED
        for method in rule.methods or ()
        if method in METHODS
    }


# -- the tests ---------------------------------------------------------------------------------


def test_every_route_and_method_has_one_row(tmp_path: Any) -> None:
    """A new route without a declared expectation fails here; so does a row whose route is gone."""
    app = create_app(app_config(f"sqlite:///{tmp_path}/unused.sqlite"))
    declared = [entry.key for entry in MATRIX]
    duplicated = {key for key in declared if declared.count(key) > 1}
    assert not duplicated, f"more than one row for {sorted(duplicated)}"
    routes = route_methods(app)
    missing = sorted(routes - set(declared))
    assert not missing, "routes without a row in tests/core/access_matrix.py: " + ", ".join(
        f"{method} {rule}" for rule, method in missing
    )
    gone = sorted(set(declared) - routes)
    assert not gone, "rows for routes that no longer exist: " + ", ".join(f"{m} {r}" for r, m in gone)
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert set(SKIPPED) <= rules, f"skipped rules that no longer exist: {set(SKIPPED) - rules}"
    assert {rule.endpoint for rule in app.url_map.iter_rules() if rule.rule in SKIPPED} == {"static"}


def cross_site_expectation(entry: Row, principal: str) -> Outcome:
    """With the MAN site's records: the LDS coordinator and clinician (web, and both their tokens
    on the API) get 404, as for a record that does not exist, whether or not their role could
    act on it at their own site; every other principal gets what it gets at LDS."""
    expected = expected_for(entry, principal)
    if principal.partition(":")[0] in GROUPS["SITE"] and expected is not Outcome.SIGN_IN:
        return Outcome.HIDDEN
    return expected


def test_every_principal_gets_what_the_matrix_declares(world: World) -> None:
    """Every row, every principal, with the LDS site's records, then the rows that name a
    participant or their record with the MAN site's (`cross_site_expectation`); a refusal writes
    nothing; a blinded role's answers carry no arm. One test per database, so that the world is
    built once per database however the tests are spread over workers; its message lists every
    cell that went wrong."""
    wrong = []
    for entry in MATRIX:
        for principal in principals_of(entry):
            wrong.append(check_cell(world, entry, principal, "LDS", expected_for(entry, principal)))
            if entry.site_bound:
                wrong.append(
                    check_cell(world, entry, principal, "MAN", cross_site_expectation(entry, principal))
                )
    problems = [problem for problem in wrong if problem]
    assert not problems, f"{len(problems)} of {len(wrong)} cells went wrong:\n" + "\n".join(problems)
