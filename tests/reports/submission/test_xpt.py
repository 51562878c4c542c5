import csv
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from reports.submission import xpt
from reports.submission.metadata import Package
from reports.submission.xpt import (
    TransportError,
    fitted_lengths,
    read_xpt,
    to_package_frame,
    transport_problems,
    write_package,
)

Factory = Callable[[], Package]


def _with_frame(package: Package, name: str, frame: pd.DataFrame) -> Package:
    return dataclasses.replace(package, frames={**package.frames, name: frame})


def _with_dataset(package: Package, name: str, **changes: object) -> Package:
    ds = dataclasses.replace(package.datasets[name], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(package, datasets={**package.datasets, name: ds})


def _rename_variable(package: Package, ds_name: str, old: str, new: str, **changes: object) -> Package:
    ds = package.datasets[ds_name]
    variables = tuple(
        dataclasses.replace(v, name=new, **changes) if v.name == old else v  # type: ignore[arg-type]
        for v in ds.variables
    )
    frame = package.frames[ds_name].rename(columns={old: new})
    keys = tuple(new if k == old else k for k in ds.keys)
    package = _with_dataset(package, ds_name, variables=variables, keys=keys)
    return _with_frame(package, ds_name, frame)


def _rename_dataset(package: Package, old: str, new: str) -> Package:
    datasets = {(new if k == old else k): v for k, v in package.datasets.items()}
    datasets[new] = dataclasses.replace(package.datasets[old], name=new)
    frames = {(new if k == old else k): v for k, v in package.frames.items()}
    return dataclasses.replace(package, datasets=datasets, frames=frames)


@pytest.mark.parametrize("factory_name", ["sdtm_package", "adam_package"])
def test_read_back_equals_written(factory_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    package: Package = request.getfixturevalue(factory_name)()
    write_package(package, tmp_path / package.folder)
    for name, ds in package.datasets.items():
        raw, info = read_xpt(tmp_path / package.folder / f"{name.lower()}.xpt")
        back = to_package_frame(raw, ds)
        pd.testing.assert_frame_equal(back, package.frames[name], check_exact=True)
        assert info.version == 5
        assert info.name == name
        assert info.label == ds.label
        assert info.variables == tuple(ds.names)
        assert dict(info.labels) == {v.name: v.label for v in ds.variables}
        assert dict(info.widths) == fitted_lengths(package.frames[name], ds)


def test_read_back_keeps_missing_values_and_dates(adam_package: Factory, tmp_path: Path) -> None:
    package = adam_package()
    write_package(package, tmp_path / "adam")
    raw, info = read_xpt(tmp_path / "adam" / "adsl.xpt")
    assert info.formats["RANDDT"] == "DATE9"
    back = to_package_frame(raw, package.datasets["ADSL"])
    assert back["RANDDT"].tolist() == [dt.date(2024, 1, 15), dt.date(1959, 12, 31), None]
    assert back["AGE"].dtype == "Int64"
    assert back["AGE"].isna().tolist() == [False, True, False]
    raw, _ = read_xpt(tmp_path / "adam" / "adqs.xpt")
    back = to_package_frame(raw, package.datasets["ADQS"])
    assert back["CHG"].isna().tolist() == [True, False, False, True, True]
    assert back["DTYPE"].tolist() == [None, "PRORATED", "LOCF", None, None]


def test_all_missing_columns_round_trip(adam_package: Factory, tmp_path: Path) -> None:
    package = adam_package()
    frame = package.frames["ADSL"].copy()
    frame["RANDDT"] = [None, None, None]
    frame["AGE"] = pd.array([None, None, None], dtype="Int64")
    package = _with_frame(package, "ADSL", frame)
    write_package(package, tmp_path / "adam")
    raw, info = read_xpt(tmp_path / "adam" / "adsl.xpt")
    pd.testing.assert_frame_equal(to_package_frame(raw, package.datasets["ADSL"]), frame)
    assert info.types["RANDDT"] == "double"


def test_fitted_lengths(sdtm_package: Factory) -> None:
    package = sdtm_package()
    lengths = fitted_lengths(package.frames["DM"], package.datasets["DM"])
    assert lengths["USUBJID"] == len("DTX-001-01-001")
    assert lengths["AGE"] == 8
    assert lengths["RFSTDTC"] == 10
    frame = package.frames["DM"].assign(AGEU=[None, None, None])
    assert fitted_lengths(frame, package.datasets["DM"])["AGEU"] == 1


def test_written_files_hashes_and_csv(sdtm_package: Factory, tmp_path: Path) -> None:
    package = sdtm_package()
    written = write_package(package, tmp_path / "sdtm")
    assert [str(w.path) for w in written] == [
        "sdtm/dm.xpt",
        "sdtm/dm.csv",
        "sdtm/qs.xpt",
        "sdtm/qs.csv",
        "sdtm/define.xml",
    ]
    for w in written:
        data = (tmp_path / w.path).read_bytes()
        assert w.sha256 == hashlib.sha256(data).hexdigest()
        assert w.size == len(data)
    assert [w.rows for w in written] == [3, 3, 4, 4, None]
    with (tmp_path / "sdtm" / "dm.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == package.datasets["DM"].names
    assert rows[2] == ["DTX-001", "DM", "DTX-001-01-002", "002", "2024-02", "", "", "M"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdtm"]  # no temporary folder left


def test_csv_writes_sas_dates_as_iso(adam_package: Factory, tmp_path: Path) -> None:
    write_package(adam_package(), tmp_path / "adam")
    text = (tmp_path / "adam" / "adsl.csv").read_text(encoding="utf-8")
    assert "2024-01-15" in text
    assert "1959-12-31" in text
    assert text.splitlines()[3].endswith(",N,,Waiting list")


def test_progress_is_reported(sdtm_package: Factory, tmp_path: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    write_package(sdtm_package(), tmp_path / "sdtm", progress=lambda d, t, n: calls.append((d, t, n)))
    assert calls == [(1, 3, "DM"), (2, 3, "QS"), (3, 3, "define.xml")]


def test_valid_packages_have_no_problems(sdtm_package: Factory, adam_package: Factory) -> None:
    assert transport_problems(sdtm_package()) == []
    assert transport_problems(adam_package()) == []


def _break_dm(column: str, values: list[object]) -> Callable[[Package], Package]:
    def change(p: Package) -> Package:
        frame = p.frames["DM"].copy()
        frame[column] = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
        return _with_frame(p, "DM", frame)

    return change


CASES: dict[str, tuple[Callable[[Package], Package], str, str | None]] = {
    "dataset name of 9 characters": (lambda p: _rename_dataset(p, "DM", "DMLONGNAM"), "transport.name", None),
    "lower-case dataset name": (lambda p: _rename_dataset(p, "DM", "dm"), "transport.name", None),
    "variable name of 9 characters": (
        lambda p: _rename_variable(p, "DM", "SUBJID", "SUBJIDENT"),
        "transport.name",
        "SUBJIDENT",
    ),
    "lower-case variable name": (
        lambda p: _rename_variable(p, "DM", "SUBJID", "subjid"),
        "transport.name",
        "subjid",
    ),
    "variable name starting with a digit": (
        lambda p: _rename_variable(p, "DM", "SUBJID", "1SUBJID"),
        "transport.name",
        "1SUBJID",
    ),
    "variable label of 41 characters": (
        lambda p: _rename_variable(p, "DM", "SUBJID", "SUBJID", label="x" * 41),
        "transport.label",
        "SUBJID",
    ),
    "dataset label of 41 characters": (
        lambda p: _with_dataset(p, "DM", label="D" * 41),
        "transport.label",
        None,
    ),
    "non-ASCII label": (
        lambda p: _rename_variable(p, "DM", "SUBJID", "SUBJID", label="Sujet numéro"),
        "transport.ascii",
        "SUBJID",
    ),
    "non-ASCII value": (_break_dm("SUBJID", ["001", "00é", "003"]), "transport.ascii", "SUBJID"),
    "control character": (_break_dm("SUBJID", ["001", "0\n2", "003"]), "transport.ascii", "SUBJID"),
    "value over 200 bytes": (
        _break_dm("SUBJID", ["001", "x" * 201, "003"]),
        "transport.value_size",
        "SUBJID",
    ),
    "empty string": (_break_dm("SUBJID", ["001", "", "003"]), "transport.blank", "SUBJID"),
    "trailing blank": (_break_dm("SUBJID", ["001", "002 ", "003"]), "transport.blank", "SUBJID"),
    "text column holding numbers": (_break_dm("SUBJID", [1, 2, 3]), "transport.type", "SUBJID"),
    "text column holding NaN": (
        _break_dm("SUBJID", ["001", float("nan"), "003"]),
        "transport.type",
        "SUBJID",
    ),
    "date that is not ISO 8601": (
        _break_dm("RFSTDTC", ["15/01/2024", None, None]),
        "transport.type",
        "RFSTDTC",
    ),
    "impossible date": (_break_dm("RFSTDTC", ["2024-02-30", None, None]), "transport.type", "RFSTDTC"),
    "integer as float64": (
        lambda p: _with_frame(p, "DM", p.frames["DM"].assign(AGE=[34.0, float("nan"), 61.0])),
        "transport.type",
        "AGE",
    ),
    "columns out of order": (
        lambda p: _with_frame(p, "DM", p.frames["DM"][list(reversed(p.datasets["DM"].names))]),
        "transport.columns",
        None,
    ),
    "missing column": (
        lambda p: _with_frame(p, "DM", p.frames["DM"].drop(columns="SEX")),
        "transport.columns",
        None,
    ),
    "unknown codelist": (
        lambda p: _rename_variable(p, "DM", "SEX", "SEX", codelist="GENDER"),
        "metadata",
        "SEX",
    ),
    "unknown method": (
        lambda p: _rename_variable(p, "DM", "AGE", "AGE", method="MT.NONE"),
        "metadata",
        "AGE",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_transport_problems_finds_each_constraint(case: str, sdtm_package: Factory) -> None:
    change, rule, variable = CASES[case]
    problems = transport_problems(change(sdtm_package()))
    assert any(p.rule == rule and p.variable == variable for p in problems), problems


@pytest.mark.parametrize(
    ("column", "values", "rule"),
    [
        ("RANDDT", [dt.datetime(2024, 1, 15, 9, 30), None, None], "transport.type"),
        ("RANDDT", ["2024-01-15", None, None], "transport.type"),
        ("AGE", pd.array([2**53 + 1, None, 1], dtype="Int64"), "transport.type"),
    ],
)
def test_transport_problems_adam_types(column: str, values: object, rule: str, adam_package: Factory) -> None:
    package = adam_package()
    frame = package.frames["ADSL"].copy()
    frame[column] = values
    problems = transport_problems(_with_frame(package, "ADSL", frame))
    assert [(p.rule, p.variable) for p in problems] == [(rule, column)]


def test_infinite_float_is_refused(adam_package: Factory) -> None:
    package = adam_package()
    frame = package.frames["ADQS"].copy()
    frame.loc[1, "AVAL"] = float("inf")
    problems = transport_problems(_with_frame(package, "ADQS", frame))
    assert [(p.rule, p.variable) for p in problems] == [("transport.type", "AVAL")]


def test_file_size_limit(sdtm_package: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xpt, "FILE_SIZE_MAX", 1000)
    problems = transport_problems(sdtm_package())
    assert {(p.rule, p.dataset) for p in problems} == {("transport.size", "DM"), ("transport.size", "QS")}


def test_write_refuses_before_writing(sdtm_package: Factory, tmp_path: Path) -> None:
    package = _break_dm("SUBJID", ["001", "00é", "003"])(sdtm_package())
    with pytest.raises(TransportError) as caught:
        write_package(package, tmp_path / "sdtm")
    assert [p.rule for p in caught.value.problems] == ["transport.ascii"]
    assert caught.value.errors[0].field == "DM.SUBJID"
    assert "DM.SUBJID" in caught.value.detail
    assert list(tmp_path.iterdir()) == []


def test_write_is_all_or_nothing_for_a_new_folder(
    sdtm_package: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = xpt._write_dataset

    def fail_on_qs(frame: pd.DataFrame, ds: object, tmp: Path) -> None:
        if getattr(ds, "name", "") == "QS":
            raise OSError("disk full")
        real(frame, ds, tmp)  # type: ignore[arg-type]

    monkeypatch.setattr(xpt, "_write_dataset", fail_on_qs)
    with pytest.raises(OSError, match="disk full"):
        write_package(sdtm_package(), tmp_path / "sdtm")
    assert list(tmp_path.iterdir()) == []


def test_write_keeps_the_old_folder_when_it_fails(
    sdtm_package: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "sdtm"
    write_package(sdtm_package(), folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(xpt.pyreadstat, "write_xport", _raise)
    with pytest.raises(RuntimeError, match="library failure"):
        write_package(sdtm_package(), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdtm"]


def _raise(*args: object, **kwargs: object) -> None:
    raise RuntimeError("library failure")


def test_write_replaces_the_old_folder_on_success(sdtm_package: Factory, tmp_path: Path) -> None:
    folder = tmp_path / "sdtm"
    folder.mkdir()
    (folder / "stale.xpt").write_bytes(b"old")
    write_package(sdtm_package(), folder)
    assert sorted(p.name for p in folder.iterdir()) == ["define.xml", "dm.csv", "dm.xpt", "qs.csv", "qs.xpt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdtm"]


def test_read_back_mismatch_is_refused(
    sdtm_package: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library that changed a value on the way would be caught by the read-back comparison.
    real = xpt.read_xpt

    def altered(path: Path) -> tuple[pd.DataFrame, xpt.XptInfo]:
        frame, info = real(path)
        if "SUBJID" in frame.columns:
            frame.loc[0, "SUBJID"] = "999"
        return frame, info

    monkeypatch.setattr(xpt, "read_xpt", altered)
    with pytest.raises(TransportError) as caught:
        write_package(sdtm_package(), tmp_path / "sdtm")
    assert caught.value.problems[0].rule == "transport.readback"
    assert list(tmp_path.iterdir()) == []


def test_to_package_frame_refuses_fractions_in_integers(sdtm_package: Factory, tmp_path: Path) -> None:
    package = sdtm_package()
    write_package(package, tmp_path / "sdtm")
    raw, _ = read_xpt(tmp_path / "sdtm" / "dm.xpt")
    raw.loc[0, "AGE"] = 34.5
    with pytest.raises(ValueError, match="DM.AGE"):
        to_package_frame(raw, package.datasets["DM"])
