"""Define-XML 2.1 of a submission package, and a reader for what a define.xml lists.

The document follows the Define-XML 2.1 schema (ODM 1.3.2 with the ``def`` extension
namespace ``http://www.cdisc.org/ns/def/v2.1``), in the element order of its
``define-extension.xsd`` and of CDISC's Metadata Submission Guidelines examples: under
MetaDataVersion ``def:Standards``, ``def:ValueListDef``, ``def:WhereClauseDef``, then
``ItemGroupDef``, ``ItemDef``, ``CodeList``, ``MethodDef``, ``def:CommentDef``. Each ItemGroupDef
ends with its ``def:Class`` and the ``def:leaf`` of its transport file.

OIDs: ``IG.<DS>``, ``IT.<DS>.<VAR>`` (value-level items ``IT.<DS>.<VAR>.<n>``), ``VL.<DS>.<VAR>``,
``WC.<DS>.<VAR>.<n>``, ``CL.<codelist>``, ``LF.<DS>``, ``STD.*``; methods and comments keep the
package's own OIDs.

Define-XML 2.1 specifics written here: ``def:SubClass`` inside ``def:Class`` (ADaM BDS
subclasses such as TIME-TO-EVENT), ``def:HasNoData="Yes"`` on the ItemGroupDef of a dataset
without records, and ``def:StandardOID`` on each CDISC codelist (one with an NCI code), pointing
to the ``def:Standard`` of the CT publishing set it comes from when that CT version is declared.
"""

import datetime as dt
import importlib.metadata
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from lxml import etree

from reports.submission.metadata import Dataset, DataType, Package, ValueLevel, Variable
from reports.submission.terminology import Codelist
from reports.submission.xpt import NUMERIC_LENGTH, SAS_DATE_FORMAT

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
DEF_NS = "http://www.cdisc.org/ns/def/v2.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
NSMAP = {None: ODM_NS, "def": DEF_NS, "xlink": XLINK_NS}
DEFINE_VERSION = "2.1.0"
ODM_VERSION = "1.3.2"
SOURCE_SYSTEM = "trials"

_O = f"{{{ODM_NS}}}"
_D = f"{{{DEF_NS}}}"


def _odm(tag: str) -> str:
    return _O + tag


def _def(tag: str) -> str:
    return _D + tag


def _sub(parent: etree._Element, tag: str, attrs: Mapping[str, str | None] | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    for key, value in (attrs or {}).items():
        if value is not None:
            el.set(key, value)
    return el


def _description(parent: etree._Element, text: str, tag: str = "Description") -> None:
    node = _sub(parent, _odm(tag))
    translated = _sub(node, _odm("TranslatedText"))
    translated.set(f"{{{XML_NS}}}lang", "en")
    translated.text = text


def _purpose(package: Package) -> str:
    return "Tabulation" if package.folder == "sdtm" else "Analysis"


def _define_type(data_type: DataType, values: Iterable[Any]) -> str:
    """Define-XML DataType: SAS dates are integers shown as DATE9.; ISO dates are "date" when
    every value is complete, "partialDate" when some leave out the month or day."""
    if data_type == "sasdate":
        return "integer"
    if data_type == "date":
        return "date" if all(len(v) == 10 for v in values if isinstance(v, str)) else "partialDate"
    return data_type


def _text_decimals(value: str) -> int:
    """Decimal places of a number held as text ("2.50" -> 2); 0 when it is not a number."""
    text = value.strip()
    try:
        float(text)
    except ValueError:
        return 0
    mantissa = text.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _significant_digits(variable_digits: int | None, values: Iterable[Any]) -> int:
    """Declared digits, else the most decimal places any value needs (shortest repr; numbers held
    as text, such as a value-level float of a text variable, as written)."""
    if variable_digits is not None:
        return variable_digits
    places = 0
    for v in values:
        if isinstance(v, str):
            places = max(places, _text_decimals(v))
        elif isinstance(v, float) and math.isfinite(v):
            text = repr(v)
            if "e" in text or "E" in text:
                mantissa, exponent = text.lower().split("e")
                decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
                places = max(places, decimals - int(exponent))
            elif "." in text:
                places = max(places, len(text.split(".")[1].rstrip("0")))
    return max(places, 0)


def _subset(frame: pd.DataFrame, where: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for name, value in where:
        mask &= frame[name].map(lambda v, value=value: as_text(v) == value)
    return frame[mask]


def as_text(value: Any) -> str | None:
    """A value as Define-XML writes it (CheckValue, CodedValue): integral numbers without ".0";
    None for a missing value (None, NA, NaN, or the blank a transport file reads back)."""
    if value is None or value is pd.NA or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _length(data_type: DataType, values: Iterable[Any]) -> int | None:
    if data_type in ("text",):
        return max([1, *(len(v.encode("utf-8")) for v in values if isinstance(v, str))])
    if data_type in ("integer", "float", "sasdate"):
        return NUMERIC_LENGTH
    return None  # ISO 8601 dates carry no Length


def _value_level_length(parent: Variable, data_type: DataType, values: Iterable[Any]) -> int | None:
    """Length of a value-level item: the bytes its values take in the variable that holds them.

    A number (or anything but an ISO date) held in a text variable, such as an integer QSORRES or
    QSSTRESC, is text of the longest value's byte length, not the 8 bytes of a numeric variable;
    in a numeric variable it takes the variable's numeric length."""
    if parent.data_type == "text" and data_type != "date":
        texts = [as_text(v) for v in values]
        return max([1, *(len(t.encode("utf-8")) for t in texts if t is not None)])
    return _length(data_type, values)


def _origin(parent: etree._Element, origin: str, source: str | None, predecessor: str | None = None) -> None:
    node = _sub(parent, _def("Origin"), {"Type": origin, "Source": source})
    if origin == "Predecessor" and predecessor:
        _description(node, predecessor)


def _item_def(
    parent: etree._Element,
    oid: str,
    name: str,
    label: str,
    data_type: DataType,
    values: list[Any],
    *,
    length: int | None,
    significant_digits: int | None,
    codelist: str | None,
    origin: str,
    source: str | None,
    predecessor: str | None,
    comment: str | None,
    value_list: str | None,
) -> None:
    define_type = _define_type(data_type, values)
    attrs: dict[str, str | None] = {
        "OID": oid,
        "Name": name,
        "DataType": define_type,
        "Length": str(length) if length is not None and data_type != "date" else None,
        "SignificantDigits": (
            str(_significant_digits(significant_digits, values)) if data_type == "float" else None
        ),
        "SASFieldName": name,
        _def("DisplayFormat"): SAS_DATE_FORMAT if data_type == "sasdate" else None,
        _def("CommentOID"): comment,
    }
    item = _sub(parent, _odm("ItemDef"), attrs)
    _description(item, label)
    if codelist:
        _sub(item, _odm("CodeListRef"), {"CodeListOID": f"CL.{codelist}"})
    _origin(item, origin, source, predecessor)
    if value_list:
        _sub(item, _def("ValueListRef"), {"ValueListOID": value_list})


def _standards(mdv: etree._Element, package: Package, ct_versions: Mapping[str, str]) -> str:
    standards = _sub(mdv, _def("Standards"))
    ig_oid = f"STD.{package.standard}.{package.version}"
    _sub(
        standards,
        _def("Standard"),
        {
            "OID": ig_oid,
            "Name": package.standard,
            "Type": "IG",
            "Version": package.version,
            "Status": "Final",
        },
    )
    for publishing_set, version in ct_versions.items():
        _sub(
            standards,
            _def("Standard"),
            {
                "OID": _ct_standard_oid(publishing_set, version),
                "Name": "CDISC/NCI",
                "Type": "CT",
                "PublishingSet": publishing_set,
                "Version": version,
                "Status": "Final",
            },
        )
    return ig_oid


def _value_lists(
    mdv: etree._Element, package: Package
) -> dict[tuple[str, str], list[tuple[int, ValueLevel]]]:
    """def:ValueListDef and def:WhereClauseDef elements; returns the entries per variable with
    their number (1-based, in package order) for the value-level ItemDefs."""
    groups: dict[tuple[str, str], list[tuple[int, ValueLevel]]] = {}
    for vl in package.value_level:
        entries = groups.setdefault((vl.dataset, vl.variable), [])
        entries.append((len(entries) + 1, vl))
    for (ds_name, var_name), entries in groups.items():
        parent_var = package.datasets[ds_name].variable(var_name)
        vld = _sub(mdv, _def("ValueListDef"), {"OID": f"VL.{ds_name}.{var_name}"})
        for n, vl in entries:
            ref = _sub(
                vld,
                _odm("ItemRef"),
                {
                    "ItemOID": f"IT.{ds_name}.{var_name}.{n}",
                    "OrderNumber": str(n),
                    "Mandatory": "Yes" if parent_var.mandatory else "No",
                    "MethodOID": vl.method,
                },
            )
            _sub(ref, _def("WhereClauseRef"), {"WhereClauseOID": f"WC.{ds_name}.{var_name}.{n}"})
    for (ds_name, var_name), entries in groups.items():
        for n, vl in entries:
            wc = _sub(mdv, _def("WhereClauseDef"), {"OID": f"WC.{ds_name}.{var_name}.{n}"})
            for name, value in vl.where:
                rc = _sub(
                    wc,
                    _odm("RangeCheck"),
                    {"Comparator": "EQ", "SoftHard": "Soft", _def("ItemOID"): f"IT.{ds_name}.{name}"},
                )
                _sub(rc, _odm("CheckValue")).text = value
    return groups


def _item_group(mdv: etree._Element, package: Package, ds: Dataset, std_oid: str, purpose: str) -> None:
    frame = package.frames.get(ds.name)
    attrs: dict[str, str | None] = {
        "OID": f"IG.{ds.name}",
        "Name": ds.name,
        "Repeating": "Yes" if ds.repeating else "No",
        "IsReferenceData": "Yes" if ds.reference_data else "No",
        "SASDatasetName": ds.name,
        # SUPP-- datasets belong to their parent domain.
        "Domain": (ds.name[4:] if ds.name.startswith("SUPP") else ds.name)
        if purpose == "Tabulation"
        else None,
        "Purpose": purpose,
        _def("Structure"): ds.structure,
        _def("StandardOID"): std_oid,
        _def("HasNoData"): "Yes" if frame is not None and len(frame) == 0 else None,
        _def("CommentOID"): ds.comment,
        _def("ArchiveLocationID"): f"LF.{ds.name}",
    }
    group = _sub(mdv, _odm("ItemGroupDef"), attrs)
    _description(group, ds.label)
    for order, var in enumerate(ds.variables, start=1):
        key = ds.keys.index(var.name) + 1 if var.name in ds.keys else None
        _sub(
            group,
            _odm("ItemRef"),
            {
                "ItemOID": f"IT.{ds.name}.{var.name}",
                "OrderNumber": str(order),
                "Mandatory": "Yes" if var.mandatory else "No",
                "KeySequence": str(key) if key else None,
                "MethodOID": var.method,
                "Role": var.role if purpose == "Tabulation" else None,
            },
        )
    klass = _sub(group, _def("Class"), {"Name": ds.klass})
    if ds.subclass:
        _sub(klass, _def("SubClass"), {"Name": ds.subclass})
    href = f"{ds.name.lower()}.xpt"
    leaf = _sub(group, _def("leaf"), {"ID": f"LF.{ds.name}", f"{{{XLINK_NS}}}href": href})
    _sub(leaf, _def("title")).text = href


def _codelist_type(package: Package, name: str) -> str:
    """CodeList DataType from the variables that use it (text unless they are numbers)."""
    types = {v.data_type for ds in package.datasets.values() for v in ds.variables if v.codelist == name}
    types |= {vl.data_type for vl in package.value_level if vl.codelist == name}
    if types and types <= {"integer"}:
        return "integer"
    if types and types <= {"integer", "float"}:
        return "float"
    return "text"


def _ct_standard_oid(publishing_set: str, version: str) -> str:
    return f"STD.CT.{publishing_set}.{version}"


def _codelist(
    mdv: etree._Element, package: Package, codelist: Codelist, ct_versions: Mapping[str, str]
) -> None:
    # A CDISC codelist refers to the CT standard of its publishing set, when that is declared.
    version = ct_versions.get(codelist.publishing_set) if codelist.nci_code else None
    cl = _sub(
        mdv,
        _odm("CodeList"),
        {
            "OID": f"CL.{codelist.name}",
            "Name": codelist.label,
            "DataType": _codelist_type(package, codelist.name),
            _def("StandardOID"): (
                _ct_standard_oid(codelist.publishing_set, version) if version is not None else None
            ),
        },
    )
    # CodeListItem needs a Decode; a codelist where some terms have none is listed as
    # enumerated values rather than given made-up decodes.
    decoded = all(t.decode is not None for t in codelist.terms)
    cdisc_extensible = codelist.nci_code is not None and codelist.extensible is True
    for order, term in enumerate(codelist.terms, start=1):
        attrs = {
            "CodedValue": term.value,
            "OrderNumber": str(order),
            _def("ExtendedValue"): "Yes" if cdisc_extensible and term.nci_code is None else None,
        }
        item = _sub(cl, _odm("CodeListItem" if decoded else "EnumeratedItem"), attrs)
        if decoded:
            _description(item, term.decode or "", tag="Decode")
        if term.nci_code:
            _sub(item, _odm("Alias"), {"Context": "nci:ExtCodeID", "Name": term.nci_code})
    if codelist.nci_code:
        _sub(cl, _odm("Alias"), {"Context": "nci:ExtCodeID", "Name": codelist.nci_code})


def _referenced(package: Package) -> tuple[list[str], list[str], list[str]]:
    """Codelists, methods and comments that the datasets or value-level metadata use, in
    first-use order (Define-XML lists no definition nobody refers to)."""
    codelists: dict[str, None] = {}
    methods: dict[str, None] = {}
    comments: dict[str, None] = {}
    for ds in package.datasets.values():
        if ds.comment:
            comments[ds.comment] = None
        for v in ds.variables:
            for ref, pool in ((v.codelist, codelists), (v.method, methods), (v.comment, comments)):
                if ref:
                    pool[ref] = None
    for vl in package.value_level:
        for ref, pool in ((vl.codelist, codelists), (vl.method, methods), (vl.comment, comments)):
            if ref:
                pool[ref] = None
    return list(codelists), list(methods), list(comments)


def define_xml(
    package: Package,
    lengths: Mapping[str, Mapping[str, int]],
    *,
    created: dt.datetime,
    ct_versions: Mapping[str, str] | None = None,
) -> bytes:
    """The package's Define-XML 2.1 document (UTF-8 bytes).

    ``lengths`` are the lengths written per dataset and variable (:func:`xpt.fitted_lengths`);
    ``created`` is the document's CreationDateTime; ``ct_versions`` maps CDISC CT publishing sets
    ("SDTM", "ADaM") to the CT version used, each listed as a ``def:Standard`` (none when not
    given: the terminology module does not state one version).
    """
    purpose = _purpose(package)
    root = etree.Element(
        _odm("ODM"),
        nsmap=NSMAP,
        attrib={
            "FileType": "Snapshot",
            "FileOID": f"DEF.{package.study_id}.{package.folder.upper()}",
            "CreationDateTime": created.isoformat(),
            "ODMVersion": ODM_VERSION,
            "Originator": SOURCE_SYSTEM,
            "SourceSystem": SOURCE_SYSTEM,
            "SourceSystemVersion": importlib.metadata.version("trials"),
            _def("Context"): "Submission",
        },
    )
    study = _sub(root, _odm("Study"), {"OID": f"STDY.{package.study_id}"})
    globals_ = _sub(study, _odm("GlobalVariables"))
    _sub(globals_, _odm("StudyName")).text = package.study_name
    _sub(globals_, _odm("StudyDescription")).text = package.study_description
    _sub(globals_, _odm("ProtocolName")).text = package.protocol_name
    mdv = _sub(
        study,
        _odm("MetaDataVersion"),
        {
            "OID": f"MDV.{package.study_id}.{package.standard}.{package.version}",
            "Name": f"{package.study_name} {package.standard} {package.version}",
            "Description": f"{purpose} datasets of study {package.study_id}",
            _def("DefineVersion"): DEFINE_VERSION,
        },
    )
    ct_versions = ct_versions or {}
    std_oid = _standards(mdv, package, ct_versions)
    groups = _value_lists(mdv, package)
    for ds in package.datasets.values():
        _item_group(mdv, package, ds, std_oid, purpose)
    for ds in package.datasets.values():
        frame = package.frames[ds.name]
        for var in ds.variables:
            values = frame[var.name].tolist()
            _item_def(
                mdv,
                f"IT.{ds.name}.{var.name}",
                var.name,
                var.label,
                var.data_type,
                values,
                length=lengths[ds.name][var.name] if var.data_type != "date" else None,
                significant_digits=var.significant_digits,
                codelist=var.codelist,
                origin=var.origin,
                source=var.source,
                predecessor=var.predecessor,
                comment=var.comment,
                value_list=f"VL.{ds.name}.{var.name}" if (ds.name, var.name) in groups else None,
            )
    for (ds_name, var_name), entries in groups.items():
        frame = package.frames[ds_name]
        parent: Variable = package.datasets[ds_name].variable(var_name)
        for n, vl in entries:
            values = _subset(frame, vl.where)[var_name].tolist()
            _item_def(
                mdv,
                f"IT.{ds_name}.{var_name}.{n}",
                var_name,
                vl.label,
                vl.data_type,
                values,
                length=_value_level_length(parent, vl.data_type, values),
                significant_digits=parent.significant_digits if vl.data_type == "float" else None,
                codelist=vl.codelist,
                origin=vl.origin,
                source=vl.source,
                predecessor=parent.predecessor if vl.origin == "Predecessor" else None,
                comment=vl.comment,
                value_list=None,
            )
    codelists, methods, comments = _referenced(package)
    for name in codelists:
        _codelist(mdv, package, package.codelists[name], ct_versions)
    for oid in methods:
        method = package.methods[oid]
        node = _sub(mdv, _odm("MethodDef"), {"OID": method.oid, "Name": method.name, "Type": method.type})
        _description(node, method.description)
    for oid in comments:
        node = _sub(mdv, _def("CommentDef"), {"OID": oid})
        _description(node, package.comments[oid].text)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefineVariable:
    name: str
    label: str
    data_type: str  # Define-XML DataType
    length: int | None
    mandatory: bool
    key_sequence: int | None
    codelist: str | None  # CodeList OID
    display_format: str | None
    value_list: str | None  # ValueListDef OID


@dataclass(frozen=True)
class DefineDataset:
    name: str
    label: str
    href: str | None  # the transport file, relative to define.xml
    purpose: str
    klass: str | None
    structure: str
    variables: tuple[DefineVariable, ...]
    subclass: str | None = None  # def:SubClass of def:Class, e.g. "TIME-TO-EVENT"
    has_no_data: bool = False  # def:HasNoData="Yes": the dataset has no records

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def keys(self) -> tuple[str, ...]:
        keyed = sorted((v.key_sequence, v.name) for v in self.variables if v.key_sequence is not None)
        return tuple(name for _, name in keyed)

    def variable(self, name: str) -> DefineVariable:
        return next(v for v in self.variables if v.name == name)


@dataclass(frozen=True)
class DefineCodelist:
    oid: str
    name: str
    data_type: str
    values: tuple[str, ...]
    nci_code: str | None
    term_codes: Mapping[str, str | None]  # CodedValue -> NCI code (None: no Alias)
    extended: tuple[str, ...]  # values marked def:ExtendedValue="Yes"
    standard_oid: str | None = None  # def:StandardOID (the CT standard of a CDISC codelist)


@dataclass(frozen=True)
class DefineValueLevel:
    dataset: str
    variable: str
    where: tuple[tuple[str, str], ...]  # (variable, value) pairs that must all hold
    data_type: str
    length: int | None
    codelist: str | None  # CodeList OID
    mandatory: bool


@dataclass(frozen=True)
class DefineSummary:
    """What a define.xml lists: datasets with their variables in order, codelists, value-level
    metadata. Codelist references are OIDs into ``codelists``."""

    define_version: str | None
    standards: tuple[tuple[str, str, str], ...]  # (name, type, version)
    datasets: Mapping[str, DefineDataset]
    codelists: Mapping[str, DefineCodelist]
    value_level: tuple[DefineValueLevel, ...]

    def allowed(self, codelist_oid: str | None) -> frozenset[str] | None:
        if codelist_oid is None or codelist_oid not in self.codelists:
            return None
        return frozenset(self.codelists[codelist_oid].values)


def _text(node: etree._Element | None) -> str:
    if node is None:
        return ""
    found = node.find(f"{_O}TranslatedText")
    return (found.text or "") if found is not None else ""


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None


def read_define(path: Path) -> DefineSummary:
    """Parse a define.xml (no DTD, no entities, no network) into a :class:`DefineSummary`.

    Raises ``lxml.etree.XMLSyntaxError`` when the file is not well-formed XML and ValueError
    when it is not an ODM document."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    root = etree.parse(str(path), parser).getroot()
    if root.tag != _odm("ODM"):
        raise ValueError(f"{path}: the root element is {root.tag}, not the ODM 1.3 ODM element")
    mdv = root.find(f"{_O}Study/{_O}MetaDataVersion")
    if mdv is None:
        raise ValueError(f"{path}: no Study/MetaDataVersion")
    items = {el.get("OID"): el for el in mdv.iterfind(f"{_O}ItemDef")}

    def variable(ref: etree._Element) -> DefineVariable | None:
        item = items.get(ref.get("ItemOID"))
        if item is None:
            return None
        cl = item.find(f"{_O}CodeListRef")
        vl = item.find(f"{_D}ValueListRef")
        return DefineVariable(
            name=item.get("Name") or "",
            label=_text(item.find(f"{_O}Description")),
            data_type=item.get("DataType") or "",
            length=_int(item.get("Length")),
            mandatory=ref.get("Mandatory") == "Yes",
            key_sequence=_int(ref.get("KeySequence")),
            codelist=cl.get("CodeListOID") if cl is not None else None,
            display_format=item.get(_def("DisplayFormat")),
            value_list=vl.get("ValueListOID") if vl is not None else None,
        )

    datasets: dict[str, DefineDataset] = {}
    for group in mdv.iterfind(f"{_O}ItemGroupDef"):
        refs = sorted(group.iterfind(f"{_O}ItemRef"), key=lambda r: int(r.get("OrderNumber") or 0))
        variables = tuple(v for v in (variable(r) for r in refs) if v is not None)
        leaf = group.find(f"{_D}leaf")
        klass = group.find(f"{_D}Class")
        subclass = klass.find(f"{_D}SubClass") if klass is not None else None
        name = group.get("Name") or ""
        datasets[name] = DefineDataset(
            name=name,
            label=_text(group.find(f"{_O}Description")),
            href=leaf.get(f"{{{XLINK_NS}}}href") if leaf is not None else None,
            purpose=group.get("Purpose") or "",
            klass=klass.get("Name") if klass is not None else None,
            structure=group.get(_def("Structure")) or "",
            variables=variables,
            subclass=subclass.get("Name") if subclass is not None else None,
            has_no_data=group.get(_def("HasNoData")) == "Yes",
        )
    codelists: dict[str, DefineCodelist] = {}
    for cl in mdv.iterfind(f"{_O}CodeList"):
        terms = [t for t in cl if t.tag in (_odm("CodeListItem"), _odm("EnumeratedItem"))]
        term_codes: dict[str, str | None] = {}
        for t in terms:
            alias = t.find(f"{_O}Alias[@Context='nci:ExtCodeID']")
            term_codes[t.get("CodedValue") or ""] = alias.get("Name") if alias is not None else None
        alias = cl.find(f"{_O}Alias[@Context='nci:ExtCodeID']")
        oid = cl.get("OID") or ""
        codelists[oid] = DefineCodelist(
            oid=oid,
            name=cl.get("Name") or "",
            data_type=cl.get("DataType") or "",
            values=tuple(term_codes),
            nci_code=alias.get("Name") if alias is not None else None,
            term_codes=term_codes,
            extended=tuple(t.get("CodedValue") or "" for t in terms if t.get(_def("ExtendedValue")) == "Yes"),
            standard_oid=cl.get(_def("StandardOID")),
        )
    where_clauses: dict[str, tuple[tuple[str, str], ...]] = {}
    item_names = {oid: el.get("Name") or "" for oid, el in items.items()}
    for wc in mdv.iterfind(f"{_D}WhereClauseDef"):
        pairs = []
        for rc in wc.iterfind(f"{_O}RangeCheck"):
            name = item_names.get(rc.get(_def("ItemOID")), "")
            for cv in rc.iterfind(f"{_O}CheckValue"):
                pairs.append((name, cv.text or ""))
        where_clauses[wc.get("OID") or ""] = tuple(pairs)
    owners = {
        v.value_list: (ds.name, v.name) for ds in datasets.values() for v in ds.variables if v.value_list
    }
    value_level = []
    for vld in mdv.iterfind(f"{_D}ValueListDef"):
        owner = owners.get(vld.get("OID"))
        if owner is None:
            continue
        for ref in vld.iterfind(f"{_O}ItemRef"):
            item = items.get(ref.get("ItemOID"))
            wcr = ref.find(f"{_D}WhereClauseRef")
            if item is None or wcr is None:
                continue
            cl = item.find(f"{_O}CodeListRef")
            value_level.append(
                DefineValueLevel(
                    dataset=owner[0],
                    variable=owner[1],
                    where=where_clauses.get(wcr.get("WhereClauseOID") or "", ()),
                    data_type=item.get("DataType") or "",
                    length=_int(item.get("Length")),
                    codelist=cl.get("CodeListOID") if cl is not None else None,
                    mandatory=ref.get("Mandatory") == "Yes",
                )
            )
    standards = tuple(
        (s.get("Name") or "", s.get("Type") or "", s.get("Version") or "")
        for s in mdv.iterfind(f"{_D}Standards/{_D}Standard")
    )
    return DefineSummary(
        define_version=mdv.get(_def("DefineVersion")),
        standards=standards,
        datasets=datasets,
        codelists=codelists,
        value_level=tuple(value_level),
    )
