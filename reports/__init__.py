"""The evidence report: context, HTML and PDF (see `reports.build`)."""

from reports.build import (
    Progress,
    ReportContext,
    SignatureLine,
    Variant,
    build_context,
    html_to_pdf,
    render_html,
    render_pdf,
)

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
