"""Identifiers of another site's records are refused in request bodies and CSV rows, and
guessing them (sequential labels, identifiers) tells nothing; the URLs are the access matrix's
(tests/core/test_access_matrix.py)."""

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from tests.assessments.conftest import BASE, TODAY, h, make_participant, people
from trials.core.audit.models import AuditEntry
from trials.events.models import AdverseEvent
from trials.participants.models import Participant

__all__ = ["h", "make_participant", "people"]

ITEMS = {str(n): 1 for n in range(1, 10)}  # item 9 answered 1: a safety event


def count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def safety_event_of(client: Any, label: str, headers: dict[str, str]) -> str:
    response = client.post(
        f"{BASE}/participants/{label}/assessments",
        json={"instrument": "PHQ-9", "assessed_on": TODAY.isoformat(), "items": ITEMS},
        headers=headers,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(response.get_json()["safety_events"][0]["id"])


def adverse_event(safety_event_id: str) -> dict[str, Any]:
    return {
        "term": "Low mood after the alert",
        "onset_date": (TODAY - timedelta(days=1)).isoformat(),
        "serious": False,
        "severity": "mild",
        "relatedness": "possible",
        "action": "none",
        "outcome": "recovering_resolving",
        "safety_event_id": safety_event_id,
    }


def test_an_adverse_event_naming_another_sites_safety_event_is_refused(
    client: Any, session: Session, make_participant: Any, h: Any
) -> None:
    lds, man = make_participant("LDS"), make_participant("MAN")
    theirs = safety_event_of(client, man, h["man"])
    before = (count(session, AdverseEvent), count(session, AuditEntry))
    response = client.post(
        f"{BASE}/participants/{lds}/adverse-events", json=adverse_event(theirs), headers=h["lds"]
    )
    assert response.status_code in (404, 422), response.get_data(as_text=True)
    assert response.get_json()["errors"][0]["field"] == "safety_event_id"
    # The same answer as for a safety event that does not exist.
    unknown = str(uuid.uuid4())
    guessed = client.post(
        f"{BASE}/participants/{lds}/adverse-events", json=adverse_event(unknown), headers=h["lds"]
    )
    assert guessed.status_code == response.status_code
    assert guessed.get_data(as_text=True) == response.get_data(as_text=True).replace(theirs, unknown)
    # Nor through the other site's own participant: that participant is not theirs to see.
    response = client.post(
        f"{BASE}/participants/{man}/adverse-events", json=adverse_event(theirs), headers=h["lds"]
    )
    assert response.status_code == 404
    assert (count(session, AdverseEvent), count(session, AuditEntry)) == before


def test_an_adverse_event_naming_a_safety_event_of_another_participant_is_refused(
    client: Any, session: Session, make_participant: Any, h: Any
) -> None:
    first, second = make_participant("LDS"), make_participant("LDS")
    theirs = safety_event_of(client, second, h["lds"])
    response = client.post(
        f"{BASE}/participants/{first}/adverse-events", json=adverse_event(theirs), headers=h["lds"]
    )
    assert response.status_code in (404, 422), response.get_data(as_text=True)
    assert response.get_json()["errors"][0]["field"] == "safety_event_id"
    assert count(session, AdverseEvent) == 0


def test_screening_at_another_site_is_refused(client: Any, session: Session, people: Any, h: Any) -> None:
    body = {
        "site_code": "MAN",
        "screened_on": TODAY.isoformat(),
        "age_years": 30,
        "screening_phq9": 12,
        "inclusion_met": True,
        "exclusion_present": False,
    }
    response = client.post(f"{BASE}/participants", json=body, headers=h["lds"])
    assert response.status_code in (403, 404, 422), response.get_data(as_text=True)
    assert count(session, Participant) == 0


def test_an_import_row_naming_another_sites_participant_is_refused(
    client: Any, session: Session, make_participant: Any, h: Any
) -> None:
    ours, theirs = make_participant("LDS"), make_participant("MAN")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["participant", "day", "sessions", "minutes", "modules_completed"])
    writer.writerow([ours, TODAY.isoformat(), 1, 20, 0])
    writer.writerow([theirs, TODAY.isoformat(), 1, 20, 0])
    before = count(session, AuditEntry)
    response = client.post(
        f"{BASE}/imports/engagement",
        data=buffer.getvalue().encode(),
        headers={**h["lds"], "Content-Type": "text/csv"},
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    errors = response.get_json()["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(3, "participant")]
    assert count(session, AuditEntry) == before  # nothing stored, not even the first row


def test_guessing_another_sites_labels_and_identifiers_tells_nothing(
    client: Any, make_participant: Any, h: Any
) -> None:
    """The other site's participant, one that does not exist and a random identifier get the
    same answer: no way to learn which labels or records exist."""
    theirs = make_participant("MAN")
    assert theirs == "MAN-0001"
    theirs_event = safety_event_of(client, theirs, h["man"])

    def answer(path: str) -> tuple[int, str]:
        response = client.get(path, headers=h["lds"])
        return response.status_code, response.get_json()["title"]

    for number in range(1, 6):  # sequential labels
        assert answer(f"{BASE}/participants/MAN-{number:04d}") == (404, "Not found")
    assert answer(f"{BASE}/safety-events/{theirs_event}") == answer(f"{BASE}/safety-events/{uuid.uuid4()}")
    listed = client.get(f"{BASE}/participants", headers=h["lds"]).get_data(as_text=True)
    assert theirs not in listed
