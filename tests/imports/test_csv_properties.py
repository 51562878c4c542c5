"""CSV imports, for generated files: all or nothing, errors that say where, and a round trip.

Whatever the file (valid rows written in any column order, with or without a BOM, quoted or
not, with blank lines, CRLF or LF; the same with one bad cell; any text; any bytes), the
import stores every row or none: on a refusal the rows, batches and audit entries are as
before; every error names its row and its field; and a valid file's rows are stored as they
were written.
"""

import csv
import io
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import Session

from tests.assessments.conftest import TODAY
from tests.imports.conftest import ENGAGEMENT_HEADER, stored
from trials.core.accounts.permissions import Principal
from trials.core.errors import FieldError, InvalidInput
from trials.engagement.models import EngagementDay
from trials.imports import services as imports
from trials.imports.models import KINDS, ImportBatch
from trials.imports.services import RowError
from trials.participants.models import Participant

CODE = "MOOD-CBT-01"
RANDOMIZED_DAYS_AGO = 40
FIRST_DAY = TODAY - timedelta(days=RANDOMIZED_DAYS_AGO)
PARTICIPANTS = 3

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# A day of use: no session and nothing done, or some sessions with any minutes and modules.
COUNTS = st.one_of(
    st.just((0, 0, 0)),
    st.tuples(st.integers(1, 1440), st.integers(0, 1440), st.integers(0, 100)),
)
# (participant index, day after randomization) -> counts; a participant has one row per day.
DAYS = st.dictionaries(
    st.tuples(st.integers(0, PARTICIPANTS - 1), st.integers(0, RANDOMIZED_DAYS_AGO)),
    COUNTS,
    min_size=1,
    max_size=25,
)


@st.composite
def layouts(draw: Any) -> dict[str, Any]:
    """How a file is written: column order, BOM, quoting, line ends, blank lines."""
    return {
        "order": draw(st.permutations(ENGAGEMENT_HEADER)),
        "bom": draw(st.booleans()),
        "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
        "newline": draw(st.sampled_from(["\r\n", "\n"])),
        "blank_after": draw(st.sets(st.integers(0, 30), max_size=3)),
    }


def write(rows: list[dict[str, Any]], layout: dict[str, Any]) -> tuple[bytes, list[int]]:
    """The file's bytes and each row's line number (the header is line 1)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=layout["newline"], quoting=layout["quoting"])
    writer.writerow(layout["order"])
    line, numbers = 1, []
    for n, row in enumerate(rows):
        writer.writerow([row[name] for name in layout["order"]])
        line += 1
        numbers.append(line)
        if n in layout["blank_after"]:
            buffer.write(layout["newline"])
            line += 1
    return ("\ufeff" if layout["bom"] else "").encode() + buffer.getvalue().encode(), numbers


def engagement_rows(
    labels: list[str], days: dict[tuple[int, int], tuple[int, int, int]]
) -> list[dict[str, Any]]:
    return [
        {
            "participant": labels[who],
            "day": (FIRST_DAY + timedelta(days=n)).isoformat(),
            "sessions": sessions,
            "minutes": minutes,
            "modules_completed": modules,
        }
        for (who, n), (sessions, minutes, modules) in sorted(days.items())
    ]


def import_file(session: Session, by: Principal, kind: str, content: bytes) -> Any:
    return imports.import_csv(CODE, kind, content, filename="upload.csv", session=session, by=by, today=TODAY)


def assert_names_row_and_field(error: FieldError, lines: int) -> None:
    """A row error names its row (1 is the header) and its field `rows.N[.column]`; the one
    error that is not a row's counts those not listed."""
    if isinstance(error, RowError):
        assert 1 <= error.row <= lines + 1, error
        assert error.field == f"rows.{error.row}" + (f".{error.column}" if error.column else ""), error
        assert error.message.startswith(f"row {error.row}"), error
        assert error.rule, error
    else:
        assert (error.field, error.rule) == ("file", "more_errors"), error


def all_or_nothing(
    session: Session, by: Principal, kind: str, content: bytes
) -> tuple[Any, InvalidInput | None]:
    """Import `content`; on a refusal check that nothing changed and that each error says where."""
    before = stored(session)
    try:
        summary = import_file(session, by, kind, content)
    except InvalidInput as refusal:
        assert stored(session) == before, "a refused file changed what is stored"
        assert refusal.errors, refusal  # noqa: PT017 - the refusal's content is the property
        # Rows are the CSV's records: at most one per line end (a lone CR ends one too), and
        # one after the last.
        lines = content.count(b"\n") + content.count(b"\r") + 1
        for error in refusal.errors:
            assert_names_row_and_field(error, lines)
        return None, refusal
    after = stored(session)
    added = summary.row_count
    assert added >= 1
    assert after["batches"] == before["batches"] + 1
    assert after["audit"] > before["audit"]
    grew = (
        after["engagement"] - before["engagement"]
        if kind == "engagement"
        else after["assessments"] - before["assessments"]
    )
    assert grew == added, "an accepted file stored other than every row"
    return summary, None


def in_savepoint(session: Session, check: Any) -> None:
    savepoint = session.begin_nested()
    session.connection()  # the savepoint is taken now
    try:
        check()
    finally:
        savepoint.rollback()


def test_a_valid_file_is_stored_row_for_row(
    session: Session, people: dict[str, Principal], make_participant: Any
) -> None:
    labels = [make_participant(randomized_days_ago=RANDOMIZED_DAYS_AGO) for _ in range(PARTICIPANTS)]
    ids = {
        label: session.scalars(select(Participant.id).where(Participant.label == label)).one()
        for label in labels
    }

    @SETTINGS
    @given(days=DAYS, layout=layouts())
    def round_trip(days: dict[tuple[int, int], tuple[int, int, int]], layout: dict[str, Any]) -> None:
        rows = engagement_rows(labels, days)
        content, _lines = write(rows, layout)

        def check() -> None:
            summary, refusal = all_or_nothing(session, people["lds"], "engagement", content)
            assert refusal is None, refusal.errors if refusal else None
            assert summary.row_count == len(rows)
            stored_days = session.scalars(
                select(EngagementDay).where(EngagementDay.import_batch_id == summary.id)
            ).all()
            label_of = {pid: label for label, pid in ids.items()}
            got = sorted(
                (label_of[d.participant_id], d.day.isoformat(), d.sessions, d.minutes, d.modules_completed)
                for d in stored_days
            )
            written = sorted(
                (r["participant"], r["day"], r["sessions"], r["minutes"], r["modules_completed"])
                for r in rows
            )
            assert got == written
            assert all(d.source == "import" for d in stored_days)
            batch = session.get(ImportBatch, summary.id)
            assert batch is not None
            assert batch.row_count == len(rows)

        in_savepoint(session, check)

    round_trip()


# A bad value for each column, and the rule it breaks.
BAD_CELLS = {
    "participant": st.sampled_from([("LDS-9999", None), ("", None), ("lds-0001 ", None)]),
    "day": st.sampled_from(
        [
            ("2026-02-30", None),
            ("", None),
            ("31/12/2025", None),
            ((TODAY + timedelta(days=1)).isoformat(), "not_future"),
            ((FIRST_DAY - timedelta(days=1)).isoformat(), "not_before_randomization"),
        ]
    ),
    "sessions": st.sampled_from(
        [("-1", None), ("1.5", None), ("x", None), ("1441", "range"), ("", "required")]
    ),
    "minutes": st.sampled_from([("1441", "range"), ("-3", None), ("٣", None), ("", "required")]),
    "modules_completed": st.sampled_from([("101", "range"), ("1e2", None), (" 1", None)]),
}


def test_a_file_with_one_bad_cell_is_refused_whole(
    session: Session, people: dict[str, Principal], make_participant: Any
) -> None:
    labels = [make_participant(randomized_days_ago=RANDOMIZED_DAYS_AGO) for _ in range(PARTICIPANTS)]

    @SETTINGS
    @given(days=DAYS, layout=layouts(), data=st.data())
    def one_bad_cell(
        days: dict[tuple[int, int], tuple[int, int, int]], layout: dict[str, Any], data: Any
    ) -> None:
        rows = engagement_rows(labels, days)
        which = data.draw(st.integers(0, len(rows) - 1), label="row")
        column = data.draw(st.sampled_from(ENGAGEMENT_HEADER), label="column")
        value, rule = data.draw(BAD_CELLS[column], label="value")
        rows[which] = {**rows[which], column: value}
        content, lines = write(rows, layout)

        def check() -> None:
            summary, refusal = all_or_nothing(session, people["lds"], "engagement", content)
            assert refusal is not None, f"a file with {column}={value!r} in row {lines[which]} was stored"
            named = {(e.row, e.column) for e in refusal.errors if isinstance(e, RowError)}
            assert (lines[which], column) in named, (lines[which], column, refusal.errors)
            if rule is not None:
                assert any(
                    (e.row, e.column, e.rule) == (lines[which], column, rule)
                    for e in refusal.errors
                    if isinstance(e, RowError)
                ), refusal.errors

        in_savepoint(session, check)

    one_bad_cell()


# Text that looks a little like CSV: commas, quotes, line ends, header words, digits, dates.
CSV_ISH = st.lists(
    st.one_of(
        st.sampled_from(
            [",", '"', "\n", "\r", "\ufeff", ";", "\t", " ", "-", "LDS-0001", "2026-01-01", "PHQ-9"]
        ),
        st.sampled_from([*ENGAGEMENT_HEADER, "instrument", "assessed_on", "item_1"]),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
).map("".join)


def test_any_file_is_stored_whole_or_refused_saying_where(
    session: Session, people: dict[str, Principal], make_participant: Any
) -> None:
    make_participant(randomized_days_ago=RANDOMIZED_DAYS_AGO)
    header = {kind: imports.template_csv(kind).strip() for kind in KINDS}

    @SETTINGS
    @given(
        kind=st.sampled_from(KINDS),
        content=st.one_of(
            st.binary(max_size=200),
            CSV_ISH.map(str.encode),
            st.tuples(st.booleans(), CSV_ISH),
        ),
    )
    def anything(kind: str, content: Any) -> None:
        if isinstance(content, tuple):  # the right header, then anything
            content = (header[kind] + ("\r\n" if content[0] else "\n") + content[1]).encode()

        def check() -> None:
            all_or_nothing(session, people["lds"], kind, content)

        in_savepoint(session, check)

    anything()
