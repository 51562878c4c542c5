import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

import protocols.document as document_module
from protocols.document import (
    RULES,
    FieldChange,
    ProtocolDocument,
    ProtocolValidationError,
    canonical_json,
    content_hash,
    diff_documents,
    example_protocol_path,
    load_example_protocol,
    parse_protocol,
    protocol_json_schema,
)
from tests.protocols.invalid_cases import (
    EXAMPLE_TEXT,
    INVALID_CASES,
    Data,
    InvalidCase,
    case_text,
    dump,
    example_data,
    mutated,
)

# SHA-256 of canonical_json() of protocols/examples/mood-cbt.yaml. Pinned so that an accidental
# change to the canonical form (or to the example) is noticed: the hash of a locked SAP must
# never drift. Changing the example (or the schema's defaults) requires updating this value,
# and changing the canonical form requires a new schema_version.
EXAMPLE_HASH = "8d6cb1a004bca304ec5e4278a5addea0c8ffc2b3cdf83a05f86f198c32f07673"

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol-format.md"


def parse_data(data: Data) -> ProtocolDocument:
    return parse_protocol(dump(data))


# --- the example ----------------------------------------------------------------------------


def test_example_validates() -> None:
    doc = load_example_protocol()
    assert doc.trial.code == "MOOD-CBT-01"
    assert [a.code for a in doc.arms] == ["CBT", "ATTN", "WAIT"]
    assert [a.allocation_ratio for a in doc.arms] == [1, 1, 1]
    assert len(doc.sites) >= 3
    assert doc.randomization.strata == ["site", "baseline_severity"]
    assert [v.day for v in doc.visits] == [0, 14, 28, 42, 56, 84]
    assert all(v.instruments == ["PHQ-9", "GAD-7"] for v in doc.visits)
    assert doc.primary_endpoint.code == "PHQ9_CHG_W8"
    assert doc.baseline_visit.code == "BL"
    primary = doc.estimand(doc.sap.primary_analysis.estimand)
    assert {s.strategy for s in primary.intercurrent_events} == {"treatment_policy"}
    assert {s.event for s in primary.intercurrent_events} == {e.code for e in doc.intercurrent_events}
    assert doc.sap.testing_hierarchy.procedure == "fixed_sequence"
    # omitted sections carry the DOMAIN.md defaults
    assert doc.sap.prorating.rules["PHQ-9"].min_items_answered == 7
    assert doc.sap.prorating.rules["PHQ-9"].required_items == [9]
    assert doc.sap.prorating.rules["GAD-7"].min_items_answered == 6
    assert doc.safety.item9_followup_hours == 24
    assert doc.safety.deterioration_threshold == 6


def test_example_path_is_package_data() -> None:
    path = example_protocol_path()
    assert path.is_file()
    assert path.parent.name == "examples"
    assert path.parent.parent.name == "protocols"


def test_document_is_frozen() -> None:
    doc = load_example_protocol()
    with pytest.raises(ValidationError):
        doc.sap.alpha = 0.1  # type: ignore[misc]


# --- hash -----------------------------------------------------------------------------------


def test_example_hash_is_pinned() -> None:
    assert content_hash(load_example_protocol()) == EXAMPLE_HASH


def test_hash_identical_across_parses() -> None:
    first = parse_protocol(EXAMPLE_TEXT)
    second = parse_protocol(EXAMPLE_TEXT.encode("utf-8"))
    assert canonical_json(first) == canonical_json(second)
    assert content_hash(first) == content_hash(second) == EXAMPLE_HASH


def _reverse_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


def test_hash_ignores_key_order_and_formatting() -> None:
    data = example_data()
    reordered = yaml.safe_dump(_reverse_keys(data), sort_keys=False, default_flow_style=True)
    assert content_hash(parse_protocol(reordered)) == EXAMPLE_HASH
    compact = json.dumps(data, separators=(",", ":"))
    assert content_hash(parse_protocol(compact)) == EXAMPLE_HASH
    indented = json.dumps(data, indent=4, sort_keys=True)
    assert content_hash(parse_protocol(indented, format="json")) == EXAMPLE_HASH


def test_hash_same_with_defaults_written_or_omitted() -> None:
    data = example_data()
    # write out every default the example omits ...
    data["sap"]["prorating"] = {
        "enabled": True,
        "rounding": "half_up",
        "rules": {
            "PHQ-9": {"min_items_answered": 7, "required_items": [9]},
            "GAD-7": {"min_items_answered": 6, "required_items": []},
        },
    }
    data["safety"] = {"item9_followup_hours": 24, "deterioration_threshold": 6}
    # ... and omit defaults the example writes out
    del data["randomization"]["method"]
    del data["randomization"]["severity_instrument"]
    del data["sap"]["alpha"]
    del data["sap"]["sidedness"]
    del data["sap"]["visit_windowing"]
    del data["sap"]["definitions"]
    del data["sap"]["primary_analysis"]["model"]
    del data["sap"]["missing_data"]["without_prorating"]
    del data["design"]["allocation"]
    del data["design"]["hypothesis"]
    assert content_hash(parse_data(data)) == EXAMPLE_HASH


def test_hash_same_for_integer_written_as_float() -> None:
    data = example_data()
    data["sap"]["definitions"]["mcid"] = {"PHQ-9": 5.0, "GAD-7": 4.0}
    data["sap"]["missing_data"]["tipping_point"]["deltas"] = [0, 1, 2, 3, 4, 5]
    assert content_hash(parse_data(data)) == EXAMPLE_HASH


def test_hash_ignores_order_of_code_keyed_lists() -> None:
    data = example_data()
    data["arms"].reverse()
    data["sites"].reverse()
    data["estimands"][0]["intercurrent_events"].reverse()
    assert content_hash(parse_data(data)) == EXAMPLE_HASH


SINGLE_FIELD_CHANGES: list[tuple[str, Callable[[Data], None]]] = [
    ("title", lambda d: d["trial"].update(title=d["trial"]["title"] + ".")),
    ("app_version", lambda d: d["arms"][0].update(app_version="3.2.1")),
    ("visit_window", lambda d: d["visits"][4].update(window_after=6)),
    ("alpha", lambda d: d["sap"].update(alpha=0.025)),
    ("mi_seed", lambda d: d["sap"]["missing_data"]["multiple_imputation"].update(seed=1)),
    (
        "hierarchy_order",
        lambda d: d["sap"]["testing_hierarchy"]["endpoints"].insert(
            1, d["sap"]["testing_hierarchy"]["endpoints"].pop(2)
        ),
    ),
    (
        "strategy",
        lambda d: d["estimands"][0]["intercurrent_events"][3].update(strategy="composite"),
    ),
    ("safety_default", lambda d: d.update(safety={"item9_followup_hours": 12})),
    ("prorating_default", lambda d: d["sap"].update(prorating={"enabled": False})),
    ("exclusion_added", lambda d: d["eligibility"]["exclusion"].append("Pregnancy.")),
]


@pytest.mark.parametrize(
    "mutation", [m for _, m in SINGLE_FIELD_CHANGES], ids=[i for i, _ in SINGLE_FIELD_CHANGES]
)
def test_hash_changes_when_one_field_changes(mutation: Callable[[Data], None]) -> None:
    doc = parse_protocol(mutated(mutation))
    assert content_hash(doc) != EXAMPLE_HASH
    assert diff_documents(load_example_protocol(), doc) != []


def test_canonical_json_is_compact_sorted_utf8() -> None:
    data = example_data()
    data["sponsor"]["name"] = "Nordbrücke Digital GmbH"
    raw = canonical_json(parse_data(data))
    assert "Nordbrücke".encode() in raw
    text = raw.decode("utf-8")
    reparsed = json.loads(text)
    # a fixed point of sorted, compact, non-ASCII-escaping JSON
    assert raw == json.dumps(reparsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
    assert text.startswith('{"arms":[{"allocation_ratio":1,')
    assert reparsed["sap"]["alpha"] == 0.05
    assert '"alpha":0.05' in text
    assert '"mcid":{"GAD-7":4.0,"PHQ-9":5.0}' in text


# --- invalid documents ----------------------------------------------------------------------


def test_invalid_cases_cover_enough_rules() -> None:
    assert len(INVALID_CASES) >= 22
    assert len({case.case_id for case in INVALID_CASES}) == len(INVALID_CASES)


@pytest.mark.parametrize("case", INVALID_CASES, ids=[case.case_id for case in INVALID_CASES])
def test_invalid_document(case: InvalidCase) -> None:
    with pytest.raises(ProtocolValidationError) as excinfo:
        parse_protocol(case_text(case))
    errors = excinfo.value.errors
    assert [(e.field, e.rule) for e in errors] == [(case.expected_path, case.expected_rule)]
    message = errors[0].message
    assert message.startswith(f"{case.expected_path or 'document'}: ")
    if case.expected_rule == "syntax":
        assert re.search(r"line \d+", message)


def test_several_field_errors_are_reported_together() -> None:
    data = example_data()
    data["arms"][1]["allocation_ratio"] = 0
    data["sap"]["alpha"] = 2.0
    with pytest.raises(ProtocolValidationError) as excinfo:
        parse_data(data)
    assert [(e.field, e.rule) for e in excinfo.value.errors] == [
        ("arms[1].allocation_ratio", "greater_than"),
        ("sap.alpha", "less_than"),
    ]


def test_pydantic_loc_is_precise_for_cross_field_rules() -> None:
    data = example_data()
    data["sap"]["testing_hierarchy"]["endpoints"].insert(2, "NOPE")
    with pytest.raises(ValidationError) as excinfo:
        ProtocolDocument.model_validate(data)
    [error] = excinfo.value.errors()
    assert error["loc"] == ("sap", "testing_hierarchy", "endpoints", 2)
    assert error["type"] == "unknown_endpoint"


@pytest.mark.parametrize(
    ("path", "value", "rule"),
    [
        ("allocation_ratio", True, "int_type"),
        ("allocation_ratio", 1.0, "int_type"),
        ("name", 42, "string_type"),
        ("app_version", 3.2, "string_type"),
    ],
)
def test_no_silent_coercion(path: str, value: object, rule: str) -> None:
    data = example_data()
    data["arms"][0][path] = value
    with pytest.raises(ProtocolValidationError) as excinfo:
        parse_data(data)
    assert [(e.field, e.rule) for e in excinfo.value.errors] == [(f"arms[0].{path}", rule)]


def test_yaml_booleans_follow_yaml_1_2() -> None:
    text = EXAMPLE_TEXT.replace("    country: GB\n", "    country: NO\n", 1)
    assert parse_protocol(text).sites[0].country == "NO"


def test_bytes_with_bom_and_invalid_utf8() -> None:
    assert content_hash(parse_protocol(b"\xef\xbb\xbf" + EXAMPLE_TEXT.encode())) == EXAMPLE_HASH
    with pytest.raises(ProtocolValidationError) as excinfo:
        parse_protocol(b"schema_version: 1\ntitle: \xff\n")
    assert [(e.field, e.rule) for e in excinfo.value.errors] == [("", "encoding")]


def test_json_duplicate_key_and_nan_are_rejected() -> None:
    for text, rule in [('{"a": 1, "a": 2}', "duplicate_key"), ('{"a": NaN}', "syntax")]:
        with pytest.raises(ProtocolValidationError) as excinfo:
            parse_protocol(text)
        assert [(e.field, e.rule) for e in excinfo.value.errors] == [("", rule)]


# --- diff -----------------------------------------------------------------------------------


def test_diff_of_identical_documents_is_empty() -> None:
    assert diff_documents(load_example_protocol(), parse_protocol(EXAMPLE_TEXT)) == []


def test_diff_one_arm_name() -> None:
    old = load_example_protocol()
    new = parse_protocol(mutated(lambda d: d["arms"][1].update(name="Mood diary app")))
    assert diff_documents(old, new) == [
        FieldChange("arms[ATTN].name", "Attention-control app", "Mood diary app", "changed")
    ]


def test_diff_reordered_arms_is_empty() -> None:
    new = parse_protocol(mutated(lambda d: d["arms"].reverse()))
    assert diff_documents(load_example_protocol(), new) == []


def test_diff_added_site() -> None:
    site = {"code": "OXF", "name": "Oxford Digital Mental Health Clinic", "country": "GB"}
    new = parse_protocol(mutated(lambda d: d["sites"].append(site)))
    assert diff_documents(load_example_protocol(), new) == [FieldChange("sites[OXF]", None, site, "added")]
    assert diff_documents(new, load_example_protocol()) == [FieldChange("sites[OXF]", site, None, "removed")]


def test_diff_positional_list_and_default() -> None:
    new = parse_protocol(mutated(lambda d: d.update(safety={"item9_followup_hours": 12})))
    assert diff_documents(load_example_protocol(), new) == [
        FieldChange("safety.item9_followup_hours", 24, 12, "changed")
    ]
    new = parse_protocol(mutated(lambda d: d["randomization"]["block_sizes"].append(9)))
    assert diff_documents(load_example_protocol(), new) == [
        FieldChange("randomization.block_sizes[2]", None, 9, "added")
    ]


# --- schema and documentation ---------------------------------------------------------------


def test_json_schema() -> None:
    schema = protocol_json_schema()
    json.dumps(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(ProtocolDocument.model_fields)
    assert set(schema["required"]) >= {"schema_version", "trial", "arms", "visits", "sap"}
    version = schema["properties"]["schema_version"]
    assert (version["type"], version["const"]) == ("integer", 1)


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    seen.add(model)
    for field in model.model_fields.values():
        for candidate in re.findall(r"\b[A-Z]\w+\b", repr(field.annotation)):
            nested = getattr(document_module, candidate, None)
            if isinstance(nested, type) and issubclass(nested, BaseModel) and nested not in seen:
                _models(nested, seen)
    return seen


def test_docs_mention_every_field_and_rule() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    models = _models(ProtocolDocument, set())
    assert len(models) > 25
    missing_fields = sorted(
        f"{model.__name__}.{name}"
        for model in models
        for name in model.model_fields
        if f"`{name}`" not in docs
    )
    assert missing_fields == []
    missing_rules = sorted(rule for rule in RULES if f"`{rule}`" not in docs)
    assert missing_rules == []
    assert EXAMPLE_HASH in docs
    assert f"```yaml\n{EXAMPLE_TEXT}```" in docs  # the annotated example, verbatim
