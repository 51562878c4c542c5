"""`trials go-live`, `trials randomize`, `trials allocation export` and `trials participants list`."""

from pathlib import Path
from typing import Any

import click

from trials.core.cli import acting, as_option, emit, json_option, with_app
from trials.participants.cli import participant_line


@click.command("list")
@click.argument("code")
@as_option
@json_option
@with_app
def list_participants(code: str, as_user: str, as_json: bool) -> None:
    """Participants of trial CODE (site staff: their site's), with their randomization."""
    from trials.participants import services as participants
    from trials.randomization import reads

    with acting(as_user) as (session, principal):
        rows = participants.list_participants(code, session=session, by=principal)
        out = [
            r.model_dump(mode="json") for r in reads.participant_reads(rows, session=session, by=principal)
        ]
    emit(out, as_json, lambda data: "\n".join(participant_line(d) for d in data) or "no participants")


@click.command("randomize")
@click.argument("code")
@click.argument("label")
@as_option
@json_option
@with_app
def randomize(code: str, label: str, as_user: str, as_json: bool) -> None:
    """Randomize enrolled participant LABEL of trial CODE: the next slot of their stratum.

    The arm is shown only to roles the protocol does not blind.
    """
    from trials.participants import services as participants
    from trials.randomization import reads, services

    with acting(as_user) as (session, principal):
        services.randomize(code, label, session=session, by=principal)
        participant = participants.get_participant(code, label, session=session, by=principal)
        out = reads.participant_read(participant, session=session, by=principal).model_dump(mode="json")
    emit(out, as_json, lambda d: "randomized " + participant_line(d))


@click.command("go-live")
@click.argument("code")
@click.option(
    "--slots-per-stratum",
    type=click.IntRange(1, 100_000),
    default=300,
    show_default=True,
    help="Length of each stratum's allocation sequence.",
)
@as_option
@json_option
@with_app
def go_live(code: str, slots_per_stratum: int, as_user: str, as_json: bool) -> None:
    """Generate trial CODE's allocation list from its locked protocol: the trial goes live.

    The seed comes from the operating system's cryptographic source; only its SHA-256 is kept.
    """
    from trials.randomization import reads, services

    with acting(as_user) as (session, principal):
        allocation = services.go_live(
            code, session=session, by=principal, slots_per_stratum=slots_per_stratum
        )
        out = reads.allocation_summary(allocation, session=session).model_dump(mode="json")

    def text(d: dict[str, Any]) -> str:
        return "\n".join(
            [
                f"{d['trial_code']} is live: {len(d['strata'])} strata x {d['slots_per_stratum']} slots",
                f"  seed sha256 {d['seed_sha256']}",
                f"  list sha256 {d['list_sha256']}",
            ]
        )

    emit(out, as_json, text)


@click.group("allocation")
def allocation() -> None:
    """The allocation list (unblinded roles only)."""


@allocation.command("export")
@click.argument("code")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="CSV file to write.",
)
@as_option
@json_option
@with_app
def export(code: str, out_file: Path, as_user: str, as_json: bool) -> None:
    """Write trial CODE's allocation list, with arms and participants, to a CSV file (audited)."""
    from trials.randomization import reads, services

    with acting(as_user) as (session, principal):
        allocation_list, slots = services.allocation_list(code, session=session, by=principal)
        listing = reads.allocation_list_read(allocation_list, slots, session=session)
    with out_file.open("w", encoding="utf-8", newline="") as handle:
        handle.write(reads.allocation_csv(listing))
    out = {"file": str(out_file), "rows": len(listing.rows), "list_sha256": listing.list_sha256}
    emit(
        out, as_json, f"wrote {out['rows']} slots of {code} to {out_file} (list sha256 {listing.list_sha256})"
    )
