"""The access matrix: for every route and method of the URL map, what each principal gets.

Read by tests/core/test_access_matrix.py, which asks every route of `create_app().url_map` with
every method it accepts as every principal, and fails on a route or method without a row here,
on a row whose route no longer exists, and on any answer other than the one declared.

Principals. The web: `anonymous` and one signed-in user of each role (`ROLES`; the coordinator
and the clinician are staff of site LDS, the other trial roles hold the trial MOOD-CBT-01, the
administrator holds no trial). The API (`/api/v1/...`): `anonymous` (no token; the request
carries a signed-in web session's cookie, which the API must ignore), a write-scope token of
each role (named like the role) and a read-scope token of each role (`<role>:read`).

Outcomes (`outcome_of` in the test decides which a response is):
- `allowed`: 2xx, or 3xx other than the sign-in redirect, or 400/409/422, which here are a
  refusal of the request's content or of the record's state made AFTER authorization: each
  write is sent with a body its schema accepts (or, on the web, an empty form with a valid CSRF
  token), so that the view's own checks decide and not the body parser.
- `refused`: 403.
- `hidden`: 404, the answer for a record that exists but that the principal may not know of.
- `sign_in`: anonymous on the web: 302 to /sign-in?next=...; on the API: 401.
Anything else (a 500, a 405, a 401 on the web) fails the test whatever the row says.

A row names its allowed principals as space-separated words: role names and the groups below
(a leading "-" takes one out). Every principal not named is refused (403); anonymous gets
`sign_in` unless the row is public. A read-scope token gets what its role's write token gets
on a GET and is refused any other method, unless the row says otherwise (`read=`).

The URL's parameters are the LDS records of the test's world (`values_for` in the test); rows
with `site_bound` name a participant or one of their records and are asked again with the MAN
site's records, when the LDS coordinator and clinician must get `hidden` (404) whatever the row
says (the cross-site check). Besides the outcome, the test reads the answers: the LDS staff's
never name the MAN participant or their records, and those of a role the protocol blinds (and
of the administrator) never name an arm, unless the row says why they may (`names_arms`).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any


class Outcome(StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    HIDDEN = "hidden"
    SIGN_IN = "sign_in"


ROLES = (
    "admin",
    "sponsor",
    "statistician_blinded",
    "statistician_unblinded",
    "coordinator",
    "clinician",
    "monitor",
)
WEB_PRINCIPALS = ("anonymous", *ROLES)
API_PRINCIPALS = ("anonymous", *ROLES, *(f"{role}:read" for role in ROLES))

GROUPS = {
    "ALL": ROLES,
    # view_trial: every role of the trial (the administrator holds none)
    "TRIAL": ROLES[1:],
    # site staff (of LDS)
    "SITE": ("coordinator", "clinician"),
    # manage_protocol: who writes the protocol and the analysis plan
    "PROTOCOL": ("sponsor", "statistician_blinded"),
    # view_results, generate_report, sign_report
    "RESULTS": ("sponsor", "statistician_blinded", "statistician_unblinded"),
    # unblind_trial
    "UNBLINDERS": ("sponsor", "statistician_unblinded"),
    # view_audit
    "AUDITORS": ("admin", "monitor"),
    # roles the example protocol blinds (allocation_visible is False): their pages carry no arm
    "BLINDED": ("statistician_blinded", "monitor"),
}


def principals(words: str) -> frozenset[str]:
    chosen: set[str] = set()
    for word in words.split():
        name = word.removeprefix("-")
        names = set(GROUPS.get(name, (name,)))
        unknown = names - set(ROLES)
        if unknown:
            raise ValueError(f"unknown principal {unknown} in {words!r}")
        if word.startswith("-"):
            chosen -= names
        else:
            chosen |= names
    return frozenset(chosen)


@dataclass(frozen=True)
class Row:
    rule: str
    method: str
    allowed: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()
    public: bool = False
    read: frozenset[str] | None = None
    body: Any = None
    query: str = ""
    site_bound: bool = False
    note: str = ""
    # Why this route's answers may name the arms without telling anyone's allocation (the
    # protocol's own text); empty: a blinded role's answers must carry no arm code or name.
    names_arms: str = ""

    @property
    def api(self) -> bool:
        return self.rule.startswith("/api/")

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.method)


def row(
    rule: str,
    methods: str,
    allowed: str = "",
    *,
    hidden: str = "",
    public: bool = False,
    read: str | None = None,
    body: Any = None,
    query: str = "",
    note: str = "",
    names_arms: str = "",
) -> list[Row]:
    """One row per method of `methods` ("GET POST"), the same expectations for each."""
    site_bound = any(
        p in rule for p in ("<label>", "<uuid:event_id>", "<uuid:assessment_id>", "<uuid:link_id>")
    )
    return [
        Row(
            rule,
            method,
            principals(allowed),
            principals(hidden),
            public,
            None if read is None else principals(read),
            body,
            query,
            site_bound,
            note,
            names_arms,
        )
        for method in methods.split()
    ]


def expected_for(entry: Row, principal: str) -> Outcome:
    """The outcome `principal` must get for `entry` (with the LDS site's records)."""
    if principal == "anonymous":
        return Outcome.ALLOWED if entry.public else Outcome.SIGN_IN
    if entry.public:
        return Outcome.ALLOWED
    role, _, scope = principal.partition(":")
    if scope == "read":
        if entry.read is not None:
            granted = entry.read
        else:
            granted = entry.allowed | entry.hidden if entry.method == "GET" else frozenset()
    else:
        granted = entry.allowed | entry.hidden
    if role not in granted:
        return Outcome.REFUSED
    return Outcome.HIDDEN if role in entry.hidden else Outcome.ALLOWED


# -- request bodies --------------------------------------------------------------------------

TODAY = datetime.now(UTC).date()


def _ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


@cache
def example_protocol() -> str:
    from protocols.document import example_protocol_path

    return example_protocol_path().read_text()


class Protocol:
    """Placeholder for the example protocol's text in a body, filled in when the body is sent."""


REASON = {"reason": "access matrix"}
PROTOCOL_BODY = {"document": Protocol, "format": "yaml"}
ITEMS = {str(n): 1 for n in range(1, 10)}
SCREENING = {
    "site_code": "LDS",
    "screened_on": _ago(1),
    "age_years": 30,
    "screening_phq9": 12,
    "inclusion_met": True,
    "exclusion_present": False,
}
ADVERSE_EVENT = {
    "term": "Eye strain",
    "onset_date": _ago(2),
    "end_date": None,
    "serious": False,
    "serious_criteria": [],
    "severity": "mild",
    "relatedness": "possible",
    "action": "none",
    "outcome": "recovering_resolving",
}


# Routes whose answers quote the protocol, which names the arms (design, not allocation).
PROTOCOL_TEXT = "the protocol's document names its arms: that is its design, not anyone's allocation"
AUDIT_TEXT = (
    "the audit trail records the protocol's documents, which name the arms; an allocation's arm is "
    "redacted when it is recorded (tests/randomization/test_services.py)"
)

# -- the matrix --------------------------------------------------------------------------------

P = "/trials/<code>/participants/<label>"  # a participant's web pages
A = "/api/v1/trials/<code>"  # a trial's API routes
AP = f"{A}/participants/<label>"  # a participant's API routes

MATRIX: list[Row] = [
    # Signing in and out, the home and account pages: anyone signed in.
    *row("/sign-in", "GET POST", public=True, note="signed-in users are sent home (302)"),
    *row("/sign-out", "POST", "ALL"),
    *row("/", "GET", "ALL"),
    *row("/account", "GET POST", "ALL"),
    *row(
        "/account/tokens/<uuid:token_id>/revoke",
        "POST",
        "coordinator",
        hidden="ALL -coordinator",
        note="the coordinator's own token: anyone else's token is no token of theirs (404)",
    ),
    # Account administration: manage_accounts (web), view_accounts (API, read tokens too).
    *row("/admin/users", "GET", "admin"),
    *row("/admin/sites", "GET", "admin"),
    *row("/api/v1/me", "GET", "ALL"),
    *row("/api/v1/users", "GET", "admin"),
    *row(
        "/api/v1/users",
        "POST",
        "admin",
        body={"username": "newcomer", "printed_name": "New Comer", "password": "a long enough password"},
    ),
    *row("/api/v1/users/<username>", "GET", "admin"),
    *row("/api/v1/users/<username>/disable", "POST", "admin", body=REASON),
    *row("/api/v1/users/<username>/unlock", "POST", "admin", body=REASON),
    *row(
        "/api/v1/users/<username>/grants",
        "POST",
        "admin",
        body={"role": "monitor", "trial_code": "MOOD-CBT-01"},
    ),
    *row("/api/v1/grants/<uuid:grant_id>/revoke", "POST", "admin", body=REASON),
    *row("/api/v1/sites", "GET", "ALL"),
    *row("/api/v1/sites", "POST", "admin", body={"code": "ZZZ", "name": "Matrix Clinic", "country": "GB"}),
    *row("/api/v1/trials", "GET", "ALL", note="the trials each may see (none for the administrator)"),
    # The audit trail: view_audit (admin: all trials; monitor: theirs).
    *row("/audit", "GET", "AUDITORS", names_arms=AUDIT_TEXT),
    *row("/audit/export.csv", "GET", "AUDITORS", names_arms=AUDIT_TEXT),
    *row("/api/v1/audit", "GET", "AUDITORS", names_arms=AUDIT_TEXT),
    *row("/api/v1/audit/verify", "GET", "AUDITORS"),
    # Public documents of the API.
    *row("/api/v1/openapi.json", "GET", public=True),
    *row("/api/v1/schemas/protocol.json", "GET", public=True),
    # The protocol registry: view_trial reads, manage_protocol writes. Registering names its
    # trial in the document: a new trial is the administrator's, an existing one needs
    # manage_protocol in it, so the form opens for those who may do either.
    *row("/protocols", "GET", "ALL"),
    *row("/protocols/new", "GET", "admin PROTOCOL"),
    *row("/protocols/new", "POST", "PROTOCOL", body={"text": Protocol}),
    *row("/protocols/<code>", "GET", "TRIAL"),
    *row("/protocols/<code>/versions/<int:number>", "GET", "TRIAL", names_arms=PROTOCOL_TEXT),
    *row("/protocols/<code>/diff", "GET", "TRIAL", names_arms=PROTOCOL_TEXT),
    *row("/protocols/<code>/amend", "GET POST", "PROTOCOL", names_arms=PROTOCOL_TEXT),
    *row("/protocols/<code>/versions/<int:number>/edit", "GET POST", "PROTOCOL", names_arms=PROTOCOL_TEXT),
    *row("/protocols/<code>/versions/<int:number>/lock", "GET POST", "PROTOCOL", names_arms=PROTOCOL_TEXT),
    *row("/api/v1/protocols", "GET", "ALL", note="the protocols of the trials each may see"),
    *row("/api/v1/protocols", "POST", "PROTOCOL", body=PROTOCOL_BODY),
    *row(
        "/api/v1/protocols/validate",
        "POST",
        "ALL",
        read="ALL",
        body=PROTOCOL_BODY,
        note="stores nothing: read tokens may",
    ),
    *row("/api/v1/protocols/<code>/versions", "GET", "TRIAL"),
    *row("/api/v1/protocols/<code>/versions/<int:number>", "GET", "TRIAL", names_arms=PROTOCOL_TEXT),
    *row("/api/v1/protocols/<code>/diff", "GET", "TRIAL", query="from=1&to=1", names_arms=PROTOCOL_TEXT),
    *row(
        "/api/v1/protocols/<code>/versions/<int:number>", "PUT", "PROTOCOL", body={**PROTOCOL_BODY, **REASON}
    ),
    *row("/api/v1/protocols/<code>/amendments", "POST", "PROTOCOL", body={**PROTOCOL_BODY, **REASON}),
    *row(
        "/api/v1/protocols/<code>/versions/<int:number>/lock", "POST", "PROTOCOL", body={"password": "wrong"}
    ),
    # Going live and the allocation list: the allocation is for unblinded eyes only.
    *row("/api/v1/trials/<code>/go-live", "POST", "PROTOCOL", body={}),
    *row(f"{A}/allocation-list", "GET", "statistician_unblinded"),
    *row(f"{A}/allocation-list.csv", "GET", "statistician_unblinded"),
    # Participants: every trial role reads (site staff: their site's); coordinators enter.
    *row("/trials/<code>/participants", "GET", "TRIAL"),
    *row("/trials/<code>/participants", "POST", "coordinator"),
    *row(P, "GET", "TRIAL"),
    *row(f"{P}/enrol", "POST", "coordinator"),
    *row(f"{P}/randomize", "GET POST", "coordinator"),
    *row(f"{A}/participants", "GET", "TRIAL"),
    *row(f"{A}/participants", "POST", "coordinator", body=SCREENING),
    *row(AP, "GET", "TRIAL"),
    *row(f"{AP}/enrol", "POST", "coordinator", body={"consent_date": _ago(47)}),
    *row(f"{AP}/randomize", "POST", "coordinator"),
    # Direct identifiers: their site's staff read (each reading audited); coordinators write.
    *row(f"{P}/identifiers", "GET", "SITE"),
    *row(f"{P}/identifiers", "POST", "coordinator"),
    *row(f"{AP}/identifiers", "GET", "SITE"),
    *row(f"{AP}/identifiers", "PUT", "coordinator", body={"full_name": "Alex Example"}),
    # Assessments: coordinators enter and correct.
    *row(f"{P}/assessments/new", "GET POST", "coordinator"),
    *row("/trials/<code>/assessments/<uuid:assessment_id>/edit", "GET POST", "coordinator"),
    *row(
        f"{AP}/assessments",
        "POST",
        "coordinator",
        body={
            "instrument": "GAD-7",
            "assessed_on": TODAY.isoformat(),
            "items": {str(n): 0 for n in range(1, 8)},
        },
    ),
    *row(
        f"{A}/assessments/<uuid:assessment_id>/correct",
        "POST",
        "coordinator",
        body={"items": ITEMS, **REASON},
    ),
    # Self-report: coordinators issue and revoke links; the participant's page is public (its
    # token is the credential).
    *row(f"{P}/epro-links", "POST", "coordinator"),
    *row("/trials/<code>/epro-links/<uuid:link_id>/revoke", "POST", "coordinator"),
    *row(f"{AP}/epro-links", "GET", "TRIAL"),
    *row(f"{AP}/epro-links", "POST", "coordinator", body={"visit_code": "W06", "instrument": "PHQ-9"}),
    *row(
        "/epro/<token>", "GET POST", public=True, note="the participant's questionnaire; the token is the key"
    ),
    # App engagement: it differs by arm, so blinded roles do not see it.
    *row(f"{AP}/engagement", "GET", "TRIAL -BLINDED"),
    *row(
        f"{AP}/engagement",
        "POST",
        "coordinator",
        body={"days": [{"day": _ago(1), "sessions": 1, "minutes": 10, "modules_completed": 0}]},
    ),
    # Imports of CSV files: coordinators; the templates are for any trial role.
    *row("/trials/<code>/import", "GET POST", "coordinator"),
    *row("/trials/<code>/import/templates/<kind>.csv", "GET", "TRIAL"),
    *row(f"{A}/imports", "GET", "TRIAL"),
    *row(f"{A}/imports/<kind>", "POST", "coordinator", body=b"participant,instrument,assessed_on\n"),
    *row(f"{A}/imports/templates/<kind>.csv", "GET", "TRIAL"),
    # Safety events from assessments: every trial role reads; clinicians follow up.
    *row("/trials/<code>/safety-events", "GET", "TRIAL"),
    *row("/trials/<code>/safety-events/<uuid:event_id>/follow-up", "GET POST", "clinician"),
    *row(f"{A}/safety-events", "GET", "TRIAL"),
    *row(
        f"{A}/safety-events/<uuid:event_id>/follow-up",
        "POST",
        "clinician",
        body={"risk_assessment_done": True},
    ),
    # Adverse events and disposition: site staff record and change; every trial role reads.
    *row(f"{P}/adverse-events/new", "GET POST", "SITE"),
    *row(f"{P}/disposition-events/new", "GET POST", "SITE"),
    *row(f"{AP}/adverse-events", "GET", "TRIAL"),
    *row(f"{AP}/adverse-events", "POST", "SITE", body=ADVERSE_EVENT),
    *row(f"{A}/adverse-events", "GET", "TRIAL"),
    *row(f"{A}/adverse-events/<uuid:event_id>", "GET", "TRIAL"),
    *row(
        f"{A}/adverse-events/<uuid:event_id>/change",
        "POST",
        "SITE",
        body={"severity": "moderate", "change_reason": "access matrix"},
    ),
    *row(f"{AP}/disposition-events", "GET", "TRIAL"),
    *row(
        f"{AP}/disposition-events",
        "POST",
        "SITE",
        body={
            "kind": "started_other_treatment",
            "event_date": _ago(3),
            "reason": "GP",
            "other_treatment": "antidepressant",
        },
    ),
    *row(f"{A}/disposition-events", "GET", "TRIAL"),
    *row(
        f"{A}/disposition-events/<uuid:event_id>/change",
        "POST",
        "SITE",
        body={"reason": "as told again", "change_reason": "access matrix"},
    ),
    *row(f"{A}/disposition-events/<uuid:event_id>/retract", "POST", "SITE", body=REASON),
    # Emergency unblinding of one participant: their site's clinician only; the records of it
    # (which carry no arm) are read by every trial role.
    *row(f"{AP}/emergency-unblinding", "POST", "clinician", body=REASON),
    *row(f"{AP}/emergency-unblindings", "GET", "TRIAL"),
    *row(f"{A}/emergency-unblindings", "GET", "TRIAL"),
    # The dashboard: every trial role.
    *row("/trials/<code>/dashboard", "GET", "TRIAL"),
    # The database lock: the sponsor's decision.
    *row("/trials/<code>/database-lock", "GET POST", "sponsor"),
    *row(f"{A}/database-lock", "POST", "sponsor", body=REASON),
    *row(f"{A}/database-unlock", "POST", "sponsor", body=REASON),
    # The trial's unblinding: the page is for who may unblind; its state is readable by all.
    *row("/trials/<code>/unblinding", "GET POST", "UNBLINDERS"),
    *row(f"{A}/unblinding", "GET", "TRIAL"),
    *row(f"{A}/unblinding", "POST", "UNBLINDERS", body=REASON),
    # Results and reports: view_results reads; generating and signing need their permissions.
    *row(f"{A}/results", "GET", "RESULTS"),
    *row("/trials/<code>/reports", "GET POST", "RESULTS"),
    *row("/trials/<code>/reports/jobs/<uuid:job_id>", "GET", "RESULTS"),
    *row("/trials/<code>/reports/<int:number>/report.pdf", "GET", "RESULTS"),
    *row("/trials/<code>/reports/<int:number>", "GET", "RESULTS"),
    *row("/trials/<code>/reports/<int:number>/results.json", "GET", "RESULTS"),
    *row("/trials/<code>/reports/<int:number>/manifest.json", "GET", "RESULTS"),
    *row("/trials/<code>/reports/<int:number>/sign", "GET POST", "RESULTS"),
    *row(f"{A}/reports", "GET", "RESULTS"),
    *row(
        f"{A}/reports", "POST", "RESULTS", body={"variant": "final"}, note="final before the unblinding: 409"
    ),
    *row(f"{A}/report-jobs/<uuid:job_id>", "GET", "RESULTS"),
    *row(f"{A}/reports/<int:number>/pdf", "GET", "RESULTS"),
    *row(f"{A}/reports/<int:number>/results.json", "GET", "RESULTS"),
    *row(f"{A}/reports/<int:number>/manifest.json", "GET", "RESULTS"),
    *row(
        f"{A}/reports/<int:number>/signatures",
        "POST",
        "RESULTS",
        body={"meaning": "nonsense", "password": "wrong"},
        note="an unknown meaning is refused (422) before the password is checked",
    ),
]

# Rules the matrix does not ask, with the reason.
SKIPPED: dict[str, str] = {
    "/static/<path:filename>": "the packaged CSS, JavaScript and fonts: public files that hold no record",
}
