"""Participants and randomization through the JSON API: the coordinator's day, bad inputs that
store nothing, site scoping, and blinding (no arm for blinded roles in any answer or error)."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from sqlalchemy import func, select
from sqlmodel import Session, col

from tests.conftest import bearer, set_up_example_trial
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.participants import services as participants
from trials.participants.models import Participant, ScreeningCreate
from trials.randomization import reads
from trials.randomization import services as randomization
from trials.randomization.models import AllocationList, AllocationSlot

CODE = "MOOD-CBT-01"
BASE = f"/api/v1/trials/{CODE}"
ARMS = ("CBT", "ATTN", "WAIT")
SLOTS = 12
TODAY = datetime.now(UTC).date()
SCREENED = TODAY - timedelta(days=7)
FUTURE = TODAY + timedelta(days=2)  # still future if the server's UTC date turns during the test


def screening(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "site_code": "LDS",
        "screened_on": SCREENED.isoformat(),
        "age_years": 30,
        "screening_phq9": 12,
        "inclusion_met": True,
        "exclusion_present": False,
    }
    body.update(changes)
    return body


def token_for(session: Session, principal: Principal, scope: str = "write") -> dict[str, str]:
    return bearer(session, principal, scope)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    return body


def rules(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["field"], e["rule"]) for e in body.get("errors", [])}


def no_arm_in(text: str) -> None:
    text = text.replace(CODE, "")  # the trial's code, MOOD-CBT-01, is no arm
    for arm in ARMS:
        assert arm not in text, text


def counts(session: Session) -> dict[str, int]:
    """What a refused request must not change."""
    session.expire_all()
    return {
        "participants": int(session.scalar(select(func.count()).select_from(Participant)) or 0),
        "enrolled": int(
            session.scalar(
                select(func.count()).select_from(Participant).where(col(Participant.status) == "enrolled")
            )
            or 0
        ),
        "randomized": int(
            session.scalar(
                select(func.count())
                .select_from(AllocationSlot)
                .where(col(AllocationSlot.participant_id).is_not(None))
            )
            or 0
        ),
        "lists": int(session.scalar(select(func.count()).select_from(AllocationList)) or 0),
        "audit": int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0),
    }


@pytest.fixture
def trial(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    """The example protocol with its three sites, locked by the sponsor; not live yet."""
    staff = {
        "sponsor": "sam:sponsor:TRIAL",
        "lds": "cora:coordinator:TRIAL:LDS",
        "man": "manny:coordinator:TRIAL:MAN",
        "blinded": "bea:statistician_blinded:TRIAL",
        "monitor": "moe:monitor:TRIAL",
        "unblinded": "una:statistician_unblinded:TRIAL",
    }
    return set_up_example_trial(session, make_site, make_user, staff)


@pytest.fixture
def live(session: Session, trial: dict[str, Principal]) -> dict[str, Principal]:
    randomization.go_live(
        CODE, session=session, by=trial["sponsor"], seed=b"\x01" * 32, slots_per_stratum=SLOTS
    )
    session.flush()
    return trial


@pytest.fixture
def h(session: Session, trial: dict[str, Principal]) -> dict[str, dict[str, str]]:
    """A write token's headers for each person of the trial."""
    return {name: token_for(session, principal) for name, principal in trial.items()}


def screened(session: Session, by: Principal, site: str = "LDS", **changes: Any) -> str:
    data = ScreeningCreate.model_validate({**screening(site_code=site), "screened_on": SCREENED, **changes})
    participant = participants.screen(CODE, data, session=session, by=by, today=TODAY)
    session.flush()
    return participant.label


def enrolled(session: Session, by: Principal, site: str = "LDS") -> str:
    label = screened(session, by, site)
    participants.enrol(CODE, label, SCREENED, session=session, by=by, today=TODAY)
    session.flush()
    return label


def randomized(session: Session, by: Principal, site: str = "LDS") -> tuple[str, str]:
    label = enrolled(session, by, site)
    slot = randomization.randomize(CODE, label, session=session, by=by)
    session.flush()
    return label, slot.arm_code


# -- the coordinator's day -------------------------------------------------------------------------


def test_sponsor_goes_live_then_coordinator_screens_enrols_and_randomizes(
    client: Any, session: Session, trial: dict[str, Principal], h: dict[str, dict[str, str]]
) -> None:
    live = ok(client.post(f"{BASE}/go-live", json={"slots_per_stratum": SLOTS}, headers=h["sponsor"]), 201)
    assert live["trial_code"] == CODE
    assert live["slots_per_stratum"] == SLOTS
    assert len(live["strata"]) == 6  # three sites x two severity levels
    assert len(live["seed_sha256"]) == len(live["list_sha256"]) == 64
    no_arm_in(str(live))
    problem(client.post(f"{BASE}/go-live", json={}, headers=h["sponsor"]), 409)

    created = ok(client.post(f"{BASE}/participants", json=screening(), headers=h["lds"]), 201)
    label = created["label"]
    assert label == "LDS-0001"
    assert created["site_code"] == "LDS"
    assert created["status"] == "screened"
    assert created["eligible"] is True
    assert created["screen_failure_reasons"] == []
    assert created["consent_date"] is None
    assert created["randomized_at"] is None
    assert created["arm_code"] is None

    consent = (TODAY - timedelta(days=1)).isoformat()
    enrolment = ok(
        client.post(f"{BASE}/participants/{label}/enrol", json={"consent_date": consent}, headers=h["lds"])
    )
    assert enrolment["status"] == "enrolled"
    assert enrolment["consent_date"] == consent

    result = ok(client.post(f"{BASE}/participants/{label}/randomize", headers=h["lds"]))
    assert result["randomized_at"] is not None
    # Investigators are not blinded in the example protocol: the coordinator sees the arm.
    assert result["arm_code"] in ARMS
    session.expire_all()
    slot = session.scalars(
        select(AllocationSlot).join(Participant).where(col(Participant.label) == label)
    ).one()
    assert slot.arm_code == result["arm_code"]
    assert slot.randomized_by == "cora"

    assert ok(client.get(f"{BASE}/participants/{label}", headers=h["lds"])) == result
    assert ok(client.get(f"{BASE}/participants", headers=h["lds"])) == [result]

    listing = ok(client.get(f"{BASE}/allocation-list", headers=h["unblinded"]))
    assert listing["list_sha256"] == live["list_sha256"]
    total = int(session.scalar(select(func.count()).select_from(AllocationSlot)) or 0)
    assert len(listing["rows"]) == total >= 6 * SLOTS  # whole blocks: at least SLOTS a stratum
    for stratum in live["strata"]:
        positions = [row["position"] for row in listing["rows"] if row["stratum"] == stratum]
        assert positions == list(range(1, len(positions) + 1))
    used = [row for row in listing["rows"] if row["participant_label"]]
    assert len(used) == 1
    assert used[0]["participant_label"] == label
    assert used[0]["arm_code"] == result["arm_code"]
    assert used[0]["position"] == 1
    assert used[0]["stratum"] == slot.stratum

    download = client.get(f"{BASE}/allocation-list.csv", headers=h["unblinded"])
    assert download.status_code == 200, download.get_data(as_text=True)
    assert download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert list(table[0]) == list(reads.ALLOCATION_COLUMNS)
    assert len(table) == total
    assert [(r["participant_label"], r["arm_code"]) for r in table if r["participant_label"]] == [
        (label, result["arm_code"])
    ]
    session.expire_all()
    viewed = session.scalars(
        select(AuditEntry).where(col(AuditEntry.action) == "allocation_list_viewed")
    ).all()
    assert [e.username for e in viewed] == ["una", "una"]
    assert audit.verify_chain(session.connection()).ok


def test_screen_failure_is_recorded_with_its_reasons_and_cannot_be_enrolled(
    client: Any, session: Session, live: Any, h: dict[str, dict[str, str]]
) -> None:
    failed = ok(
        client.post(
            f"{BASE}/participants", json=screening(age_years=70, exclusion_present=True), headers=h["lds"]
        ),
        201,
    )
    assert failed["status"] == "screen_failed"
    assert failed["eligible"] is False
    assert {r["rule"] for r in failed["screen_failure_reasons"]} == {"age", "exclusion"}
    body = problem(
        client.post(
            f"{BASE}/participants/{failed['label']}/enrol",
            json={"consent_date": SCREENED.isoformat()},
            headers=h["lds"],
        ),
        409,
    )
    assert failed["label"] in body["detail"]


def test_randomizing_before_the_trial_is_live_is_a_conflict(
    client: Any, session: Session, trial: dict[str, Principal], h: dict[str, dict[str, str]]
) -> None:
    label = enrolled(session, trial["lds"])
    before = counts(session)
    problem(client.post(f"{BASE}/participants/{label}/randomize", headers=h["lds"]), 409)
    assert counts(session) == before


# -- bad inputs: 422 naming the field, nothing stored ----------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"age_years": "two"}, "age_years", "int_type"),
        ({"age_years": 4.5}, "age_years", "int_type"),
        ({"age_years": -1}, "age_years", "greater_than_equal"),
        ({"screening_phq9": 28}, "screening_phq9", "less_than_equal"),
        ({"screening_phq9": -1}, "screening_phq9", "greater_than_equal"),
        ({"screening_phq9": "12"}, "screening_phq9", "int_type"),
        ({"screened_on": FUTURE.isoformat()}, "screened_on", "not_future"),
        ({"screened_on": "yesterday"}, "screened_on", "date_type"),
        ({"screened_on": "2026-10-18T00:00:00Z"}, "screened_on", "date_type"),
        ({"site_code": "XYZ"}, "site_code", "trial_site"),
        ({"inclusion_met": "yes"}, "inclusion_met", "bool_type"),
        ({"exclusion_present": None}, "exclusion_present", "bool_type"),
        ({"surname": "Smith"}, "surname", "extra_forbidden"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_screening_is_422_naming_the_field_and_nothing_is_stored(
    client: Any,
    session: Session,
    live: Any,
    h: dict[str, dict[str, str]],
    changes: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    before = counts(session)
    body = problem(client.post(f"{BASE}/participants", json=screening(**changes), headers=h["lds"]), 422)
    assert (field, rule) in rules(body)
    assert all(e["message"].startswith(f"{e['field']}: ") for e in body["errors"])
    assert counts(session) == before
    # The next screening still gets the first label: no number was used up.
    assert (
        ok(client.post(f"{BASE}/participants", json=screening(), headers=h["lds"]), 201)["label"]
        == "LDS-0001"
    )


def test_missing_screening_answers_are_named(client: Any, session: Session, live: Any, h: Any) -> None:
    before = counts(session)
    body = problem(client.post(f"{BASE}/participants", json={"site_code": "LDS"}, headers=h["lds"]), 422)
    assert {f for f, r in rules(body) if r == "missing"} == {
        "screened_on",
        "age_years",
        "screening_phq9",
        "inclusion_met",
        "exclusion_present",
    }
    problem(client.post(f"{BASE}/participants", data="not json", headers=h["lds"]), 422)
    assert counts(session) == before


@pytest.mark.parametrize(
    ("consent", "rule"),
    [
        (FUTURE.isoformat(), "not_future"),
        ("2026-02-30", "date_from_datetime_parsing"),
        (20260101, "date_type"),
        (1735689600, "date_type"),
        (None, "date_type"),
    ],
)
def test_bad_consent_date_is_422_and_the_participant_stays_screened(
    client: Any, session: Session, live: dict[str, Principal], h: Any, consent: Any, rule: str
) -> None:
    label = screened(session, live["lds"])
    before = counts(session)
    body = problem(
        client.post(f"{BASE}/participants/{label}/enrol", json={"consent_date": consent}, headers=h["lds"]),
        422,
    )
    assert rules(body) == {("consent_date", rule)}
    assert counts(session) == before
    assert ok(client.get(f"{BASE}/participants/{label}", headers=h["lds"]))["status"] == "screened"


def test_unknown_participant_is_404_on_every_route(
    client: Any, session: Session, live: Any, h: dict[str, dict[str, str]]
) -> None:
    before = counts(session)
    problem(client.get(f"{BASE}/participants/LDS-0099", headers=h["lds"]), 404)
    problem(
        client.post(
            f"{BASE}/participants/LDS-0099/enrol",
            json={"consent_date": SCREENED.isoformat()},
            headers=h["lds"],
        ),
        404,
    )
    problem(client.post(f"{BASE}/participants/LDS-0099/randomize", headers=h["lds"]), 404)
    problem(client.get("/api/v1/trials/NOPE/participants", headers=h["lds"]), 404)
    assert counts(session) == before


def test_randomizing_twice_or_before_enrolment_is_409_and_changes_nothing(
    client: Any, session: Session, live: dict[str, Principal], h: dict[str, dict[str, str]]
) -> None:
    label, arm = randomized(session, live["lds"])
    not_enrolled = screened(session, live["lds"])
    before = counts(session)
    body = problem(client.post(f"{BASE}/participants/{label}/randomize", headers=h["lds"]), 409)
    assert "already randomized" in body["detail"]
    problem(client.post(f"{BASE}/participants/{not_enrolled}/randomize", headers=h["lds"]), 409)
    problem(
        client.post(
            f"{BASE}/participants/{label}/enrol",
            json={"consent_date": SCREENED.isoformat()},
            headers=h["lds"],
        ),
        409,
    )
    assert counts(session) == before
    assert ok(client.get(f"{BASE}/participants/{label}", headers=h["lds"]))["arm_code"] == arm


# -- site scoping ----------------------------------------------------------------------------------


def test_a_coordinator_can_neither_read_nor_write_another_sites_participants(
    client: Any, session: Session, live: dict[str, Principal], h: dict[str, dict[str, str]]
) -> None:
    screened_man = screened(session, live["man"], "MAN")
    enrolled_man = enrolled(session, live["man"], "MAN")
    randomized_man, _arm = randomized(session, live["man"], "MAN")
    own = enrolled(session, live["lds"])
    before = counts(session)
    for label in (screened_man, enrolled_man, randomized_man):
        assert label.startswith("MAN-")
        body = problem(client.get(f"{BASE}/participants/{label}", headers=h["lds"]), 404)
        assert body["detail"] == problem(client.get(f"{BASE}/participants/MAN-0099", headers=h["lds"]), 404)[
            "detail"
        ].replace("MAN-0099", label)
        problem(
            client.post(
                f"{BASE}/participants/{label}/enrol",
                json={"consent_date": SCREENED.isoformat()},
                headers=h["lds"],
            ),
            404,
        )
        no_arm_in(
            problem(client.post(f"{BASE}/participants/{label}/randomize", headers=h["lds"]), 404)["detail"]
        )
    problem(client.post(f"{BASE}/participants", json=screening(site_code="MAN"), headers=h["lds"]), 403)
    problem(client.post(f"{BASE}/go-live", json={}, headers=h["lds"]), 403)
    assert [p["label"] for p in ok(client.get(f"{BASE}/participants", headers=h["lds"]))] == [own]
    assert counts(session) == before
    # ... and the MAN coordinator sees their own.
    mine = ok(client.get(f"{BASE}/participants", headers=h["man"]))
    assert [p["label"] for p in mine] == [screened_man, enrolled_man, randomized_man]
    # Trial-wide roles see every site.
    assert len(ok(client.get(f"{BASE}/participants", headers=h["sponsor"]))) == 4


def test_a_read_only_token_cannot_screen_enrol_or_randomize(
    client: Any, session: Session, live: dict[str, Principal]
) -> None:
    read_only = token_for(session, live["lds"], scope="read")
    label = enrolled(session, live["lds"])
    before = counts(session)
    problem(client.post(f"{BASE}/participants", json=screening(), headers=read_only), 403)
    problem(client.post(f"{BASE}/participants/{label}/randomize", headers=read_only), 403)
    assert counts(session) == before
    assert ok(client.get(f"{BASE}/participants/{label}", headers=read_only))["label"] == label


def test_no_token_is_401(client: Any, live: Any) -> None:
    problem(client.get(f"{BASE}/participants"), 401)
    problem(client.get(f"{BASE}/allocation-list.csv"), 401)


# -- blinding --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["blinded", "monitor"])
def test_blinded_roles_never_see_an_arm(
    client: Any, session: Session, live: dict[str, Principal], h: dict[str, dict[str, str]], who: str
) -> None:
    label, arm = randomized(session, live["lds"])
    other, _ = randomized(session, live["man"], "MAN")
    enrolled(session, live["lds"])
    one = ok(client.get(f"{BASE}/participants/{label}", headers=h[who]))
    assert one["randomized_at"] is not None
    assert one["arm_code"] is None
    rows = ok(client.get(f"{BASE}/participants", headers=h[who]))
    assert len(rows) == 3
    assert all(row["arm_code"] is None for row in rows)
    assert sum(row["randomized_at"] is not None for row in rows) == 2
    for url in (f"{BASE}/allocation-list", f"{BASE}/allocation-list.csv"):
        response = client.get(url, headers=h[who])
        problem(response, 403)
        no_arm_in(response.get_data(as_text=True))
    # The unblinded see the same participant's arm.
    assert ok(client.get(f"{BASE}/participants/{label}", headers=h["unblinded"]))["arm_code"] == arm
    assert ok(client.get(f"{BASE}/participants/{other}", headers=h["sponsor"]))["arm_code"] in ARMS


def test_whoever_randomizes_cannot_see_upcoming_assignments(
    client: Any, session: Session, live: dict[str, Principal], h: dict[str, dict[str, str]]
) -> None:
    """Allocation concealment: the coordinator, not blinded to an assigned arm in this protocol,
    still may not read the list of the next ones."""
    label, arm = randomized(session, live["lds"])
    for url in (f"{BASE}/allocation-list", f"{BASE}/allocation-list.csv"):
        response = client.get(url, headers=h["lds"])
        problem(response, 403)
        no_arm_in(response.get_data(as_text=True))
    assert ok(client.get(f"{BASE}/participants/{label}", headers=h["lds"]))["arm_code"] == arm


def test_a_coordinator_who_is_also_blinded_randomizes_without_seeing_the_arm(
    client: Any, session: Session, live: dict[str, Principal], make_user: Any
) -> None:
    _user, both = make_user("dual", f"coordinator:{CODE}:LDS", f"monitor:{CODE}")
    headers = token_for(session, both)
    label = enrolled(session, live["lds"])
    result = client.post(f"{BASE}/participants/{label}/randomize", headers=headers)
    assert ok(result)["randomized_at"] is not None
    assert result.get_json()["arm_code"] is None
    no_arm_in(result.get_data(as_text=True))
    problem(client.post(f"{BASE}/participants/{label}/randomize", headers=headers), 409)


def test_allocation_list_before_going_live_is_a_conflict(
    client: Any, trial: dict[str, Principal], h: dict[str, dict[str, str]]
) -> None:
    problem(client.get(f"{BASE}/allocation-list", headers=h["unblinded"]), 409)


def test_go_live_refuses_a_bad_slot_count(
    client: Any, session: Session, trial: Any, h: dict[str, dict[str, str]]
) -> None:
    before = counts(session)
    for value in (0, 100_001, "12", 1.5):
        body = problem(
            client.post(f"{BASE}/go-live", json={"slots_per_stratum": value}, headers=h["sponsor"]), 422
        )
        assert [e["field"] for e in body["errors"]] == ["slots_per_stratum"]
    problem(client.post(f"{BASE}/go-live", json={}, headers=h["lds"]), 403)
    assert counts(session) == before


def test_csv_cells_that_a_spreadsheet_would_run_are_defused() -> None:
    now = datetime.now(UTC)
    listing = reads.AllocationListRead(
        trial_code=CODE,
        created_at=now,
        created_by="sam",
        seed_sha256="0" * 64,
        list_sha256="0" * 64,
        slots_per_stratum=1,
        strata=["=1+1"],
        block_sizes=[3],
        rows=[
            reads.AllocationRow(
                stratum=text,
                position=1,
                block=1,
                block_size=3,
                arm_code="CBT",
                participant_label=None,
                randomized_at=now,
            )
            for text in ("=HYPERLINK(1)", "+1", "-1", "@SUM(1)", "LDS / PHQ-9 0-14")
        ],
    )
    table = list(csv.DictReader(io.StringIO(reads.allocation_csv(listing))))
    assert [r["stratum"] for r in table] == ["'=HYPERLINK(1)", "'+1", "'-1", "'@SUM(1)", "LDS / PHQ-9 0-14"]
    assert table[0]["randomized_at"] == now.isoformat()
    assert table[0]["participant_label"] == ""


# -- the OpenAPI document --------------------------------------------------------------------------


def test_the_openapi_document_describes_the_routes_and_stays_valid(client: Any) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document, cls=OpenAPIV31SpecValidator)
    paths = document["paths"]
    base = "/api/v1/trials/{code}"
    assert set(paths[f"{base}/participants"]) == {"get", "post"}
    assert set(paths[f"{base}/participants/{{label}}"]) == {"get"}
    assert set(paths[f"{base}/participants/{{label}}/enrol"]) == {"post"}
    assert set(paths[f"{base}/participants/{{label}}/randomize"]) == {"post"}
    assert set(paths[f"{base}/go-live"]) == {"post"}
    assert set(paths[f"{base}/allocation-list"]) == {"get"}
    assert set(paths[f"{base}/allocation-list.csv"]) == {"get"}
    screen = paths[f"{base}/participants"]["post"]
    assert set(screen["responses"]) == {"201", "401", "403", "404", "409", "422"}
    ref = screen["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["properties"]["screened_on"]["format"] == "date"
    assert set(paths[f"{base}/participants/{{label}}/randomize"]["post"]["responses"]) == {
        "200",
        "401",
        "403",
        "404",
        "409",
        "422",  # any request: a NUL byte in its path or query
    }


def test_dates_in_answers_are_iso(client: Any, session: Session, live: dict[str, Principal], h: Any) -> None:
    label, _arm = randomized(session, live["lds"])
    body = ok(client.get(f"{BASE}/participants/{label}", headers=h["lds"]))
    assert date.fromisoformat(body["screened_on"]) == SCREENED
    assert datetime.fromisoformat(body["randomized_at"]).tzinfo is not None
