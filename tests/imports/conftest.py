"""The live trial of the assessment tests, and helpers to build and upload CSV files."""

import csv
import io
from collections.abc import Sequence
from typing import Any

from tests.assessments.conftest import BASE, h, make_participant, people

__all__ = ["h", "make_participant", "people"]

ASSESSMENT_HEADER = ("participant", "instrument", "assessed_on", *(f"item_{n}" for n in range(1, 11)))
ENGAGEMENT_HEADER = ("participant", "day", "sessions", "minutes", "modules_completed")


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue().encode("utf-8")


def phq9_row(label: str, assessed_on: str, *items: Any, instrument: str = "PHQ-9") -> list[Any]:
    """A row of an assessments file: items 1.. as given, the rest empty."""
    values = list(items) + [None] * (10 - len(items))
    return [label, instrument, assessed_on, *values]


def post_csv(client: Any, kind: str, content: bytes, headers: dict[str, str], **params: str) -> Any:
    return client.post(
        f"{BASE}/imports/{kind}",
        data=content,
        headers={**headers, "Content-Type": "text/csv"},
        query_string=params,
    )
