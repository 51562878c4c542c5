"""The analysis-results dataset through the API and the command line: pooled only until the
trial is unblinded, whoever asks; by arm after; byte-identical for the same data."""

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from tests.assessments.conftest import BASE, CODE, ok, problem
from tests.conftest import bearer, create_database, drop_database, run_cli, set_up_example_trial
from trials.core import migrate
from trials.dblock import services as dblock
from trials.simulate import services as simulation

ARMS = {"CBT", "ATTN", "WAIT"}
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "stat": "stella:statistician_unblinded:TRIAL",
    "blind": "blake:statistician_blinded:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
}


def arm_level(document: dict[str, Any]) -> list[str]:
    """Analysis ids of results that are by arm or compare arms, or name an arm anywhere."""
    found = []
    for r in document["results"]:
        named = {r.get("arm"), r.get("comparison")} | {
            str(v) for v in r["parameters"].values() if isinstance(v, str)
        }
        if (
            r.get("arm")
            or r.get("comparison")
            or named & ARMS
            or any(a in r["analysis_id"].split(".") for a in ARMS)
        ):
            found.append(r["analysis_id"])
    return found


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Any]:
    people = set_up_example_trial(session, make_site, make_user, STAFF)
    simulation.simulate(CODE, participants_wanted=45, seed=3, session=session)
    session.flush()
    return people


def test_results_are_pooled_until_the_trial_is_unblinded(client: Any, session: Session, people: Any) -> None:
    h = {name: bearer(session, p) for name, p in people.items()}
    for who in ("blind", "stat", "sponsor"):
        document = ok(client.get(f"{BASE}/results", headers=h[who]))
        assert document["blinded"] is True
        assert arm_level(document) == []
        assert not any(r["primary"] for r in document["results"])
    assert "view results" in problem(client.get(f"{BASE}/results", headers=h["lds"]), 403)["detail"]

    dblock.lock_database(CODE, reason="database final", session=session, by=people["sponsor"])
    session.flush()
    # Locked but not unblinded: still pooled.
    assert ok(client.get(f"{BASE}/results", headers=h["stat"]))["blinded"] is True
    ok(client.post(f"{BASE}/unblinding", json={"reason": "final analysis"}, headers=h["stat"]), 201)
    document = ok(client.get(f"{BASE}/results", headers=h["stat"]))
    assert document["blinded"] is False
    assert arm_level(document)
    (primary,) = [r for r in document["results"] if r["primary"]]
    assert primary["estimand"] == "E1_PRIMARY"
    assert primary["endpoint"] == "PHQ9_CHG_W8"
    assert primary["estimate"] is not None
    assert primary["ci_low"] < primary["estimate"] < primary["ci_high"]
    # The blinded statistician reads the same released results after unblinding.
    assert ok(client.get(f"{BASE}/results", headers=h["blind"])) == document


def demo_unblinded_results(url: str, out: Path) -> tuple[str, str]:
    demo = run_cli(
        url, "demo", "--out", str(out), "--participants", "24", "--seed", "11", "--in-progress", "--json"
    )
    assert demo.exit_code == 0, demo.output
    blinded = (out / "results.json").read_text(encoding="utf-8")
    assert json.loads(blinded)["blinded"] is True
    assert arm_level(json.loads(blinded)) == []
    refused = run_cli(url, "unblind", CODE, "--reason", "final analysis", "--as", "statistician")
    assert refused.exit_code == 1
    assert "not locked" in refused.output
    assert run_cli(url, "db-lock", CODE, "--reason", "all queries closed", "--as", "sponsor").exit_code == 0
    assert run_cli(url, "unblind", CODE, "--reason", "final analysis", "--as", "statistician").exit_code == 0
    result = run_cli(url, "analyze", CODE, "--as", "statistician", "--json")
    assert result.exit_code == 0, result.output
    return blinded, result.output


def test_the_same_data_give_byte_identical_results(backend: str, tmp_path: Path) -> None:
    """Two databases filled from the same seed (different ids, entry times and passwords)."""
    outputs = []
    for n in (1, 2):
        url = create_database(backend, tmp_path)
        try:
            migrate.upgrade(url)
            outputs.append(demo_unblinded_results(url, tmp_path / f"out{n}"))
        finally:
            drop_database(url)
    (blinded_1, unblinded_1), (blinded_2, unblinded_2) = outputs
    assert blinded_1 == blinded_2
    assert unblinded_1 == unblinded_2
    document = json.loads(unblinded_1)
    assert document["blinded"] is False
    # The blinded hash leaves the arms out (guesses of the allocation cannot be tested on it).
    assert document["input_sha256"] != json.loads(blinded_1)["input_sha256"]
    assert sum(r["primary"] for r in document["results"]) == 1
