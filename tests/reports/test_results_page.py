"""A stored report's analysis-results page and its downloads (results.json, manifest.json), on the
web and the API: what they show is the stored results document, byte for byte and number for
number; who may see them; a stored document altered underneath is refused.

The reports are those rendered by `conftest.report_trial` (a blinded progress report and the final
report of the committed example trial), stored here the way a job stores them, one pair per module.
"""

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
from lxml import html as lxml_html
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from reports.build import ReportContext
from tests.conftest import PASSWORD, app_config, create_user_with_grants, sign_in
from tests.reports.conftest import ARMS, CODE, ReportTrial
from trials import create_app

API = f"/api/v1/trials/{CODE}"


@dataclass(frozen=True)
class Stored:
    final: int
    blinded: int


def store(report_trial: ReportTrial, username: str, variant: str, context: ReportContext, pdf: bytes) -> int:
    """Store a rendered report as a job does (by USERNAME); its number."""
    from reports import services
    from reports.models import Variant
    from trials.core.accounts import services as accounts
    from trials.core.audit import services as audit

    with Session(report_trial.engine, expire_on_commit=False) as session:
        by = accounts.load_principal(accounts.get_user(username, session=session), session=session)
        audit.set_actor(session, accounts.actor_for(by, "web"))
        report = services.store_report(CODE, Variant(variant), context, pdf, session=session, by=by)
        session.commit()
        return report.number


@pytest.fixture(scope="module")
def stored(report_trial: ReportTrial) -> Stored:
    """The final report stored by the unblinded statistician, the blinded one by the blinded
    statistician; a clinician and a monitor of the trial besides its coordinator."""
    from trials.core.audit import services as audit

    with Session(report_trial.engine, expire_on_commit=False) as session:
        audit.set_actor(session, audit.Actor.system("system"))
        create_user_with_grants(session, "clio", f"clinician:{CODE}:LDS")
        create_user_with_grants(session, "moni", f"monitor:{CODE}")
        session.commit()
    final = store(report_trial, "stella", "final", report_trial.final.context, report_trial.final.pdf)
    blinded = store(report_trial, "blake", "blinded", report_trial.blinded.context, report_trial.blinded.pdf)
    return Stored(final=final, blinded=blinded)


@pytest.fixture
def web(report_trial: ReportTrial) -> Iterator[Any]:
    app = create_app(app_config(report_trial.url, REDIS_URL=None))
    yield app
    app.extensions["trials_db"].engine.dispose()


def signed_in(app: Any, username: str) -> Any:
    client = app.test_client()
    assert sign_in(client, username, PASSWORD).status_code == 302
    return client


def token(report_trial: ReportTrial, username: str) -> dict[str, str]:
    from trials.core.accounts import services as accounts
    from trials.core.accounts.models import TokenCreate
    from trials.core.audit import services as audit

    with Session(report_trial.engine, expire_on_commit=False) as session:
        by = accounts.load_principal(accounts.get_user(username, session=session), session=session)
        audit.set_actor(session, accounts.actor_for(by, "web"))
        _token, secret = accounts.create_token(
            TokenCreate(name="results", scope="read"), session=session, by=by
        )
        session.commit()
    return {"Authorization": f"Bearer {secret}"}


def column(report_trial: ReportTrial, number: int, name: str) -> Any:
    with report_trial.engine.connect() as conn:
        return conn.execute(
            text(f"SELECT {name} FROM generated_report WHERE number = :n"), {"n": number}
        ).scalar_one()


def audit_count(report_trial: ReportTrial) -> int:
    with report_trial.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one())


def two_decimals(value: float) -> str:
    return f"{value:.2f}"


def test_the_final_report_s_page_shows_its_stored_results(
    web: Any, report_trial: ReportTrial, stored: Stored
) -> None:
    document = json.loads(report_trial.final.context.results_json)
    [primary] = [r for r in document["results"] if r["primary"]]
    stella = signed_in(web, "stella")
    response = stella.get(f"/trials/{CODE}/reports/{stored.final}")
    assert response.status_code == 200
    page = lxml_html.fromstring(response.get_data(as_text=True))

    # The primary result: the stored numbers exactly (data attributes) and as printed.
    [row] = page.xpath("//tr[@data-analysis=$id]", id=primary["analysis_id"])
    assert "primary" in row.get("class", "")
    assert float(row.get("data-estimate")) == primary["estimate"]
    assert float(row.get("data-ci-low")) == primary["ci_low"]
    assert float(row.get("data-ci-high")) == primary["ci_high"]
    assert float(row.get("data-p-value")) == primary["p_value"]
    assert int(row.get("data-n")) == primary["n"]
    cell = {td.get("class"): td.text_content().strip() for td in row.xpath("td[@class]")}
    assert cell["estimate"] == two_decimals(primary["estimate"])
    assert cell["ci"] == f"({two_decimals(primary['ci_low'])}, {two_decimals(primary['ci_high'])})"
    p = primary["p_value"]
    assert cell["p"] == ("<0.001" if p < 0.001 else f"{p:.3f}")
    assert cell["n"] == str(primary["n"])
    # It sits in the primary estimand's table, which comes first.
    [section] = row.xpath("ancestor::section")
    assert section.get("id") == f"estimand-{primary['estimand'].lower().replace('_', '-')}"
    assert page.xpath("//section[.//table]")[0].get("id") == section.get("id")
    assert "primary estimand" in section.text_content().lower()

    # Every result of the document is on the page once, no other.
    shown = [tr.get("data-analysis") for tr in page.xpath("//tr[@data-analysis]")]
    assert sorted(shown) == sorted(r["analysis_id"] for r in document["results"])
    key_secondary = [
        s.get("id") for s in page.xpath("//section") if "key secondary" in s.text_content().lower()
    ]
    assert {"estimand-e3-gad7", "estimand-e4-response", "estimand-e6-tt-response"} <= set(key_secondary)
    sensitivity = page.xpath("//section[@id='sensitivity']//tr/@data-analysis")
    assert any(".MI." in a for a in sensitivity)
    assert any(".MMRM_UNPRORATED." in a for a in sensitivity)
    assert page.xpath("//section[@id='safety']//th[normalize-space()='Any adverse event']")

    # The header: the stored report's provenance, never computed again.
    summary = page.xpath("//article[@id='report-summary']")[0].text_content()
    assert "final (unblinded)" in summary
    assert "by stella" in summary
    for name in ("data_snapshot_sha256", "results_sha256", "protocol_sha256", "pdf_sha256"):
        assert column(report_trial, stored.final, name) in summary
    assert report_trial.final.context.provenance["sap_sha256"] in summary
    links = set(page.xpath("//article[@id='report-summary']//a/@href"))
    assert {
        f"/trials/{CODE}/reports/{stored.final}/report.pdf",
        f"/trials/{CODE}/reports/{stored.final}/results.json",
        f"/trials/{CODE}/reports/{stored.final}/manifest.json",
    } <= links
    # The reports page links each stored report's results page and downloads.
    index = lxml_html.fromstring(stella.get(f"/trials/{CODE}/reports").get_data(as_text=True))
    hrefs = set(index.xpath("//a/@href"))
    for number in (stored.final, stored.blinded):
        assert {
            f"/trials/{CODE}/reports/{number}",
            f"/trials/{CODE}/reports/{number}/results.json",
            f"/trials/{CODE}/reports/{number}/manifest.json",
        } <= hrefs


def test_a_blinded_report_s_page_holds_nothing_by_arm(
    web: Any, report_trial: ReportTrial, stored: Stored
) -> None:
    document = json.loads(report_trial.blinded.context.results_json)
    assert document["blinded"] is True
    response = signed_in(web, "blake").get(f"/trials/{CODE}/reports/{stored.blinded}")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    page = lxml_html.fromstring(body)
    assert (
        "arm-level results come with the final report"
        in page.xpath("//*[@id='blinded-notice']")[0].text_content()
    )
    groups = {td.text_content().strip() for td in page.xpath("//tr[@data-analysis]/td[2]")}
    assert groups == {"pooled"}
    shown = [tr.get("data-analysis") for tr in page.xpath("//tr[@data-analysis]")]
    assert sorted(shown) == sorted(r["analysis_id"] for r in document["results"])
    # No arm code anywhere on the page (the trial's code, which holds one, aside).
    words = body.replace(CODE, "")
    assert not [arm for arm in ARMS if re.search(rf"\b{arm}\b", words)]
    # The pooled numbers are the stored ones.
    record = next(
        r for r in document["results"] if r["estimate"] is not None and r["analysis_id"].startswith("DESC")
    )
    [row] = page.xpath("//tr[@data-analysis=$id]", id=record["analysis_id"])
    assert float(row.get("data-estimate")) == record["estimate"]


def test_results_json_is_the_stored_document_byte_for_byte(
    web: Any, report_trial: ReportTrial, stored: Stored
) -> None:
    stella = signed_in(web, "stella")
    headers = token(report_trial, "sam")
    before = audit_count(report_trial)
    for number, rendered in ((stored.final, report_trial.final), (stored.blinded, report_trial.blinded)):
        response = stella.get(f"/trials/{CODE}/reports/{number}/results.json")
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert response.data == rendered.context.results_json.encode("utf-8")
        digest = hashlib.sha256(response.data).hexdigest()
        assert (
            digest == column(report_trial, number, "results_sha256") == response.headers["X-Content-SHA256"]
        )
        assert digest == rendered.context.provenance["results_sha256"]
        assert f'filename="{CODE}-report-{number}-results.json"' in response.headers["Content-Disposition"]
        # The API gives the same bytes.
        api = web.test_client().get(f"{API}/reports/{number}/results.json", headers=headers)
        assert api.status_code == 200
        assert api.data == response.data
    # Reading is not a change: like the PDF's download, it adds nothing to the audit trail.
    assert stella.get(f"/trials/{CODE}/reports/{stored.final}/report.pdf").status_code == 200
    assert stella.get(f"/trials/{CODE}/reports/{stored.final}").status_code == 200
    assert audit_count(report_trial) == before


def test_manifest_json_is_the_bundle_s_manifest(
    web: Any, report_trial: ReportTrial, stored: Stored, tmp_path: Any
) -> None:
    from reports import bundle
    from reports.models import GeneratedReport

    sam = signed_in(web, "sam")
    response = sam.get(f"/trials/{CODE}/reports/{stored.final}/manifest.json")
    assert response.status_code == 200
    assert hashlib.sha256(response.data).hexdigest() == response.headers["X-Content-SHA256"]
    # The same bytes `trials report --out` writes to a folder for this report.
    with Session(report_trial.engine) as session:
        report = session.exec(select(GeneratedReport).where(GeneratedReport.number == stored.final)).one()
        written = bundle.write_bundle(report, tmp_path / "bundle", session=session, trial_code=CODE)
    assert response.data == written.read_bytes()
    manifest = json.loads(response.data)
    results = sam.get(f"/trials/{CODE}/reports/{stored.final}/results.json").data
    pdf = sam.get(f"/trials/{CODE}/reports/{stored.final}/report.pdf").data
    assert {e["name"]: (e["sha256"], e["bytes"]) for e in manifest["files"]} == {
        "report.pdf": (hashlib.sha256(pdf).hexdigest(), len(pdf)),
        "results.json": (hashlib.sha256(results).hexdigest(), len(results)),
    }
    assert manifest["results_sha256"] == column(report_trial, stored.final, "results_sha256")
    assert manifest["report"]["number"] == stored.final
    api = web.test_client().get(
        f"{API}/reports/{stored.final}/manifest.json", headers=token(report_trial, "sam")
    )
    assert api.status_code == 200
    assert api.data == response.data


def test_only_roles_that_view_results_reach_them(web: Any, report_trial: ReportTrial, stored: Stored) -> None:
    paths = [
        f"/trials/{CODE}/reports/{number}{suffix}"
        for number in (stored.final, stored.blinded, 9999)
        for suffix in ("", "/results.json", "/manifest.json")
    ]
    # Site staff and monitors: refused alike whether the number exists or not.
    for username in ("cora", "clio", "moni"):
        client = signed_in(web, username)
        assert {path: client.get(path).status_code for path in paths} == dict.fromkeys(paths, 403)
        api = web.test_client()
        headers = token(report_trial, username)
        assert api.get(f"{API}/reports/{stored.final}/results.json", headers=headers).status_code == 403
        assert api.get(f"{API}/reports/{stored.final}/manifest.json", headers=headers).status_code == 403
    # Nobody signed in: sent to sign in; the API asks for a token.
    anonymous = web.test_client()
    for path in paths:
        response = anonymous.get(path)
        assert response.status_code == 302
        assert "/sign-in" in response.headers["Location"]
    assert anonymous.get(f"{API}/reports/{stored.final}/results.json").status_code == 401
    # Those who view results: a number that does not exist is not found.
    assert signed_in(web, "sam").get(f"/trials/{CODE}/reports/9999").status_code == 404


@contextmanager
def written_once_off(conn: Connection) -> Iterator[None]:
    """The generated reports' write-once trigger off for one transaction (as if dropped by
    someone with the database's rights), then on again as it was."""
    if conn.dialect.name == "postgresql":
        present = conn.execute(
            text("SELECT count(*) FROM pg_trigger WHERE tgname = 'generated_report_written_once'")
        ).scalar_one()
        if present:
            conn.execute(text("ALTER TABLE generated_report DISABLE TRIGGER generated_report_written_once"))
        yield
        if present:
            conn.execute(text("ALTER TABLE generated_report ENABLE TRIGGER generated_report_written_once"))
        return
    name = "generated_report_written_once_update"
    sql = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"), {"n": name}
    ).scalar()
    if sql is not None:
        conn.execute(text(f"DROP TRIGGER {name}"))
    yield
    if sql is not None:
        conn.execute(text(sql))


def test_a_stored_results_document_altered_underneath_is_refused(
    web: Any, report_trial: ReportTrial, stored: Stored, tmp_path: Any
) -> None:
    from reports import bundle
    from reports.models import GeneratedReport
    from trials.core.errors import Conflict

    rendered = report_trial.final
    document = json.loads(rendered.context.results_json)
    primary = next(r for r in document["results"] if r["primary"])
    primary["estimate"] = -9.99  # a better effect than the data gave
    forged = json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    forged_context = replace(rendered.context, results_json=forged).to_json()
    urls = [f"/trials/{CODE}/reports/{{n}}{suffix}" for suffix in ("", "/results.json", "/manifest.json")]
    stella = signed_in(web, "stella")
    headers = token(report_trial, "stella")

    # The context rewritten, its hash left: refused as an altered report.
    altered = store(report_trial, "stella", "final", rendered.context, rendered.pdf)
    # The context rewritten with a matching context hash: the results hash refuses it.
    rehashed = store(report_trial, "stella", "final", rendered.context, rendered.pdf)
    with report_trial.engine.begin() as conn, written_once_off(conn):
        conn.execute(
            text("UPDATE generated_report SET context_json = :c WHERE number = :n"),
            {"c": forged_context, "n": altered},
        )
        conn.execute(
            text("UPDATE generated_report SET context_json = :c, context_sha256 = :h WHERE number = :n"),
            {"c": forged_context, "h": hashlib.sha256(forged_context.encode()).hexdigest(), "n": rehashed},
        )
    for number, message in (
        (altered, "does not match its recorded hashes"),
        (rehashed, "do not match their recorded SHA-256"),
    ):
        for url in urls:
            response = stella.get(url.format(n=number))
            assert response.status_code == 409, url
            assert message in response.get_data(as_text=True)
            assert "-9.99" not in response.get_data(as_text=True)
        api = web.test_client().get(f"{API}/reports/{number}/results.json", headers=headers)
        assert api.status_code == 409
        assert message in api.get_json()["detail"]
        # The command line's bundle takes the same path and refuses it too.
        with Session(report_trial.engine) as session:
            report = session.exec(select(GeneratedReport).where(GeneratedReport.number == number)).one()
            with pytest.raises(Conflict, match=message):
                bundle.write_bundle(report, tmp_path / str(number), session=session, trial_code=CODE)
    # The report stored as it was is still served, and the trigger is back.
    assert stella.get(f"/trials/{CODE}/reports/{stored.final}/results.json").status_code == 200
    with pytest.raises(DBAPIError, match="cannot be changed or deleted"), report_trial.engine.begin() as conn:
        conn.execute(text("UPDATE generated_report SET pdf_bytes = 1 WHERE number = :n"), {"n": altered})
