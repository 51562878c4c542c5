"""`trials demo`: set up the demo trial on the configured database and write its outputs.

Registers and locks the example protocol, takes the trial live, simulates its conduct to the
last visit, locks the database, unblinds, and writes the final evidence bundle. Each step is
idempotent, so the command can be run again on the same database (the final report made the
first time stands).
"""

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from protocols.models import ProtocolVersion
from trials.core.accounts import services
from trials.core.accounts.models import GrantCreate, Role, SiteCreate, Trial, TrialCreate, UserCreate
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.db import db
from trials.core.errors import InvalidInput, NotFound
from trials.simulate.services import allocation_seed


@contextmanager
def _acting(username: str) -> Iterator[tuple[Session, Principal]]:
    """A transaction acting as the demo account USERNAME on the command-line channel."""
    with db.transaction() as session:
        principal = services.load_principal(services.get_user(username, session=session), session=session)
        audit.set_actor(session, services.actor_for(principal, "cli"))
        yield session, principal


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


def _register_and_lock_protocol(accounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The example protocol, registered by the sponsor and locked with the sponsor's signature.

    Idempotent: a trial that already has a locked version 1 is left as it is.
    """
    from flask import current_app

    from protocols import services as protocols
    from protocols.document import example_protocol_path

    passwords = {a["username"]: a["password"] for a in accounts}
    source = protocols.Source(example_protocol_path().read_bytes(), "yaml")
    code = source.parse().document.trial.code
    with _acting("sponsor") as (session, sponsor):
        existing = session.exec(
            select(ProtocolVersion)
            .join(Trial, col(ProtocolVersion.trial_id) == Trial.id)
            .where(Trial.code == code)
        ).first()
        if existing is None:
            protocols.register(source, session=session, by=sponsor)
        version = protocols.get_version(code, 1, session=session, by=sponsor)
        if not version.locked:
            version, _signature = protocols.lock(
                code,
                1,
                password=passwords["sponsor"],
                session=session,
                by=sponsor,
                lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
            )
        signature = protocols.signature_of(version, session=session)
        return {
            "trial": code,
            "version": version.version,
            "status": version.status,
            "content_hash": version.content_hash,
            "signature": signature.manifestation if signature else None,
        }


def _go_live(code: str, seed: int, participants: int) -> dict[str, Any]:
    """The sponsor takes the trial live: the allocation list is generated from `seed`, so the
    same seed gives the same list (a real trial draws its seed from the system's source)."""
    from sqlmodel import select as sql_select

    from trials.randomization import services as randomization
    from trials.randomization.models import AllocationList

    with _acting("sponsor") as (session, sponsor):
        trial = services.get_trial(code, session=session)
        allocation = session.exec(
            sql_select(AllocationList).where(AllocationList.trial_id == trial.id)
        ).first()
        if allocation is None:
            # The seed `trials simulate` derives from the same number: the same list either way.
            seed_bytes = allocation_seed(seed)
            # The default list (300 slots per stratum) unless the simulation needs more: any
            # stratum may, at worst, take every participant.
            allocation = randomization.go_live(
                code, session=session, by=sponsor, seed=seed_bytes, slots_per_stratum=max(300, participants)
            )
        return {
            "list_sha256": allocation.list_sha256,
            "seed_sha256": allocation.seed_sha256,
            "slots_per_stratum": allocation.slots_per_stratum,
        }


def _simulate(code: str, participants: int, seed: int) -> dict[str, Any]:
    """The example trial's conduct, simulated through the platform's services (once: a trial
    that already has participants is left as it is)."""
    import dataclasses

    from trials.participants.models import Participant
    from trials.simulate import services as simulation

    with db.transaction() as session:
        trial = services.get_trial(code, session=session)
        existing = session.exec(select(Participant.id).where(Participant.trial_id == trial.id)).first()
        if existing is not None:
            count = len(session.exec(select(Participant.id).where(Participant.trial_id == trial.id)).all())
            return {"simulated": False, "participants_on_record": count}
        report = simulation.simulate(code, participants_wanted=participants, seed=seed, session=session)
        return {"simulated": True, **dataclasses.asdict(report)}


def _close_and_unblind(code: str) -> dict[str, Any]:
    """The end of the trial: the sponsor locks the database, the unblinded statistician unblinds
    it, each with a recorded reason (skipped where already done)."""
    from trials.analyses import unblinding
    from trials.dblock import services as dblock

    with _acting("sponsor") as (session, sponsor):
        trial = services.get_trial(code, session=session)
        lock = dblock.current_lock(trial.id, session=session)
        if lock is None:
            lock = dblock.lock_database(
                code,
                reason="Demo: last participant's last visit done, data entry complete",
                session=session,
                by=sponsor,
            )
    with _acting("statistician") as (session, statistician):
        record = unblinding.unblinding_of(trial.id, session=session)
        if record is None:
            record = unblinding.unblind_trial(
                code,
                reason="Demo: final analysis under the locked plan after the database lock",
                session=session,
                by=statistician,
            )
        return {
            "database_locked_at": lock.locked_at.isoformat(),
            "unblinded_at": record.unblinded_at.isoformat(),
            "unblinding_reason": record.reason,
        }


def _final_report(code: str, out_dir: Path) -> dict[str, Any]:
    """The final report generated by the statistician, stored, and written with its evidence
    bundle (report.pdf, results.json, manifest.json) to the output folder. Once the trial is
    unblinded its data are final: a final report already made stands and is written again."""
    from reports import bundle
    from reports import services as reports
    from reports.models import GeneratedReport, Variant

    with _acting("statistician") as (session, statistician):
        existing = next(
            (
                r.id
                for r in reports.list_reports(code, session=session, by=statistician)
                if r.variant == "final"
            ),
            None,
        )
    report_id = existing or reports.generate_now(code, Variant.FINAL, username="statistician", channel="cli")
    with db.transaction() as session:
        stored = session.get(GeneratedReport, report_id)
        assert stored is not None
        manifest = bundle.write_bundle(stored, out_dir, session=session, trial_code=code)
        return {
            "number": stored.number,
            "variant": stored.variant,
            "path": str(out_dir / "report.pdf"),
            "pdf_sha256": stored.pdf_sha256,
            "results": str(out_dir / "results.json"),
            "manifest": str(manifest),
            "data_snapshot_sha256": stored.data_snapshot_sha256,
        }


def _submission(code: str, out_dir: Path) -> dict[str, Any]:
    """The SDTM and ADaM packages exported by the statistician into the bundle's folder
    (sdtm/, adam/), checked, and listed with their hashes in the bundle's manifest."""
    from datetime import UTC, datetime

    from reports import bundle
    from reports.submission.export import export_submission

    with _acting("statistician") as (session, statistician):
        result = export_submission(code, out_dir, session=session, by=statistician)
    conformance = {
        folder: {
            "errors": sum(1 for f in found if f.severity == "error"),
            "warnings": sum(1 for f in found if f.severity != "error"),
            "findings": [f"{f.rule} {f.dataset or ''}.{f.variable or ''}: {f.message}" for f in found],
        }
        for folder, found in result.findings.items()
    }
    bundle.record_submission(
        out_dir,
        trial_code=code,
        submission={
            "exported_at": datetime.now(UTC).isoformat(),
            "exported_by": "statistician",
            "data_snapshot_sha256": result.data_snapshot_sha256,
            "conformance": {
                k: {"errors": v["errors"], "warnings": v["warnings"]} for k, v in conformance.items()
            },
        },
    )
    return {
        "files": len(result.files),
        "folders": [str(out_dir / f) for f in ("sdtm", "adam")],
        **conformance,
    }


def _blinded_results(code: str, out_dir: Path) -> dict[str, Any]:
    """While the trial is in progress: the pooled analysis results, run by the statistician."""
    from trials.analyses import services as analyses

    with _acting("statistician") as (session, statistician):
        document = analyses.analyze(code, session=session, by=statistician, blinded=True)
    path = out_dir / "results.json"
    path.write_text(document.to_json(), encoding="utf-8")
    return {"path": str(path), "blinded": document.blinded, "results": len(document.results)}


def run_demo(*, participants: int, seed: int, out_dir: Path, in_progress: bool = False) -> dict[str, Any]:
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
            # The trial is created from the protocol document, as registration does; the demo
            # creates it first so that the accounts can be granted roles in it.
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
    protocol = _register_and_lock_protocol(accounts)
    protocol["allocation"] = _go_live(protocol["trial"], seed, participants)
    simulation = _simulate(protocol["trial"], participants, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    if in_progress:
        end, report, submission = None, None, None
        results = _blinded_results(protocol["trial"], out_dir)
    else:
        end = _close_and_unblind(protocol["trial"])
        report = _final_report(protocol["trial"], out_dir)
        submission = _submission(protocol["trial"], out_dir)
        results = {"path": report["results"], "blinded": False}
    summary = {
        "protocol": protocol,
        "trial": trial_code,
        "sites": [s.code for s in sites],
        "participants": participants,
        "seed": seed,
        "simulation": simulation,
        "end": end,
        "report": report,
        "submission": submission,
        "results": results,
        "out_dir": str(out_dir),
    }
    (out_dir / "demo.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return {**summary, "accounts": accounts}
