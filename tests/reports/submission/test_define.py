import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

from reports.submission.check import check_folder
from reports.submission.define import DEF_NS, ODM_NS, XLINK_NS, define_xml, read_define
from reports.submission.metadata import Dataset, Package, ValueLevel, Variable
from reports.submission.xpt import fitted_lengths, write_package

Factory = Callable[[], Package]
CREATED = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
NS = {"odm": ODM_NS, "def": DEF_NS, "xlink": XLINK_NS}


def _define(package: Package, **kw: object) -> etree._Element:
    lengths = {n: fitted_lengths(package.frames[n], ds) for n, ds in package.datasets.items()}
    return etree.fromstring(define_xml(package, lengths, created=CREATED, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("factory_name", ["sdtm_package", "adam_package"])
def test_well_formed_define_xml_2_1(factory_name: str, request: pytest.FixtureRequest) -> None:
    package: Package = request.getfixturevalue(factory_name)()
    root = _define(package)
    assert root.tag == f"{{{ODM_NS}}}ODM"
    assert root.nsmap == {None: ODM_NS, "def": DEF_NS, "xlink": XLINK_NS}
    assert root.get("ODMVersion") == "1.3.2"
    assert root.get("FileType") == "Snapshot"
    assert root.get("CreationDateTime") == "2025-03-01T12:00:00+00:00"
    assert root.get(f"{{{DEF_NS}}}Context") == "Submission"
    assert root.get("SourceSystem") == "trials"
    mdv = root.find("odm:Study/odm:MetaDataVersion", NS)
    assert mdv is not None
    assert mdv.get(f"{{{DEF_NS}}}DefineVersion") == "2.1.0"
    assert root.findtext("odm:Study/odm:GlobalVariables/odm:StudyName", namespaces=NS) == "DTX-001"
    standard = mdv.find("def:Standards/def:Standard", NS)
    assert standard is not None
    assert (standard.get("Name"), standard.get("Type"), standard.get("Version")) == (
        package.standard,
        "IG",
        package.version,
    )


def test_metadata_version_children_in_schema_order(sdtm_package: Factory) -> None:
    mdv = _define(sdtm_package()).find("odm:Study/odm:MetaDataVersion", NS)
    assert mdv is not None
    order = [etree.QName(el).localname for el in mdv]
    expected = [
        "Standards",
        "ValueListDef",
        "WhereClauseDef",
        "ItemGroupDef",
        "ItemDef",
        "CodeList",
        "MethodDef",
        "CommentDef",
    ]
    collapsed = [name for i, name in enumerate(order) if i == 0 or order[i - 1] != name]
    assert collapsed == expected
    group = mdv.find("odm:ItemGroupDef", NS)
    assert group is not None
    children = [etree.QName(el).localname for el in group]
    assert children[0] == "Description"
    assert children[-2:] == ["Class", "leaf"]


@pytest.mark.parametrize("factory_name", ["sdtm_package", "adam_package"])
def test_lists_exactly_the_datasets_and_variables_written(
    factory_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    package: Package = request.getfixturevalue(factory_name)()
    write_package(package, tmp_path / package.folder)
    summary = read_define(tmp_path / package.folder / "define.xml")
    assert list(summary.datasets) == list(package.datasets)
    for name, ds in package.datasets.items():
        listed = summary.datasets[name]
        assert listed.names == ds.names
        assert listed.label == ds.label
        assert listed.href == f"{name.lower()}.xpt"
        assert listed.keys == ds.keys
        assert listed.klass == ds.klass
        assert [v.mandatory for v in listed.variables] == [v.mandatory for v in ds.variables]
        assert [v.label for v in listed.variables] == [v.label for v in ds.variables]
        assert listed.purpose == ("Tabulation" if package.folder == "sdtm" else "Analysis")


def test_lengths_and_data_types(sdtm_package: Factory, adam_package: Factory, tmp_path: Path) -> None:
    for package in (sdtm_package(), adam_package()):
        write_package(package, tmp_path / package.folder)
        summary = read_define(tmp_path / package.folder / "define.xml")
        for name, ds in package.datasets.items():
            fitted = fitted_lengths(package.frames[name], ds)
            for var in ds.variables:
                item = summary.datasets[name].variable(var.name)
                if var.data_type == "date":
                    assert item.length is None
                else:
                    assert item.length == fitted[var.name], (name, var.name)
    dm = read_define(tmp_path / "sdtm" / "define.xml").datasets["DM"]
    # RFSTDTC holds a partial date ("2024-02"); QSDTC only complete ones.
    assert dm.variable("RFSTDTC").data_type == "partialDate"
    assert read_define(tmp_path / "sdtm" / "define.xml").datasets["QS"].variable("QSDTC").data_type == "date"
    assert dm.variable("AGE").data_type == "integer"
    adsl = read_define(tmp_path / "adam" / "define.xml").datasets["ADSL"]
    assert (adsl.variable("RANDDT").data_type, adsl.variable("RANDDT").display_format) == (
        "integer",
        "DATE9.",
    )


def test_float_significant_digits(adam_package: Factory) -> None:
    root = _define(adam_package())
    aval = root.find(".//odm:ItemDef[@OID='IT.ADQS.AVAL']", NS)
    base = root.find(".//odm:ItemDef[@OID='IT.ADQS.BASE']", NS)
    assert aval is not None
    assert base is not None
    assert aval.get("SignificantDigits") == "1"  # declared
    assert base.get("SignificantDigits") == "0"  # from the data: 15.0, 20.0


def test_codelists_with_nci_codes_only_where_known(sdtm_package: Factory, adam_package: Factory) -> None:
    root = _define(sdtm_package())
    oids = [cl.get("OID") for cl in root.iterfind(".//odm:CodeList", NS)]
    assert oids == ["CL.AGEU", "CL.SEX", "CL.PHQ01TC", "CL.PHQ01TN", "CL.QSCAT", "CL.PHQ01OR"]
    sex = root.find(".//odm:CodeList[@OID='CL.SEX']", NS)
    assert sex is not None
    assert sex.find("odm:Alias", NS).get("Name") == "C66731"
    items = sex.findall("odm:CodeListItem", NS)
    assert [
        (
            i.get("CodedValue"),
            i.findtext("odm:Decode/odm:TranslatedText", namespaces=NS),
            i.find("odm:Alias", NS).get("Name"),
        )
        for i in items
    ] == [
        ("F", "Female", "C16576"),
        ("M", "Male", "C20197"),
    ]
    # Sponsor-defined codelist: no NCI alias anywhere.
    answers = root.find(".//odm:CodeList[@OID='CL.PHQ01OR']", NS)
    assert answers is not None
    assert answers.findall(".//odm:Alias", NS) == []
    assert [e.get("CodedValue") for e in answers.findall("odm:EnumeratedItem", NS)][0] == "Not at all"
    # QSCAT: the codelist code is not confirmed, the term code is.
    qscat = root.find(".//odm:CodeList[@OID='CL.QSCAT']", NS)
    assert qscat is not None
    assert qscat.find("odm:Alias", NS) is None
    assert qscat.find("odm:CodeListItem/odm:Alias", NS).get("Name") == "C103526"
    dm_sex = root.find(".//odm:ItemDef[@OID='IT.DM.SEX']/odm:CodeListRef", NS)
    assert dm_sex is not None
    assert dm_sex.get("CodeListOID") == "CL.SEX"


def test_extended_value_in_an_extensible_cdisc_codelist(adam_package: Factory) -> None:
    root = _define(adam_package())
    dtype = root.find(".//odm:CodeList[@OID='CL.DTYPE']", NS)
    assert dtype is not None
    items = {e.get("CodedValue"): e for e in dtype.findall("odm:EnumeratedItem", NS)}
    assert items["PRORATED"].get(f"{{{DEF_NS}}}ExtendedValue") == "Yes"
    assert items["PRORATED"].find("odm:Alias", NS) is None
    assert items["LOCF"].get(f"{{{DEF_NS}}}ExtendedValue") is None
    assert items["LOCF"].find("odm:Alias", NS).get("Name") == "C81198"
    # Codelists no variable uses are not listed.
    assert [cl.get("OID") for cl in root.iterfind(".//odm:CodeList", NS)] == [
        "CL.SEX",
        "CL.NY",
        "CL.PARAMCD",
        "CL.DTYPE",
    ]


def test_value_level_where_clauses(sdtm_package: Factory, tmp_path: Path) -> None:
    package = sdtm_package()
    write_package(package, tmp_path / "sdtm")
    summary = read_define(tmp_path / "sdtm" / "define.xml")
    assert [(v.dataset, v.variable, v.where, v.codelist) for v in summary.value_level] == [
        ("QS", "QSORRES", (("QSTESTCD", "PHQ0101"),), "CL.PHQ01OR"),
        ("QS", "QSORRES", (("QSTESTCD", "PHQ0102"),), "CL.PHQ01OR"),
    ]
    # Length of a value-level item: the longest value where the clause holds.
    assert [v.length for v in summary.value_level] == [len("Several days"), len("Nearly every day")]
    root = etree.parse(str(tmp_path / "sdtm" / "define.xml")).getroot()
    check = root.find(".//def:WhereClauseDef[@OID='WC.QS.QSORRES.1']/odm:RangeCheck", NS)
    assert check is not None
    assert (check.get("Comparator"), check.get("SoftHard"), check.get(f"{{{DEF_NS}}}ItemOID")) == (
        "EQ",
        "Soft",
        "IT.QS.QSTESTCD",
    )
    ref = root.find(".//odm:ItemDef[@OID='IT.QS.QSORRES']/def:ValueListRef", NS)
    assert ref is not None
    assert ref.get("ValueListOID") == "VL.QS.QSORRES"


def test_origins_methods_and_comments(sdtm_package: Factory, adam_package: Factory) -> None:
    adam = _define(adam_package())
    origin = adam.find(".//odm:ItemDef[@OID='IT.ADSL.AGE']/def:Origin", NS)
    assert origin is not None
    assert origin.get("Type") == "Predecessor"
    assert origin.findtext("odm:Description/odm:TranslatedText", namespaces=NS) == "DM.AGE"
    sdtm = _define(sdtm_package())
    sex = sdtm.find(".//odm:ItemDef[@OID='IT.DM.SEX']/def:Origin", NS)
    assert sex is not None
    assert (sex.get("Type"), sex.get("Source")) == ("Collected", "Subject")
    assert [m.get("OID") for m in sdtm.iterfind(".//odm:MethodDef", NS)] == ["MT.SEQ", "MT.QSSTRESN"]
    ref = sdtm.find(".//odm:ItemGroupDef[@OID='IG.QS']/odm:ItemRef[@ItemOID='IT.QS.QSSEQ']", NS)
    assert ref is not None
    assert ref.get("MethodOID") == "MT.SEQ"
    assert [c.get("OID") for c in sdtm.iterfind(".//def:CommentDef", NS)] == ["COM.DM", "COM.DM.RFSTDTC"]
    group = sdtm.find(".//odm:ItemGroupDef[@OID='IG.DM']", NS)
    assert group is not None
    assert group.get(f"{{{DEF_NS}}}CommentOID") == "COM.DM"
    assert group.get("Domain") == "DM"
    assert group.get("Purpose") == "Tabulation"
    assert adam.find(".//odm:ItemGroupDef[@OID='IG.ADSL']", NS).get("Domain") is None
    # Roles are SDTM only.
    assert adam.find(".//odm:ItemRef[@Role]", NS) is None


def test_controlled_terminology_standards_when_given(adam_package: Factory) -> None:
    root = _define(adam_package(), ct_versions={"SDTM": "2021-06-25", "ADaM": "2025-09-26"})
    standards = [
        (s.get("Name"), s.get("Type"), s.get("PublishingSet"), s.get("Version"))
        for s in root.iterfind(".//def:Standard", NS)
    ]
    assert standards == [
        ("ADaMIG", "IG", None, "1.3"),
        ("CDISC/NCI", "CT", "SDTM", "2021-06-25"),
        ("CDISC/NCI", "CT", "ADaM", "2025-09-26"),
    ]


# --- Define-XML 2.1: SubClass, HasNoData, codelist StandardOID, value-level lengths ------------

ADTTE = Dataset(
    "ADTTE",
    "Time-to-Event Analysis Dataset",
    "BASIC DATA STRUCTURE",
    "One record per subject per parameter",
    ("STUDYID", "USUBJID", "PARAMCD"),
    (
        Variable("STUDYID", "Study Identifier", "text", "Predecessor", "Req", predecessor="ADSL.STUDYID"),
        Variable(
            "USUBJID", "Unique Subject Identifier", "text", "Predecessor", "Req", predecessor="ADSL.USUBJID"
        ),
        Variable("PARAMCD", "Parameter Code", "text", "Assigned", "Req"),
        Variable("AVAL", "Analysis Value", "float", "Derived", "Req", significant_digits=0),
        Variable("STARTDT", "Time-to-Event Origin Date for Subject", "sasdate", "Derived", "Cond"),
        Variable("ADT", "Analysis Date", "sasdate", "Derived", "Cond"),
        Variable("CNSR", "Censor", "integer", "Derived", "Req"),
    ),
    subclass="TIME-TO-EVENT",
)


def _with_adtte(package: Package, records: int) -> Package:
    rows = [
        ("DTX-001", "DTX-001-01-001", "TTRESP", 29.0, dt.date(2024, 1, 15), dt.date(2024, 2, 12), 0),
        ("DTX-001", "DTX-001-01-002", "TTRESP", 57.0, dt.date(2024, 2, 1), dt.date(2024, 3, 28), 1),
    ][:records]
    frame = pd.DataFrame(
        {
            "STUDYID": pd.Series([r[0] for r in rows], dtype=object),
            "USUBJID": pd.Series([r[1] for r in rows], dtype=object),
            "PARAMCD": pd.Series([r[2] for r in rows], dtype=object),
            "AVAL": pd.Series([r[3] for r in rows], dtype="float64"),
            "STARTDT": pd.Series([r[4] for r in rows], dtype=object),
            "ADT": pd.Series([r[5] for r in rows], dtype=object),
            "CNSR": pd.array([r[6] for r in rows], dtype="Int64"),
        }
    )
    return dataclasses.replace(
        package,
        datasets={**package.datasets, "ADTTE": ADTTE},
        frames={**package.frames, "ADTTE": frame},
    )


def test_sub_class_of_a_time_to_event_dataset(adam_package: Factory, tmp_path: Path) -> None:
    package = _with_adtte(adam_package(), 2)
    root = _define(package)
    klass = root.find(".//odm:ItemGroupDef[@OID='IG.ADTTE']/def:Class", NS)
    assert klass is not None
    assert klass.get("Name") == "BASIC DATA STRUCTURE"
    assert [(etree.QName(c).localname, c.get("Name")) for c in klass] == [("SubClass", "TIME-TO-EVENT")]
    # A dataset without a subclass has an empty def:Class.
    adqs_class = root.find(".//odm:ItemGroupDef[@OID='IG.ADQS']/def:Class", NS)
    assert adqs_class is not None
    assert len(adqs_class) == 0
    write_package(package, tmp_path / "adam")
    summary = read_define(tmp_path / "adam" / "define.xml")
    assert {n: (d.klass, d.subclass) for n, d in summary.datasets.items()} == {
        "ADSL": ("SUBJECT LEVEL ANALYSIS DATASET", None),
        "ADQS": ("BASIC DATA STRUCTURE", None),
        "ADTTE": ("BASIC DATA STRUCTURE", "TIME-TO-EVENT"),
    }
    assert check_folder(tmp_path / "adam") == []


def test_has_no_data_on_a_dataset_without_records(adam_package: Factory, tmp_path: Path) -> None:
    package = _with_adtte(adam_package(), 0)
    root = _define(package)
    has_no_data = {
        g.get("Name"): g.get(f"{{{DEF_NS}}}HasNoData") for g in root.iterfind(".//odm:ItemGroupDef", NS)
    }
    assert has_no_data == {"ADSL": None, "ADQS": None, "ADTTE": "Yes"}
    # The variables are still described.
    group = root.find(".//odm:ItemGroupDef[@OID='IG.ADTTE']", NS)
    assert group is not None
    assert len(group.findall("odm:ItemRef", NS)) == len(ADTTE.variables)
    write_package(package, tmp_path / "adam")
    summary = read_define(tmp_path / "adam" / "define.xml")
    assert {n: d.has_no_data for n, d in summary.datasets.items()} == {
        "ADSL": False,
        "ADQS": False,
        "ADTTE": True,
    }
    assert check_folder(tmp_path / "adam") == []


def _codelist_standards(root: etree._Element) -> dict[str | None, str | None]:
    return {cl.get("OID"): cl.get(f"{{{DEF_NS}}}StandardOID") for cl in root.iterfind(".//odm:CodeList", NS)}


def test_cdisc_codelists_refer_to_the_ct_standard_of_their_publishing_set(adam_package: Factory) -> None:
    root = _define(adam_package(), ct_versions={"SDTM": "2021-06-25", "ADaM": "2025-09-26"})
    standards = {s.get("OID") for s in root.iterfind(".//def:Standard", NS)}
    assert _codelist_standards(root) == {
        "CL.SEX": "STD.CT.SDTM.2021-06-25",
        "CL.NY": "STD.CT.SDTM.2021-06-25",
        "CL.PARAMCD": None,  # sponsor-defined: no NCI code, no CT standard
        "CL.DTYPE": "STD.CT.ADaM.2025-09-26",  # ADaM CT, not SDTM CT
    }
    # Every StandardOID points to a def:Standard of the document.
    assert {oid for oid in _codelist_standards(root).values() if oid} <= standards


def test_no_standard_oid_when_the_publishing_set_is_not_declared(adam_package: Factory) -> None:
    sdtm_only = _define(adam_package(), ct_versions={"SDTM": "2021-06-25"})
    assert _codelist_standards(sdtm_only) == {
        "CL.SEX": "STD.CT.SDTM.2021-06-25",
        "CL.NY": "STD.CT.SDTM.2021-06-25",
        "CL.PARAMCD": None,
        "CL.DTYPE": None,  # ADaM CT is not among the standards
    }
    assert set(_codelist_standards(_define(adam_package())).values()) == {None}


def test_standard_oid_of_codelists_read_back(sdtm_package: Factory, tmp_path: Path) -> None:
    package = dataclasses.replace(sdtm_package(), ct_versions={"SDTM": "2021-06-25"})
    write_package(package, tmp_path / "sdtm")
    summary = read_define(tmp_path / "sdtm" / "define.xml")
    assert {oid: cl.standard_oid for oid, cl in summary.codelists.items()} == {
        "CL.AGEU": "STD.CT.SDTM.2021-06-25",
        "CL.SEX": "STD.CT.SDTM.2021-06-25",
        "CL.PHQ01TC": "STD.CT.SDTM.2021-06-25",
        "CL.PHQ01TN": "STD.CT.SDTM.2021-06-25",
        "CL.QSCAT": None,  # the codelist's NCI code is not confirmed
        "CL.PHQ01OR": None,
    }


def test_value_level_length_of_numbers_held_as_text(sdtm_package: Factory, tmp_path: Path) -> None:
    """An integer or float result in a text variable takes the bytes of its text, not 8."""
    package = sdtm_package()
    qs = package.frames["QS"].copy()
    # PHQ0102 collected as a number: "3" and "2.5" are text in QSORRES.
    qs.loc[qs["QSTESTCD"] == "PHQ0102", "QSORRES"] = ["3", "2.5"]
    value_level = (
        package.value_level[0],
        ValueLevel("QS", "QSORRES", (("QSTESTCD", "PHQ0102"),), "Item 2 (collected)", "float", "Collected"),
        ValueLevel("QS", "QSSTRESN", (("QSTESTCD", "PHQ0101"),), "Item 1", "integer", "Derived"),
    )
    package = dataclasses.replace(package, frames={**package.frames, "QS": qs}, value_level=value_level)
    write_package(package, tmp_path / "sdtm")
    summary = read_define(tmp_path / "sdtm" / "define.xml")
    assert [(v.variable, v.data_type, v.length) for v in summary.value_level] == [
        ("QSORRES", "text", len("Several days")),
        ("QSORRES", "float", len("2.5")),  # text variable: the longest value's bytes
        ("QSSTRESN", "integer", 8),  # numeric variable: 8 bytes
    ]
    root = etree.parse(str(tmp_path / "sdtm" / "define.xml")).getroot()
    item = root.find(".//odm:ItemDef[@OID='IT.QS.QSORRES.2']", NS)
    assert item is not None
    assert item.get("SignificantDigits") == "1"
    assert check_folder(tmp_path / "sdtm") == []
