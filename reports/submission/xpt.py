"""SAS transport (XPORT version 5) files of a submission package, their CSV copies and the
package's Define-XML, written all-or-nothing.

The writer refuses a package that breaks a transport constraint (DOMAIN.md section 5) instead of
truncating or coercing anything: every problem is listed by :func:`transport_problems` and
carried by :class:`TransportError`. Files are written by pyreadstat (ReadStat) into a temporary
sibling folder, each one is read back and compared with the frame it came from, and only then
does the folder replace the previous one.

Frame conventions are those of :mod:`reports.submission.metadata`; :func:`to_package_frame`
turns what pyreadstat reads back into them, so that a read-back frame equals the written one.
"""

import datetime as dt
import hashlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat

from reports.submission.metadata import (
    TRANSPORT_LABEL_MAX,
    TRANSPORT_NAME_MAX,
    TRANSPORT_TEXT_MAX,
    Dataset,
    Package,
)
from trials.core.errors import FieldError, InvalidInput

# SAS dates count days from 1960-01-01.
SAS_EPOCH = dt.date(1960, 1, 1)
SAS_DATE_FORMAT = "DATE9."
NUMERIC_LENGTH = 8
# Regulators (FDA Study Data Technical Conformance Guide) accept datasets up to 5 GB each.
FILE_SIZE_MAX = 5 * 10**9
# XPORT stores numbers as IBM System/360 floating point: exponent 16**-65 .. 16**63.
_IBM_MAX = 16.0**63 * (1 - 16.0**-14)
_IBM_MIN = 16.0**-65
# Integers beyond 2**53 cannot all be held by a double, the only numeric type of the format.
_INT_MAX = 2**53
_XPT_RECORD = 80

_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def is_transport_name(name: str) -> bool:
    """A dataset or variable name SAS transport v5 allows: at most 8 characters, upper case, a
    letter first, then letters, digits or underscores."""
    return len(name) <= TRANSPORT_NAME_MAX and _NAME.match(name) is not None


# ISO 8601 dates as SDTM --DTC variables hold them: complete or with month/day left out.
_ISO_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?\Z")

Progress = Callable[[int, int, str], None]  # (done, total, dataset or file name)


@dataclass(frozen=True)
class Problem:
    """One broken transport (or metadata) constraint: where, which rule, and a sentence."""

    dataset: str | None
    variable: str | None
    rule: str
    message: str

    def __str__(self) -> str:
        return self.message

    @property
    def field(self) -> str:
        return ".".join(p for p in (self.dataset, self.variable) if p)


class TransportError(InvalidInput):
    """The package cannot be written as it is; ``problems`` lists every reason."""

    def __init__(self, detail: str, problems: list[Problem]) -> None:
        super().__init__(detail, errors=[FieldError(p.field, p.rule, p.message) for p in problems])
        self.problems = problems


@dataclass(frozen=True)
class WrittenFile:
    """A file of a written package: ``path`` relative to the package folder's parent."""

    path: Path
    sha256: str
    size: int
    rows: int | None


@dataclass(frozen=True)
class XptInfo:
    """What a transport file says about itself."""

    name: str
    label: str
    version: int  # 5 or 8, from the library header record
    rows: int
    variables: tuple[str, ...]
    labels: Mapping[str, str]  # "" where a variable has no label
    widths: Mapping[str, int]  # storage width in bytes
    types: Mapping[str, str]  # "string" or "double"
    formats: Mapping[str, str]  # e.g. "DATE9"; absent where none is set


# --- lengths -------------------------------------------------------------------------------------


def _byte_length(value: Any) -> int:
    return len(value.encode("utf-8")) if isinstance(value, str) else 0


def fitted_lengths(frame: pd.DataFrame, dataset: Dataset) -> dict[str, int]:
    """The length of each variable as written: for text (and ISO date text) the largest UTF-8
    byte length of its values, at least 1 (a column of missing values still takes one byte);
    for numbers (and SAS dates) 8 bytes."""
    lengths: dict[str, int] = {}
    for var in dataset.variables:
        if var.data_type in ("text", "date"):
            column = frame[var.name] if var.name in frame.columns else pd.Series([], dtype=object)
            lengths[var.name] = max([1, *(_byte_length(v) for v in column)])
        else:
            lengths[var.name] = NUMERIC_LENGTH
    return lengths


# --- constraints ---------------------------------------------------------------------------------


def _name_problems(kind: str, name: str, dataset: str | None, variable: str | None) -> list[Problem]:
    out = []
    if len(name) > TRANSPORT_NAME_MAX:
        out.append(
            Problem(
                dataset,
                variable,
                "transport.name",
                f"{kind} name {name!r} has {len(name)} characters; at most {TRANSPORT_NAME_MAX} are allowed",
            )
        )
    if not _NAME.match(name):
        out.append(
            Problem(
                dataset,
                variable,
                "transport.name",
                f"{kind} name {name!r} must be upper case, start with a letter and hold only "
                "letters, digits and underscores",
            )
        )
    return out


def _label_problems(kind: str, label: str, dataset: str | None, variable: str | None) -> list[Problem]:
    out = []
    if len(label) > TRANSPORT_LABEL_MAX:
        out.append(
            Problem(
                dataset,
                variable,
                "transport.label",
                f"{kind} label {label!r} has {len(label)} characters; "
                f"at most {TRANSPORT_LABEL_MAX} are allowed",
            )
        )
    if not label.isascii() or not label.isprintable():
        out.append(
            Problem(dataset, variable, "transport.ascii", f"{kind} label {label!r} is not printable ASCII")
        )
    return out


def _rows(mask: pd.Series) -> str:
    """'rows 1, 4, 7' (first five, 1-based) for a boolean mask."""
    positions = [i + 1 for i, bad in enumerate(mask.tolist()) if bad]
    shown = ", ".join(str(p) for p in positions[:5])
    more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
    return f"row{'s' if len(positions) > 1 else ''} {shown}{more}"


def _text_problems(column: pd.Series, ds: str, var: str, *, iso_date: bool) -> list[Problem]:
    out: list[Problem] = []
    where = f"{ds}.{var}"
    if column.dtype != object:
        return [
            Problem(
                ds,
                var,
                "transport.type",
                f"{where} must be a text (object) column of str or None, not {column.dtype}",
            )
        ]
    values = column.tolist()
    wrong = pd.Series([v is not None and not isinstance(v, str) for v in values])
    if wrong.any():
        kinds = sorted({type(v).__name__ for v, w in zip(values, wrong, strict=True) if w})
        out.append(
            Problem(
                ds,
                var,
                "transport.type",
                f"{where} holds {', '.join(kinds)} values at {_rows(wrong)}; "
                "a text variable holds str or None only",
            )
        )
    text = pd.Series([v if isinstance(v, str) else None for v in values], dtype=object)
    present = text.notna()

    def flag(mask: pd.Series, rule: str, what: str) -> None:
        mask = mask & present
        if mask.any():
            out.append(Problem(ds, var, rule, f"{where} {what} at {_rows(mask)}"))

    flag(
        text.map(lambda v: isinstance(v, str) and not (v.isascii() and v.isprintable())),
        "transport.ascii",
        "holds characters other than printable ASCII",
    )
    flag(
        text.map(lambda v: _byte_length(v) > TRANSPORT_TEXT_MAX),
        "transport.value_size",
        f"holds values longer than {TRANSPORT_TEXT_MAX} bytes (split them or move them to SUPP--)",
    )
    # A transport file pads text with blanks: an empty string or trailing blanks would not come
    # back as written.
    flag(text.map(lambda v: v == ""), "transport.blank", "holds empty strings (use None for missing)")
    flag(
        text.map(lambda v: isinstance(v, str) and v != v.rstrip(" ")),
        "transport.blank",
        "holds values with trailing blanks",
    )
    if iso_date:
        flag(
            text.map(lambda v: isinstance(v, str) and not _is_iso_date(v)),
            "transport.type",
            "holds values that are not ISO 8601 dates (YYYY, YYYY-MM or YYYY-MM-DD)",
        )
    return out


def _is_iso_date(value: str) -> bool:
    match = _ISO_DATE.match(value)
    if not match:
        return False
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        dt.date(year or 1, month or 1, day or 1)
    except ValueError:
        return False
    return True


def _number_problems(column: pd.Series, ds: str, var: str, data_type: str) -> list[Problem]:
    where = f"{ds}.{var}"
    if data_type == "integer":
        if str(column.dtype) != "Int64":
            return [
                Problem(ds, var, "transport.type", f"{where} must be an Int64 column, not {column.dtype}")
            ]
        too_big = column.abs().gt(_INT_MAX).fillna(False)
        if too_big.any():
            return [
                Problem(
                    ds,
                    var,
                    "transport.type",
                    f"{where} holds integers beyond 2**53 at {_rows(too_big)}; a transport file "
                    "cannot hold them exactly",
                )
            ]
        return []
    if column.dtype != "float64":
        return [Problem(ds, var, "transport.type", f"{where} must be a float64 column, not {column.dtype}")]
    magnitude = column.abs()
    bad = magnitude.eq(math.inf) | magnitude.gt(_IBM_MAX) | (magnitude.gt(0) & magnitude.lt(_IBM_MIN))
    if bad.any():
        return [
            Problem(
                ds, var, "transport.type", f"{where} holds infinite or out-of-range numbers at {_rows(bad)}"
            )
        ]
    return []


def _sasdate_problems(column: pd.Series, ds: str, var: str) -> list[Problem]:
    where = f"{ds}.{var}"
    if column.dtype != object:
        return [
            Problem(ds, var, "transport.type", f"{where} must hold datetime.date or None, not {column.dtype}")
        ]
    # datetime.datetime is a subclass of date: a time of day would be lost, so it is refused.
    wrong = column.map(lambda v: v is not None and (type(v) is not dt.date))
    if wrong.any():
        return [
            Problem(
                ds,
                var,
                "transport.type",
                f"{where} holds values other than datetime.date or None at {_rows(wrong)}",
            )
        ]
    return []


def estimated_size(frame: pd.DataFrame, dataset: Dataset) -> int:
    """Bytes of the transport file, near enough: headers (80-byte records: 6 for the library
    and member, 2 per variable's 140-byte descriptor, 1 for the observation header) plus the
    rows, padded to whole records."""
    row = sum(fitted_lengths(frame, dataset).values())
    headers = _XPT_RECORD * (6 + math.ceil(140 * len(dataset.variables) / _XPT_RECORD) + 1)
    return headers + math.ceil(row * len(frame) / _XPT_RECORD) * _XPT_RECORD


_DEFINE_CLASSES = frozenset(
    {
        "ADAM OTHER",
        "BASIC DATA STRUCTURE",
        "DEVICE LEVEL ANALYSIS DATASET",
        "EVENTS",
        "FINDINGS",
        "FINDINGS ABOUT",
        "INTERVENTIONS",
        "MEDICAL DEVICE BASIC DATA STRUCTURE",
        "MEDICAL DEVICE OCCURRENCE DATA STRUCTURE",
        "OCCURRENCE DATA STRUCTURE",
        "RELATIONSHIP",
        "SPECIAL PURPOSE",
        "STUDY REFERENCE",
        "SUBJECT LEVEL ANALYSIS DATASET",
        "TRIAL DESIGN",
    }
)  # Define-XML 2.1 ItemGroupClass (define-enumerations.xsd)


def _metadata_problems(package: Package) -> list[Problem]:
    """What Define-XML needs the metadata to agree on: every reference resolves."""
    out: list[Problem] = []

    def bad(ds: str | None, var: str | None, message: str) -> None:
        out.append(Problem(ds, var, "metadata", message))

    if set(package.frames) != set(package.datasets):
        bad(None, None, f"frames {sorted(package.frames)} and datasets {sorted(package.datasets)} differ")
    for key, ds in package.datasets.items():
        if key != ds.name:
            bad(ds.name, None, f"dataset {ds.name!r} is filed under the key {key!r}")
        if ds.klass not in _DEFINE_CLASSES:
            bad(ds.name, None, f"{ds.name}: class {ds.klass!r} is not a Define-XML 2.1 dataset class")
        if ds.comment and ds.comment not in package.comments:
            bad(ds.name, None, f"{ds.name}: comment {ds.comment!r} is not among the package's comments")
        names = ds.names
        if len(set(names)) != len(names):
            bad(ds.name, None, f"{ds.name}: variables are listed more than once")
        for k in ds.keys:
            if k not in names:
                bad(ds.name, k, f"{ds.name}: key {k!r} is not a variable of the dataset")
        for v in ds.variables:
            where = f"{ds.name}.{v.name}"
            if v.codelist and v.codelist not in package.codelists:
                bad(ds.name, v.name, f"{where}: codelist {v.codelist!r} is not among the package's codelists")
            if v.method and v.method not in package.methods:
                bad(ds.name, v.name, f"{where}: method {v.method!r} is not among the package's methods")
            if v.comment and v.comment not in package.comments:
                bad(ds.name, v.name, f"{where}: comment {v.comment!r} is not among the package's comments")
            if v.origin == "Predecessor" and not v.predecessor:
                bad(ds.name, v.name, f"{where}: origin Predecessor needs the predecessor variable")
            if v.significant_digits is not None and v.data_type != "float":
                bad(ds.name, v.name, f"{where}: significant digits are for float variables only")
    for vl in package.value_level:
        ds_meta = package.datasets.get(vl.dataset)
        where = f"{vl.dataset}.{vl.variable}"
        if ds_meta is None or vl.variable not in ds_meta.names:
            bad(vl.dataset, vl.variable, f"value-level metadata for {where}, which is not a variable")
            continue
        if not vl.where:
            bad(vl.dataset, vl.variable, f"value-level metadata for {where} has no where clause")
        for name, _ in vl.where:
            if name not in ds_meta.names:
                bad(vl.dataset, vl.variable, f"value-level metadata for {where}: {name!r} is not a variable")
        for ref, pool, what in (
            (vl.codelist, package.codelists, "codelist"),
            (vl.method, package.methods, "method"),
            (vl.comment, package.comments, "comment"),
        ):
            if ref and ref not in pool:
                bad(vl.dataset, vl.variable, f"value-level metadata for {where}: {what} {ref!r} is unknown")
    for name, codelist in package.codelists.items():
        if name != codelist.name:
            bad(None, None, f"codelist {codelist.name!r} is filed under the key {name!r}")
        if not codelist.terms:
            bad(None, None, f"codelist {name!r} has no terms")
    return out


def transport_problems(package: Package) -> list[Problem]:
    """Every transport constraint (DOMAIN.md section 5) the package breaks, plus the metadata
    references Define-XML needs resolved. Empty when the package can be written."""
    out = _metadata_problems(package)
    for ds in package.datasets.values():
        out += _name_problems("dataset", ds.name, ds.name, None)
        out += _label_problems("dataset", ds.label, ds.name, None)
        frame = package.frames.get(ds.name)
        if frame is None:
            continue
        if list(frame.columns) != ds.names:
            out.append(
                Problem(
                    ds.name,
                    None,
                    "transport.columns",
                    f"{ds.name}: frame columns {list(frame.columns)} are not the dataset's "
                    f"variables in order {ds.names}",
                )
            )
        for var in ds.variables:
            out += _name_problems("variable", var.name, ds.name, var.name)
            out += _label_problems("variable", var.label, ds.name, var.name)
            if var.name not in frame.columns:
                continue
            column = frame[var.name]
            if isinstance(column, pd.DataFrame):  # the name is there twice
                continue
            if var.data_type in ("text", "date"):
                out += _text_problems(column, ds.name, var.name, iso_date=var.data_type == "date")
            elif var.data_type in ("integer", "float"):
                out += _number_problems(column, ds.name, var.name, var.data_type)
            else:
                out += _sasdate_problems(column, ds.name, var.name)
        if list(frame.columns) == ds.names and not any(
            p.dataset == ds.name and p.rule == "transport.type" for p in out
        ):
            size = estimated_size(frame, ds)
            if size >= FILE_SIZE_MAX:
                out.append(
                    Problem(
                        ds.name,
                        None,
                        "transport.size",
                        f"{ds.name}: about {size} bytes; a transport file must stay under "
                        f"{FILE_SIZE_MAX} bytes (split the dataset)",
                    )
                )
    return out


# --- writing -------------------------------------------------------------------------------------


def _xport_frame(frame: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The frame as pyreadstat should write it: integers as doubles, SAS dates as day counts
    (a column of missing dates would otherwise be taken for text)."""
    out = {}
    for var in dataset.variables:
        column = frame[var.name]
        if var.data_type == "integer":
            out[var.name] = column.astype("float64")
        elif var.data_type == "sasdate":
            out[var.name] = pd.Series(
                [math.nan if v is None else float((v - SAS_EPOCH).days) for v in column],
                index=column.index,
                dtype="float64",
            )
        else:
            out[var.name] = column
    return pd.DataFrame(out, index=frame.index)


def _csv_frame(frame: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    out = frame.copy()
    for var in dataset.variables:
        if var.data_type == "sasdate":
            out[var.name] = frame[var.name].map(lambda v: None if v is None else v.isoformat())
    return out


def _digest(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest(), path.stat().st_size


def _write_dataset(frame: pd.DataFrame, ds: Dataset, tmp: Path) -> None:
    xpt_path = tmp / f"{ds.name.lower()}.xpt"
    pyreadstat.write_xport(
        _xport_frame(frame, ds),
        xpt_path,
        file_label=ds.label,
        column_labels={v.name: v.label for v in ds.variables},
        table_name=ds.name,
        file_format_version=5,
        variable_format={v.name: SAS_DATE_FORMAT for v in ds.variables if v.data_type == "sasdate"},
    )
    # Read back what was written: the file must give the frame again, to the value.
    back, info = read_xpt(xpt_path)
    back = to_package_frame(back, ds)
    if not back.equals(frame.reset_index(drop=True)) or info.name != ds.name or info.label != ds.label:
        raise TransportError(
            f"{ds.name}: the transport file does not read back as written",
            [
                Problem(
                    ds.name,
                    None,
                    "transport.readback",
                    f"{ds.name}: the transport file does not read back as written",
                )
            ],
        )
    lengths = fitted_lengths(frame, ds)
    if dict(info.widths) != lengths:
        raise TransportError(
            f"{ds.name}: lengths written {dict(info.widths)} are not the fitted lengths {lengths}",
            [
                Problem(
                    ds.name,
                    None,
                    "transport.length",
                    f"{ds.name}: written lengths differ from the fitted lengths",
                )
            ],
        )
    _csv_frame(frame, ds).to_csv(
        tmp / f"{ds.name.lower()}.csv", index=False, na_rep="", lineterminator="\n", encoding="utf-8"
    )


def _replace(folder: Path, tmp: Path) -> None:
    """Put tmp where folder is; the previous folder goes only once the new one is in place."""
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        old.rmdir()
        folder.rename(old)
    try:
        tmp.rename(folder)
    except BaseException:
        if old is not None:
            old.rename(folder)
        raise
    if old is not None:
        shutil.rmtree(old)


def write_package(
    package: Package,
    folder: Path,
    *,
    progress: Progress | None = None,
    created: dt.datetime | None = None,
) -> list[WrittenFile]:
    """Write the package into ``folder`` (e.g. ``out/sdtm``): one ``<name>.xpt`` (SAS XPORT
    version 5) and ``<name>.csv`` per dataset and ``define.xml``.

    Refuses with :class:`TransportError` before writing anything when
    :func:`transport_problems` finds any. All files go to a temporary sibling folder first; it
    replaces ``folder`` (and any previous content) only when every file is written and every
    transport file reads back as the frame it came from. ``created`` is the Define-XML creation
    time (default: now, UTC).
    """
    from reports.submission.define import define_xml  # define imports this module

    problems = transport_problems(package)
    if problems:
        raise TransportError(
            f"the {package.folder} package breaks {len(problems)} transport constraint(s): "
            + "; ".join(p.message for p in problems[:5]),
            problems,
        )
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new.", dir=folder.parent))
    names = list(package.datasets)
    total = len(names) + 1
    try:
        for done, name in enumerate(names, start=1):
            _write_dataset(package.frames[name], package.datasets[name], tmp)
            if progress:
                progress(done, total, name)
        lengths = {n: fitted_lengths(package.frames[n], package.datasets[n]) for n in names}
        when = created or dt.datetime.now(dt.UTC).replace(microsecond=0)
        (tmp / "define.xml").write_bytes(
            define_xml(package, lengths, created=when, ct_versions=package.ct_versions)
        )
        if progress:
            progress(total, total, "define.xml")
        for path in tmp.iterdir():
            if path.suffix == ".xpt" and path.stat().st_size >= FILE_SIZE_MAX:
                raise TransportError(
                    f"{path.name} is {path.stat().st_size} bytes, not under {FILE_SIZE_MAX}",
                    [Problem(path.stem.upper(), None, "transport.size", f"{path.name} is too large")],
                )
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the package is meant to be shared
        _replace(folder, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    written = []
    for name in names:
        rows = len(package.frames[name])
        for suffix in (".xpt", ".csv"):
            sha, size = _digest(folder / f"{name.lower()}{suffix}")
            written.append(WrittenFile(Path(folder.name) / f"{name.lower()}{suffix}", sha, size, rows))
    sha, size = _digest(folder / "define.xml")
    written.append(WrittenFile(Path(folder.name) / "define.xml", sha, size, None))
    return written


# --- reading -------------------------------------------------------------------------------------


def xport_version(path: Path) -> int:
    """5 or 8, from the first header record (``LIBV8`` marks version 8); 0 when it is not a
    transport file at all."""
    with Path(path).open("rb") as f:
        head = f.read(_XPT_RECORD)
    if not head.startswith(b"HEADER RECORD*******"):
        return 0
    return 8 if head[20:25] == b"LIBV8" else 5


def read_xpt(path: Path) -> tuple[pd.DataFrame, XptInfo]:
    """The data of a transport file as pyreadstat reads it (text as str, blank as "", numbers as
    float64, DATE-formatted numbers as datetime.date) and what the file says about itself."""
    frame, meta = pyreadstat.read_xport(path)
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    info = XptInfo(
        name=meta.table_name or "",
        label=meta.file_label or "",
        version=xport_version(path),
        rows=len(frame),
        variables=tuple(meta.column_names),
        labels={k: v or "" for k, v in labels.items()},
        widths=dict(meta.variable_storage_width),
        types=dict(meta.readstat_variable_types),
        formats={k: v for k, v in meta.original_variable_types.items() if v},
    )
    return frame, info


def to_package_frame(frame: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """A frame read by :func:`read_xpt` in the package's frame conventions (text with None for
    blank, Int64, float64, datetime.date or None). Raises ValueError naming the variable when
    a value cannot be what the metadata says (e.g. a fraction in an integer variable)."""
    out: dict[str, pd.Series] = {}
    for var in dataset.variables:
        column = frame[var.name].reset_index(drop=True)
        where = f"{dataset.name}.{var.name}"
        if var.data_type in ("text", "date"):
            if column.dtype != object:
                raise ValueError(f"{where}: expected text, found {column.dtype}")
            out[var.name] = column.map(lambda v: v if isinstance(v, str) and v != "" else None).astype(object)
        elif var.data_type == "integer":
            numbers = pd.to_numeric(column)
            fractional = numbers.notna() & (numbers % 1 != 0)
            if fractional.any():
                raise ValueError(f"{where}: integer variable holds fractions at {_rows(fractional)}")
            out[var.name] = numbers.astype("Int64")
        elif var.data_type == "float":
            out[var.name] = pd.to_numeric(column).astype("float64")
        else:
            out[var.name] = column.map(_as_date).astype(object)
    return pd.DataFrame(out)


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        raise ValueError(f"expected a date, found the date-time {value}")
    if isinstance(value, dt.date):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    raise ValueError(f"expected a date, found {value!r}")
