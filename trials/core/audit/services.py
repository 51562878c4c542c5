"""The audit mechanism.

Every ORM flush of an `Audited` model passes through `_audit_before_flush`, which writes one entry
per changed field in the same transaction, appended to the hash chain. ORM bulk statements on
audited models are refused; bulk paths call `bulk_insert`, which writes rows and entries together.
Nothing updates or deletes an entry: the ORM refuses it here, and database triggers (created by
the migrations) refuse it underneath.
"""

import csv
import dataclasses
import hashlib
import io
import json
import operator
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, cast

from sqlalchemy import Connection, Engine, event, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.sql.dml import UpdateBase
from sqlmodel import Session, SQLModel, col

from trials.core.audit.models import ENTRY_TABLE, GENESIS_HASH, HEAD_TABLE, AuditChainHead, AuditEntry
from trials.core.db import utcnow
from trials.core.errors import InvalidInput
from trials.core.validation import hidden_characters

CHANNELS = ("web", "api", "cli", "system")
REDACTED = "[redacted]"
_ACTOR_KEY = "audit_actor"
_REASON_KEY = "audit_reason"


class AuditError(RuntimeError):
    """A write that the audit mechanism refuses: no actor, or a write around the trail."""


class Audited:
    """Mixin for table models whose every insert, update and delete is audited.

    Class attributes tune it: `__audit_exclude__` names bookkeeping fields whose changes are not
    entries (a token's last use); `__audit_redact__` names secrets whose change is recorded
    without the value; `__audit_reason_required__` (on by default) makes updates and deletes
    need a reason.
    """

    __audit_exclude__: ClassVar[frozenset[str]] = frozenset()
    # True for records that must stay writable after the trial's database lock (patient
    # safety: an emergency unblinding and the messages that announce it).
    __database_lock_exempt__: ClassVar[bool] = False
    __audit_redact__: ClassVar[frozenset[str]] = frozenset()
    __audit_reason_required__: ClassVar[bool] = True


@dataclass(frozen=True)
class Actor:
    """Who acts: recorded on every entry. `role` is the role under which the act was allowed."""

    user_id: uuid.UUID | None
    username: str
    printed_name: str
    role: str | None
    channel: str

    @classmethod
    def system(cls, channel: str = "system") -> "Actor":
        return cls(None, "system", "System", "system", channel)


def set_actor(session: Session, actor: Actor) -> None:
    if actor.channel not in CHANNELS:
        raise AuditError(f"unknown audit channel {actor.channel!r}")
    session.info[_ACTOR_KEY] = actor


def get_actor(session: Session) -> Actor | None:
    actor: Actor | None = session.info.get(_ACTOR_KEY)
    return actor


def act_as_role(session: Session, role: str | None) -> None:
    """Record the role under which the current actor's next changes were authorized."""
    actor = get_actor(session)
    if actor is not None and actor.role != role:
        session.info[_ACTOR_KEY] = dataclasses.replace(actor, role=role)


@contextmanager
def reason(session: Session, text: str | None, *, field: str = "reason") -> Iterator[Session]:
    """Attach a reason to the changes made inside the block; they are flushed on exit."""
    cleaned = (text or "").strip()
    if not cleaned:
        raise InvalidInput.field(field, "required", f"{field}: a reason is required for this change")
    if hidden_characters(cleaned):
        raise InvalidInput.field(
            field, "pattern", f"{field}: must not hold control or invisible formatting characters"
        )
    previous = session.info.get(_REASON_KEY)
    session.info[_REASON_KEY] = cleaned
    try:
        yield session
        session.flush()
    finally:
        if previous is None:
            session.info.pop(_REASON_KEY, None)
        else:
            session.info[_REASON_KEY] = previous


# -- values and hashing ---------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot record a value of type {type(value).__name__} in the audit trail")


def encode_value(value: Any) -> str:
    """The JSON text an old or new value is recorded as."""
    return json.dumps(value, default=_plain, sort_keys=True, ensure_ascii=False)


_HASHED_FIELDS = (
    "id",
    "seq",
    "occurred_at",
    "user_id",
    "username",
    "printed_name",
    "role",
    "channel",
    "action",
    "table_name",
    "record_id",
    "field",
    "old_value",
    "new_value",
    "reason",
    "trial_id",
    "prev_hash",
)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of an entry's content, including `prev_hash`."""
    content = {name: entry.get(name) for name in _HASHED_FIELDS}
    payload = json.dumps(content, default=_plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# -- appending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One field's change, or an event when `field` is None."""

    action: str
    table_name: str | None = None
    record_id: str | None = None
    field: str | None = None
    old_value: str | None = None
    new_value: str | None = None
    trial_id: uuid.UUID | None = None


def append(connection: Connection, actor: Actor, changes: Sequence[Change], reason: str | None) -> None:
    """Append entries for `changes` to the chain inside the connection's transaction."""
    if not changes:
        return
    with _writing(connection):
        _append(connection, actor, changes, reason)


def _append(connection: Connection, actor: Actor, changes: Sequence[Change], reason: str | None) -> None:
    head = HEAD_TABLE
    row = connection.execute(
        update(head)
        .where(head.c.id == 1)
        .values(last_seq=head.c.last_seq + len(changes))
        .returning(head.c.last_seq, head.c.last_hash)
    ).one_or_none()
    if row is None:
        raise AuditError("the audit chain head is missing: run `trials db upgrade`")
    seq = row.last_seq - len(changes)
    prev = row.last_hash
    now = utcnow()
    rows = []
    for change in changes:
        seq += 1
        entry: dict[str, Any] = {
            "id": uuid.uuid4(),
            "seq": seq,
            "occurred_at": now,
            "user_id": actor.user_id,
            "username": actor.username,
            "printed_name": actor.printed_name,
            "role": actor.role,
            "channel": actor.channel,
            "action": change.action,
            "table_name": change.table_name,
            "record_id": change.record_id,
            "field": change.field,
            "old_value": change.old_value,
            "new_value": change.new_value,
            "reason": reason,
            "trial_id": change.trial_id,
            "prev_hash": prev,
        }
        entry["hash"] = prev = entry_hash(entry)
        rows.append(entry)
    connection.execute(insert(ENTRY_TABLE), rows)
    connection.execute(update(head).where(head.c.id == 1).values(last_hash=prev))


def record_event(
    session: Session,
    action: str,
    *,
    table_name: str | None = None,
    record_id: str | None = None,
    detail: str | None = None,
    trial_id: uuid.UUID | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> None:
    """Append an event (sign-in, failed sign-in, lock, export, ...) that is not a field change."""
    who = actor or get_actor(session)
    if who is None:
        raise AuditError(f"no actor set for audit event {action!r}")
    change = Change(action, table_name, record_id, None, None, detail, trial_id)
    append(session.connection(), who, [change], reason)


def _record_id(obj: Any) -> str:
    return str(inspect(obj).identity[0] if inspect(obj).identity else obj.id)


def _trial_id(obj: Any) -> uuid.UUID | None:
    if getattr(obj, "__tablename__", None) == "trial":
        value: uuid.UUID | None = obj.id
        return value
    return getattr(obj, "trial_id", None)


def _value(cls: type[Audited], key: str, value: Any) -> str | None:
    if value is None:
        return None
    return encode_value(REDACTED if key in cls.__audit_redact__ else value)


def _object_changes(session: OrmSession, obj: Any, action: str) -> list[Change]:
    cls = type(obj)
    state = inspect(obj)
    table = obj.__tablename__
    record_id = str(obj.id)
    trial_id = _trial_id(obj)
    changes = []
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in cls.__audit_exclude__:
            continue
        if action == "insert":
            old, new = None, getattr(obj, key)
        elif action == "delete":
            old, new = getattr(obj, key), None
        else:
            history = state.attrs[key].history
            if not history.added:
                continue
            new = history.added[0]
            if history.deleted:
                old = history.deleted[0]
            else:  # the old value was never loaded: read it before the flush overwrites it
                column = state.mapper.columns[key]
                pk = state.mapper.primary_key[0]
                old = session.connection().execute(select(column).where(pk == obj.id)).scalar_one_or_none()
        if old == new:
            continue
        changes.append(
            Change(
                action,
                table,
                record_id,
                key,
                _value(cls, key, old),
                _value(cls, key, new),
                trial_id,
            )
        )
    if not changes and action != "update":
        changes.append(Change(action, table, record_id, None, None, None, trial_id))
    return changes


@event.listens_for(OrmSession, "before_flush")
def _audit_before_flush(session: OrmSession, _context: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, AuditEntry | AuditChainHead):
            raise AuditError("audit entries are append-only and written by the audit mechanism")
    pending: list[Change] = []
    needs_reason: list[str] = []
    for action, objects in (
        ("insert", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in objects:
            if not isinstance(obj, Audited):
                continue
            if action == "update" and not session.is_modified(obj, include_collections=False):
                continue
            changes = _object_changes(session, obj, action)
            if changes and action != "insert" and type(obj).__audit_reason_required__:
                needs_reason.append(str(getattr(obj, "__tablename__", type(obj).__name__)))
            pending.extend(changes)
    if not pending:
        # Bookkeeping-only changes (excluded fields) are written without entries.
        if any(isinstance(obj, Audited) for obj in (*session.new, *session.dirty, *session.deleted)):
            connection = session.connection()
            connection.info[_ALLOWED] = connection.get_transaction()
        return
    reason_text: str | None = session.info.get(_REASON_KEY)
    if needs_reason and not reason_text:
        tables = ", ".join(sorted(set(needs_reason)))
        raise InvalidInput.field(
            "reason", "required", f"reason: changing or deleting {tables} records requires a reason"
        )
    actor: Actor | None = session.info.get(_ACTOR_KEY)
    if actor is None:
        raise AuditError("no actor set on the session: every audited change needs one")
    connection = session.connection()
    append(connection, actor, pending, reason_text)
    # The flush that follows writes exactly the rows just audited.
    connection.info[_ALLOWED] = connection.get_transaction()


@event.listens_for(OrmSession, "after_flush_postexec")
def _audit_after_flush(session: OrmSession, _context: Any) -> None:
    session.connection().info.pop(_ALLOWED, None)


_ALLOWED = "audit_allowed_transaction"


@contextmanager
def _writing(connection: Connection) -> Iterator[None]:
    """Let the audit mechanism's own statements through the guard, for this transaction only."""
    transaction = connection.get_transaction()
    previous = connection.info.get(_ALLOWED)
    connection.info[_ALLOWED] = transaction
    try:
        yield
    finally:
        # A connection lost meanwhile (the server gone) is invalidated: touching its `info` would
        # raise PendingRollbackError in place of the error that lost it, and the transaction the
        # flag belongs to is gone with it.
        if not connection.invalidated:
            connection.info[_ALLOWED] = previous


def _audited_tables() -> frozenset[str]:
    tables, pending = set(), list(Audited.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if getattr(cls, "__table__", None) is not None:
            tables.add(cls.__table__.name)  # type: ignore[attr-defined]
    return frozenset(tables)


@event.listens_for(Engine, "before_execute")
def _refuse_writes_around_the_trail(
    connection: Connection, statement: Any, _multiparams: Any, _params: Any, _options: Any
) -> None:
    """Any INSERT, UPDATE or DELETE statement on an audited table or on the trail itself, from
    the ORM or Core, is refused unless the audit mechanism is the one writing it."""
    if not isinstance(statement, UpdateBase):
        return
    table = getattr(statement, "table", None)
    name = getattr(table, "name", None)
    if name is None:
        return
    allowed = connection.info.get(_ALLOWED)
    if allowed is not None and allowed is connection.get_transaction():
        return
    if name in (ENTRY_TABLE.name, HEAD_TABLE.name):
        raise AuditError("audit entries are append-only and written by the audit mechanism")
    if name in _audited_tables():
        raise AuditError(
            f"a bulk statement on {name} would bypass the audit trail: change rows through the "
            "ORM, or insert them with audit.bulk_insert"
        )


def bulk_insert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> int:
    """Insert many rows of an audited model with Core executemany, auditing every field.

    The bulk path for imports and simulations: no ORM objects are built, and the entries are
    appended in the same transaction as the rows.
    """
    if not issubclass(model, Audited):
        raise AuditError(f"{model.__name__} is not an audited model")
    actor = get_actor(session)
    if actor is None:
        raise AuditError("no actor set on the session: every audited change needs one")
    if not rows:
        return 0
    table = model.__table__  # type: ignore[attr-defined]
    changes: list[Change] = []
    for row in rows:
        record_id = str(row["id"])
        trial_id = row.get("trial_id") if table.name != "trial" else row["id"]
        changes.extend(
            Change("insert", table.name, record_id, key, None, _value(model, key, value), trial_id)
            for key, value in row.items()
            if value is not None and key not in model.__audit_exclude__
        )
    connection = session.connection()
    with _writing(connection):
        connection.execute(insert(table), rows)
    append(connection, actor, changes, session.info.get(_REASON_KEY))
    return len(rows)


# -- bulk inserts summarized by batch ---------------------------------------------------------

SUMMARY_FIELD = "*"


@dataclass(frozen=True)
class RowsSummary:
    """What one summarized entry records of the rows a batch inserted into one table."""

    table_name: str
    rows: int
    rows_sha256: str


# Rows of one table: a list of row mappings, or the rows column by column (name -> values).
Rows = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]

_AS_TEXT: dict[type, Callable[[Any], str]] = {
    uuid.UUID: operator.attrgetter("hex"),
    date: date.isoformat,
    datetime: datetime.isoformat,
    Decimal: str,
    bytes: bytes.hex,
}


def _by_column(model: type[SQLModel], rows: Rows) -> tuple[dict[str, Sequence[Any]], int]:
    """Every column of the model's table, each with one value per row, and the row count."""
    table = model.__table__  # type: ignore[attr-defined]
    names = [c.name for c in table.columns]
    if isinstance(rows, Mapping):
        lengths = {len(values) for values in rows.values()}
        if rows.keys() != set(names) or len(lengths) != 1:
            raise AuditError(f"a bulk insert into {table.name} must give every column, each as long")
        return {name: rows[name] for name in names}, lengths.pop()
    expected = set(names)
    if any(len(row) != len(expected) or row.keys() != expected for row in rows):
        raise AuditError(f"every {table.name} row of a bulk insert must give every column")
    return {name: [row[name] for row in rows] for name in names}, len(rows)


def _canonical(value: Any) -> Any:
    """A value of a rows digest as JSON: UUIDs as their 32 hexadecimal digits, dates and times in
    ISO format, bytes in hexadecimal."""
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    convert = _AS_TEXT.get(type(value))
    return convert(value) if convert is not None else _plain(value)


def _canonical_column(values: Sequence[Any]) -> Sequence[Any]:
    """`_canonical` of each of a column's values, converted column by column."""
    sample = next((v for v in values if v is not None), None)
    if sample is None or isinstance(sample, str | int | float):
        return values
    if all(v is sample for v in values):  # one value for the whole batch: the trial, a time
        return [_canonical(sample)] * len(values)
    convert = _AS_TEXT.get(type(sample))
    kind = type(sample)
    if convert is None or any(type(v) is not kind for v in values):  # of mixed types, or missing
        return [_canonical(v) for v in values]
    return list(map(convert, values))


def digest_columns(model: type[SQLModel]) -> tuple[str, ...]:
    """The columns a rows digest covers: every column the audit records, sorted by name."""
    table = model.__table__  # type: ignore[attr-defined]
    exclude = model.__audit_exclude__ if issubclass(model, Audited) else frozenset()
    return tuple(sorted(c.name for c in table.columns if c.name not in exclude))


def _constant(values: Sequence[Any]) -> bool:
    first = values[0]
    return all(v is first for v in values) or all(type(v) is type(first) and v == first for v in values)


def rows_digest(model: type[SQLModel], rows: Rows) -> RowsSummary:
    """SHA-256 over the canonical content of `rows` of `model`'s table.

    Canonical content: the JSON text (sorted keys, no spaces) of ``{"table": name,
    "constants": {column: value}, "columns": [...], "rows": [[...], ...]}``. Of the audited
    columns, sorted by name, those holding one value in every row are in `constants` (never
    `id`); `rows` holds each row's values of the other `columns` in that order, rows sorted by
    their `id`. UUIDs are written as their 32 hexadecimal digits, dates and times in ISO format.
    The same rows read back from the database give the same digest, whatever order they were
    inserted or are read in.
    """
    table = model.__table__  # type: ignore[attr-defined]
    columns, count = _by_column(model, rows)
    constants: dict[str, Any] = {}
    varying: list[str] = []
    for name in digest_columns(model):
        values = columns[name]
        if name != "id" and count and _constant(values):
            constants[name] = _canonical(values[0])
        else:
            varying.append(name)
    values = [_canonical_column(columns[name]) for name in varying]
    content = {
        "table": table.name,
        "constants": constants,
        "columns": varying,
        "rows": sorted(zip(*values, strict=True), key=operator.itemgetter(varying.index("id"))),
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return RowsSummary(table.name, count, hashlib.sha256(text.encode("utf-8")).hexdigest())


def bulk_insert_summarized(
    session: Session,
    model: type[SQLModel],
    rows: Rows,
    *,
    batch_table: str,
    batch_id: uuid.UUID,
    reason: str,
    summary: RowsSummary | None = None,
    chunk_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> RowsSummary:
    """Insert many rows of an audited model under ONE entry for the whole batch.

    For bulk paths whose every row belongs to a batch record that is itself audited field by
    field (an import batch, which keeps the file's bytes and their SHA-256): the entry records
    action ``insert``, the rows' table, the batch's id as `record_id`, field ``*`` and, as its
    new value, ``{"rows": n, "rows_sha256": ..., "<batch_table>_id": ...}`` (for an import
    batch, ``import_batch_id``). The digest (`rows_digest`) makes every inserted value
    tamper-evident through the hash chain.

    `rows` give every column of the table, as row mappings or column by column. `summary`,
    when given, must be `rows_digest(model, rows)` (computed once by a caller that also records
    it on the batch record). Rows are written in chunks of `chunk_size`, with COPY on
    PostgreSQL and executemany elsewhere; `progress` is called with the rows written after each
    chunk.
    """
    if not issubclass(model, Audited):
        raise AuditError(f"{model.__name__} is not an audited model")
    actor = get_actor(session)
    if actor is None:
        raise AuditError("no actor set on the session: every audited change needs one")
    if not (reason or "").strip():
        raise AuditError("a summarized bulk insert needs a reason")
    table = model.__table__  # type: ignore[attr-defined]
    columns, count = _by_column(model, rows)
    if count == 0:
        raise AuditError("a summarized bulk insert needs at least one row")
    trial_id = None
    if "trial_id" in columns:
        first = columns["trial_id"][0]
        if all(v is first for v in columns["trial_id"]) or len(set(columns["trial_id"])) == 1:
            trial_id = first
    summary = summary or rows_digest(model, columns)
    if summary.table_name != table.name or summary.rows != count:
        raise AuditError(f"the summary given does not describe these {table.name} rows")
    change = Change(
        "insert",
        table.name,
        str(batch_id),
        SUMMARY_FIELD,
        None,
        encode_value(
            {"rows": summary.rows, "rows_sha256": summary.rows_sha256, f"{batch_table}_id": str(batch_id)}
        ),
        trial_id,
    )
    connection = session.connection()
    append(connection, actor, [change], reason.strip())
    with _writing(connection):
        for start in range(0, count, chunk_size):
            chunk = {name: values[start : start + chunk_size] for name, values in columns.items()}
            if connection.dialect.name == "postgresql":
                _copy_rows(connection, table, chunk)
            elif connection.dialect.paramstyle == "qmark":  # SQLite
                _execute_many(connection, table, chunk)
            else:
                connection.execute(
                    insert(table),
                    [dict(zip(chunk, row, strict=True)) for row in zip(*chunk.values(), strict=True)],
                )
            if progress is not None:
                progress(min(start + chunk_size, count))
    return summary


def _execute_many(connection: Connection, table: Any, columns: Mapping[str, Sequence[Any]]) -> None:
    """The table's INSERT executemany, with each column's values converted by the column
    type's own bind processor, column by column (what Core does row by row)."""
    dialect = connection.dialect
    converted = []
    for name, values in columns.items():
        process = table.c[name].type._cached_bind_processor(dialect)
        if process is None:
            converted.append(values)
            continue
        first = values[0]
        if all(v is first for v in values):  # one value for the whole chunk
            converted.append([process(first)] * len(values))
        elif isinstance(first, date | bool | Decimal):  # few distinct values: each converted once
            done: dict[Any, Any] = {}
            converted.append([done[v] if v in done else done.setdefault(v, process(v)) for v in values])
        else:
            converted.append(list(map(process, values)))
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    connection.exec_driver_sql(sql, list(zip(*converted, strict=True)))


def _copy_rows(connection: Connection, table: Any, columns: Mapping[str, Sequence[Any]]) -> None:
    """COPY rows into a PostgreSQL table on the connection's transaction (psycopg 3)."""
    names = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    dbapi = cast(Any, connection.connection.dbapi_connection)
    try:
        with dbapi.cursor() as cursor, cursor.copy(statement) as copy:
            for row in zip(*columns.values(), strict=True):
                copy.write_row(row)
    except connection.dialect.loaded_dbapi.IntegrityError as exc:  # as SQLAlchemy reports it
        raise IntegrityError(statement, None, exc) from exc


# -- reading and verifying ------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    """The outcome of recomputing the chain; `broken_seq` names the first broken entry."""

    ok: bool
    entries_checked: int
    broken_seq: int | None = None
    broken_id: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Anchor:
    """An entry's sequence number and hash, recorded outside the database (an evidence
    bundle's manifest, a signed e-mail): a chain cut back or rewritten below it, even with its
    head rewritten to match, no longer verifies against it."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> "Anchor":
        seq, _, digest = text.partition(":")
        if not seq.isascii() or not seq.isdigit() or len(digest) != 64:
            raise InvalidInput.field("anchor", "format", "anchor: expected SEQ:SHA256, e.g. 152:3fa4…")
        return cls(int(seq), digest.lower())


def chain_head(connection: Connection) -> Anchor:
    """The chain's last entry, to be recorded as an anchor."""
    head = connection.execute(select(HEAD_TABLE)).mappings().one()
    return Anchor(int(head["last_seq"]), str(head["last_hash"]))


def verify_chain(connection: Connection, *, anchors: Sequence[Anchor] = (), batch: int = 5000) -> ChainReport:
    """Recompute every entry's hash and link, in order, and compare with the chain head and
    with any anchors recorded outside the database."""
    report = _verify_entries(connection, batch)
    if not report.ok:
        return report
    for anchor in sorted(anchors, key=lambda a: a.seq):
        if anchor.seq > report.entries_checked:
            return ChainReport(
                False,
                report.entries_checked,
                anchor.seq,
                None,
                f"entry #{anchor.seq} is anchored but the chain ends at #{report.entries_checked}",
            )
        stored = connection.execute(
            select(ENTRY_TABLE.c.hash).where(ENTRY_TABLE.c.seq == anchor.seq)
        ).scalar_one()
        if stored != anchor.hash:
            return ChainReport(
                False,
                report.entries_checked,
                anchor.seq,
                None,
                f"entry #{anchor.seq} does not match its anchor: the chain was rewritten",
            )
    return report


def _verify_entries(connection: Connection, batch: int) -> ChainReport:
    table = ENTRY_TABLE
    expected_seq = 1
    prev = GENESIS_HASH
    checked = 0
    statement = select(table).order_by(table.c.seq).execution_options(yield_per=batch)
    result = connection.execute(statement)
    try:
        for row in result.mappings():
            entry = dict(row)
            if entry["seq"] != expected_seq:
                return ChainReport(
                    False,
                    checked,
                    expected_seq,
                    None,
                    f"entry #{expected_seq} is missing (the next entry is #{entry['seq']})",
                )
            if entry["prev_hash"] != prev:
                return ChainReport(
                    False,
                    checked,
                    entry["seq"],
                    str(entry["id"]),
                    f"entry #{entry['seq']} does not link to entry #{expected_seq - 1}",
                )
            if entry_hash(entry) != entry["hash"]:
                return ChainReport(
                    False,
                    checked,
                    entry["seq"],
                    str(entry["id"]),
                    f"entry #{entry['seq']} does not match its hash: its content was changed",
                )
            prev = entry["hash"]
            expected_seq += 1
            checked += 1
    finally:
        result.close()
    head = connection.execute(select(HEAD_TABLE)).mappings().one_or_none()
    if head is None:
        return ChainReport(False, checked, None, None, "the audit chain head is missing")
    if head["last_seq"] != checked or head["last_hash"] != prev:
        return ChainReport(
            False,
            checked,
            checked + 1,
            None,
            f"the chain head records {head['last_seq']} entries but entries end at #{checked}: "
            f"entry #{checked + 1} is missing",
        )
    return ChainReport(True, checked)


@dataclass(frozen=True)
class AuditFilter:
    """Filters of the audit page, API and export. `trial_ids` None means every trial."""

    username: str | None = None
    table_name: str | None = None
    record_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    trial_ids: frozenset[uuid.UUID] | None = None


def _filtered(query: Any, flt: AuditFilter) -> Any:
    if flt.username:
        query = query.where(AuditEntry.username == flt.username)
    if flt.table_name:
        query = query.where(AuditEntry.table_name == flt.table_name)
    if flt.record_id:
        query = query.where(AuditEntry.record_id == flt.record_id)
    if flt.action:
        query = query.where(AuditEntry.action == flt.action)
    if flt.since:
        query = query.where(col(AuditEntry.occurred_at) >= flt.since)
    if flt.until:
        query = query.where(col(AuditEntry.occurred_at) <= flt.until)
    if flt.trial_ids is not None:
        query = query.where(col(AuditEntry.trial_id).in_(flt.trial_ids))
    return query


def list_entries(
    flt: AuditFilter, *, session: Session, limit: int = 100, offset: int = 0
) -> tuple[list[AuditEntry], int]:
    """A page of entries, newest first, and the number of entries matching the filter."""
    total = session.scalar(_filtered(select(func.count()).select_from(AuditEntry), flt))
    query = _filtered(select(AuditEntry), flt).order_by(col(AuditEntry.seq).desc())
    return list(session.scalars(query.limit(limit).offset(offset))), int(total or 0)


EXPORT_COLUMNS = (
    "seq",
    "occurred_at",
    "username",
    "printed_name",
    "role",
    "channel",
    "action",
    "table_name",
    "record_id",
    "field",
    "old_value",
    "new_value",
    "reason",
    "trial_id",
    "hash",
    "prev_hash",
)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A spreadsheet must not run what someone typed (a username of "=HYPERLINK(...)"): text that
    a spreadsheet would read as a formula is exported with a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export_csv(flt: AuditFilter, *, session: Session) -> Iterable[str]:
    """Entries matching the filter as CSV text chunks, in chain order."""
    query = _filtered(select(AuditEntry), flt).order_by(col(AuditEntry.seq))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for entry in session.scalars(query.execution_options(yield_per=2000)):
        writer.writerow(
            [
                entry.occurred_at.isoformat() if name == "occurred_at" else _cell(getattr(entry, name))
                for name in EXPORT_COLUMNS
            ]
        )
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
