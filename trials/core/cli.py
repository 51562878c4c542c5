"""Shared pieces of the `trials` command line: `--json`, `--as`, and the one commit per command.

Kept free of heavy imports: `trials --help` must answer quickly.
"""

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sqlmodel import Session

    from trials.core.accounts.permissions import Principal


class AppLoader:
    """Builds the Flask app on first use (not for `--help`), and closes its connections."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.app: Any = None

    def load(self) -> Any:
        if self.app is None:
            from trials.core.config import ConfigurationError

            try:
                self.app = self.factory()
            except ConfigurationError as exc:
                raise click.ClickException(f"configuration: {exc}") from None
        return self.app

    def close(self) -> None:
        if self.app is not None:
            self.app.extensions["trials_db"].engine.dispose()


def with_app(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command inside the application context of the app the `trials` group builds."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        loader = click.get_current_context().find_object(AppLoader)
        if loader is None:
            raise click.UsageError("run this command through the `trials` command line")
        with loader.load().app_context():
            return command(*args, **kwargs)

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
as_option = click.option(
    "--as",
    "as_user",
    metavar="USERNAME",
    required=True,
    help="Act as this account: its role applies and it is recorded in the audit trail.",
)


def emit(data: Any, as_json: bool, text: Callable[[Any], str] | str | None = None) -> None:
    """Print `data` as JSON, or as text for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))
    elif callable(text):
        click.echo(text(data))
    elif text is not None:
        click.echo(text)


@contextmanager
def percent_bar(label: str) -> Iterator[Callable[[str, float], None]]:
    """A progress bar on stderr fed by a service's `progress(step, fraction)` callback."""
    with click.progressbar(length=100, label=label, file=sys.stderr) as bar:
        done = [0]

        def progress(_step: str, fraction: float) -> None:
            step = int(fraction * 100)
            if step > done[0]:
                bar.update(step - done[0])
                done[0] = step

        yield progress


def fail(message: str, code: int = 1) -> None:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(code)


@contextmanager
def acting(as_user: str | None) -> Iterator[tuple["Session", "Principal"]]:
    """A session acting as `as_user` (or the system, when None) on the `cli` channel.

    Commits once when the block succeeds; rolls back (unless the error put itself on record)
    and reports a domain error as a clean message and exit status 1.
    """
    from trials.core.accounts import services
    from trials.core.audit import services as audit
    from trials.core.db import db
    from trials.core.errors import DomainError

    try:
        with db.transaction() as session:
            if as_user is None:
                principal = services.SYSTEM
            else:
                user = services.get_user(as_user, session=session)
                if not user.is_active or user.locked_at is not None:
                    fail(f"the account {user.username!r} is disabled or locked")
                principal = services.load_principal(user, session=session)
            audit.set_actor(session, services.actor_for(principal, "cli"))
            yield session, principal
    except DomainError as exc:
        details = "".join(f"\n  {e.message}" for e in exc.errors)
        fail(f"{exc.detail}{details}")
