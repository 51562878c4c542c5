"""Every operation of `/api/v1/openapi.json` fuzzed with schemathesis, in process (WSGI).

The world is the access matrix's (tests/core/test_access_matrix.py), on a database of its own
per backend: the example trial live, a participant randomized at each of its sites (LDS, MAN)
with an assessment that raised a safety event, an adverse event, a disposition event and an
ePRO link, a stored report, and an API token of each role (write and read scope); plus an
enrolled participant not yet randomized, so that a randomization can succeed.

Each operation gets requests that its schema accepts and requests that it refuses
(schemathesis' positive and negative modes), sent with a token of a drawn role (or none). The
path parameters are drawn from the world's records (so that requests get past 404 into the
views' validation and logic) or left as generated. Each request runs in a transaction that is
rolled back after it, so every example sees the same world and a failure replays exactly.

Every response must: not be a server error; have a status code the document lists for the
operation; carry the content type and a body the document declares for that status; and, when
it is an error, be problem+json whose `status` is the response's, with field errors (a field and
a rule each) on every 422. A request the schema refuses must be refused (4xx).
"""

import json
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import Session

from tests.conftest import app_config, create_database, drop_database
from tests.core.test_access_matrix import (
    CODE,
    RANDOMIZED,
    TODAY,
    World,
    _build,
    rolled_back,
    values_for,
)
from trials import create_app
from trials.core import migrate
from trials.core.accounts import services as accounts
from trials.core.audit import services as audit
from trials.core.db import make_engine

# The tests of this module share one world per database: one worker builds it (scripts/test
# runs pytest-xdist with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("fuzz-world")

# Examples per operation and generation mode: about 70 operations, so the whole fuzz stays
# near a minute per database.
EXAMPLES = 20

# The document as the application serves it (a public route that reads no database). The token
# is the test's to send (a drawn role's, or none): schemathesis generates no Authorization
# header of its own, so that a request it makes invalid still reaches the view.
# Read through the test client, not `from_wsgi`: schemathesis leaves out the operation a
# document was loaded from, and GET /api/v1/openapi.json is fuzzed like the others.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(app_config("sqlite://")).test_client().get("/api/v1/openapi.json").get_json(),
    config=schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}}),
)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]

# Hypothesis draws the first ones most: the roles that may do most come first, anonymous last.
WRITERS = (
    "sponsor",
    "coordinator",
    "statistician_unblinded",
    "statistician_blinded",
    "clinician",
    "monitor",
    "admin",
)
PRINCIPALS = (*WRITERS, *(f"{role}:read" for role in WRITERS), "anonymous")


@schemathesis.check
def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error is problem+json whose `status` is the response's; a 422 names each field and rule."""
    if response.status_code < 400:
        return None
    media_type = response.headers.get("content-type", [""])[0].split(";")[0]
    if media_type != "application/problem+json":
        raise AssertionError(f"a {response.status_code} answered {media_type!r}, not problem+json")
    body = json.loads(response.content)
    if body.get("status") != response.status_code:
        raise AssertionError(f"the problem's status {body.get('status')} is not {response.status_code}")
    if response.status_code == 422:
        errors = body.get("errors") or []
        if not errors or not all(e.get("field") is not None and e.get("rule") for e in errors):
            raise AssertionError(f"a 422 without a field and a rule for each error: {body}")
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    problem_details,
]


def _enrolled_participant(url: str) -> str:
    """A participant at LDS screened and enrolled, not randomized; returns the label."""
    from trials.participants import services as participants
    from trials.participants.models import ScreeningCreate

    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        audit.set_actor(session, audit.Actor.system("system"))
        coordinator = accounts.load_principal(accounts.get_user("cora", session=session), session=session)
        data = ScreeningCreate.model_validate(
            {
                "site_code": "LDS",
                "screened_on": (RANDOMIZED - timedelta(days=7)).isoformat(),
                "age_years": 41,
                "screening_phq9": 15,
                "inclusion_met": True,
                "exclusion_present": False,
            }
        )
        label = participants.screen(CODE, data, session=session, by=coordinator, today=TODAY).label
        participants.enrol(
            CODE, label, TODAY - timedelta(days=1), session=session, by=coordinator, today=TODAY
        )
        session.commit()
    engine.dispose()
    return label


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    url = create_database(backend, tmp_path_factory.mktemp("fuzz"))
    try:
        migrate.upgrade(url)
        built = _build(url)
        built.records["LDS"]["enrolled"] = _enrolled_participant(url)
        yield built
        built.app.extensions["trials_db"].engine.dispose()
    finally:
        drop_database(url)


def path_values(world: World, path: str, name: str) -> list[str]:
    """The world's values for path parameter `name` of `path`, each site's."""
    values: list[str] = []
    for site in ("LDS", "MAN"):
        records = world.records[site]
        filled = values_for(path, {"token_id": "", "grant_id": "", **records})
        if name == "label":
            values += [records["label"], records.get("enrolled", records["label"])]
        elif name == "kind":
            values += ["assessments", "engagement"]
        elif name == "username":
            values += ["cora", "manny", "moe"]
        elif filled.get(name):
            values.append(filled[name])
    return sorted(set(values))


def negated(case: Any, location: ParameterLocation) -> bool:
    """Whether schemathesis generated `location` of `case` to break the schema."""
    component = case.meta.components.get(location) if case.meta is not None else None
    return component is not None and component.mode.is_negative


def fuzz_operation(world: World, operation: Any) -> None:
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=2 * EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: Any) -> None:
        case = data.draw(strategy, label="case")
        # What schemathesis made invalid stays as it made it, so that the refusal is checked.
        if not negated(case, ParameterLocation.PATH):
            for name in list(case.path_parameters or {}):
                known = path_values(world, operation.path, name)
                if known:
                    generated = case.path_parameters[name]
                    case.path_parameters[name] = data.draw(st.sampled_from([*known, generated]), label=name)
        principal = data.draw(st.sampled_from(PRINCIPALS), label="principal")
        headers = world.headers.get(principal, {})
        with rolled_back(world):
            case.call_and_validate(app=world.app, headers=headers, checks=CHECKS)

    run()


def test_every_operation_keeps_to_the_document(world: World) -> None:
    failures = []
    for operation in OPERATIONS:
        try:
            fuzz_operation(world, operation)
        except (Exception, BaseExceptionGroup) as exc:  # reported; the next operation is fuzzed
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)


# What the fuzz found, asked again directly: these must not depend on what hypothesis draws.


def test_a_multipart_part_without_a_name_is_refused_not_a_server_error(world: World) -> None:
    body = b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--\r\n"
    with rolled_back(world):
        response = world.app.test_client().post(
            f"/api/v1/trials/{CODE}/imports/assessments",
            data=body,
            content_type="multipart/form-data; boundary=b",
            headers=world.headers["coordinator"],
        )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["errors"][0]["field"] == "file"


@pytest.mark.parametrize("number", [2**31, 2**63, 10**30])
def test_a_number_beyond_any_record_is_not_found(world: World, number: int) -> None:
    client = world.app.test_client()
    with rolled_back(world):
        responses = [
            client.get(
                f"/api/v1/trials/{CODE}/reports/{number}/manifest.json", headers=world.headers["sponsor"]
            ),
            client.get(f"/api/v1/protocols/{CODE}/versions/{number}", headers=world.headers["sponsor"]),
        ]
    for response in responses:
        assert response.status_code == 404, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"


def test_a_nul_byte_in_a_query_is_refused_as_the_document_says(world: World) -> None:
    path = f"/api/v1/trials/{CODE}/reports/{world.records['LDS']['report_number']}/pdf"
    with rolled_back(world):
        response = world.app.test_client().get(f"{path}?x%00=1", headers=world.headers["sponsor"])
    assert response.status_code == 422, response.get_data(as_text=True)
    operation = SCHEMA.raw_schema["paths"]["/api/v1/trials/{code}/reports/{number}/pdf"]["get"]
    assert "422" in operation["responses"]
