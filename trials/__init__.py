"""trials: an evidence platform for digital-therapy clinical trials.

`create_app` is resolved lazily so that importing the package (the `trials` console script,
`flask --app trials`) does not pay for the web and database stack until an app is built.
"""

from typing import Any


def create_app(test_config: dict[str, Any] | None = None) -> Any:
    """Build the Flask application (see `trials.app.create_app`)."""
    from trials.app import create_app as _create_app

    return _create_app(test_config)
