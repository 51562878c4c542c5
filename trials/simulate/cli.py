"""`trials simulate CODE --participants N --seed S`."""

import sys

import click

from trials.core.cli import acting, emit, json_option, with_app


@click.command("simulate")
@click.argument("code")
@click.option(
    "--participants",
    "n",
    type=click.IntRange(1, 100_000),
    default=120,
    show_default=True,
    help="Randomized participants to simulate (screen failures come on top).",
)
@click.option(
    "--seed",
    type=click.IntRange(0),
    default=20251,
    show_default=True,
    help="The same seed gives the same clinical data and the same allocation list.",
)
@json_option
@with_app
def simulate(code: str, n: int, seed: int, as_json: bool) -> None:
    """Fill the empty trial CODE with a realistic synthetic trial, written through the same
    services as real data (and audited as the "simulation" account): screening failures, a true
    treatment effect, dropout that depends on observed scores, missed visits, item-9 positives,
    adverse events, decaying app use and intercurrent events. Takes the trial live first if it
    is not (allocation list seeded from SEED)."""
    import dataclasses

    from trials.simulate import services

    with click.progressbar(length=1, label="Simulating", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        with acting(None) as (session, _principal):
            report = services.simulate(
                code, participants_wanted=n, seed=seed, session=session, progress=progress
            )
    out = dataclasses.asdict(report)
    emit(
        out,
        as_json,
        lambda r: (
            f"{r['trial_code']}: {r['screened']} screened, {r['screen_failures']} screen failures, "
            f"{r['randomized']} randomized, {r['assessments']} assessments, "
            f"{r['safety_events']} safety events ({r['open_safety_events']} left open), "
            f"{r['adverse_events']} adverse events, dispositions {r['dispositions']}; "
            f"dates {r['first_date']} to {r['last_date']}; seed {r['seed']}"
        ),
    )
