"""`trials export` end to end: a simulated trial, locked and unblinded, exported to SDTM and ADaM
transport files; read back, described, checked, and tied to the analysis engine's results."""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from lxml import etree
from sqlalchemy import Engine, text
from sqlmodel import Session

from analysis.survival import event_from_cnsr
from reports.submission import check, define, xpt
from reports.submission.export import ExportResult, export_submission
from tests.conftest import create_database, drop_database, run_cli
from tests.reports.conftest import CODE, people_of
from trials.analyses import unblinding
from trials.analyses.services import run_analysis
from trials.core import migrate
from trials.core.accounts import services as accounts
from trials.core.audit import services as audit
from trials.core.db import make_engine
from trials.core.errors import Conflict, Forbidden
from trials.dblock import services as dblock
from trials.simulate import services as simulation

PARTICIPANTS = 40
SEED = 11
SDTM_FILES = {"dm", "ds", "ae", "qs", "ex", "sv", "ts"}
ADAM_FILES = {"adsl", "adqs", "adtte"}


@dataclass
class Exported:
    url: str
    engine: Engine
    out: Path
    result: ExportResult
    people: dict[str, Any]
    refused_before_lock: str
    refused_before_unblinding: str


@pytest.fixture(scope="session")
def exported(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    url = create_database(backend, tmp_path_factory.mktemp("export-db"))
    engine = make_engine(url)
    out = tmp_path_factory.mktemp("export") / "bundle"
    try:
        migrate.upgrade(url)
        with Session(engine, expire_on_commit=False) as session:
            audit.set_actor(session, audit.Actor.system("system"))
            people = people_of(session)
            simulation.simulate(CODE, participants_wanted=PARTICIPANTS, seed=SEED, session=session)
            session.commit()
            stat = people["stat"]
            with pytest.raises(Conflict) as before_lock:
                export_submission(CODE, out, session=session, by=stat)
            dblock.lock_database(CODE, reason="all queries closed", session=session, by=people["sponsor"])
            with pytest.raises(Conflict) as before_unblinding:
                export_submission(CODE, out, session=session, by=stat)
            unblinding.unblind_trial(CODE, reason="final analysis per the SAP", session=session, by=stat)
            session.commit()
            audit.set_actor(session, accounts.actor_for(stat, "cli"))
            result = export_submission(CODE, out, session=session, by=stat)
            session.commit()
        yield Exported(
            url, engine, out, result, people, before_lock.value.detail, before_unblinding.value.detail
        )
    finally:
        engine.dispose()
        drop_database(url)


def test_export_needs_the_lock_and_the_unblinding(exported: Exported) -> None:
    assert "the database lock" in exported.refused_before_lock
    assert "unblinding" in exported.refused_before_unblinding
    assert "the database lock" not in exported.refused_before_unblinding


def test_a_coordinator_cannot_export(exported: Exported, tmp_path: Path) -> None:
    """Exporting needs the right to generate reports (sponsor, statisticians) and, like the final
    report, the unblinding; a site's coordinator has neither."""
    with Session(exported.engine) as session:
        audit.set_actor(session, audit.Actor.system("system"))
        with pytest.raises(Forbidden):
            export_submission(CODE, tmp_path / "x", session=session, by=exported.people["coordinator"])
        assert not (tmp_path / "x").exists()
        session.rollback()


def test_the_packages_hold_one_transport_file_a_csv_copy_and_a_define_each(exported: Exported) -> None:
    for folder, names in (("sdtm", SDTM_FILES), ("adam", ADAM_FILES)):
        files = {p.name for p in (exported.out / folder).iterdir()}
        xpts = {n[:-4] for n in files if n.endswith(".xpt")}
        assert names <= xpts  # and the SUPP-- datasets that have records
        assert {n[:-4] for n in files if n.endswith(".csv")} == xpts
        assert "define.xml" in files
        assert all(n == n.lower() for n in files)
    listed = {str(f.path) for f in exported.result.files}
    on_disk = {
        f"{p.parent.name}/{p.name}" for folder in ("sdtm", "adam") for p in (exported.out / folder).iterdir()
    }
    assert listed == on_disk
    for f in exported.result.files:
        assert hashlib.sha256((exported.out / f.path).read_bytes()).hexdigest() == f.sha256


def test_every_transport_file_reads_back_as_the_frame_written(exported: Exported) -> None:
    for package in (exported.result.sdtm, exported.result.adam):
        for name, frame in package.frames.items():
            path = exported.out / package.folder / f"{name.lower()}.xpt"
            read, _info = xpt.read_xpt(path)
            back = xpt.to_package_frame(read, package.datasets[name])
            pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_dtype=True)


def test_define_lists_exactly_the_datasets_and_variables_written(exported: Exported) -> None:
    for package in (exported.result.sdtm, exported.result.adam):
        path = exported.out / package.folder / "define.xml"
        etree.parse(str(path))  # well formed
        summary = define.read_define(path)
        written = {p.stem.upper() for p in (exported.out / package.folder).glob("*.xpt")}
        assert set(summary.datasets) == written
        for name in written:
            frame, _info = xpt.read_xpt(exported.out / package.folder / f"{name.lower()}.xpt")
            assert summary.datasets[name].names == list(frame.columns)
            assert summary.datasets[name].names == package.datasets[name].names


def test_the_conformance_check_finds_only_the_missing_meddra_coding(exported: Exported) -> None:
    """MedDRA coding is not done by the platform: AEDECOD stays empty and the check says so.
    Nothing else is wrong with the exported packages."""
    errors = {
        (folder, f.dataset, f.variable, f.rule)
        for folder, found in exported.result.findings.items()
        for f in found
        if f.severity == "error"
    }
    has_ae = len(exported.result.sdtm.frames["AE"]) > 0
    warnings = [f for found in exported.result.findings.values() for f in found if f.severity != "error"]
    assert warnings == []
    assert errors <= {("sdtm", "AE", "AEDECOD", "required")}
    assert bool(errors) == has_ae
    # The same on a second look at the written folders.
    again = check.check_package_folders(exported.out)
    assert {
        (f.dataset, f.variable, f.rule) for found in again.values() for f in found if f.severity == "error"
    } == {(d, v, r) for _f, d, v, r in errors}


def test_adtte_censoring_agrees_with_the_engine(exported: Exported) -> None:
    """CNSR read back from adtte.xpt against the event flags the analysis engine counted: per
    parameter, arm and subject, and the Kaplan-Meier event counts of the results document."""
    adtte, _info = xpt.read_xpt(exported.out / "adam" / "adtte.xpt")
    with Session(exported.engine) as session:
        analysis = run_analysis(CODE, session=session, by=exported.people["stat"])
        session.rollback()
    engine_tte = analysis.frames.adtte
    mine = adtte.assign(subject=adtte["USUBJID"].str.removeprefix(f"{CODE}-"))
    merged = mine.merge(
        engine_tte,
        left_on=["subject", "PARAMCD"],
        right_on=["subject", "paramcd"],
        how="outer",
        indicator=True,
    )
    assert set(merged["_merge"]) == {"both"}
    engine_event = event_from_cnsr(merged["cnsr"]).to_numpy(dtype=bool)
    assert ((merged["CNSR"] == 0).to_numpy() == engine_event).all()
    assert (merged["AVAL"].to_numpy() == merged["aval"].to_numpy()).all()

    # The results document's Kaplan-Meier events (full analysis set, no event past the end of
    # follow-up, no intercurrent-event adjustment noted) are the events of adtte.xpt.
    paramcd = {"first_response": "TTRESP", "first_remission": "TTREMIT", "stopping_app_use": "TTSTOPAP"}
    document = analysis.document
    checked = 0
    for record in analysis.results.results:
        if ".KM_MEDIAN." not in record.analysis_id or record.arm in (None, "POOLED"):
            continue
        endpoint = document.endpoint(record.endpoint)
        code = paramcd[str(endpoint.event)]
        day = document.visit(endpoint.visit).day
        adjusted = ("censored at an intercurrent event", "changed by the composite strategy")
        if any(a in n for n in record.notes for a in adjusted):
            continue
        rows = adtte[(adtte["PARAMCD"] == code) & (adtte["TRTP"] == document.arm(record.arm).name)]
        events = int(((rows["CNSR"] == 0) & (rows["AVAL"] <= day)).sum())
        assert events == record.statistics["n_events"], record.analysis_id
        checked += 1
    assert checked >= 2


def test_adqs_is_the_engine_s_parameter_by_visit_table(exported: Exported) -> None:
    adqs, _info = xpt.read_xpt(exported.out / "adam" / "adqs.xpt")
    engine = exported.result.adam.frames["ADQS"]
    assert len(adqs) == len(engine)
    both = adqs.dropna(subset=["AVAL", "BASE", "CHG"])
    assert (both["CHG"] == both["AVAL"] - both["BASE"]).all()
    baselines = adqs[adqs["ABLFL"] == "Y"].groupby(["USUBJID", "PARAMCD"]).size()
    assert (baselines == 1).all()
    prorated = adqs[adqs["DTYPE"] == "PRORATED"]
    assert (prorated["ITEMSANS"] < 9).all() or prorated.empty


def test_qs_carries_a_collected_phq9_as_submitted(exported: Exported) -> None:
    """One PHQ-9 from the database against its QS records: codes, answer text, 0-3, recall."""
    qs, _info = xpt.read_xpt(exported.out / "sdtm" / "qs.xpt")
    with exported.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT p.label, a.assessed_on, a.visit_code, a.item_1, a.item_2, a.item_3, a.item_4, "
                "a.item_5, a.item_6, a.item_7, a.item_8, a.item_9, a.item_10 FROM assessment a "
                "JOIN participant p ON p.id = a.participant_id WHERE a.instrument = 'PHQ-9' "
                "ORDER BY p.label, a.assessed_on LIMIT 1"
            )
        ).one()
    label, on, _visit, *items = row
    on = on if isinstance(on, str) else on.isoformat()
    mine = qs[(qs["USUBJID"] == f"{CODE}-{label}") & (qs["QSDTC"] == on) & (qs["QSCAT"] == "PHQ-9")]
    answers = {
        "0": "Not at all",
        "1": "Several days",
        "2": "More than half the days",
        "3": "Nearly every day",
    }
    for n, value in enumerate(items[:9], start=1):
        rec = mine[mine["QSTESTCD"] == f"PHQ01{n:02d}"]
        assert len(rec) == 1
        rec = rec.iloc[0]
        assert rec["QSEVLINT"] == "-P2W"
        if value is None:
            assert rec["QSSTAT"] == "NOT DONE"
        else:
            assert rec["QSSTRESC"] == str(value)
            assert rec["QSSTRESN"] == value
            assert rec["QSORRES"] == answers[str(value)]


def test_the_export_is_on_the_audit_trail(exported: Exported) -> None:
    with exported.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT username, new_value FROM audit_entry WHERE action = 'submission_exported'")
        ).all()
    assert len(rows) == 1
    assert rows[0][0] == "stella"
    listing = json.dumps([[str(f.path), f.sha256] for f in exported.result.files], separators=(",", ":"))
    assert hashlib.sha256(listing.encode()).hexdigest() in rows[0][1]


def test_the_cli_exports_into_the_bundle_and_checks(exported: Exported, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = run_cli(exported.url, "export", CODE, "--out", str(out), "--as", "stella", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    manifest = json.loads((out / "manifest.json").read_text())
    names = {f["name"] for f in manifest["files"]}
    assert {f"sdtm/{n}.xpt" for n in SDTM_FILES} | {f"adam/{n}.xpt" for n in ADAM_FILES} <= names
    assert {"sdtm/define.xml", "adam/define.xml"} <= names
    for entry in manifest["files"]:
        assert hashlib.sha256((out / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["submission"]["exported_by"] == "stella"
    assert data["files"]
    assert data["manifest"] == str(out / "manifest.json")

    checked = run_cli(exported.url, "export", "--check", str(out), "--json")
    found = json.loads(checked.stdout)
    errors = [f for folder in found.values() for f in folder if f["severity"] == "error"]
    assert checked.exit_code == (1 if errors else 0)

    # A deliberately broken file is found: a USUBJID that is not in DM.
    import pyreadstat

    frame, meta = pyreadstat.read_xport(str(out / "sdtm" / "sv.xpt"))
    frame.loc[0, "USUBJID"] = f"{CODE}-NOBODY"
    pyreadstat.write_xport(
        frame,
        str(out / "sdtm" / "sv.xpt"),
        file_format_version=5,
        table_name="SV",
        column_labels=list(meta.column_labels),
    )
    broken = run_cli(exported.url, "export", "--check", str(out), "--json")
    assert broken.exit_code == 1
    rules = {(f["dataset"], f["rule"]) for f in json.loads(broken.stdout)["sdtm"]}
    assert ("SV", "usubjid.dm") in rules


def test_the_cli_refuses_an_export_without_the_right(exported: Exported, tmp_path: Path) -> None:
    result = run_cli(exported.url, "export", CODE, "--out", str(tmp_path / "x"), "--as", "cora")
    assert result.exit_code == 1
    assert "Error:" in result.output
    assert not (tmp_path / "x" / "sdtm").exists()


def _export(exported: Exported, out: Path) -> ExportResult:
    with Session(exported.engine) as session:
        audit.set_actor(session, accounts.actor_for(exported.people["stat"], "cli"))
        try:
            return export_submission(CODE, out, session=session, by=exported.people["stat"])
        finally:
            session.rollback()


def test_a_failure_in_either_package_writes_nothing(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both packages are staged and moved into place together: when the second cannot be
    written, the folder keeps exactly what it held before."""
    from reports.submission import xpt as xpt_module

    out = tmp_path / "bundle"
    first = _export(exported, out)
    before = {f: (out / f.path).read_bytes() for f in first.files}
    real = xpt_module.write_package

    def failing(package: Any, folder: Path, **kwargs: Any) -> Any:
        if package.folder == "adam":
            raise OSError("disk full")
        return real(package, folder, **kwargs)

    monkeypatch.setattr(xpt_module, "write_package", failing)
    with pytest.raises(OSError, match="disk full"):
        _export(exported, out)
    assert {f: (out / f.path).read_bytes() for f in first.files} == before
    assert sorted(p.name for p in out.iterdir()) == ["adam", "sdtm"]  # no staging folder left


def test_a_folder_the_export_did_not_write_is_never_replaced(exported: Exported, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    (out / "sdtm").mkdir(parents=True)
    (out / "sdtm" / "notes.txt").write_text("the sponsor's own file")
    with pytest.raises(Conflict, match="is not a package written by `trials export`"):
        _export(exported, out)
    assert (out / "sdtm" / "notes.txt").read_text() == "the sponsor's own file"
    assert not (out / "adam").exists()


def test_the_datasets_never_join_a_bundle_of_other_data(exported: Exported, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    manifest = {
        "schema": "trials.evidence-bundle",
        "trial": CODE,
        "files": [],
        "data_snapshot_sha256": "0" * 64,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Conflict, match="another data snapshot"):
        _export(exported, out)
    manifest["report"] = {"variant": "blinded"}
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Conflict, match="blinded progress report"):
        _export(exported, out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_the_cli_check_needs_a_package_folder_and_nothing_else(exported: Exported, tmp_path: Path) -> None:
    empty = run_cli(exported.url, "export", "--check", str(tmp_path))
    assert empty.exit_code == 1
    assert "holds neither sdtm/ nor adam/" in empty.output
    mixed = run_cli(exported.url, "export", CODE, "--check", str(tmp_path))
    assert mixed.exit_code == 2
    assert "--check takes a folder and nothing else" in mixed.output
    missing = run_cli(exported.url, "export", CODE, "--out", str(tmp_path / "x"))
    assert missing.exit_code == 2
    assert "--as USERNAME" in missing.output
