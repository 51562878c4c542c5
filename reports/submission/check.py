"""Conformance check of written submission folders, as a sponsor runs it before submitting.

It reads what is on disk (every ``.xpt`` of a folder and its ``define.xml``), not the frames
that were written, so that it checks the deliverable itself and also works on folders made by
other tools. Each finding names its rule:

``file.name``         one lower-case ``<dataset>.xpt`` per dataset, named after the dataset
``file.read``         the file cannot be read as a SAS transport file
``transport.version`` SAS XPORT version 5
``transport.name``    dataset and variable names: at most 8 characters, upper case, letter first
``transport.label``   dataset and variable labels: at most 40 characters
``transport.ascii``   labels and text values: printable ASCII only
``transport.value_size`` text values (and widths) at most 200 bytes
``transport.length``  text widths fitted to the data and as declared in define.xml
``transport.size``    each file under 5 GB
``define.missing`` / ``define.xml`` define.xml present and readable
``define.datasets``   define.xml lists exactly the transport files
``define.variables``  define.xml lists exactly each file's variables, in order, with their labels
``required``          a Mandatory variable is present and never empty
``ct``                values within the variable's (or value-level) codelist
``ct.extension``      a CDISC codelist (define.xml Alias = the NCI code of a codelist of
                      `terminology.CODELISTS`) used as CDISC publishes it: no value outside a
                      non-extensible one (error); outside an extensible one only when marked
                      def:ExtendedValue="Yes" in define.xml (warning otherwise)
``keys.unique``       define.xml's key variables identify the records
``seq.unique``        --SEQ unique within USUBJID (SDTM)
``dtc.iso8601``       --DTC values are ISO 8601 dates or date-times, complete or partial
                      (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]), or empty (SDTM)
``dy.no_day_0``       study days (--DY, --STDY, --ENDY, VISITDY) are never 0 (SDTM)
``usubjid.dm``        every USUBJID is in DM (SDTM) or ADSL (ADaM)
``baseline.unique``   at most one ABLFL = "Y" per USUBJID and PARAMCD (and BASETYPE) (ADaM BDS)
``chg``               CHG = AVAL - BASE wherever all three are present, and no CHG where AVAL
                      or BASE is missing (ADaM BDS)

:func:`check_package_folders` checks ``sdtm/`` and ``adam/`` of a root; when the root holds
neither it returns no folders at all (callers tell "nothing to check" from "no findings").
"""

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from lxml import etree

from reports.submission.define import DefineDataset, DefineSummary, as_text, read_define
from reports.submission.metadata import TRANSPORT_LABEL_MAX, TRANSPORT_NAME_MAX, TRANSPORT_TEXT_MAX
from reports.submission.terminology import CODELISTS, Codelist
from reports.submission.xpt import FILE_SIZE_MAX, XptInfo, is_transport_name, read_xpt

Severity = Literal["error", "warning"]
CHG_TOLERANCE = 1e-9
_SHOWN = 5
# ISO 8601 as SDTM uses it for --DTC: a date, complete or with its right end left out, and a
# time of day (hours and minutes, optionally seconds) only after a complete date.
_ISO_DTC = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?)?)?")


@dataclass(frozen=True)
class Finding:
    """One broken rule: where (dataset, variable), which rule, a sentence, and on how many
    records or values."""

    severity: Severity
    dataset: str | None
    variable: str | None
    rule: str
    message: str
    count: int = 1


@dataclass
class _File:
    path: Path
    frame: pd.DataFrame
    info: XptInfo


def _shown(values: Iterable[Any]) -> str:
    items = list(values)
    text = ", ".join(str(v) for v in items[:_SHOWN])
    return text + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _empty(column: pd.Series) -> pd.Series:
    """Missing values as a transport file holds them: blank text, missing numbers."""
    return column.map(lambda v: v is None or v == "" or (isinstance(v, float) and math.isnan(v)))


def _transport(file: _File) -> list[Finding]:
    out: list[Finding] = []
    info, name = file.info, file.info.name

    def error(variable: str | None, rule: str, message: str, count: int = 1) -> None:
        out.append(Finding("error", name, variable, rule, message, count))

    if info.version != 5:
        error(None, "transport.version", f"{file.path.name} is SAS XPORT version {info.version}, not 5")
    if not is_transport_name(name):
        error(
            None,
            "transport.name",
            f"dataset name {name!r} is not 1-{TRANSPORT_NAME_MAX} upper-case "
            "letters, digits or underscores starting with a letter",
        )
    if len(info.label) > TRANSPORT_LABEL_MAX:
        error(
            None,
            "transport.label",
            f"{name}: dataset label has {len(info.label)} characters (at most {TRANSPORT_LABEL_MAX})",
        )
    if not (info.label.isascii() and info.label.isprintable()):
        error(None, "transport.ascii", f"{name}: dataset label {info.label!r} is not printable ASCII")
    size = file.path.stat().st_size
    if size >= FILE_SIZE_MAX:
        error(None, "transport.size", f"{file.path.name} is {size} bytes (must be under {FILE_SIZE_MAX})")
    for var in info.variables:
        where = f"{name}.{var}"
        if not is_transport_name(var):
            error(
                var,
                "transport.name",
                f"variable name {where!r} is not 1-{TRANSPORT_NAME_MAX} upper-case "
                "letters, digits or underscores starting with a letter",
            )
        label = info.labels.get(var, "")
        if len(label) > TRANSPORT_LABEL_MAX:
            error(
                var,
                "transport.label",
                f"{where}: label has {len(label)} characters (at most {TRANSPORT_LABEL_MAX})",
            )
        if not (label.isascii() and label.isprintable()):
            error(var, "transport.ascii", f"{where}: label {label!r} is not printable ASCII")
        if info.types.get(var) != "string":
            continue
        values = [v for v in file.frame[var].tolist() if isinstance(v, str) and v != ""]
        sizes = [len(v.encode("utf-8")) for v in values]
        not_ascii = [v for v in values if not (v.isascii() and v.isprintable())]
        if not_ascii:
            error(
                var,
                "transport.ascii",
                f"{where}: {len(not_ascii)} value(s) not printable ASCII, e.g. "
                f"{_shown(repr(v) for v in not_ascii)}",
                len(not_ascii),
            )
        too_long = [s for s in sizes if s > TRANSPORT_TEXT_MAX]
        width = info.widths.get(var, 0)
        if too_long or width > TRANSPORT_TEXT_MAX:
            error(
                var,
                "transport.value_size",
                f"{where}: width {width}, {len(too_long)} value(s) over {TRANSPORT_TEXT_MAX} bytes",
                max(len(too_long), 1),
            )
        fitted = max([1, *sizes])
        if width != fitted:
            error(
                var,
                "transport.length",
                f"{where}: width {width} is not fitted to the data (longest value {fitted} bytes)",
            )
    return out


def _define_findings(files: dict[str, _File], define: DefineSummary) -> list[Finding]:
    out: list[Finding] = []
    listed, written = set(define.datasets), set(files)
    for name in sorted(listed - written):
        out.append(
            Finding(
                "error",
                name,
                None,
                "define.datasets",
                f"define.xml lists {name}, but there is no {name.lower()}.xpt",
            )
        )
    for name in sorted(written - listed):
        out.append(
            Finding(
                "error",
                name,
                None,
                "define.datasets",
                f"{files[name].path.name} holds {name}, which define.xml does not list",
            )
        )
    for name in sorted(listed & written):
        ds, file = define.datasets[name], files[name]
        if ds.href != file.path.name:
            out.append(
                Finding(
                    "error",
                    name,
                    None,
                    "define.datasets",
                    f"define.xml points {name} to {ds.href!r}, not {file.path.name!r}",
                )
            )
        if ds.label != file.info.label:
            out.append(
                Finding(
                    "error",
                    name,
                    None,
                    "define.datasets",
                    f"{name}: define.xml label {ds.label!r}, file label {file.info.label!r}",
                )
            )
        declared, actual = ds.names, list(file.info.variables)
        missing = [v for v in declared if v not in actual]
        extra = [v for v in actual if v not in declared]
        for v in missing:
            out.append(
                Finding(
                    "error",
                    name,
                    v,
                    "define.variables",
                    f"define.xml lists {name}.{v}, which {file.path.name} does not hold",
                )
            )
        for v in extra:
            out.append(
                Finding(
                    "error",
                    name,
                    v,
                    "define.variables",
                    f"{file.path.name} holds {v}, which define.xml does not list for {name}",
                )
            )
        if not missing and not extra and declared != actual:
            out.append(
                Finding(
                    "error",
                    name,
                    None,
                    "define.variables",
                    f"{name}: variable order {actual} differs from define.xml {declared}",
                )
            )
        for var in ds.variables:
            if var.name not in actual:
                continue
            label = file.info.labels.get(var.name, "")
            if var.label != label:
                out.append(
                    Finding(
                        "error",
                        name,
                        var.name,
                        "define.variables",
                        f"{name}.{var.name}: define.xml label {var.label!r}, file label {label!r}",
                    )
                )
            if var.data_type == "text" and var.length != file.info.widths.get(var.name):
                out.append(
                    Finding(
                        "error",
                        name,
                        var.name,
                        "transport.length",
                        f"{name}.{var.name}: define.xml Length {var.length}, file width "
                        f"{file.info.widths.get(var.name)}",
                    )
                )
    return out


def _required(ds: DefineDataset, file: _File) -> list[Finding]:
    out = []
    for var in ds.variables:
        if not var.mandatory:
            continue
        if var.name not in file.frame.columns:
            out.append(
                Finding(
                    "error",
                    ds.name,
                    var.name,
                    "required",
                    f"{ds.name}.{var.name} is Mandatory but not in {file.path.name}",
                )
            )
            continue
        empty = int(_empty(file.frame[var.name]).sum())
        if empty:
            out.append(
                Finding(
                    "error",
                    ds.name,
                    var.name,
                    "required",
                    f"{ds.name}.{var.name} is Mandatory but empty in {empty} record(s)",
                    empty,
                )
            )
    return out


def _outside(column: pd.Series, allowed: frozenset[str]) -> list[str]:
    return [t for t in (as_text(v) for v in column.tolist()) if t is not None and t not in allowed]


def _ct(ds: DefineDataset, file: _File, define: DefineSummary) -> list[Finding]:
    out = []
    frame = file.frame
    for var in ds.variables:
        allowed = define.allowed(var.codelist)
        if allowed is None or var.name not in frame.columns:
            continue
        bad = _outside(frame[var.name], allowed)
        if bad:
            out.append(
                Finding(
                    "error",
                    ds.name,
                    var.name,
                    "ct",
                    f"{ds.name}.{var.name}: {len(bad)} value(s) not in codelist {var.codelist}: "
                    f"{_shown(sorted(set(bad)))}",
                    len(bad),
                )
            )
    for vl in define.value_level:
        allowed = define.allowed(vl.codelist)
        if vl.dataset != ds.name or allowed is None or vl.variable not in frame.columns:
            continue
        if any(name not in frame.columns for name, _ in vl.where):
            continue
        mask = pd.Series(True, index=frame.index)
        for name, value in vl.where:
            mask &= frame[name].map(lambda v, value=value: as_text(v) == value)
        bad = _outside(frame.loc[mask, vl.variable], allowed)
        if bad:
            where = " and ".join(f"{n} = {v!r}" for n, v in vl.where)
            out.append(
                Finding(
                    "error",
                    ds.name,
                    vl.variable,
                    "ct",
                    f"{ds.name}.{vl.variable} where {where}: {len(bad)} value(s) not in codelist "
                    f"{vl.codelist}: {_shown(sorted(set(bad)))}",
                    len(bad),
                )
            )
    return out


def _keys(ds: DefineDataset, file: _File) -> list[Finding]:
    keys = [k for k in ds.keys if k in file.frame.columns]
    if not keys or len(keys) != len(ds.keys):
        return []
    dup = file.frame.duplicated(subset=keys, keep=False)
    if not dup.any():
        return []
    n = int(dup.sum())
    return [
        Finding(
            "error",
            ds.name,
            None,
            "keys.unique",
            f"{ds.name}: {n} records share their key ({', '.join(keys)}) with another record",
            n,
        )
    ]


def _seq(name: str, frame: pd.DataFrame) -> list[Finding]:
    seq = f"{name}SEQ"
    if seq not in frame.columns or "USUBJID" not in frame.columns:
        return []
    dup = frame.duplicated(subset=["USUBJID", seq], keep=False)
    if not dup.any():
        return []
    n = int(dup.sum())
    subjects = sorted(set(frame.loc[dup, "USUBJID"]))
    return [
        Finding(
            "error",
            name,
            seq,
            "seq.unique",
            f"{name}.{seq} is not unique within USUBJID in {n} records (subjects {_shown(subjects)})",
            n,
        )
    ]


def _subjects(files: dict[str, _File], analysis: bool) -> list[Finding]:
    reference = "ADSL" if analysis else "DM"
    users = [n for n, f in files.items() if n != reference and "USUBJID" in f.frame.columns]
    if not users:
        return []
    if reference not in files or "USUBJID" not in files[reference].frame.columns:
        return [
            Finding(
                "error",
                n,
                "USUBJID",
                "usubjid.dm",
                f"{n} has subjects but there is no {reference} to hold them",
            )
            for n in users
        ]
    known = set(files[reference].frame["USUBJID"]) - {""}
    out = []
    for n in sorted(users):
        column = files[n].frame["USUBJID"]
        unknown = column[~column.isin(known) & (column != "")]
        if len(unknown):
            out.append(
                Finding(
                    "error",
                    n,
                    "USUBJID",
                    "usubjid.dm",
                    f"{n}: {len(unknown)} record(s) of subjects not in {reference}: "
                    f"{_shown(sorted(set(unknown)))}",
                    len(unknown),
                )
            )
    return out


def _baseline(name: str, frame: pd.DataFrame) -> list[Finding]:
    if not {"USUBJID", "PARAMCD", "ABLFL"} <= set(frame.columns):
        return []
    by = ["USUBJID", "PARAMCD"] + (["BASETYPE"] if "BASETYPE" in frame.columns else [])
    baselines = frame[frame["ABLFL"] == "Y"]
    counts = baselines.groupby(by, dropna=False).size()
    many = counts[counts > 1]
    if many.empty:
        return []
    groups = [" / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))) for key in many.index]
    return [
        Finding(
            "error",
            name,
            "ABLFL",
            "baseline.unique",
            f"{name}: {len(many)} {' / '.join(by)} group(s) with more than one baseline record "
            f"(ABLFL = 'Y'): {_shown(groups)}",
            len(many),
        )
    ]


def _chg(name: str, frame: pd.DataFrame) -> list[Finding]:
    if not {"CHG", "AVAL", "BASE"} <= set(frame.columns):
        return []
    chg, aval, base = (pd.to_numeric(frame[c], errors="coerce") for c in ("CHG", "AVAL", "BASE"))
    present = chg.notna() & aval.notna() & base.notna()
    wrong = present & ((chg - (aval - base)).abs() > CHG_TOLERANCE)
    orphan = chg.notna() & (aval.isna() | base.isna())
    out = []
    for mask, what in (
        (wrong, "CHG differs from AVAL - BASE"),
        (orphan, "CHG is present but AVAL or BASE is missing"),
    ):
        if mask.any():
            n = int(mask.sum())
            rows = [i + 1 for i in mask[mask].index]
            out.append(
                Finding(
                    "error", name, "CHG", "chg", f"{name}: {what} in {n} record(s) (rows {_shown(rows)})", n
                )
            )
    return out


def _is_iso_dtc(value: str) -> bool:
    match = _ISO_DTC.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) if g is not None else None for g in match.groups())
    try:
        dt.date(year or 1, month or 1, day or 1)
        dt.time(hour or 0, minute or 0, second or 0)
    except ValueError:
        return False
    return True


def _dtc(name: str, frame: pd.DataFrame) -> list[Finding]:
    out = []
    for var in (c for c in frame.columns if str(c).endswith("DTC")):
        bad = [
            v
            for v in frame[var].tolist()
            if not (v is None or v == "" or (isinstance(v, float) and math.isnan(v)))
            and not (isinstance(v, str) and _is_iso_dtc(v))
        ]
        if bad:
            out.append(
                Finding(
                    "error",
                    name,
                    var,
                    "dtc.iso8601",
                    f"{name}.{var}: {len(bad)} value(s) not an ISO 8601 date or date-time "
                    f"(YYYY[-MM[-DD[THH:MM[:SS]]]]): {_shown(sorted({repr(v) for v in bad}))}",
                    len(bad),
                )
            )
    return out


def _study_day(name: str, frame: pd.DataFrame) -> list[Finding]:
    out = []
    for var in (c for c in frame.columns if str(c).endswith("DY")):
        zero = pd.to_numeric(frame[var], errors="coerce") == 0
        if zero.any():
            n = int(zero.sum())
            rows = [i + 1 for i in zero[zero].index]
            out.append(
                Finding(
                    "error",
                    name,
                    var,
                    "dy.no_day_0",
                    f"{name}.{var} is 0 in {n} record(s) (rows {_shown(rows)}); study days "
                    "go from -1 to 1 with no day 0",
                    n,
                )
            )
    return out


def _cdisc_codelist(nci_code: str | None) -> Codelist | None:
    if nci_code is None:
        return None
    return next((c for c in CODELISTS.values() if c.nci_code == nci_code), None)


_CONFIRMED_CODES = frozenset(t.nci_code for c in CODELISTS.values() for t in c.terms if t.nci_code)


def _ct_extension(ds: DefineDataset, file: _File, define: DefineSummary) -> list[Finding]:
    """Values of a CDISC codelist that are not CDISC terms: an error in a non-extensible
    codelist, a warning in an extensible one unless define.xml marks them as extended. Codelists
    whose extensibility is not confirmed (``extensible`` None) are not judged."""
    frame = file.frame
    # (variable, where clause (empty for the whole variable), codelist OID) of each codelist use
    uses: list[tuple[str, tuple[tuple[str, str], ...], str]] = [
        (v.name, (), v.codelist) for v in ds.variables if v.codelist
    ]
    uses += [
        (vl.variable, vl.where, vl.codelist)
        for vl in define.value_level
        if vl.dataset == ds.name and vl.codelist
    ]
    out = []
    for var, where, oid in uses:
        listed = define.codelists.get(oid)
        cdisc = _cdisc_codelist(listed.nci_code) if listed is not None else None
        if listed is None or cdisc is None or cdisc.extensible is None or var not in frame.columns:
            continue
        if any(name not in frame.columns for name, _ in where):
            continue
        mask = pd.Series(True, index=frame.index)
        for name, value in where:
            mask &= frame[name].map(lambda v, value=value: as_text(v) == value)
        terms = frozenset(t.value for t in cdisc.terms)
        added = _outside(frame.loc[mask, var], terms)
        if cdisc.extensible:
            # A value whose Alias is the NCI code of a term the terminology module confirmed is a
            # CDISC term (e.g. a TSPARM name carrying its TSPARMCD concept code), not an extension.
            coded = {value for value, code in listed.term_codes.items() if code in _CONFIRMED_CODES}
            added = [v for v in added if v not in listed.extended and v not in coded]
        if not added:
            continue
        clause = " where " + " and ".join(f"{n} = {v!r}" for n, v in where) if where else ""
        values = _shown(sorted(set(added)))
        if cdisc.extensible:
            message = (
                f"{ds.name}.{var}{clause}: {len(added)} value(s) not CDISC terms of the extensible "
                f'codelist {cdisc.name} ({cdisc.nci_code}) and not marked def:ExtendedValue="Yes" '
                f"in {oid}: {values}"
            )
        else:
            message = (
                f"{ds.name}.{var}{clause}: {len(added)} value(s) added to the non-extensible CDISC "
                f"codelist {cdisc.name} ({cdisc.nci_code}) in {oid}: {values}"
            )
        out.append(
            Finding(
                "warning" if cdisc.extensible else "error", ds.name, var, "ct.extension", message, len(added)
            )
        )
    return out


def check_folder(folder: Path) -> list[Finding]:
    """Every finding of the rules above for one package folder (``sdtm/`` or ``adam/``)."""
    folder = Path(folder)
    out: list[Finding] = []
    files: dict[str, _File] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".xpt"):
        try:
            frame, info = read_xpt(path)
        except Exception as exc:  # any library error means the file is not usable
            out.append(Finding("error", path.stem.upper(), None, "file.read", f"{path.name}: {exc}"))
            continue
        if path.name != path.name.lower() or path.stem != info.name.lower():
            out.append(
                Finding(
                    "error",
                    info.name,
                    None,
                    "file.name",
                    f"{path.name} holds dataset {info.name}; its file must be named {info.name.lower()}.xpt",
                )
            )
        if info.name in files:
            out.append(
                Finding(
                    "error",
                    info.name,
                    None,
                    "file.name",
                    f"dataset {info.name} is in {files[info.name].path.name} and {path.name}",
                )
            )
            continue
        files[info.name] = _File(path, frame, info)
        out += _transport(files[info.name])
    define: DefineSummary | None = None
    define_path = folder / "define.xml"
    if not define_path.is_file():
        out.append(Finding("error", None, None, "define.missing", f"{folder.name}/ has no define.xml"))
    else:
        try:
            define = read_define(define_path)
        except (etree.XMLSyntaxError, ValueError) as exc:
            out.append(Finding("error", None, None, "define.xml", f"define.xml cannot be read: {exc}"))
    if define is not None:
        out += _define_findings(files, define)
        for name, ds in define.datasets.items():
            if name in files:
                out += _required(ds, files[name])
                out += _ct(ds, files[name], define)
                out += _ct_extension(ds, files[name], define)
                out += _keys(ds, files[name])
        purposes = {ds.purpose for ds in define.datasets.values()}
        analysis = purposes == {"Analysis"} if purposes else folder.name.lower() == "adam"
    else:
        analysis = folder.name.lower() == "adam"
    for name, file in files.items():
        if analysis:
            out += _baseline(name, file.frame)
            out += _chg(name, file.frame)
        else:
            out += _seq(name, file.frame)
            out += _dtc(name, file.frame)
            out += _study_day(name, file.frame)
    out += _subjects(files, analysis)
    return out


def check_package_folders(root: Path) -> dict[str, list[Finding]]:
    """Findings of ``root/sdtm`` and ``root/adam``; a missing folder is itself a finding when the
    other is there. When root holds neither, the result is empty: there is no package to check
    (not a package without findings)."""
    folders = {name: Path(root) / name for name in ("sdtm", "adam")}
    if not any(folder.is_dir() for folder in folders.values()):
        return {}
    results = {}
    for name, folder in folders.items():
        if folder.is_dir():
            results[name] = check_folder(folder)
        else:
            results[name] = [Finding("error", None, None, "file.missing", f"{folder} does not exist")]
    return results
