"""Emergency unblinding of one participant: the arm to the clinician of the site only; the
record, the audit trail and the sponsors' notification without it; every refusal stores
nothing. The database lock refuses every write of this module but an emergency unblinding."""

import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from tests.assessments.conftest import BASE, TODAY, chain_verifies, ok, problem, rules
from tests.events.conftest import arm_of, no_arm_in, stored
from trials.core.audit.models import AuditEntry
from trials.core.errors import Conflict
from trials.dblock import services as dblock
from trials.events.models import EmergencyUnblinding
from trials.safety.models import Notification, OutboxMessage

ARM_NAMES = {"CBT": "MoodStep CBT", "ATTN": "Attention-control app", "WAIT": "Waitlist"}
REASON = "suspected serotonin syndrome; the emergency team needs the allocation"


def unblind(client: Any, label: str, headers: dict[str, str], reason: Any = REASON) -> Any:
    body = {} if reason is ... else {"reason": reason}
    return client.post(f"{BASE}/participants/{label}/emergency-unblinding", json=body, headers=headers)


def test_a_clinician_of_the_site_gets_the_arm_and_nobody_else_sees_it(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    label = make_participant()
    arm = arm_of(session, label)
    answer = ok(unblind(client, label, h["clin_lds"]), 201)
    assert (answer["arm_code"], answer["arm_name"]) == (arm, ARM_NAMES[arm])
    assert (answer["participant_label"], answer["site_code"], answer["unblinded_by"], answer["reason"]) == (
        label,
        "LDS",
        "cleo",
        REASON,
    )

    record = session.get(EmergencyUnblinding, uuid.UUID(answer["id"]))
    assert record is not None
    assert (record.unblinded_by, record.reason) == ("cleo", REASON)
    # The audit trail, readable by blinded monitors, records who, when and why, not the arm.
    entries = session.scalars(select(AuditEntry).where(col(AuditEntry.record_id) == answer["id"])).all()
    assert {e.field for e in entries} >= {"participant_id", "reason", "unblinded_by", "unblinded_at"}
    assert {(e.action, e.username, e.role) for e in entries} == {("insert", "cleo", "clinician")}
    no_arm_in(" ".join(f"{e.field} {e.new_value}" for e in entries))

    # Every sponsor is notified, in the app and by e-mail, without the arm.
    notes = session.scalars(
        select(Notification).where(col(Notification.emergency_unblinding_id) == record.id)
    ).all()
    mails = session.scalars(
        select(OutboxMessage).where(col(OutboxMessage.emergency_unblinding_id) == record.id)
    ).all()
    sponsors = {people["sponsor"].user_id, people["sponsor2"].user_id}
    assert {n.user_id for n in notes} == {m.user_id for m in mails} == sponsors
    for message in (*notes, *mails):
        assert message.subject == f"[MOOD-CBT-01] Emergency unblinding of participant {label}"
        assert "Cleo (cleo)" in message.body
        assert REASON in message.body
        assert record.unblinded_at.isoformat() in message.body
        no_arm_in(message.subject + message.body)

    # Listings for the sponsor, the monitor and the blinded statistician: no arm.
    for who in ("sponsor", "monitor", "blinded", "clin_lds", "lds"):
        for url in (f"{BASE}/emergency-unblindings", f"{BASE}/participants/{label}/emergency-unblindings"):
            response = client.get(url, headers=h[who])
            listed = ok(response)
            assert [r["id"] for r in listed] == [answer["id"]]
            assert "arm_code" not in listed[0]
            no_arm_in(response.get_data(as_text=True))
    assert ok(client.get(f"{BASE}/emergency-unblindings", headers=h["man"])) == []
    chain_verifies(session)


def test_blinded_users_see_no_arm_in_any_answer_of_this_module(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    ok(unblind(client, label, h["clin_lds"]), 201)
    event = ok(
        client.post(
            f"{BASE}/participants/{label}/adverse-events",
            json={
                "term": "Nausea",
                "onset_date": TODAY.isoformat(),
                "serious": False,
                "severity": "mild",
                "relatedness": "unlikely",
                "action": "none",
                "outcome": "recovering_resolving",
            },
            headers=h["lds"],
        ),
        201,
    )
    ok(
        client.post(
            f"{BASE}/participants/{label}/disposition-events",
            json={"kind": "stopped_app_use", "event_date": TODAY.isoformat(), "reason": "no activity"},
            headers=h["lds"],
        ),
        201,
    )
    for who in ("blinded", "monitor"):
        for url in (
            f"{BASE}/adverse-events",
            f"{BASE}/adverse-events/{event['id']}",
            f"{BASE}/participants/{label}/adverse-events",
            f"{BASE}/disposition-events",
            f"{BASE}/participants/{label}/disposition-events",
            f"{BASE}/emergency-unblindings",
            f"{BASE}/participants/{label}/emergency-unblindings",
        ):
            response = client.get(url, headers=h[who])
            assert response.status_code == 200, url
            no_arm_in(response.get_data(as_text=True))
        refused = unblind(client, label, h[who])
        assert refused.status_code == 403
        no_arm_in(refused.get_data(as_text=True))


@pytest.mark.parametrize("who", ["lds", "sponsor", "blinded", "monitor", "unblinded"])
def test_refused_for_every_role_but_the_clinician_and_nothing_is_stored(
    client: Any, session: Session, h: Any, make_participant: Any, who: str
) -> None:
    label = make_participant()
    before = stored(session)
    found = problem(unblind(client, label, h[who]), 403)
    assert "clinician" in found["detail"]
    no_arm_in(str(found))
    assert stored(session) == before


def test_another_sites_clinician_is_told_the_participant_does_not_exist(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    before = stored(session)
    found = problem(unblind(client, label, h["clin_man"]), 404)
    assert found["detail"] == problem(unblind(client, "LDS-9999", h["clin_man"]), 404)["detail"].replace(
        "LDS-9999", label
    )
    assert stored(session) == before


def test_a_reason_is_required_and_a_participant_not_randomized_has_no_arm(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    enrolled = make_participant(randomize=False)
    before = stored(session)
    assert rules(problem(unblind(client, label, h["clin_lds"], reason=...), 422)) == {("reason", "missing")}
    assert rules(problem(unblind(client, label, h["clin_lds"], reason=" \t "), 422)) == {
        ("reason", "string_too_short")
    }
    assert rules(problem(unblind(client, label, h["clin_lds"], reason=None), 422)) == {
        ("reason", "string_type")
    }
    found = problem(unblind(client, enrolled, h["clin_lds"]), 409)
    assert "not randomized" in found["detail"]
    assert stored(session) == before


def test_an_emergency_unblinding_can_be_neither_changed_nor_deleted(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    answer = ok(unblind(client, make_participant(), h["clin_lds"]), 201)
    record = session.get(EmergencyUnblinding, uuid.UUID(answer["id"]))
    assert record is not None
    record.reason = "something else"
    session.add(record)
    with pytest.raises(Conflict, match="cannot be changed"):
        session.flush()
    session.expire_all()
    session.delete(record)
    with pytest.raises(Conflict, match="cannot be deleted"):
        session.flush()
    session.expunge_all()
    with pytest.raises(DBAPIError, match="emergency unblindings cannot be deleted"), session.begin_nested():
        session.connection().execute(text("DELETE FROM emergency_unblinding"))
    assert session.get(EmergencyUnblinding, uuid.UUID(answer["id"])) is not None
    chain_verifies(session)


def test_the_database_lock_refuses_every_write_of_clinical_events(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    label = make_participant()
    ae = ok(
        client.post(
            f"{BASE}/participants/{label}/adverse-events",
            json={
                "term": "Insomnia",
                "onset_date": TODAY.isoformat(),
                "serious": False,
                "severity": "mild",
                "relatedness": "possible",
                "action": "none",
                "outcome": "recovering_resolving",
            },
            headers=h["lds"],
        ),
        201,
    )
    ds = ok(
        client.post(
            f"{BASE}/participants/{label}/disposition-events",
            json={"kind": "stopped_app_use", "event_date": TODAY.isoformat(), "reason": "no activity"},
            headers=h["lds"],
        ),
        201,
    )
    dblock.lock_database(
        "MOOD-CBT-01", reason="final data review done", session=session, by=people["sponsor"]
    )
    session.flush()
    before = stored(session)
    serious = {
        "term": "Self-harm",
        "onset_date": TODAY.isoformat(),
        "serious": True,
        "serious_criteria": ["hospitalization"],
        "severity": "severe",
        "relatedness": "not_related",
        "action": "app_withdrawn",
        "outcome": "recovering_resolving",
    }
    attempts = [
        client.post(f"{BASE}/participants/{label}/adverse-events", json=serious, headers=h["clin_lds"]),
        client.post(
            f"{BASE}/adverse-events/{ae['id']}/change",
            json={"severity": "moderate", "change_reason": "reassessed"},
            headers=h["lds"],
        ),
        client.post(
            f"{BASE}/participants/{label}/disposition-events",
            json={"kind": "withdrawal_by_subject", "event_date": TODAY.isoformat(), "reason": "moved away"},
            headers=h["lds"],
        ),
        client.post(
            f"{BASE}/disposition-events/{ds['id']}/change",
            json={"reason": "no app activity for 14 days", "change_reason": "more precise"},
            headers=h["lds"],
        ),
        client.post(
            f"{BASE}/disposition-events/{ds['id']}/retract", json={"reason": "in error"}, headers=h["lds"]
        ),
    ]
    for response in attempts:
        found = problem(response, 409)
        assert "the database of trial MOOD-CBT-01 is locked" in found["detail"]
        no_arm_in(found["detail"])
    assert stored(session) == before
    # A clinical emergency does not wait for an unlock: unblinding stays possible, and the
    # sponsors are told.
    revealed = ok(unblind(client, label, h["clin_lds"]), 201)
    assert revealed["arm_code"] in ("CBT", "ATTN", "WAIT")
    sponsor_notes = session.exec(
        select(Notification).where(col(Notification.emergency_unblinding_id) == uuid.UUID(revealed["id"]))
    ).all()
    assert sponsor_notes
    chain_verifies(session)
