import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pandas as pd
import pyreadstat
import pytest

from reports.submission.check import Finding, _is_iso_dtc, check_folder, check_package_folders
from reports.submission.metadata import Package, Variable
from reports.submission.terminology import DTYPE, Codelist, Term
from reports.submission.xpt import read_xpt, write_package

Factory = Callable[[], Package]


@pytest.fixture
def written(sdtm_package: Factory, adam_package: Factory, tmp_path: Path) -> Path:
    for package in (sdtm_package(), adam_package()):
        write_package(package, tmp_path / package.folder)
    return tmp_path


def test_valid_packages_have_no_findings(written: Path) -> None:
    assert check_package_folders(written) == {"sdtm": [], "adam": []}


def test_root_without_package_folders_has_no_results(tmp_path: Path) -> None:
    # Nothing to check is not "no findings": the CLI tells the two apart by an empty result.
    (tmp_path / "other").mkdir()
    assert check_package_folders(tmp_path) == {}


def test_missing_folder_is_a_finding(sdtm_package: Factory, tmp_path: Path) -> None:
    write_package(sdtm_package(), tmp_path / "sdtm")
    results = check_package_folders(tmp_path)
    assert results["sdtm"] == []
    assert [f.rule for f in results["adam"]] == ["file.missing"]


def _rewrite(
    path: Path,
    frame: pd.DataFrame | None = None,
    *,
    version: Literal[5, 8] = 5,
    labels: dict[str, str] | None = None,
    name: str | None = None,
    label: str | None = None,
) -> None:
    """Write a transport file directly with pyreadstat, as another tool might."""
    old, info = read_xpt(path)
    column_labels: dict[str, str | None] = dict(labels if labels is not None else info.labels)
    pyreadstat.write_xport(
        old if frame is None else frame,
        path,
        file_label=info.label if label is None else label,
        column_labels=column_labels,
        table_name=name or info.name,
        file_format_version=version,
        variable_format=dict(info.formats) or None,
    )


def _frame(path: Path) -> pd.DataFrame:
    return read_xpt(path)[0]


def _write_changed(folder: Path, package: Package, name: str, change: Callable[[pd.DataFrame], None]) -> None:
    frame = package.frames[name].copy()
    change(frame)
    write_package(dataclasses.replace(package, frames={**package.frames, name: frame}), folder)


def _nine_char_name(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    _rewrite(
        path,
        _frame(path).rename(columns={"SUBJID": "SUBJIDENT"}),
        version=8,
        labels={"SUBJIDENT": "Subject Identifier for the Study"},
    )


def _non_ascii_value(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    frame = _frame(path)
    frame.loc[1, "SUBJID"] = "0é2"
    _rewrite(path, frame)


def _label_41(root: Path) -> None:
    # Version 5 would cut the label to 40 characters on its own; version 8 keeps it.
    path = root / "sdtm" / "dm.xpt"
    labels = dict(read_xpt(path)[1].labels)
    labels["SUBJID"] = "S" * 41
    _rewrite(path, version=8, labels=labels)


def _value_over_200(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    frame = _frame(path)
    frame.loc[0, "SUBJID"] = "x" * 201
    _rewrite(path, frame)


def _lower_case_name(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    _rewrite(path, _frame(path).rename(columns={"SUBJID": "subjid"}))


def _version_8(root: Path) -> None:
    _rewrite(root / "sdtm" / "dm.xpt", version=8)


def _upper_case_file(root: Path) -> None:
    (root / "sdtm" / "dm.xpt").rename(root / "sdtm" / "DM.xpt")


def _wrong_table_name(root: Path) -> None:
    _rewrite(root / "sdtm" / "qs.xpt", name="QSX")


def _define_lists_absent_variable(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    _rewrite(path, _frame(path).drop(columns="AGEU"))


def _file_not_in_define(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    _rewrite(path, name="SV")
    path.rename(root / "sdtm" / "sv.xpt")


def _no_define(root: Path) -> None:
    (root / "sdtm" / "define.xml").unlink()


def _broken_define(root: Path) -> None:
    (root / "sdtm" / "define.xml").write_text("<ODM><Study>", encoding="utf-8")


def _declared_length_differs(root: Path) -> None:
    define = root / "sdtm" / "define.xml"
    text = define.read_text(encoding="utf-8")
    old = 'Name="SUBJID" DataType="text" Length="3"'
    assert old in text
    define.write_text(text.replace(old, 'Name="SUBJID" DataType="text" Length="20"'), encoding="utf-8")


def _label_differs_from_define(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    labels = dict(read_xpt(path)[1].labels)
    labels["AGE"] = "Age in Years"
    _rewrite(path, labels=labels)


def _empty_required(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    frame = _frame(path)
    frame.loc[2, "SUBJID"] = ""
    _rewrite(path, frame)


def _outside_codelist(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    frame = _frame(path)
    frame.loc[0, "SEX"] = "X"
    _rewrite(path, frame)


def _outside_value_level_codelist(root: Path) -> None:
    path = root / "sdtm" / "qs.xpt"
    frame = _frame(path)
    frame.loc[0, "QSORRES"] = "Sometimes"
    _rewrite(path, frame)


def _subject_not_in_dm(root: Path) -> None:
    path = root / "sdtm" / "qs.xpt"
    frame = _frame(path)
    frame.loc[3, "USUBJID"] = "DTX-001-09-999"
    _rewrite(path, frame)


def _subject_not_in_adsl(root: Path) -> None:
    path = root / "adam" / "adqs.xpt"
    frame = _frame(path)
    frame.loc[4, "USUBJID"] = "DTX-001-09-999"
    _rewrite(path, frame)


def _duplicate_seq(root: Path) -> None:
    path = root / "sdtm" / "qs.xpt"
    frame = _frame(path)
    frame.loc[1, "QSSEQ"] = 1.0
    _rewrite(path, frame)


def _duplicate_key(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    frame = _frame(path)
    frame.loc[2, "USUBJID"] = frame["USUBJID"].iloc[1]
    _rewrite(path, frame)


def _two_baselines(root: Path) -> None:
    path = root / "adam" / "adqs.xpt"
    frame = _frame(path)
    frame.loc[1, "ABLFL"] = "Y"
    _rewrite(path, frame)


def _wrong_chg(root: Path) -> None:
    path = root / "adam" / "adqs.xpt"
    frame = _frame(path)
    frame.loc[2, "CHG"] = -5.0
    _rewrite(path, frame)


def _chg_without_aval(root: Path) -> None:
    path = root / "adam" / "adqs.xpt"
    frame = _frame(path)
    assert frame["AVAL"].isna().iloc[4]
    frame.loc[4, "CHG"] = -20.0
    _rewrite(path, frame)


def _chg_without_base(root: Path) -> None:
    path = root / "adam" / "adqs.xpt"
    frame = _frame(path)
    frame.loc[2, "BASE"] = float("nan")
    _rewrite(path, frame)


def _dtc_not_iso(root: Path) -> None:
    path = root / "sdtm" / "qs.xpt"
    frame = _frame(path)
    frame.loc[0, "QSDTC"] = "15/01/2024"
    _rewrite(path, frame)


def _dtc_impossible_date(root: Path) -> None:
    path = root / "sdtm" / "dm.xpt"
    frame = _frame(path)
    frame.loc[1, "RFSTDTC"] = "2024-02-30"
    _rewrite(path, frame)


BROKEN: dict[str, tuple[Callable[[Path], None], str, str, str | None, str | None]] = {
    # case: (break, folder, rule, dataset, variable)
    "9-character variable name": (_nine_char_name, "sdtm", "transport.name", "DM", "SUBJIDENT"),
    "lower-case variable name": (_lower_case_name, "sdtm", "transport.name", "DM", "subjid"),
    "non-ASCII value": (_non_ascii_value, "sdtm", "transport.ascii", "DM", "SUBJID"),
    "label of 41 characters": (_label_41, "sdtm", "transport.label", "DM", "SUBJID"),
    "value over 200 bytes": (_value_over_200, "sdtm", "transport.value_size", "DM", "SUBJID"),
    "XPORT version 8": (_version_8, "sdtm", "transport.version", "DM", None),
    "upper-case file name": (_upper_case_file, "sdtm", "file.name", "DM", None),
    "file named after another dataset": (_wrong_table_name, "sdtm", "file.name", "QSX", None),
    "define lists a variable not in the file": (
        _define_lists_absent_variable,
        "sdtm",
        "define.variables",
        "DM",
        "AGEU",
    ),
    "file not listed in define": (_file_not_in_define, "sdtm", "define.datasets", "SV", None),
    "dataset in define without file": (_file_not_in_define, "sdtm", "define.datasets", "DM", None),
    "no define.xml": (_no_define, "sdtm", "define.missing", None, None),
    "unreadable define.xml": (_broken_define, "sdtm", "define.xml", None, None),
    "declared length differs": (_declared_length_differs, "sdtm", "transport.length", "DM", "SUBJID"),
    "label differs from define": (_label_differs_from_define, "sdtm", "define.variables", "DM", "AGE"),
    "empty required variable": (_empty_required, "sdtm", "required", "DM", "SUBJID"),
    "value outside its codelist": (_outside_codelist, "sdtm", "ct", "DM", "SEX"),
    "value outside its value-level codelist": (_outside_value_level_codelist, "sdtm", "ct", "QS", "QSORRES"),
    "USUBJID missing from DM": (_subject_not_in_dm, "sdtm", "usubjid.dm", "QS", "USUBJID"),
    "USUBJID missing from ADSL": (_subject_not_in_adsl, "adam", "usubjid.dm", "ADQS", "USUBJID"),
    "--SEQ not unique": (_duplicate_seq, "sdtm", "seq.unique", "QS", "QSSEQ"),
    "key not unique": (_duplicate_key, "sdtm", "keys.unique", "DM", None),
    "two baselines": (_two_baselines, "adam", "baseline.unique", "ADQS", "ABLFL"),
    "CHG not AVAL - BASE": (_wrong_chg, "adam", "chg", "ADQS", "CHG"),
    "CHG without AVAL": (_chg_without_aval, "adam", "chg", "ADQS", "CHG"),
    "CHG without BASE": (_chg_without_base, "adam", "chg", "ADQS", "CHG"),
    "--DTC not ISO 8601": (_dtc_not_iso, "sdtm", "dtc.iso8601", "QS", "QSDTC"),
    "--DTC not a calendar date": (_dtc_impossible_date, "sdtm", "dtc.iso8601", "DM", "RFSTDTC"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_check_finds_each_broken_rule(case: str, written: Path) -> None:
    breaker, folder, rule, dataset, variable = BROKEN[case]
    breaker(written)
    findings = check_folder(written / folder)
    assert any(
        f.rule == rule and f.dataset == dataset and f.variable == variable and f.severity == "error"
        for f in findings
    ), findings
    # The other folder is untouched and still clean.
    other = "adam" if folder == "sdtm" else "sdtm"
    assert check_folder(written / other) == []


def test_counts_and_messages(written: Path) -> None:
    _wrong_chg(written)
    (finding,) = check_folder(written / "adam")
    assert finding == Finding(
        "error", "ADQS", "CHG", "chg", "ADQS: CHG differs from AVAL - BASE in 1 record(s) (rows 3)", 1
    )


def test_written_with_the_package_writer_baseline_break(adam_package: Factory, tmp_path: Path) -> None:
    # The same rule, found in a package the writer accepted (transport rules do not cover it).
    package = adam_package()
    _write_changed(
        tmp_path / "adam", package, "ADQS", lambda f: f.__setitem__("ABLFL", ["Y", "Y", None, "Y", None])
    )
    rules = {f.rule for f in check_folder(tmp_path / "adam")}
    assert rules == {"baseline.unique"}


def test_chg_without_aval_message(written: Path) -> None:
    _chg_without_aval(written)
    (finding,) = check_folder(written / "adam")
    assert finding == Finding(
        "error",
        "ADQS",
        "CHG",
        "chg",
        "ADQS: CHG is present but AVAL or BASE is missing in 1 record(s) (rows 5)",
        1,
    )


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2024", True),
        ("2024-02", True),
        ("2024-02-29", True),
        ("2024-02-29T13:05", True),
        ("2024-02-29T13:05:09", True),
        ("2023-02-29", False),
        ("2024-13", False),
        ("2024-2", False),
        ("2024-02-01T10", False),
        ("2024-02T10:00", False),
        ("2024-02-01T24:00", False),
        ("2024-02-01T10:60", False),
        ("2024-02-01 10:00", False),
        ("24-02-01", False),
        ("2024-02-01Z", False),
        (" 2024-02-01", False),
        ("UNK", False),
    ],
)
def test_iso8601_dtc_forms(value: str, valid: bool) -> None:
    assert _is_iso_dtc(value) is valid


def test_dtc_rule_is_sdtm_only_and_allows_empty_and_partial(written: Path) -> None:
    # The valid SDTM package holds a partial date ("2024-02") and an empty RFSTDTC.
    dm = _frame(written / "sdtm" / "dm.xpt")
    assert "2024-02" in set(dm["RFSTDTC"])
    assert "" in set(dm["RFSTDTC"])
    assert check_folder(written / "sdtm") == []
    _dtc_not_iso(written)
    (finding,) = check_folder(written / "sdtm")
    assert (finding.rule, finding.count) == ("dtc.iso8601", 1)
    assert "'15/01/2024'" in finding.message


def _with_study_day(package: Package, days: list[int | None]) -> Package:
    """The SDTM package with QSDY (study day of the finding) after QSDTC."""
    qs = package.datasets["QS"]
    qsdy = Variable("QSDY", "Study Day of Finding", "integer", "Derived", "Perm", role="Timing")
    at = qs.names.index("QSDTC") + 1
    variables = (*qs.variables[:at], qsdy, *qs.variables[at:])
    frame = package.frames["QS"].copy()
    frame.insert(at, "QSDY", pd.Series(days, dtype="Int64", index=frame.index))
    return dataclasses.replace(
        package,
        datasets={**package.datasets, "QS": dataclasses.replace(qs, variables=variables)},
        frames={**package.frames, "QS": frame},
    )


def test_study_day_is_never_0(sdtm_package: Factory, tmp_path: Path) -> None:
    write_package(_with_study_day(sdtm_package(), [1, 1, -1, None]), tmp_path / "valid")
    assert check_folder(tmp_path / "valid") == []
    write_package(_with_study_day(sdtm_package(), [1, 0, 0, 2]), tmp_path / "sdtm")
    (finding,) = check_folder(tmp_path / "sdtm")
    assert finding == Finding(
        "error",
        "QS",
        "QSDY",
        "dy.no_day_0",
        "QS.QSDY is 0 in 2 record(s) (rows 2, 3); study days go from -1 to 1 with no day 0",
        2,
    )


def test_value_added_to_a_closed_cdisc_codelist(sdtm_package: Factory, tmp_path: Path) -> None:
    # SEX is not extensible: a sponsor term listed in define.xml is still an error.
    package = sdtm_package()
    sex = package.codelists["SEX"]
    assert sex.nci_code == "C66731"
    widened = Codelist(sex.name, sex.label, sex.nci_code, (*sex.terms, Term("OTHER", None)), extensible=False)
    dm = package.frames["DM"].copy()
    dm.loc[2, "SEX"] = "OTHER"
    write_package(
        dataclasses.replace(
            package, codelists={**package.codelists, "SEX": widened}, frames={**package.frames, "DM": dm}
        ),
        tmp_path / "sdtm",
    )
    (finding,) = check_folder(tmp_path / "sdtm")
    assert (finding.severity, finding.dataset, finding.variable, finding.rule, finding.count) == (
        "error",
        "DM",
        "SEX",
        "ct.extension",
        1,
    )
    assert "non-extensible CDISC codelist SEX (C66731)" in finding.message
    assert "OTHER" in finding.message


def test_unmarked_extension_of_an_extensible_cdisc_codelist(written: Path) -> None:
    # DTYPE is extensible: PRORATED (no CDISC term) must be marked def:ExtendedValue="Yes".
    define = written / "adam" / "define.xml"
    text = define.read_text(encoding="utf-8")
    marked = 'CodedValue="PRORATED" OrderNumber="2" def:ExtendedValue="Yes"'
    assert marked in text
    define.write_text(text.replace(marked, 'CodedValue="PRORATED" OrderNumber="2"'), encoding="utf-8")
    (finding,) = check_folder(written / "adam")
    assert (finding.severity, finding.dataset, finding.variable, finding.rule, finding.count) == (
        "warning",
        "ADQS",
        "DTYPE",
        "ct.extension",
        1,
    )
    assert "PRORATED" in finding.message
    assert check_folder(written / "sdtm") == []


def test_a_cdisc_concept_code_makes_a_value_a_cdisc_term(written: Path) -> None:
    """A value of an extensible CDISC codelist that carries the NCI code of a confirmed CDISC
    term (as a TSPARM name carries its TSPARMCD concept code) is not an extension."""
    from lxml import etree

    define = written / "adam" / "define.xml"
    tree = etree.parse(str(define))
    odm, def_ns = "http://www.cdisc.org/ns/odm/v1.3", "http://www.cdisc.org/ns/def/v2.1"
    (item,) = tree.xpath("//*[@CodedValue='PRORATED']")
    del item.attrib[f"{{{def_ns}}}ExtendedValue"]
    confirmed = next(t.nci_code for t in DTYPE.terms if t.nci_code)
    etree.SubElement(item, f"{{{odm}}}Alias", Context="nci:ExtCodeID", Name=str(confirmed))
    tree.write(str(define), xml_declaration=True, encoding="UTF-8")
    assert check_folder(written / "adam") == []


def test_closed_codelist_checked_at_value_level(sdtm_package: Factory, tmp_path: Path) -> None:
    # A value-level codelist that is a CDISC non-extensible one (PHQ01TC's NCI code) with an
    # added term used where the clause holds.
    package = sdtm_package()
    closed = Codelist(
        "PHQ01OR", "Answers (claims to be CDISC)", "C103481", (Term("Several days", None),), extensible=False
    )
    qs = package.frames["QS"].copy()
    qs.loc[qs["QSTESTCD"] == "PHQ0102", "QSORRES"] = ["Several days", None]
    qs.loc[qs["QSTESTCD"] == "PHQ0101", "QSORRES"] = ["Several days", "Several days"]
    write_package(
        dataclasses.replace(
            package, codelists={**package.codelists, "PHQ01OR": closed}, frames={**package.frames, "QS": qs}
        ),
        tmp_path / "sdtm",
    )
    findings = check_folder(tmp_path / "sdtm")
    assert {(f.rule, f.variable, f.count) for f in findings} == {
        ("ct.extension", "QSORRES", 2),
        ("ct.extension", "QSORRES", 1),
    }
    assert all("where QSTESTCD = " in f.message for f in findings)
