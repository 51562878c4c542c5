"""Alembic environment. Imports every models module so that autogenerate sees every table."""

import os
from logging import getLogger
from typing import Any, Literal

from alembic import context

import protocols.models  # noqa: F401
import reports.models  # noqa: F401
import trials.analyses.models  # noqa: F401
import trials.assessments.models  # noqa: F401
import trials.core.accounts.models  # noqa: F401
import trials.core.audit.models  # noqa: F401
import trials.core.signatures.models  # noqa: F401
import trials.dblock.models  # noqa: F401
import trials.engagement.models  # noqa: F401
import trials.epro.models  # noqa: F401
import trials.events.models  # noqa: F401
import trials.imports.models  # noqa: F401
import trials.participants.models  # noqa: F401
import trials.randomization.models  # noqa: F401
import trials.safety.models  # noqa: F401
from trials.core.db import UTCDateTime, make_engine, metadata

log = getLogger("alembic.env")
config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    url = os.environ.get("TRIALS_DATABASE_URL")
    if url:
        return url
    raise RuntimeError("set TRIALS_DATABASE_URL, or run migrations with `trials db upgrade`")


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our UTC timestamp type as the column type it stores, so revisions import no app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
