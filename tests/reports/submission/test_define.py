import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from reports.submission.define import DEF_NS, ODM_NS, XLINK_NS, define_xml, read_define
from reports.submission.metadata import Package
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
    assert sex.find("odm:Alias", NS).get("Name") == "C66731"  # type: ignore[union-attr]
    items = sex.findall("odm:CodeListItem", NS)
    assert [
        (
            i.get("CodedValue"),
            i.findtext("odm:Decode/odm:TranslatedText", namespaces=NS),
            i.find("odm:Alias", NS).get("Name"),
        )
        for i in items
    ] == [  # type: ignore[union-attr]
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
    assert qscat.find("odm:CodeListItem/odm:Alias", NS).get("Name") == "C103526"  # type: ignore[union-attr]
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
    assert items["LOCF"].find("odm:Alias", NS).get("Name") == "C81198"  # type: ignore[union-attr]
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
    assert adam.find(".//odm:ItemGroupDef[@OID='IG.ADSL']", NS).get("Domain") is None  # type: ignore[union-attr]
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
