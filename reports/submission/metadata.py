"""What a submission package is: its frames and the metadata that Define-XML describes and the
conformance check checks.

A :class:`Package` is one standard's folder (``sdtm/`` or ``adam/``): one frame per dataset,
column order as in the dataset's :class:`Dataset` metadata, plus the codelists, methods,
comments and value-level metadata that the datasets refer to. Builders (`sdtm`, `adam`) make
packages from the trial's records; `xpt` writes them; `define` describes them; `check`
checks written folders. Nothing here touches the database.

Frame conventions (what a builder puts in a column, by the variable's ``data_type``):

- ``"text"``: ``str`` or ``None`` (never NaN); ASCII only, at most 200 bytes;
- ``"integer"``: a pandas ``Int64`` column (missing is ``pd.NA``);
- ``"float"``: a ``float64`` column (missing is NaN);
- ``"date"`` (SDTM ``--DTC``): ISO 8601 text ``YYYY-MM-DD`` (``str`` or ``None``);
- ``"sasdate"`` (ADaM numeric dates such as ``ADT``): ``datetime.date`` or ``None``; written
  as a SAS date (days since 1960-01-01) with the ``DATE9.`` format; Define-XML data type
  ``integer`` with that display format.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from reports.submission.terminology import Codelist, Term

if TYPE_CHECKING:
    import pandas as pd

DataType = Literal["text", "integer", "float", "date", "sasdate"]
Origin = Literal["Collected", "Derived", "Assigned", "Protocol", "Predecessor", "Not Available"]
# Define-XML 2.1 Origin/@Source for collected data.
OriginSource = Literal["Subject", "Investigator", "Vendor", "Sponsor"]
Core = Literal["Req", "Exp", "Perm", "Cond"]

TRANSPORT_NAME_MAX = 8
TRANSPORT_LABEL_MAX = 40
TRANSPORT_TEXT_MAX = 200


def usubjid(study_id: str, label: str) -> str:
    """USUBJID of a participant in every dataset: STUDYID, a hyphen, the participant label."""
    return f"{study_id}-{label}"


def sponsor_codelist(name: str, label: str, values: Iterable[str | tuple[str, str | None]]) -> Codelist:
    """A sponsor-defined codelist (no NCI code, closed) of `values` (a value, or a value and
    its decode), in the order given, each once."""
    terms: dict[str, Term] = {}
    for value in values:
        code, decode = (value, None) if isinstance(value, str) else value
        terms.setdefault(code, Term(code, None, decode))
    return Codelist(name, f"{label} (sponsor-defined)", None, tuple(terms.values()), False)


@dataclass(frozen=True)
class Method:
    """A derivation, listed in Define-XML and referred to by variables (``method``)."""

    oid: str  # e.g. "MT.PHQ9TOT"
    name: str
    type: Literal["Computation", "Imputation"]
    description: str


@dataclass(frozen=True)
class Comment:
    """A Define-XML comment, referred to by datasets and variables (``comment``)."""

    oid: str  # e.g. "COM.DM.SEX"
    text: str


@dataclass(frozen=True)
class Variable:
    """One column of a dataset.

    ``codelist`` names a codelist of the package (its ``Codelist.name``). ``method`` and
    ``comment`` are the OIDs of a :class:`Method` / :class:`Comment` of the package.
    ``predecessor`` (origin "Predecessor") names the source, e.g. ``"ADSL.AGE"`` or
    ``"QS.QSDTC"``. Value-level metadata of a variable is in the package's ``value_level``.
    """

    name: str
    label: str
    data_type: DataType
    origin: Origin
    core: Core
    role: str | None = None  # SDTM variable role: Identifier, Topic, Timing, ...
    source: OriginSource | None = None
    predecessor: str | None = None
    codelist: str | None = None
    method: str | None = None
    comment: str | None = None
    significant_digits: int | None = None  # float only
    # ADaM "Req" means the variable is present, not that every record has a value (ADSL RACE
    # when race is not collected, ACTARM of a subject never treated).
    may_be_empty: bool = False

    @property
    def mandatory(self) -> bool:
        """Define-XML ItemRef/@Mandatory: Yes when every record has a value."""
        return self.core == "Req" and not self.may_be_empty


@dataclass(frozen=True)
class Dataset:
    """One dataset (one transport file)."""

    name: str  # e.g. "DM"; the file is name.lower() + ".xpt"
    label: str
    klass: str  # Define-XML 2.1 Class, e.g. "SPECIAL PURPOSE", "FINDINGS", "BASIC DATA STRUCTURE"
    structure: str  # e.g. "One record per subject"
    keys: tuple[str, ...]
    variables: tuple[Variable, ...]
    comment: str | None = None
    repeating: bool = True
    reference_data: bool = False  # TS and other trial design datasets
    subclass: str | None = None  # Define-XML 2.1 def:SubClass, e.g. "TIME-TO-EVENT" (ADaM BDS)

    def variable(self, name: str) -> Variable:
        return next(v for v in self.variables if v.name == name)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]


@dataclass(frozen=True)
class ValueLevel:
    """Value-level metadata: the attributes of `variable` of `dataset` where every
    (variable, value) of `where` holds, e.g. QS.QSSTRESN where QSTESTCD = "PHQ0101"."""

    dataset: str
    variable: str
    where: tuple[tuple[str, str], ...]
    label: str
    data_type: DataType
    origin: Origin
    source: OriginSource | None = None
    codelist: str | None = None
    method: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Package:
    """One standard's datasets and their metadata.

    ``standard`` and ``version`` are e.g. ("SDTMIG", "3.4") or ("ADaMIG", "1.3"); ``folder``
    is ``"sdtm"`` or ``"adam"``. ``frames`` has one frame per dataset of ``datasets``, same
    keys, columns exactly the dataset's variables in order.
    """

    folder: str
    standard: str
    version: str
    study_id: str
    study_name: str
    study_description: str
    protocol_name: str
    datasets: Mapping[str, Dataset]
    frames: Mapping[str, "pd.DataFrame"]
    codelists: Mapping[str, Codelist] = field(default_factory=dict)
    methods: Mapping[str, Method] = field(default_factory=dict)
    comments: Mapping[str, Comment] = field(default_factory=dict)
    value_level: tuple[ValueLevel, ...] = ()
    # Controlled terminology the package's codelists come from: publishing set -> version
    # (e.g. {"SDTM": "2021-06-25"}), declared as standards in Define-XML.
    ct_versions: Mapping[str, str] = field(default_factory=dict)
