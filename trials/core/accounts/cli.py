"""`trials users ...` and `trials sites ...`."""

from typing import Any

import click

from trials.core.cli import acting, as_option, emit, json_option, with_app


@click.group("users")
def users() -> None:
    """Accounts and their roles."""


@users.command("create")
@click.argument("username")
@click.option("--name", "printed_name", required=True, help="Printed name, shown on records and signatures.")
@click.option("--email", default=None)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 12 characters (prompted for when omitted).",
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE[:TRIAL[:SITE]]",
    help="Grant a role, e.g. admin, sponsor:MOOD-CBT, coordinator:MOOD-CBT:LON.",
)
@click.option(
    "--as",
    "as_user",
    metavar="USERNAME",
    default=None,
    help="The admin acting. May be omitted only to create the first admin.",
)
@json_option
@with_app
def create(
    username: str,
    printed_name: str,
    email: str | None,
    password: str,
    roles: tuple[str, ...],
    as_user: str | None,
    as_json: bool,
) -> None:
    """Create an account."""
    from pydantic import ValidationError
    from sqlmodel import select

    from trials.core.accounts import services
    from trials.core.accounts.models import GrantCreate, RoleGrant, UserCreate
    from trials.core.errors import InvalidInput, field_errors

    with acting(as_user) as (session, principal):
        if as_user is None:
            has_admin = session.exec(select(RoleGrant.id).where(RoleGrant.role == "admin")).first()
            if has_admin is not None or roles != ("admin",):
                raise InvalidInput.field(
                    "--as",
                    "required",
                    "--as: name the admin who creates this account "
                    "(only the first admin may be created without it, with --role admin)",
                )
        grants = [_grant(spec) for spec in roles]
        try:
            data = UserCreate(username=username, printed_name=printed_name, email=email, password=password)
        except ValidationError as exc:
            raise InvalidInput("the account is not valid", errors=field_errors(exc)) from None
        services.create_user(data, session=session, by=principal)
        for grant in grants:
            services.grant_role(username, GrantCreate.model_validate(grant), session=session, by=principal)
        out = services.describe_user(username, session=session, by=principal).model_dump(mode="json")
    emit(out, as_json, f"created {out['username']}")


def _grant(spec: str) -> dict[str, Any]:
    from trials.core.accounts.models import Role
    from trials.core.errors import InvalidInput

    role, _, rest = spec.partition(":")
    trial, _, site = rest.partition(":")
    if role not in {r.value for r in Role}:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput.field("--role", "known_role", f"--role: {role!r} is not a role ({known})")
    return {"role": Role(role), "trial_code": trial or None, "site_code": site or None}


@users.command("grant")
@click.argument("username")
@click.argument("role_spec", metavar="ROLE[:TRIAL[:SITE]]")
@as_option
@json_option
@with_app
def grant(username: str, role_spec: str, as_user: str, as_json: bool) -> None:
    """Grant a role to an account."""
    from pydantic import ValidationError

    from trials.core.accounts import services
    from trials.core.accounts.models import GrantCreate
    from trials.core.errors import InvalidInput, field_errors

    with acting(as_user) as (session, principal):
        try:
            data = GrantCreate.model_validate(_grant(role_spec))
        except ValidationError as exc:
            raise InvalidInput("the grant is not valid", errors=field_errors(exc)) from None
        services.grant_role(username, data, session=session, by=principal)
        out = services.describe_user(username, session=session, by=principal).model_dump(mode="json")
    emit(out, as_json, f"granted {role_spec} to {username}")


@users.command("list")
@as_option
@json_option
@with_app
def list_(as_user: str, as_json: bool) -> None:
    """List accounts with their roles."""
    from trials.core.accounts import services

    with acting(as_user) as (session, principal):
        rows = [u.model_dump(mode="json") for u in services.list_users(session=session, by=principal)]

    def text(rows: list[dict[str, Any]]) -> str:
        lines = []
        for u in rows:
            status = "disabled" if not u["is_active"] else "locked" if u["locked"] else "active"
            grants = ", ".join(
                ":".join(x for x in (g["role"], g["trial_code"], g["site_code"]) if x) for g in u["grants"]
            )
            lines.append(f"{u['username']:<20} {status:<9} {u['printed_name']:<28} {grants}")
        return "\n".join(lines) or "no users"

    emit(rows, as_json, text)


@users.command("disable")
@click.argument("username")
@click.option("--reason", required=True)
@as_option
@json_option
@with_app
def disable(username: str, reason: str, as_user: str, as_json: bool) -> None:
    """Disable an account (accounts are never deleted)."""
    from trials.core.accounts import services

    with acting(as_user) as (session, principal):
        services.set_active(username, False, session=session, by=principal, reason=reason)
        out = services.describe_user(username, session=session, by=principal).model_dump(mode="json")
    emit(out, as_json, f"disabled {username}")


@users.command("enable")
@click.argument("username")
@click.option("--reason", required=True)
@as_option
@json_option
@with_app
def enable(username: str, reason: str, as_user: str, as_json: bool) -> None:
    """Enable a disabled account."""
    from trials.core.accounts import services

    with acting(as_user) as (session, principal):
        services.set_active(username, True, session=session, by=principal, reason=reason)
        out = services.describe_user(username, session=session, by=principal).model_dump(mode="json")
    emit(out, as_json, f"enabled {username}")


@users.command("unlock")
@click.argument("username")
@click.option("--reason", required=True)
@as_option
@json_option
@with_app
def unlock(username: str, reason: str, as_user: str, as_json: bool) -> None:
    """Unlock an account locked by failed sign-ins."""
    from trials.core.accounts import services

    with acting(as_user) as (session, principal):
        services.unlock(username, session=session, by=principal, reason=reason)
        out = services.describe_user(username, session=session, by=principal).model_dump(mode="json")
    emit(out, as_json, f"unlocked {username}")


@click.group("sites")
def sites() -> None:
    """Clinical sites."""


@sites.command("create")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. GB.")
@as_option
@json_option
@with_app
def create_site(code: str, name: str, country: str, as_user: str, as_json: bool) -> None:
    """Create a site."""
    from pydantic import ValidationError

    from trials.core.accounts import services
    from trials.core.accounts.models import SiteCreate, SiteRead
    from trials.core.errors import InvalidInput, field_errors

    with acting(as_user) as (session, principal):
        try:
            data = SiteCreate(code=code, name=name, country=country)
        except ValidationError as exc:
            raise InvalidInput("the site is not valid", errors=field_errors(exc)) from None
        site = services.create_site(data, session=session, by=principal)
        out = SiteRead.model_validate(site, from_attributes=True).model_dump(mode="json")
    emit(out, as_json, f"created site {out['code']}")


@sites.command("list")
@json_option
@with_app
def list_sites(as_json: bool) -> None:
    """List sites."""
    from trials.core.accounts import services
    from trials.core.accounts.models import SiteRead

    with acting(None) as (session, _principal):
        rows = [
            SiteRead.model_validate(s, from_attributes=True).model_dump(mode="json")
            for s in services.list_sites(session=session)
        ]
    emit(
        rows,
        as_json,
        lambda rows: "\n".join(f"{s['code']:<8} {s['country']}  {s['name']}" for s in rows) or "no sites",
    )
