"""Running a trial's analysis plan: pooled results until the trial is unblinded, by arm after.

Blinding is decided here, from the trial's unblinding record, never by the caller: before the
unblinding the plan runs in its blinded mode, which never sees the arm column. A caller may ask
for the blinded run after the unblinding too (a blinded progress report), never for the
unblinded run before it.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session

from protocols.document import ProtocolDocument
from protocols.models import ProtocolVersion
from protocols.services import document_of
from trials.analyses.models import TrialUnblinding
from trials.analyses.unblinding import unblinding_of
from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.errors import Conflict
from trials.participants.services import locked_protocol, trial_by_code

if TYPE_CHECKING:
    from analysis.sap import ResultsDocument
    from trials.analyses.datasets import AnalysisFrames


@dataclass(frozen=True)
class Analysis:
    """One run of the plan and what it ran on: the trial, its unblinding (None while blinded),
    the plan's version and document, the frames and the results."""

    trial: Trial
    unblinding: TrialUnblinding | None
    version: ProtocolVersion
    document: ProtocolDocument
    frames: "AnalysisFrames"
    results: "ResultsDocument"


def plan_version(
    trial: Trial, unblinding: TrialUnblinding | None, *, session: Session
) -> tuple[ProtocolVersion, ProtocolDocument]:
    """The plan the analyses follow: the latest locked version until the trial is unblinded,
    then the version locked when arm-level results were released, whatever came later."""
    if unblinding is None:
        return locked_protocol(trial, session=session)
    version = session.get(ProtocolVersion, unblinding.protocol_version_id)
    if version is None:  # the foreign key makes this impossible
        raise Conflict("the unblinded protocol version is missing")
    return version, document_of(version)


def run_analysis(code: str, *, session: Session, by: Principal, blinded: bool = False) -> Analysis:
    """Run trial CODE's locked plan and keep the frames it ran on.

    The run is blinded until the trial is unblinded; `blinded=True` asks for the blinded run
    after the unblinding as well (it never sees the arms either way)."""
    # The statistics stack loads on first use, not with the app.
    from analysis.consort import ConsortError
    from analysis.sap import PrimaryAnalysisError, run_sap
    from protocols.sap_spec import sap_spec_of
    from trials.analyses.datasets import analysis_frames, load_raw, screening_log

    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_RESULTS, session=session, trial_id=trial.id)
    unblinding = unblinding_of(trial.id, session=session)
    version, document = plan_version(trial, unblinding, session=session)
    blinded = blinded or unblinding is None
    raw = load_raw(trial.id, document, session=session)
    frames = analysis_frames(raw, document)
    try:
        results = run_sap(
            frames.adsl,
            frames.adqs,
            frames.adtte,
            sap_spec_of(document),
            blinded=blinded,
            # A blinded hash must not let anyone test guesses of the allocation against it.
            input_sha256=raw.snapshot_sha256(include_arms=not blinded),
            screening=screening_log(raw),
            adqs_unprorated=frames.adqs_unprorated,
        )
    except (PrimaryAnalysisError, ConsortError) as exc:
        raise Conflict(f"the analysis plan cannot be run on these data: {exc}") from None
    return Analysis(trial, unblinding, version, document, frames, results)


def analyze(code: str, *, session: Session, by: Principal, blinded: bool = False) -> "ResultsDocument":
    """The analysis-results dataset of trial CODE as its locked plan declares it."""
    return run_analysis(code, session=session, by=by, blinded=blinded).results
