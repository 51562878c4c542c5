"""`trials audit verify` on a committed database: intact, then tampered with directly in SQL."""

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, text
from sqlmodel import Session

from trials.cli import main
from trials.core.accounts import services
from trials.core.accounts.models import SiteCreate
from trials.core.audit import services as audit
from trials.core.db import make_engine


def run_verify(url: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(
        main, ["audit", "verify", "--json"], env={"TRIALS_DATABASE_URL": url, "TRIALS_ENV": "testing"}
    )
    return result.exit_code, json.loads(result.output)


@pytest.fixture
def populated(fresh_database_url: str) -> str:
    engine = make_engine(fresh_database_url)
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system("cli"))
        for code in ("LON", "MAN"):
            services.create_site(
                SiteCreate(code=code, name=f"{code} clinic", country="GB"),
                session=session,
                by=services.SYSTEM,
            )
        session.commit()
    engine.dispose()
    return fresh_database_url


def tamper(url: str, *statements: str) -> None:
    """What someone with direct database access could do: switch off the guards, then edit."""
    engine = make_engine(url)
    with engine.begin() as conn:
        _disable_guards(conn)
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def _disable_guards(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER USER"))
    else:
        for name in ("audit_entry_no_update", "audit_entry_no_delete"):
            conn.execute(text(f"DROP TRIGGER {name}"))


def test_an_untouched_trail_verifies(populated: str) -> None:
    code, report = run_verify(populated)
    assert code == 0
    assert report["ok"] is True
    assert report["entries_checked"] == 10


TAMPERING: list[tuple[str, Callable[[], tuple[str, ...]], int, str]] = [
    (
        "changed value",
        lambda: ("UPDATE audit_entry SET new_value = '\"Elsewhere\"' WHERE seq = 4",),
        4,
        "does not match its hash",
    ),
    (
        "changed reason",
        lambda: ("UPDATE audit_entry SET reason = 'backdated' WHERE seq = 7",),
        7,
        "does not match its hash",
    ),
    ("deleted entry", lambda: ("DELETE FROM audit_entry WHERE seq = 5",), 5, "missing"),
    ("deleted last entry", lambda: ("DELETE FROM audit_entry WHERE seq = 10",), 10, "missing"),
    (
        "reordered entries",
        lambda: (
            "UPDATE audit_entry SET seq = -3 WHERE seq = 3",
            "UPDATE audit_entry SET seq = 3 WHERE seq = 6",
            "UPDATE audit_entry SET seq = 6 WHERE seq = -3",
        ),
        3,
        "does not",
    ),
    (
        "recomputed hash of a changed entry",
        lambda: (
            "UPDATE audit_entry SET new_value = '\"GB\"', hash = 'ab' || substr(hash, 3) WHERE seq = 2",
        ),
        2,
        "does not match its hash",
    ),
]


@pytest.mark.parametrize(
    ("case", "statements", "broken", "problem"), TAMPERING, ids=[t[0] for t in TAMPERING]
)
def test_tampering_is_detected_and_named(
    populated: str, case: str, statements: Callable[[], tuple[str, ...]], broken: int, problem: str
) -> None:
    tamper(populated, *statements())
    code, report = run_verify(populated)
    assert code == 1, case
    assert report["ok"] is False
    assert report["broken_seq"] == broken
    assert problem in str(report["problem"])


def test_verify_text_output_names_the_entry(populated: str) -> None:
    tamper(populated, "UPDATE audit_entry SET old_value = 'null', new_value = '\"x\"' WHERE seq = 6")
    result = CliRunner().invoke(
        main, ["audit", "verify"], env={"TRIALS_DATABASE_URL": populated, "TRIALS_ENV": "testing"}
    )
    assert result.exit_code == 1
    assert "BROKEN at entry #6" in result.output


def test_a_truncated_chain_with_a_rewritten_head_is_caught_by_an_anchor(populated: str) -> None:
    """Without an outside record, cutting the tail and rewriting the head verifies; with an
    anchor kept outside the database (`trials audit head`), it does not."""
    env = {"TRIALS_DATABASE_URL": populated, "TRIALS_ENV": "testing"}
    anchor = CliRunner().invoke(main, ["audit", "head"], env=env).output.strip()
    assert anchor.startswith("10:")
    engine = make_engine(populated)
    with engine.begin() as conn:
        _disable_guards(conn)
        previous = conn.execute(text("SELECT hash FROM audit_entry WHERE seq = 8")).scalar_one()
        conn.execute(text("DELETE FROM audit_entry WHERE seq > 8"))
        conn.execute(text("UPDATE audit_chain_head SET last_seq = 8, last_hash = :h"), {"h": previous})
    engine.dispose()
    assert run_verify(populated)[0] == 0  # the limit of a self-contained chain
    result = CliRunner().invoke(main, ["audit", "verify", "--anchor", anchor, "--json"], env=env)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["broken_seq"] == 10
    assert "anchored" in report["problem"]


def test_a_rewritten_chain_does_not_match_its_anchor(populated: str) -> None:
    env = {"TRIALS_DATABASE_URL": populated, "TRIALS_ENV": "testing"}
    anchor = CliRunner().invoke(main, ["audit", "head"], env=env).output.strip()
    seq = anchor.split(":")[0]
    forged = f"{seq}:{'0' * 64}"
    result = CliRunner().invoke(main, ["audit", "verify", "--anchor", forged], env=env)
    assert result.exit_code == 1
    assert f"entry #{seq} does not match its anchor" in result.output
    assert CliRunner().invoke(main, ["audit", "verify", "--anchor", anchor], env=env).exit_code == 0
    assert CliRunner().invoke(main, ["audit", "verify", "--anchor", "nonsense"], env=env).exit_code == 2
