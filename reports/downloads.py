"""A stored report's file as an HTTP download, the same for the web pages and the API: an
attachment with its SHA-256 in a header, never cached."""

from flask import Response


def attachment(data: bytes, sha256: str, name: str, mimetype: str) -> Response:
    return Response(
        data,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": sha256,
            "Cache-Control": "no-store",
        },
    )
