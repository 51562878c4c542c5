"""`trials demo`: set up the demo trial on the configured database and write its outputs.

Later steps (protocol registration, simulated conduct, analysis, report) join here as they are
built; each step is idempotent so the command can be run again on the same database.
"""

import json
import secrets
from pathlib import Path
from typing import Any

from trials.core.accounts import services
from trials.core.accounts.models import GrantCreate, Role, SiteCreate, TrialCreate, UserCreate
from trials.core.audit import services as audit
from trials.core.db import db
from trials.core.errors import InvalidInput, NotFound


def _password() -> str:
    return secrets.token_urlsafe(15)


def _demo_accounts(trial: str, first_site: str) -> list[tuple[str, str, Role, str | None, str | None]]:
    """(username, printed name, role, trial, site): one account per role."""
    return [
        ("admin", "Ada Admin", Role.ADMIN, None, None),
        ("sponsor", "Sam Sponsor", Role.SPONSOR, trial, None),
        ("statistician", "Stella Statistician", Role.STATISTICIAN_UNBLINDED, trial, None),
        ("blindstat", "Blake Blinded-Statistician", Role.STATISTICIAN_BLINDED, trial, None),
        ("coordinator", "Cora Coordinator", Role.COORDINATOR, trial, first_site),
        ("clinician", "Cliff Clinician", Role.CLINICIAN, trial, first_site),
        ("monitor", "Mona Monitor", Role.MONITOR, trial, None),
    ]


def _trial_and_sites(document: Any) -> tuple[str, str, list[SiteCreate]]:
    sites = [SiteCreate(code=s.code, name=s.name, country=s.country) for s in document.sites]
    return document.trial.code, " ".join(document.trial.title.split()), sites


def run_demo(*, participants: int, seed: int, out_dir: Path) -> dict[str, Any]:
    from protocols.document import example_protocol_path, parse_protocol

    document = parse_protocol(example_protocol_path().read_text(encoding="utf-8"))
    trial_code, trial_title, sites = _trial_and_sites(document)
    accounts = []
    with db.transaction() as session:
        by = services.SYSTEM
        audit.set_actor(session, services.actor_for(by, "cli"))
        existing_sites = {s.code for s in services.list_sites(session=session)}
        for new_site in sites:
            if new_site.code not in existing_sites:
                services.create_site(new_site, session=session, by=by)
        try:
            services.get_trial(trial_code, session=session)
        except InvalidInput:
            services.create_trial(TrialCreate(code=trial_code, title=trial_title), session=session, by=by)
        for username, name, role, trial, site in _demo_accounts(trial_code, sites[0].code):
            password = _password()
            try:
                user = services.get_user(username, session=session)
            except NotFound:
                services.create_user(
                    UserCreate(username=username, printed_name=name, password=password),
                    session=session,
                    by=by,
                )
                services.grant_role(
                    username, GrantCreate(role=role, trial_code=trial, site_code=site), session=session, by=by
                )
            else:
                services.set_password(user, password, session=session, reason="demo password reset")
            accounts.append(
                {"username": username, "password": password, "role": role.value, "trial": trial, "site": site}
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "trial": trial_code,
        "sites": [s.code for s in sites],
        "participants": participants,
        "seed": seed,
        "out_dir": str(out_dir),
    }
    (out_dir / "demo.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return {**summary, "accounts": accounts}
