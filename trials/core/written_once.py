"""Records written once: the ORM refuses to change or delete them (database triggers refuse it
underneath, in the migrations)."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

from trials.core.errors import Conflict


def refuse_changes(*classes: type, changed: str, deleted: str) -> None:
    """Refuse, at flush, any change (`changed`) or deletion (`deleted`) of instances of `classes`.

    Registered first (insert=True): a refused change never reaches the audit mechanism's listener.
    """

    @event.listens_for(OrmSession, "before_flush", insert=True)
    def _written_once(session: OrmSession, _context: Any, _instances: Any) -> None:
        for obj in session.deleted:
            if isinstance(obj, classes):
                raise Conflict(deleted)
        for obj in session.dirty:
            if isinstance(obj, classes) and session.is_modified(obj, include_collections=False):
                raise Conflict(changed)
