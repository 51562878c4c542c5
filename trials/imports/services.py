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
import hashlib
import io
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import select as core_select
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

_INTEGER = re.compile(r"-?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FILENAME = re.compile(NO_CONTROL)
_ITEM_CELLS = {"0": 0, "1": 1, "2": 2, "3": 3}
_ITEM_KEYS = tuple(str(n) for n in range(1, len(ITEM_COLUMNS) + 1))


# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError(FieldError):
    """A rule broken by one cell (or row) of the file; row 1 is the header."""

    row: int
    column: str


class ImportRefused(InvalidInput):
    """The whole file is refused; `errors` lists up to `MAX_ERRORS_LISTED` row errors, then a
    `more_errors` entry with the count of those not listed."""

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
    """Collects row errors in file order, keeping the first `MAX_ERRORS_LISTED`."""

    def __init__(self) -> None:
        self.listed: list[RowError] = []
        self.total = 0
        self.rows: set[int] = set()

    def add(self, row: int, column: str, rule: str, text: str) -> None:
        self.total += 1
        self.rows.add(row)
        if len(self.listed) < MAX_ERRORS_LISTED:
            where = f"row {row}, {column}" if column else f"row {row}"
            path = f"rows.{row}.{column}" if column else f"rows.{row}"
            self.listed.append(RowError(path, rule, f"{where}: {text}", row, column))

    def add_field_error(self, row: int, error: FieldError, column: str) -> None:
        """A service's field error (`items.3: ...`) as the error of a cell (`item_3`)."""
        _field, _sep, text = error.message.partition(": ")
        self.add(row, column, error.rule, text or error.message)

    def __bool__(self) -> bool:
        return self.total > 0

    def refuse(self) -> ImportRefused:
        return ImportRefused(self.listed, self.total, len(self.rows))


def _refused(row: int, column: str, rule: str, text: str) -> ImportRefused:
    errors = _Errors()
    errors.add(row, column, rule, text)
    return errors.refuse()


# -- reading the file ---------------------------------------------------------------------------


@dataclass
class _Table:
    """The data rows of a file: their row numbers and cells, by column."""

    index: dict[str, int]
    numbers: list[int] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


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
    table = _Table({name: i for i, name in enumerate(header)})
    width = len(header)
    for number, record in records:
        if len(record) != width:
            if not any(record):
                continue  # a blank line, or a spreadsheet's empty row: no data
            errors.add(number, "", "cell_count", f"has {len(record)} cells where the header has {width}")
            continue
        if not any(record):
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


# -- what the rows refer to ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Person:
    id: uuid.UUID
    label: str
    site_id: uuid.UUID
    consent_date: date | None
    randomized_on: date | None


class _People:
    """The participants a file names, as the importer may see them: another site's participant
    is unknown, exactly like one that does not exist."""

    def __init__(self, trial: Trial, labels: set[str], by: Principal, *, session: Session) -> None:
        p = Participant.__table__  # type: ignore[attr-defined]
        s = AllocationSlot.__table__  # type: ignore[attr-defined]
        query = (
            core_select(p.c.id, p.c.label, p.c.site_id, p.c.consent_date, s.c.randomized_at)
            .select_from(p.outerjoin(s, s.c.participant_id == p.c.id))
            .where(p.c.trial_id == trial.id)
        )
        if len(labels) <= _FEW:
            query = query.where(p.c.label.in_(sorted(labels)))
        visible = visible_site_ids(by, trial.id)
        self.by_label: dict[str, _Person] = {}
        for pid, label, site_id, consent_date, randomized_at in session.connection().execute(query):
            if visible is not None and site_id not in visible:
                continue
            self.by_label[label] = _Person(
                pid, label, site_id, consent_date, None if randomized_at is None else randomized_at.date()
            )
        self._enterable: dict[uuid.UUID, bool] = {}
        self._trial_id = trial.id
        self._by = by
        self.code = trial.code

    def may_enter(self, person: _Person) -> bool:
        allowed = self._enterable.get(person.site_id)
        if allowed is None:
            grant = self._by.grant_for(Permission.ENTER_DATA, trial_id=self._trial_id, site_id=person.site_id)
            allowed = self._enterable[person.site_id] = grant is not None
        return allowed

    def resolve(self, number: int, label: str, what: str, errors: _Errors) -> _Person | None:
        """The randomized participant a row names, or None after recording why not."""
        if not label:
            errors.add(number, "participant", "required", "a participant label is required")
            return None
        person = self.by_label.get(label)
        if person is None:
            errors.add(
                number, "participant", "unknown_participant", f"no participant {label!r} in trial {self.code}"
            )
            return None
        if not self.may_enter(person):
            errors.add(
                number,
                "participant",
                "not_allowed",
                f"your account may not enter data at the site of {label}",
            )
            return None
        if person.randomized_on is None:
            errors.add(
                number,
                "participant",
                "not_randomized",
                f"{label} is not randomized: {what} are entered after randomization",
            )
            return None
        return person


def _participants_filter(column: Any, people: _People) -> Any:
    """Restrict a query to the file's participants when they are few."""
    ids = [p.id for p in people.by_label.values()]
    return column.in_(ids) if len(ids) <= _FEW else None


def _date(cell: str, cache: dict[str, date | None]) -> date | None:
    if cell in cache:
        return cache[cell]
    value = None
    if _DATE.fullmatch(cell):
        try:
            value = date.fromisoformat(cell)
        except ValueError:
            value = None
    cache[cell] = value
    return value


def _integer(cell: str) -> int | str:
    """An integer written in plain ASCII digits, or the cell itself (refused by the rules)."""
    return int(cell) if _INTEGER.fullmatch(cell) else cell


def _chunks(total: int, progress: Progress | None, phase: str) -> Callable[[int], None]:
    def report(done: int) -> None:
        if progress is not None and (done % CHUNK_ROWS == 0 or done == total):
            progress(phase, done, total)

    return report


# -- assessments ---------------------------------------------------------------------------------


@dataclass
class _Prepared:
    rows: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    signals: list[safety.Signals] = field(default_factory=list)


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
    a = Assessment.__table__  # type: ignore[attr-defined]
    existing_query = core_select(a.c.participant_id, a.c.visit_code, a.c.instrument).where(
        a.c.trial_id == trial_id
    )
    only = _participants_filter(a.c.participant_id, people)
    if only is not None:
        existing_query = existing_query.where(only)
    existing = {tuple(r) for r in session.connection().execute(existing_query)}
    visits: list[Visit] = list(document.visits)
    baseline_code = document.baseline_visit.code
    target_day = {v.code: v.day for v in visits}
    assigned: dict[int, VisitAssignment] = {}
    dates: dict[str, date | None] = {}
    first_row: dict[tuple[uuid.UUID, str, str], int] = {}
    ix = table.index
    i_participant, i_instrument, i_date = ix["participant"], ix["instrument"], ix["assessed_on"]
    i_items = [ix[c] for c in ITEM_COLUMNS]
    now = utcnow()
    prepared = _Prepared()
    phq9: list[tuple[dict[str, Any], _Person, dict[int, int | None]]] = []
    report = _chunks(len(table.rows), progress, "validating")
    for done, (number, cells) in enumerate(zip(table.numbers, table.rows, strict=True), start=1):
        report(done)
        person = people.resolve(number, cells[i_participant], "assessments", errors)
        instrument = cells[i_instrument]
        rule = RULES.get(instrument)
        if rule is None:
            if instrument:
                errors.add(
                    number,
                    "instrument",
                    "unknown_instrument",
                    f"{instrument!r} is not one of {', '.join(RULES)}",
                )
            else:
                errors.add(number, "instrument", "required", "an instrument is required")
        cell = cells[i_date]
        assessed_on = _date(cell, dates)
        if assessed_on is None:
            if cell:
                errors.add(number, "assessed_on", "date_format", f"{cell!r} is not a date written YYYY-MM-DD")
            else:
                errors.add(number, "assessed_on", "required", "a date is required")
        elif person is not None:
            try:
                check_assessed_on(assessed_on, person.consent_date, today)
            except InvalidInput as exc:
                for error in exc.errors:
                    errors.add_field_error(number, error, "assessed_on")
                assessed_on = None
        values: dict[int, int | None] | None = None
        if rule is not None:
            given: dict[str, Any] = {}
            for item_key, i in zip(_ITEM_KEYS, i_items, strict=True):
                item = cells[i]
                if item:
                    value = _ITEM_CELLS.get(item)
                    given[item_key] = _integer(item) if value is None else value
            try:
                values = validate_items(instrument, cast(Items, given))
            except InvalidInput as exc:
                for error in exc.errors:
                    item_key = error.field.partition(".")[2]
                    if error.rule == "int_type":  # name the cell as written
                        text = (
                            f"{given[item_key]!r} is not an integer (leave the cell empty for a missing item)"
                        )
                        errors.add(number, "item_" + item_key, error.rule, text)
                    else:
                        errors.add_field_error(number, error, "item_" + item_key)
        if person is None or rule is None or assessed_on is None or person.randomized_on is None:
            continue
        day = (assessed_on - person.randomized_on).days
        visit = assigned.get(day)
        if visit is None:
            visit = assigned[day] = assign_visit(day, visits)
        key = (person.id, visit.visit_code, instrument)
        if key in existing:
            errors.add(
                number,
                "assessed_on",
                "duplicate",
                f"{person.label} already has a {instrument} for visit {visit.visit_code}: correct it "
                "through the API (with a reason) instead of importing it again",
            )
            continue
        if key in first_row:
            errors.add(
                number,
                "assessed_on",
                "duplicate_in_file",
                f"row {first_row[key]} is already {person.label}'s {instrument} for visit {visit.visit_code}",
            )
            continue
        first_row[key] = number
        if errors or values is None:
            continue  # refused anyway: only the errors matter from here on
        assessment_id = new_id()
        row: dict[str, Any] = {
            "id": assessment_id,
            "trial_id": trial_id,
            "participant_id": person.id,
            "instrument": instrument,
            "assessed_on": assessed_on,
            "visit_code": visit.visit_code,
            "in_window": visit.in_window,
            "source": "site",
            "entered_by": username,
            "created_at": now,
            "import_batch_id": batch_id,
        }
        for n, column in enumerate(ITEM_COLUMNS, start=1):
            row[column] = values.get(n)
        prepared.rows.append(row)
        if not visit.in_window:
            prepared.queries.append(
                {
                    "id": new_id(),
                    "trial_id": trial_id,
                    "participant_id": person.id,
                    "assessment_id": assessment_id,
                    "rule": "out_of_window",
                    "message": out_of_window_message(
                        instrument, assessed_on, visit, target_day[visit.visit_code]
                    ),
                    "status": "open",
                    "created_at": now,
                }
            )
        if instrument == "PHQ-9":
            phq9.append((row, person, values))
    if not errors:
        prepared.signals = _signals(phq9, baseline_code, document, session=session, people=people)
    return prepared


def _signals(
    phq9: list[tuple[dict[str, Any], _Person, dict[int, int | None]]],
    baseline_code: str,
    document: ProtocolDocument,
    *,
    session: Session,
    people: _People,
) -> list[safety.Signals]:
    """Each PHQ-9 row's safety signals, as the API raises them: item 9 first, then
    deterioration over the baseline PHQ-9, stored or in the same file."""
    rule = RULES["PHQ-9"]
    baselines: dict[uuid.UUID, int | None] = {}
    if any(row["visit_code"] != baseline_code for row, _p, _v in phq9):
        a = Assessment.__table__  # type: ignore[attr-defined]
        items = [a.c[c] for c in ITEM_COLUMNS[: rule.n_items]]
        query = core_select(a.c.participant_id, *items).where(
            a.c.trial_id == phq9[0][0]["trial_id"], a.c.instrument == "PHQ-9", a.c.visit_code == baseline_code
        )
        only = _participants_filter(a.c.participant_id, people)
        if only is not None:
            query = query.where(only)
        for pid, *answers in session.connection().execute(query):
            baselines[pid] = total_score(dict(enumerate(answers, start=1)), rule)
        for row, person, values in phq9:
            if row["visit_code"] == baseline_code:
                baselines[person.id] = total_score(values, rule)
    threshold = document.safety.deterioration_threshold
    out = []
    for row, person, values in phq9:
        baseline_total = None if row["visit_code"] == baseline_code else baselines.get(person.id)
        kinds = safety.signals(
            instrument="PHQ-9",
            item9=values.get(9),
            total=None if baseline_total is None else total_score(values, rule),
            baseline_total=baseline_total,
            threshold=threshold,
        )
        if kinds:
            out.append(
                safety.Signals(
                    participant_id=person.id,
                    participant_label=person.label,
                    site_id=person.site_id,
                    assessment_id=row["id"],
                    kinds=tuple(kinds),
                    item9=values.get(9),
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
    e = EngagementDay.__table__  # type: ignore[attr-defined]
    query = core_select(e.c.participant_id, e.c.day).where(e.c.trial_id == trial_id)
    only = _participants_filter(e.c.participant_id, people)
    if only is not None:
        query = query.where(only)
    existing = {tuple(r) for r in session.connection().execute(query)}
    dates: dict[str, date | None] = {}
    first_row: dict[tuple[uuid.UUID, date], int] = {}
    ix = table.index
    i_participant, i_day = ix["participant"], ix["day"]
    i_counts = [(c, ix[c]) for c in COUNT_COLUMNS]
    now = utcnow()
    prepared = _Prepared()
    report = _chunks(len(table.rows), progress, "validating")
    for done, (number, cells) in enumerate(zip(table.numbers, table.rows, strict=True), start=1):
        report(done)
        person = people.resolve(number, cells[i_participant], "engagement days", errors)
        cell = cells[i_day]
        day = _date(cell, dates)
        if day is None:
            if cell:
                errors.add(number, "day", "date_format", f"{cell!r} is not a date written YYYY-MM-DD")
            else:
                errors.add(number, "day", "required", "a date is required")
        elif person is not None and person.randomized_on is not None:
            problem = day_problem(
                day, consent_date=person.consent_date, randomized_on=person.randomized_on, today=today
            )
            if problem is not None:
                errors.add(number, "day", *problem)
                day = None
        counts: dict[str, int] = {}
        for name, i in i_counts:
            value = _integer(cells[i])
            if isinstance(value, int):
                counts[name] = value
            elif value:
                errors.add(number, name, "int_type", f"{value!r} is not an integer")
            else:
                errors.add(number, name, "required", "a count is required (0 when none)")
        if len(counts) == len(i_counts):
            problems = count_problems(counts["sessions"], counts["minutes"], counts["modules_completed"])
            for name, rule, text in problems:
                errors.add(number, name, rule, text)
            if problems:
                continue
        if person is None or day is None:
            continue
        key = (person.id, day)
        if key in existing:
            errors.add(
                number,
                "day",
                "duplicate",
                f"{person.label} already has engagement recorded on {day.isoformat()}: correct it "
                "through the API (with a reason) instead of importing it again",
            )
            continue
        if key in first_row:
            errors.add(
                number,
                "day",
                "duplicate_in_file",
                f"row {first_row[key]} is already {person.label} on {day.isoformat()}",
            )
            continue
        first_row[key] = number
        if errors or len(counts) != len(i_counts):
            continue
        prepared.rows.append(
            {
                "id": new_id(),
                "trial_id": trial_id,
                "participant_id": person.id,
                "day": day,
                **counts,
                "source": "import",
                "import_batch_id": batch_id,
                "created_at": now,
            }
        )
    return prepared


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
    table = read_table(content, kind)
    labels = {cells[table.index["participant"]] for cells in table.rows}
    people = _People(trial, labels, by, session=session)
    errors = _Errors()
    batch_id = new_id()
    if kind == "assessments":
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
        model: type[Assessment] | type[EngagementDay] = Assessment
    else:
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
        model = EngagementDay
    if errors:
        raise errors.refuse()
    return _write(
        trial, kind, name, content, sha256, prepared, model, batch_id, document, people, session, by, progress
    )


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
    summary = audit.rows_digest(model, prepared.rows)
    participant_ids = {row["participant_id"] for row in prepared.rows}
    site_of = {p.id: p.site_id for p in people.by_label.values()}
    codes = dict(session.exec(select(Site.id, Site.code)).all())
    batch = ImportBatch(
        id=batch_id,
        trial_id=trial.id,
        kind=kind,
        filename=name,
        sha256=sha256,
        row_count=len(prepared.rows),
        rows_sha256=summary.rows_sha256,
        site_codes=",".join(sorted({codes[site_of[pid]] for pid in participant_ids})),
        imported_by=by.username,
        content=content,
    )
    session.add(batch)
    session.flush()
    reason = f"CSV import of {name} (sha256 {sha256})"
    total = len(prepared.rows)
    audit.bulk_insert_summarized(
        session,
        model,
        prepared.rows,
        batch_table=ImportBatch.__tablename__,
        batch_id=batch_id,
        reason=reason,
        summary=summary,
        chunk_size=CHUNK_ROWS,
        progress=None if progress is None else lambda done: progress("writing", done, total),
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
    out = []
    for batch in batches:
        read = batch_read(batch, trial.code)
        if codes is None or set(read.site_codes) <= codes:
            out.append(read)
    return out


def rows_of_batch(
    model: type[Assessment] | type[EngagementDay], batch_id: uuid.UUID, *, session: Session
) -> list[dict[str, Any]]:
    """The stored rows a batch inserted, as `audit.rows_digest` takes them (to check a digest)."""
    t = cast(Any, model).__table__
    query = core_select(t).where(t.c.import_batch_id == batch_id)
    return [dict(r) for r in session.connection().execute(query).mappings()]


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
