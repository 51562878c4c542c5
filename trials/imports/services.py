"""CSV import of assessments and engagement days: every row validated before anything is written.

A file is accepted as a whole or refused as a whole. Refused: an `ImportRefused` lists every
error as (row, column, rule, message), rows numbered as in the file with the header as row 1,
and nothing is stored. Accepted: one `ImportBatch` keeps the file's bytes and SHA-256, and the
rows are inserted in bulk (SQLAlchemy Core executemany, COPY on PostgreSQL) under one audit
entry per table (`audit.bulk_insert_summarized`), with the same rules as the JSON API:
`validate_items`, `check_assessed_on` and `assign_visit` for assessments, the engagement
service's range and date rules for engagement days. A PHQ-9 row raises its item-9 and
deterioration events in the same transaction; an out-of-window row gets a data query.

The format is documented in docs/csv-import.md.
"""

import csv
import gc
import hashlib
import heapq
import io
import operator
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import String, type_coerce
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from analysis.scoring import RULES, total_score
from protocols.document import ProtocolDocument, Visit
from trials.assessments.models import ITEM_COLUMNS, Assessment, DataQuery, Items
from trials.assessments.services import (
    VisitAssignment,
    assign_visit,
    check_assessed_on,
    out_of_window_message,
    validate_items,
)
from trials.core.accounts.models import Site, Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.db import new_id, utcnow
from trials.core.errors import Conflict, FieldError, InvalidInput
from trials.core.validation import NO_CONTROL
from trials.dblock.services import is_locked
from trials.engagement.models import COUNT_COLUMNS, EngagementDay
from trials.engagement.services import count_problems, day_problem
from trials.events.models import DispositionEvent
from trials.events.services import CURRENT
from trials.events.terms import WITHDRAWAL_KINDS
from trials.imports.models import KINDS, ImportBatch, ImportBatchRead, ImportSummary
from trials.participants.models import Participant
from trials.participants.services import locked_protocol, trial_by_code, visible_site_ids
from trials.randomization.models import AllocationSlot
from trials.safety import services as safety

COLUMNS: dict[str, tuple[str, ...]] = {
    "assessments": ("participant", "instrument", "assessed_on", *ITEM_COLUMNS),
    "engagement": ("participant", "day", *COUNT_COLUMNS),
}
MAX_ERRORS_LISTED = 1000
CHUNK_ROWS = 5000
# Above this many participants named in a file, all of the trial's are read in one query.
_FEW = 1000

# phase ("validating" or "writing"), rows done, rows in all
Progress = Callable[[str, int, int], None]

_INTEGER = re.compile(r"0|-?[1-9][0-9]*")  # "01" is not read as 1
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FILENAME = re.compile(NO_CONTROL)
_ITEM_CELLS = {"0": 0, "1": 1, "2": 2, "3": 3}


# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError(FieldError):
    """A rule broken by one cell (or row) of the file; row 1 is the header."""

    row: int
    column: str


class ImportRefused(InvalidInput):
    """The whole file is refused; `errors` lists up to `MAX_ERRORS_LISTED` row errors, in file
    order, then a `more_errors` entry with the count of those not listed."""

    title = "File refused"

    def __init__(self, listed: list[RowError], total: int, rows_with_errors: int) -> None:
        shown: list[FieldError] = list(listed)
        detail = (
            f"the file was refused and nothing was stored: {total} error{'s' if total != 1 else ''} "
            f"in {rows_with_errors} row{'s' if rows_with_errors != 1 else ''}"
        )
        if total > len(listed):
            detail += f"; the first {len(listed)} are listed"
            shown.append(
                FieldError(
                    "file",
                    "more_errors",
                    f"{total - len(listed)} more errors are not listed ({total} in all)",
                )
            )
        super().__init__(detail, errors=shown)
        self.row_errors = listed
        self.total = total
        self.rows_with_errors = rows_with_errors


class _Errors:
    """Counts every error and keeps the `MAX_ERRORS_LISTED` first in file order (row, then
    column), whatever order the checks find them in."""

    def __init__(self, columns: tuple[str, ...] = ()) -> None:
        self._position = {name: i for i, name in enumerate(columns)}
        self._kept: list[tuple[int, int, int, str, str, str]] = []  # a max-heap on (row, column)
        self._seq = 0
        self.total = 0
        self.rows: set[int] = set()

    def add(self, row: int, column: str, rule: str, text: str) -> None:
        self.total += 1
        self.rows.add(row)
        self._seq += 1
        key = (-row, -self._position.get(column, -1), -self._seq, column, rule, text)
        if len(self._kept) < MAX_ERRORS_LISTED:
            heapq.heappush(self._kept, key)
        elif key > self._kept[0]:
            heapq.heapreplace(self._kept, key)

    def add_field_error(self, row: int, error: FieldError, column: str) -> None:
        """A service's field error (`items.3: ...`) as the error of a cell (`item_3`)."""
        _field, _sep, text = error.message.partition(": ")
        self.add(row, column, error.rule, text or error.message)

    def __bool__(self) -> bool:
        return self.total > 0

    def refuse(self) -> ImportRefused:
        listed = []
        for row, _position, _seq, column, rule, text in sorted(self._kept, reverse=True):
            where = f"row {-row}, {column}" if column else f"row {-row}"
            path = f"rows.{-row}.{column}" if column else f"rows.{-row}"
            listed.append(RowError(path, rule, f"{where}: {text}", -row, column))
        return ImportRefused(listed, self.total, len(self.rows))


def _refused(row: int, column: str, rule: str, text: str) -> ImportRefused:
    errors = _Errors()
    errors.add(row, column, rule, text)
    return errors.refuse()


# -- reading the file ---------------------------------------------------------------------------


@dataclass
class _Table:
    """The data rows of a file: their row numbers (the header is row 1) and cells."""

    kind: str
    index: dict[str, int]
    numbers: list[int] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def columns(self) -> dict[str, tuple[str, ...]]:
        """The cells column by column, under the column names of the file's kind."""
        by_position = list(zip(*self.rows, strict=True))
        return {name: by_position[self.index[name]] for name in COLUMNS[self.kind]}


def _text(content: bytes) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = content[: exc.start].count(b"\n") + 1
        raise _refused(
            row, "", "encoding", f"is not UTF-8 text (byte {exc.start + 1}): save the file as CSV UTF-8"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    number = 0
    try:
        for number, record in enumerate(reader, start=1):  # noqa: B007 - read after an error
            yield number, record
    except csv.Error as exc:
        raise _refused(number + 1, "", "csv_syntax", f"is not valid CSV: {exc}") from None


def read_table(content: bytes, kind: str) -> _Table:
    """The file's rows under an exact header (any column order); header errors refuse it."""
    expected = COLUMNS[kind]
    records = _records(_text(content))
    first = next(records, None)
    if first is None:
        raise _refused(1, "", "empty", "the file is empty: its first row must be the header")
    _number, header = first
    errors = _Errors()
    seen: set[str] = set()
    for name in header:
        if name in seen:
            errors.add(1, name, "duplicate_column", f"the column {name!r} appears more than once")
        elif name not in expected:
            hint = " (the separator must be a comma)" if ";" in name or "\t" in name else ""
            errors.add(
                1,
                name,
                "unknown_column",
                f"{name!r} is not a column of {kind} files{hint}: {', '.join(expected)}",
            )
        seen.add(name)
    for name in expected:
        if name not in seen:
            errors.add(1, name, "missing_column", f"the column {name!r} is missing")
    if errors:
        raise errors.refuse()
    table = _Table(kind, {name: i for i, name in enumerate(header)})
    width = len(header)
    for number, record in records:
        if not any(record):
            continue  # a blank line, or a spreadsheet's empty row: no data
        if len(record) != width:
            errors.add(number, "", "cell_count", f"has {len(record)} cells where the header has {width}")
            continue
        table.numbers.append(number)
        table.rows.append(record)
    if errors:
        raise errors.refuse()
    if not table.rows:
        raise _refused(2, "", "no_rows", "the file has a header but no data rows")
    return table


def template_csv(kind: str) -> str:
    """The header of a `kind` file: a template that imports nothing until rows are added."""
    _check_kind(kind)
    return ",".join(COLUMNS[kind]) + "\r\n"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput.field("kind", "known", f"kind: {kind!r} is not one of {', '.join(KINDS)}")


def guess_kind(content: bytes) -> str | None:
    """The kind whose columns a file's header names, for a command line that is not told."""
    try:
        first = next(_records(_text(content)), None)
    except InvalidInput:
        return None
    if first is None:
        return None
    header = set(first[1])
    scores = {kind: len(header & set(columns)) for kind, columns in COLUMNS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 1 else None


# -- what the rows refer to ----------------------------------------------------------------------


class _Person(NamedTuple):
    id: uuid.UUID
    label: str
    site_id: uuid.UUID
    consent_date: date | None
    randomized_on: date | None
    may_enter: bool  # the importer may enter data at the participant's site
    withdrawn_on: date | None  # no data is dated after a withdrawal


# Participants are read with their stored values as the driver returns them (text on SQLite,
# native types on PostgreSQL) and converted here: SQLAlchemy's per-row type processing costs
# more than the query itself for a trial of 100,000 participants.


def _stored_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    text = str(value)
    # SQLite keeps a UUID as its 32 hexadecimal digits: read them as the number they are.
    return uuid.UUID(int=int(text, 16)) if len(text) == 32 else uuid.UUID(text)


def _stored_date(value: Any) -> date | None:
    """A stored date, or the UTC date of a stored UTC time (SQLite keeps both as ISO text, a
    time in UTC: see `trials.core.db.UTCDateTime`)."""
    if value is None or type(value) is date:
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    return date.fromisoformat(str(value)[:10])


def _withdrawals(trial_id: uuid.UUID, *, session: Session) -> dict[uuid.UUID, date]:
    """The withdrawal date of each of the trial's participants who withdrew (as
    `trials.events.services.withdrawal_date` reads it, for all at once)."""
    d = DispositionEvent.__table__  # type: ignore[attr-defined]
    rows = session.connection().execute(
        core_select(d.c.participant_id, d.c.event_date).where(
            d.c.trial_id == trial_id, d.c.status == CURRENT, d.c.kind.in_(WITHDRAWAL_KINDS)
        )
    )
    return {row.participant_id: row.event_date for row in rows}


class _People:
    """The participants a file names, as the importer may see them: another site's participant
    is unknown, exactly like one that does not exist."""

    def __init__(self, trial: Trial, labels: set[str], by: Principal, *, session: Session) -> None:
        p = Participant.__table__  # type: ignore[attr-defined]
        s = AllocationSlot.__table__  # type: ignore[attr-defined]
        stored = [type_coerce(c, String) for c in (p.c.id, p.c.site_id, p.c.consent_date, s.c.randomized_at)]
        query = (
            core_select(p.c.label, *stored)
            .select_from(p.outerjoin(s, s.c.participant_id == p.c.id))
            .where(p.c.trial_id == trial.id)
        )
        if len(labels) <= _FEW:
            query = query.where(p.c.label.in_(sorted(labels)))
        withdrawn = _withdrawals(trial.id, session=session)
        visible = visible_site_ids(by, trial.id)
        # The stored site value: its id, whether its participants are visible, and enterable.
        sites: dict[Any, tuple[uuid.UUID, bool, bool]] = {}
        days: dict[Any, date | None] = {None: None}  # stored dates, and days of stored times
        self.by_label: dict[str, _Person] = {}
        for label, pid, site, consent_date, randomized_at in session.connection().execute(query).all():
            known = sites.get(site)
            if known is None:
                site_id = _stored_uuid(site)
                grant = by.grant_for(Permission.ENTER_DATA, trial_id=trial.id, site_id=site_id)
                known = sites[site] = (site_id, visible is None or site_id in visible, grant is not None)
            site_id, is_visible, may_enter = known
            if not is_visible:
                continue
            if isinstance(randomized_at, str):
                randomized_at = randomized_at[:10]  # the UTC day of a time SQLite keeps as text
            consent = (
                days[consent_date]
                if consent_date in days
                else days.setdefault(consent_date, _stored_date(consent_date))
            )
            randomized = (
                days[randomized_at]
                if randomized_at in days
                else days.setdefault(randomized_at, _stored_date(randomized_at))
            )
            participant_id = _stored_uuid(pid)
            self.by_label[label] = _Person(
                participant_id, label, site_id, consent, randomized, may_enter, withdrawn.get(participant_id)
            )
        self.code = trial.code

    def resolve(
        self, numbers: list[int], labels: tuple[str, ...], what: str, errors: _Errors
    ) -> list[_Person | None]:
        """The randomized participant each row names (None where not, after recording why)."""
        persons = list(map(self.by_label.get, labels))
        for number, label, person in zip(numbers, labels, persons, strict=True):
            if person is not None and person.randomized_on is not None and person.may_enter:
                continue
            if not label:
                errors.add(number, "participant", "required", "a participant label is required")
            elif person is None:
                errors.add(
                    number,
                    "participant",
                    "unknown_participant",
                    f"no participant {label!r} in trial {self.code}",
                )
            elif not person.may_enter:
                errors.add(
                    number,
                    "participant",
                    "not_allowed",
                    f"your account may not enter data at the site of {label}",
                )
            else:
                errors.add(
                    number,
                    "participant",
                    "not_randomized",
                    f"{label} is not randomized: {what} are entered after randomization",
                )
        return [p if p is not None and p.randomized_on is not None and p.may_enter else None for p in persons]

    def ids(self) -> list[uuid.UUID]:
        return [p.id for p in self.by_label.values()]


def _only_named(column: Any, people: _People) -> Any:
    """A condition restricting a query to the file's participants when they are few."""
    ids = people.ids()
    return column.in_(ids) if len(ids) <= _FEW else None


def _by_label(stored: Sequence[Any], people: _People) -> set[tuple[Any, ...]]:
    """Stored keys (participant id first) with the participant's label instead of the id."""
    if not stored:
        return set()
    label_of = {p.id: p.label for p in people.by_label.values()}
    return {(label_of.get(row[0]), *row[1:]) for row in stored}


def _sites(persons: Sequence[_Person | None]) -> set[uuid.UUID]:
    """The sites of the participants (one id object per site: counted by identity)."""
    return set({id(p.site_id): p.site_id for p in persons if p is not None}.values())


def _dates(cells: tuple[str, ...], numbers: list[int], column: str, errors: _Errors) -> list[date | None]:
    """Each cell's date (None where refused, after recording why): YYYY-MM-DD, nothing else."""
    parsed: dict[str, date | None] = {}
    for cell in set(cells):
        value = None
        if _DATE.fullmatch(cell):
            try:
                value = date.fromisoformat(cell)
            except ValueError:
                value = None
        parsed[cell] = value
    if None in parsed.values():
        for number, cell in zip(numbers, cells, strict=True):
            if parsed[cell] is None:
                if cell:
                    errors.add(number, column, "date_format", f"{cell!r} is not a date written YYYY-MM-DD")
                else:
                    errors.add(number, column, "required", "a date is required")
    return list(map(parsed.__getitem__, cells))


def _by_participant(persons: Sequence[_Person | None]) -> list[int]:
    """The rows' positions ordered by participant id, a participant's rows in file order: the
    rows then extend the indexes that lead with the participant at their end (on SQLite, about
    twice as fast as in random order)."""
    keys = [p.id.hex if p is not None else "" for p in persons]
    return sorted(range(len(keys)), key=keys.__getitem__)


def _reorder(order: list[int], *columns: Sequence[Any]) -> list[list[Any]]:
    if len(order) == 1:
        return [list(column) for column in columns]
    pick = operator.itemgetter(*order)
    return [list(pick(column)) for column in columns]


def _integer(cell: str) -> int | str:
    """An integer written in plain ASCII digits, or the cell itself (refused by the rules)."""
    return int(cell) if _INTEGER.fullmatch(cell) else cell


def _ids(n: int) -> list[uuid.UUID]:
    """`n` random (version 4) UUIDs, in ascending order: a batch's rows extend the primary key's
    index at its end instead of splitting pages all over it, and its digest's sort by id has
    nothing to do."""
    data = os.urandom(16 * n)
    return [
        uuid.UUID(bytes=chunk, version=4)
        for chunk in sorted(data[i : i + 16] for i in range(0, len(data), 16))
    ]


def _reporter(total: int, progress: Progress | None) -> Callable[[int], None]:
    def report(done: int) -> None:
        if progress is not None:
            progress("validating", done, total)

    return report


# -- assessments ---------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """A validated file's rows, column by column, and what they raise."""

    count: int = 0
    columns: dict[str, list[Any]] = field(default_factory=dict)
    site_ids: set[uuid.UUID] = field(default_factory=set)
    queries: list[dict[str, Any]] = field(default_factory=list)
    signals: list[safety.Signals] = field(default_factory=list)


def _item_columns(
    cells: dict[str, tuple[str, ...]], instruments: Sequence[str], numbers: list[int], errors: _Errors
) -> list[list[int | None]]:
    """Each item column's values (None: empty, a missing item).

    `validate_items` judges every distinct (instrument, item, cell) of the file once: its
    rules are per item (the item's number, its value's type and range for the instrument), so
    this is its verdict on every row, reached without calling it 100,000 times. A row whose
    instrument is unknown is refused for that; its items are not judged.
    """
    present = sorted(set(instruments) & RULES.keys())
    out = []
    for n, name in enumerate(ITEM_COLUMNS, start=1):
        column = cells[name]
        value_of: dict[str, int | None] = {"": None}
        refused: dict[tuple[str, str], tuple[str, str]] = {}
        for cell in set(column) - {""}:
            given = _ITEM_CELLS.get(cell)
            value = _integer(cell) if given is None else given
            for instrument in present:
                try:
                    validate_items(instrument, cast(Items, {str(n): value}))
                except InvalidInput as exc:
                    [error] = exc.errors
                    if error.rule == "int_type":  # name the cell as written
                        text = f"{cell!r} is not an integer (leave the cell empty for a missing item)"
                    else:
                        text = error.message.partition(": ")[2] or error.message
                    refused[(instrument, cell)] = (error.rule, text)
            if isinstance(value, int):
                value_of[cell] = value
        if refused:
            for number, instrument, cell in zip(numbers, instruments, column, strict=True):
                problem = refused.get((instrument, cell))
                if problem is not None:
                    errors.add(number, name, *problem)
        out.append(list(map(value_of.get, column)))
    return out


def _assessment_rows(
    table: _Table,
    people: _People,
    document: ProtocolDocument,
    *,
    batch_id: uuid.UUID,
    trial_id: uuid.UUID,
    username: str,
    today: date,
    session: Session,
    errors: _Errors,
    progress: Progress | None,
) -> _Prepared:
    cells = table.columns()
    numbers = table.numbers
    count = len(numbers)
    report = _reporter(count, progress)
    persons = people.resolve(numbers, cells["participant"], "assessments", errors)
    instruments: Sequence[str] = cells["instrument"]
    for number, instrument in zip(numbers, instruments, strict=True):
        if instrument not in RULES:
            if instrument:
                errors.add(
                    number,
                    "instrument",
                    "unknown_instrument",
                    f"{instrument!r} is not one of {', '.join(RULES)}",
                )
            else:
                errors.add(number, "instrument", "required", "an instrument is required")
    dates = _dates(cells["assessed_on"], numbers, "assessed_on", errors)
    items = _item_columns(cells, instruments, numbers, errors)
    # From here on the rows go by participant (a participant's in file order).
    order = _by_participant(persons)
    numbers, persons, instruments, dates = _reorder(order, numbers, persons, instruments, dates)
    items = _reorder(order, *items)

    a = Assessment.__table__  # type: ignore[attr-defined]
    query = core_select(a.c.participant_id, a.c.visit_code, a.c.instrument).where(a.c.trial_id == trial_id)
    only = _only_named(a.c.participant_id, people)
    existing = _by_label(
        session.connection().execute(query if only is None else query.where(only)).all(), people
    )
    visits: list[Visit] = list(document.visits)
    target_day = {v.code: v.day for v in visits}
    assigned: dict[int, VisitAssignment] = {}
    first_row: dict[tuple[str, str, str], int] = {}  # keyed by label: text hashes are cached
    ids = _ids(count)
    now = utcnow()
    visit_codes: list[str] = []
    in_window: list[bool] = []
    queries: list[dict[str, Any]] = []
    for i, (number, person, instrument, assessed_on) in enumerate(
        zip(numbers, persons, instruments, dates, strict=True)
    ):
        if i % CHUNK_ROWS == 0:
            report(i)
        if person is None or assessed_on is None or instrument not in RULES or person.randomized_on is None:
            continue  # refused already
        try:
            check_assessed_on(assessed_on, person.consent_date, today, withdrawn_on=person.withdrawn_on)
        except InvalidInput as exc:
            for error in exc.errors:
                errors.add_field_error(number, error, "assessed_on")
            continue
        day = (assessed_on - person.randomized_on).days
        visit = assigned.get(day)
        if visit is None:
            visit = assigned[day] = assign_visit(day, visits)
        key = (person.label, visit.visit_code, instrument)
        if key in existing:
            errors.add(
                number,
                "assessed_on",
                "duplicate",
                f"{person.label} already has a {instrument} for visit {visit.visit_code}: correct it "
                "through the API (with a reason) instead of importing it again",
            )
        elif key in first_row:
            errors.add(
                number,
                "assessed_on",
                "duplicate_in_file",
                f"row {first_row[key]} is already {person.label}'s {instrument} for visit {visit.visit_code}",
            )
        else:
            first_row[key] = number
        if errors:
            continue  # refused anyway: only the errors matter from here on
        visit_codes.append(visit.visit_code)
        in_window.append(visit.in_window)
        if not visit.in_window:
            queries.append(
                {
                    "id": new_id(),
                    "trial_id": trial_id,
                    "participant_id": person.id,
                    "assessment_id": ids[i],
                    "rule": "out_of_window",
                    "message": out_of_window_message(
                        instrument, assessed_on, visit, target_day[visit.visit_code]
                    ),
                    "status": "open",
                    "created_at": now,
                }
            )
    report(count)
    if errors:
        return _Prepared()
    participants = cast(list[_Person], persons)
    columns: dict[str, list[Any]] = {
        "id": ids,
        "trial_id": [trial_id] * count,
        "participant_id": list(map(operator.attrgetter("id"), participants)),
        "instrument": list(instruments),
        "assessed_on": dates,
        "visit_code": visit_codes,
        "in_window": in_window,
        **dict(zip(ITEM_COLUMNS, items, strict=True)),
        "source": ["site"] * count,
        "entered_by": [username] * count,
        "created_at": [now] * count,
        "import_batch_id": [batch_id] * count,
    }
    signals = _signals(columns, participants, items, document, session=session)
    return _Prepared(count, columns, _sites(participants), queries, signals)


def _signals(
    columns: dict[str, list[Any]],
    participants: list[_Person],
    items: list[list[int | None]],
    document: ProtocolDocument,
    *,
    session: Session,
) -> list[safety.Signals]:
    """Each PHQ-9 row's safety signals, as the API raises them: item 9 first, then
    deterioration over the baseline PHQ-9, stored or in the same file."""
    rule = RULES["PHQ-9"]
    baseline_code = document.baseline_visit.code
    phq9 = [i for i, instrument in enumerate(columns["instrument"]) if instrument == "PHQ-9"]
    visit_codes = columns["visit_code"]

    def answers(i: int) -> dict[int, int | None]:
        return {n: items[n - 1][i] for n in range(1, rule.n_items + 1)}

    # Only participants with a later PHQ-9 in the file need their baseline total (by label:
    # text hashes are cached).
    later = {participants[i].label for i in phq9 if visit_codes[i] != baseline_code}
    baselines: dict[str, int | None] = {}
    if later:
        a = Assessment.__table__  # type: ignore[attr-defined]
        query = core_select(a.c.participant_id, *(a.c[c] for c in ITEM_COLUMNS[: rule.n_items])).where(
            a.c.trial_id == columns["trial_id"][0], a.c.instrument == "PHQ-9", a.c.visit_code == baseline_code
        )
        label_of = {p.id: p.label for p in participants if p.label in later}
        query = query.where(a.c.participant_id.in_(list(label_of))) if len(label_of) <= _FEW else query
        for pid, *stored in session.connection().execute(query):
            if label_of.get(pid) in later:
                baselines[label_of[pid]] = total_score(dict(enumerate(stored, start=1)), rule)
        for i in phq9:
            if visit_codes[i] == baseline_code and participants[i].label in later:
                baselines[participants[i].label] = total_score(answers(i), rule)
    threshold = document.safety.deterioration_threshold
    item9 = items[8]
    out = []
    for i in phq9:
        person = participants[i]
        baseline_total = None if visit_codes[i] == baseline_code else baselines.get(person.label)
        kinds = safety.signals(
            instrument="PHQ-9",
            item9=item9[i],
            total=None if baseline_total is None else total_score(answers(i), rule),
            baseline_total=baseline_total,
            threshold=threshold,
        )
        if kinds:
            out.append(
                safety.Signals(
                    participant_id=person.id,
                    participant_label=person.label,
                    site_id=person.site_id,
                    assessment_id=columns["id"][i],
                    kinds=tuple(kinds),
                    item9=item9[i],
                )
            )
    return out


# -- engagement ----------------------------------------------------------------------------------


def _engagement_rows(
    table: _Table,
    people: _People,
    *,
    batch_id: uuid.UUID,
    trial_id: uuid.UUID,
    today: date,
    session: Session,
    errors: _Errors,
    progress: Progress | None,
) -> _Prepared:
    cells = table.columns()
    numbers = table.numbers
    count = len(numbers)
    report = _reporter(count, progress)
    persons = people.resolve(numbers, cells["participant"], "engagement days", errors)
    days = _dates(cells["day"], numbers, "day", errors)
    counts: dict[str, list[int | str]] = {}
    for name in COUNT_COLUMNS:
        value_of = {cell: _integer(cell) for cell in set(cells[name])}
        counts[name] = [value_of[cell] for cell in cells[name]]
    # From here on the rows go by participant (a participant's in file order).
    order = _by_participant(persons)
    numbers, persons, days = _reorder(order, numbers, persons, days)
    counts = dict(zip(COUNT_COLUMNS, _reorder(order, *(counts[name] for name in COUNT_COLUMNS)), strict=True))
    e = EngagementDay.__table__  # type: ignore[attr-defined]
    query = core_select(e.c.participant_id, e.c.day).where(e.c.trial_id == trial_id)
    only = _only_named(e.c.participant_id, people)
    existing = _by_label(
        session.connection().execute(query if only is None else query.where(only)).all(), people
    )
    first_row: dict[tuple[str, date], int] = {}
    for i, (number, person, day) in enumerate(zip(numbers, persons, days, strict=True)):
        if i % CHUNK_ROWS == 0:
            report(i)
        values = [counts[name][i] for name in COUNT_COLUMNS]
        usable = True
        for name, value in zip(COUNT_COLUMNS, values, strict=True):
            if isinstance(value, str):
                usable = False
                if value:
                    errors.add(number, name, "int_type", f"{value!r} is not an integer")
                else:
                    errors.add(number, name, "required", "a count is required (0 when none)")
        if usable:
            for name, rule, text in count_problems(*cast(list[int], values)):
                errors.add(number, name, rule, text)
        if person is None or day is None or person.randomized_on is None:
            continue
        problem = day_problem(
            day,
            consent_date=person.consent_date,
            randomized_on=person.randomized_on,
            today=today,
            withdrawn_on=person.withdrawn_on,
        )
        if problem is not None:
            errors.add(number, "day", *problem)
            continue
        key = (person.label, day)
        if key in existing:
            errors.add(
                number,
                "day",
                "duplicate",
                f"{person.label} already has engagement recorded on {day.isoformat()}: correct it "
                "through the API (with a reason) instead of importing it again",
            )
        elif key in first_row:
            errors.add(
                number,
                "day",
                "duplicate_in_file",
                f"row {first_row[key]} is already {person.label} on {day.isoformat()}",
            )
        else:
            first_row[key] = number
    report(count)
    if errors:
        return _Prepared()
    now = utcnow()
    columns: dict[str, list[Any]] = {
        "id": _ids(count),
        "trial_id": [trial_id] * count,
        "participant_id": [cast(_Person, p).id for p in persons],
        "day": days,
        **{name: counts[name] for name in COUNT_COLUMNS},
        "source": ["import"] * count,
        "import_batch_id": [batch_id] * count,
        "created_at": [now] * count,
    }
    return _Prepared(count, columns, _sites(persons))


# -- the import ----------------------------------------------------------------------------------


def _filename(name: str) -> str:
    base = re.split(r"[/\\]", name or "")[-1].strip()
    if not base:
        return "upload.csv"
    if len(base) > 255 or not _FILENAME.fullmatch(base):
        raise InvalidInput.field(
            "filename", "plain_name", "filename: must be at most 255 characters without control characters"
        )
    return base


def _earlier(trial_id: uuid.UUID, kind: str, sha256: str, *, session: Session) -> ImportBatch | None:
    return session.exec(
        select(ImportBatch)
        .options(defer(ImportBatch.content))  # type: ignore[arg-type]
        .where(ImportBatch.trial_id == trial_id, ImportBatch.kind == kind, ImportBatch.sha256 == sha256)
    ).first()


@contextmanager
def _bulk_allocation() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file's rows are built and written: the rows
    form no reference cycles, and its repeated passes over hundreds of thousands of new
    objects would cost more than the import itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def import_csv(
    code: str,
    kind: str,
    content: bytes,
    *,
    filename: str,
    session: Session,
    by: Principal,
    today: date,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import a CSV file of `kind` into trial CODE, all or nothing.

    Refused with `ImportRefused` (422) listing every error when any row breaks a rule; with
    Conflict (409) when the trial's database is locked or the same file was imported before.
    """
    _check_kind(kind)
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.ENTER_DATA, session=session, trial_id=trial.id)
    name = _filename(filename)
    # The bulk path writes with Core statements, which the lock's flush guard does not see.
    if is_locked(trial.id, session):
        raise Conflict(
            f"the database of trial {code} is locked: no import is possible until the sponsor unlocks it"
        )
    sha256 = hashlib.sha256(content).hexdigest()
    earlier = _earlier(trial.id, kind, sha256, session=session)
    if earlier is not None:
        raise Conflict(
            f"this file was already imported: batch {earlier.id} by {earlier.imported_by} on "
            f"{earlier.created_at:%Y-%m-%d %H:%M:%S} UTC ({earlier.row_count} rows, sha256 {sha256})"
        )
    _version, document = locked_protocol(trial, session=session)
    with _bulk_allocation():
        table = read_table(content, kind)
        labels = {cells[table.index["participant"]] for cells in table.rows}
        people = _People(trial, labels, by, session=session)
        errors = _Errors(COLUMNS[kind])
        batch_id = new_id()
        model: type[Assessment] | type[EngagementDay]
        if kind == "assessments":
            model = Assessment
            prepared = _assessment_rows(
                table,
                people,
                document,
                batch_id=batch_id,
                trial_id=trial.id,
                username=by.username,
                today=today,
                session=session,
                errors=errors,
                progress=progress,
            )
        else:
            model = EngagementDay
            prepared = _engagement_rows(
                table,
                people,
                batch_id=batch_id,
                trial_id=trial.id,
                today=today,
                session=session,
                errors=errors,
                progress=progress,
            )
        if errors:
            raise errors.refuse()
        try:
            return _write(
                trial,
                kind,
                name,
                content,
                sha256,
                prepared,
                model,
                batch_id,
                document,
                people,
                session,
                by,
                progress,
            )
        except IntegrityError:
            # Another request stored the same file, or a row for the same participant, visit
            # and instrument (or day), between this file's checks and its writing.
            raise Conflict(
                "the file could not be stored: the same file or some of its rows were stored by "
                "another request meanwhile; look at the import history, then upload it again"
            ) from None


def _write(
    trial: Trial,
    kind: str,
    name: str,
    content: bytes,
    sha256: str,
    prepared: _Prepared,
    model: type[Assessment] | type[EngagementDay],
    batch_id: uuid.UUID,
    document: ProtocolDocument,
    people: _People,
    session: Session,
    by: Principal,
    progress: Progress | None,
) -> ImportSummary:
    summary = audit.rows_digest(model, prepared.columns)
    site_ids = prepared.site_ids
    codes = dict(session.exec(select(Site.id, Site.code).where(col(Site.id).in_(site_ids))).all())
    batch = ImportBatch(
        id=batch_id,
        trial_id=trial.id,
        kind=kind,
        filename=name,
        sha256=sha256,
        row_count=prepared.count,
        rows_sha256=summary.rows_sha256,
        site_codes=",".join(sorted(codes.values())),
        imported_by=by.username,
        content=content,
    )
    session.add(batch)
    session.flush()
    reason = f"CSV import of {name} (sha256 {sha256})"
    audit.bulk_insert_summarized(
        session,
        model,
        prepared.columns,
        batch_table=ImportBatch.__tablename__,
        batch_id=batch_id,
        reason=reason,
        summary=summary,
        chunk_size=CHUNK_ROWS,
        progress=None if progress is None else lambda done: progress("writing", done, prepared.count),
    )
    if prepared.queries:
        audit.bulk_insert_summarized(
            session,
            DataQuery,
            prepared.queries,
            batch_table=ImportBatch.__tablename__,
            batch_id=batch_id,
            reason=reason,
        )
    raised = safety.raise_events_in_bulk(
        trial_id=trial.id,
        signals_of=prepared.signals,
        followup_hours=document.safety.item9_followup_hours,
        batch_table=ImportBatch.__tablename__,
        batch_id=batch_id,
        reason=reason,
        session=session,
    )
    return ImportSummary(
        **batch_read(batch, trial.code).model_dump(),
        safety_events=raised.events,
        notifications=raised.notifications,
        data_queries=len(prepared.queries),
    )


# -- history and reading ---------------------------------------------------------------------------


def batch_read(batch: ImportBatch, trial_code: str) -> ImportBatchRead:
    return ImportBatchRead(
        id=batch.id,
        trial_code=trial_code,
        kind=batch.kind,
        filename=batch.filename,
        sha256=batch.sha256,
        row_count=batch.row_count,
        rows_sha256=batch.rows_sha256,
        site_codes=[c for c in batch.site_codes.split(",") if c],
        imported_by=batch.imported_by,
        created_at=batch.created_at,
    )


def list_batches(code: str, *, session: Session, by: Principal) -> list[ImportBatchRead]:
    """The trial's import batches, newest first; site staff see those of their sites only."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    batches = session.exec(
        select(ImportBatch)
        .options(defer(ImportBatch.content))  # type: ignore[arg-type]
        .where(ImportBatch.trial_id == trial.id)
        .order_by(col(ImportBatch.created_at).desc())
    ).all()
    sites = visible_site_ids(by, trial.id)
    codes = (
        None if sites is None else set(session.exec(select(Site.code).where(col(Site.id).in_(sites))).all())
    )
    return [
        read
        for read in (batch_read(batch, trial.code) for batch in batches)
        if codes is None or set(read.site_codes) <= codes
    ]


def rows_of_batch(
    model: type[Assessment] | type[EngagementDay], batch_id: uuid.UUID, *, session: Session
) -> list[dict[str, Any]]:
    """The stored rows a batch inserted, as `audit.rows_digest` takes them (to check a digest)."""
    t = cast(Any, model).__table__
    query = core_select(t).where(t.c.import_batch_id == batch_id)
    return [dict(r) for r in session.connection().execute(query).mappings()]
