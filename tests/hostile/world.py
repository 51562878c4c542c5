"""A trial whose every free-text field holds script, HTML and SQL, entered as users enter them.

`build` makes it on a migrated database and commits it: the example protocol with a payload in
each of its names, titles and descriptions (which become the trial's title and its sites'
names), a coordinator and a clinician whose printed names are payloads, and through the API a
participant with an assessment (a safety event, followed up with a payload referral), an
adverse event (term changed with a reason), a disposition event, an emergency unblinding, an
imported engagement file named by a payload, then the database lock and the trial's
unblinding, each with a payload reason, and the blinded evidence report stored. `stored`
names where each payload must come back.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from sqlmodel import Session

from tests.conftest import EXAMPLE_TRIAL, app_config, bearer, create_user_with_grants
from tests.core.access_matrix import ADVERSE_EVENT
from tests.core.test_access_matrix import stored_report
from trials import create_app
from trials.core.accounts import services as accounts
from trials.core.accounts.models import SiteCreate, TokenCreate
from trials.core.audit import services as audit
from trials.core.db import make_engine

CODE = EXAMPLE_TRIAL
API = f"/api/v1/trials/{CODE}"
TODAY = datetime.now(UTC).date()
RANDOMIZED = TODAY - timedelta(days=40)

# Markup that would run or load something if a page or the PDF let it through as markup.
SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(2)>"
BREAKOUT = '"><svg onload=alert(3)>'
JAVASCRIPT_URL = "javascript:alert(4)"
# SQL that would change the database if any query were built by pasting text into it.
SQL = ["'; DROP TABLE participant; --", "' OR '1'='1", '\\"); DELETE FROM audit_entry; --']
SHORT = f"{BREAKOUT}{SCRIPT}'--"  # for fields of at most 100 characters


def payload(tag: str, max_length: int = 200) -> str:
    """A payload named by `tag` (so that a page showing it can be traced to its field)."""
    text = f"{tag} {SCRIPT}{IMAGE}{BREAKOUT} {JAVASCRIPT_URL} {' '.join(SQL)}"
    if len(text) > max_length:
        text = f"{tag} {SHORT}"
    assert len(text) <= max_length, tag
    return text


@dataclass
class World:
    url: str
    app: Any
    label: str
    records: dict[str, str]
    headers: dict[str, dict[str, str]]
    # "table.column" -> the payloads that column must hold, byte for byte.
    stored: dict[str, list[str]] = field(default_factory=dict)


def _hostile_protocol() -> tuple[str, list[str]]:
    """The example protocol, every name, title and description replaced by a payload."""
    from protocols.document import example_protocol_path

    document = yaml.safe_load(example_protocol_path().read_text())
    texts: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and key in ("name", "title", "short_title", "description"):
                    limit = 80 if key == "short_title" else 200
                    node[key] = payload(f"P{len(texts)}", limit)
                    texts.append(node[key])
                else:
                    walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}.{index}")

    walk(document, "")
    return json.dumps(document), texts


def _ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def build(url: str) -> World:
    from protocols import services as protocols
    from trials.randomization import services as randomization

    source_text, protocol_texts = _hostile_protocol()
    stored: dict[str, list[str]] = {"protocol_version.source_text": [source_text]}
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        audit.set_actor(session, audit.Actor.system("system"))
        source = protocols.Source(source_text.encode(), "json")
        document = source.parse().document
        for site in document.sites:
            accounts.create_site(
                SiteCreate(code=site.code, name=site.name, country=site.country),
                session=session,
                by=accounts.SYSTEM,
            )
        stored["site.name"] = [site.name for site in document.sites]
        stored["trial.title"] = [document.trial.title]
        protocols.register(source, session=session, by=accounts.SYSTEM)
        names = {
            "sponsor": ("sam", "sponsor", payload("N-sponsor")),
            "coordinator": ("cora", "coordinator:LDS", payload("N-coordinator")),
            "clinician": ("cleo", "clinician:LDS", payload("N-clinician")),
            "statistician": ("una", "statistician_unblinded", payload("N-statistician")),
            "monitor": ("moe", "monitor", payload("N-monitor")),
            "admin": ("ada", "", payload("N-admin")),
        }
        people = {}
        for key, (username, grant, printed) in names.items():
            role, _, site = grant.partition(":")
            spec = ("admin",) if key == "admin" else (f"{role}:{CODE}" + (f":{site}" if site else ""),)
            people[key] = create_user_with_grants(session, username, *spec, name=printed)[1]
        stored["user_account.printed_name"] = [printed for _, _, printed in names.values()]
        protocols.lock(
            CODE,
            1,
            password="correct horse battery staple",
            session=session,
            by=people["sponsor"],
            lockout_threshold=6,
        )
        randomization.go_live(
            CODE, session=session, by=people["sponsor"], seed=b"\x09" * 32, slots_per_stratum=12
        )
        headers = {name: bearer(session, principal) for name, principal in people.items()}
        token_name = payload("T-token", 100)
        accounts.create_token(
            TokenCreate(name=token_name, scope="read"), session=session, by=people["coordinator"]
        )
        stored["api_token.name"] = [token_name]
        session.commit()
    engine.dispose()

    app = create_app(app_config(url, REDIS_URL=None))
    client = app.test_client()
    lds = headers["coordinator"]
    screened = _ok(
        client.post(
            f"{API}/participants",
            json={
                "site_code": "LDS",
                "screened_on": (RANDOMIZED - timedelta(days=7)).isoformat(),
                "age_years": 30,
                "screening_phq9": 12,
                "inclusion_met": True,
                "exclusion_present": False,
            },
            headers=lds,
        )
    )
    label = screened["label"]
    base = f"{API}/participants/{label}"
    _ok(
        client.post(
            f"{base}/enrol", json={"consent_date": (RANDOMIZED - timedelta(days=7)).isoformat()}, headers=lds
        ),
        200,
    )
    _ok(client.post(f"{base}/randomize", json={}, headers=lds), 200)
    assessment = _ok(
        client.post(
            f"{base}/assessments",
            json={
                "instrument": "PHQ-9",
                "assessed_on": TODAY.isoformat(),
                "items": {str(n): 1 for n in range(1, 10)},
            },
            headers=lds,
        )
    )
    safety_event = assessment["safety_events"][0]["id"]
    referral, notes = payload("S-referral", 2000), payload("S-notes", 2000)
    _ok(
        client.post(
            f"{API}/safety-events/{safety_event}/follow-up",
            json={"risk_assessment_done": True, "referral": referral, "notes": notes},
            headers=headers["clinician"],
        ),
        200,
    )
    stored["safety_event.referral"] = [referral]
    correction_reason = payload("A-correction", 2000)
    _ok(
        client.post(
            f"{API}/assessments/{assessment['id']}/correct",
            json={"items": {str(n): 2 for n in range(1, 10)}, "reason": correction_reason},
            headers=lds,
        ),
        200,
    )
    term, changed_term = payload("E-term"), payload("E-term2")
    ae = _ok(
        client.post(
            f"{base}/adverse-events",
            json={**ADVERSE_EVENT, "term": term, "onset_date": (TODAY - timedelta(days=10)).isoformat()},
            headers=lds,
        )
    )
    change_reason = payload("E-change", 2000)
    _ok(
        client.post(
            f"{API}/adverse-events/{ae['id']}/change",
            json={"term": changed_term, "change_reason": change_reason},
            headers=lds,
        ),
        200,
    )
    stored["adverse_event.term"] = [changed_term]
    disposition_reason = payload("D-reason", 2000)
    disposition = _ok(
        client.post(
            f"{base}/disposition-events",
            json={"kind": "stopped_app_use", "event_date": TODAY.isoformat(), "reason": disposition_reason},
            headers=lds,
        )
    )
    stored["disposition_event.reason"] = [disposition_reason]
    unblinding_reason = payload("U-emergency", 2000)
    _ok(
        client.post(
            f"{base}/emergency-unblinding", json={"reason": unblinding_reason}, headers=headers["clinician"]
        )
    )
    stored["emergency_unblinding.reason"] = [unblinding_reason]
    # A file name keeps only its last part (tests/hostile/test_paths.py): no slash here.
    filename = f"F-file {IMAGE}{BREAKOUT} {JAVASCRIPT_URL} {SQL[0]} {SQL[1]}.csv"
    csv_text = f"participant,day,sessions,minutes,modules_completed\r\n{label},{TODAY.isoformat()},1,20,0\r\n"
    _ok(
        client.post(
            f"{API}/imports/engagement",
            data=csv_text.encode(),
            headers={**lds, "Content-Type": "text/csv"},
            query_string={"filename": filename},
        ),
    )
    stored["import_batch.filename"] = [filename]
    amended = json.loads(source_text)
    amended["trial"]["short_title"] = payload("P-amended", 80)
    amendment_reason = payload("R-amendment", 2000)
    _ok(
        client.post(
            f"/api/v1/protocols/{CODE}/amendments",
            json={"document": amended, "reason": amendment_reason},
            headers=headers["sponsor"],
        )
    )
    stored["protocol_version.amendment_reason"] = [amendment_reason]
    lock_reason = payload("L-lock", 2000)
    _ok(client.post(f"{API}/database-lock", json={"reason": lock_reason}, headers=headers["sponsor"]))
    stored["database_lock.reason"] = [lock_reason]
    trial_reason = payload("U-trial", 2000)
    _ok(client.post(f"{API}/unblinding", json={"reason": trial_reason}, headers=headers["statistician"]))
    stored["trial_unblinding.reason"] = [trial_reason]
    # Reasons and changed values are kept in the audit trail.
    stored["audit_entry.reason"] = [correction_reason, change_reason, lock_reason]
    stored["audit_entry.new_value"] = [audit.encode_value(changed_term), audit.encode_value(referral)]
    records = {
        "job_id": stored_report(url, rendered=True)["job_id"],
        "label": label,
        "assessment_id": assessment["id"],
        "safety_event_id": safety_event,
        "adverse_event_id": ae["id"],
        "disposition_id": disposition["id"],
    }
    return World(url, app, label, records, headers, stored)
