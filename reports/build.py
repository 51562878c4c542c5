"""The evidence report in three steps: context, HTML, PDF.

`build_context` reads the trial (one query per table), runs its locked analysis plan and turns
everything into plain values (`ReportContext`, stored as JSON beside the PDF); `render_html`
fills the Jinja templates with it; `html_to_pdf` lays the HTML out with WeasyPrint as PDF/A-2b.
A signed copy is rendered again later from the stored context, with its signatures.

Nothing heavy is imported with this module: the statistics stack, matplotlib and WeasyPrint
load inside the functions that use them.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from sqlmodel import Session

    from trials.core.accounts.permissions import Principal

Variant = Literal["blinded", "final"]
Progress = Callable[[str, float], None]  # (step label, fraction 0..1)

VARIANTS: tuple[str, ...] = get_args(Variant)
MEANINGS = ("review", "approval", "authorship")
CONTEXT_SCHEMA = "trials.report-context"
CONTEXT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SignatureLine:
    """One electronic signature, as printed on the signature page."""

    printed_name: str
    username: str
    role: str
    meaning: str  # review | approval | authorship
    signed_at: str  # ISO 8601 UTC
    content_sha256: str  # the hash of the (unsigned) PDF the signature binds

    def __post_init__(self) -> None:
        if self.meaning not in MEANINGS:
            raise ValueError(f"a signature's meaning is one of {', '.join(MEANINGS)}, not {self.meaning!r}")


@dataclass(frozen=True)
class ReportContext:
    """Everything a report prints, as plain values (text, numbers, lists, mappings, SVG text).

    `results_json` is the canonical analysis-results JSON the numbers come from; `provenance`
    names the protocol, plan, locks, data snapshot and software; `sections` holds what the
    templates need, already formatted.
    """

    variant: Variant
    trial_code: str
    title: str
    generated_at: str
    results_json: str
    provenance: Mapping[str, Any]
    sections: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"a report's variant is one of {', '.join(VARIANTS)}, not {self.variant!r}")

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, UTF-8 text); `from_json` reads it back exactly."""
        return json.dumps(
            {"schema": CONTEXT_SCHEMA, "schema_version": CONTEXT_SCHEMA_VERSION, **asdict(self)},
            sort_keys=True,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> "ReportContext":
        data = json.loads(text)
        if data.pop("schema", None) != CONTEXT_SCHEMA or data.pop("schema_version", None) != (
            CONTEXT_SCHEMA_VERSION
        ):
            raise ValueError("not a report context of this version")
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            raise ValueError(f"a report context has exactly the fields {', '.join(sorted(names))}")
        return cls(**data)


def build_context(
    code: str,
    *,
    session: "Session",
    by: "Principal",
    variant: Variant,
    generated_at: datetime | None = None,
    progress: Progress | None = None,
) -> ReportContext:
    """The report context of trial CODE.

    Needs the permission to view results. The final (unblinded) report needs the locked
    analysis plan, the locked database and the trial's unblinding; the blinded progress report
    can be made at any time and shows pooled data only."""
    from reports.context import make_context
    from reports.gather import gather

    if variant not in VARIANTS:
        raise ValueError(f"a report's variant is one of {', '.join(VARIANTS)}, not {variant!r}")
    gathered = gather(
        code, session=session, by=by, variant=variant, generated_at=generated_at, progress=progress
    )
    if progress:
        progress("building the report context", 0.85)
    context = make_context(gathered)
    if progress:
        progress("report context ready", 1.0)
    return context


def render_html(context: ReportContext, *, signatures: Sequence[SignatureLine] = ()) -> str:
    """The report as HTML (templates under reports/templates, print CSS under reports/static)."""
    from reports.render import render_html as render

    return render(context, signatures=signatures)


def html_to_pdf(html: str, *, progress: Progress | None = None) -> bytes:
    """PDF/A-2b of the report's HTML: packaged assets only, bookmarks from h1 and h2."""
    from reports.render import html_to_pdf as to_pdf

    return to_pdf(html, progress=progress)


def render_pdf(
    context: ReportContext, *, signatures: Sequence[SignatureLine] = (), progress: Progress | None = None
) -> bytes:
    """`render_html` then `html_to_pdf`."""
    if progress:
        progress("writing the report's HTML", 0.0)
    html = render_html(context, signatures=signatures)
    return html_to_pdf(html, progress=progress)


__all__ = [
    "Progress",
    "ReportContext",
    "SignatureLine",
    "Variant",
    "build_context",
    "html_to_pdf",
    "render_html",
    "render_pdf",
]
