"""Permissions by role, and the principal whose rights every request and command checks.

One table decides who may do what; views, the API and the CLI ask `Principal.grant_for`.
"""

import uuid
from dataclasses import dataclass
from enum import StrEnum

from trials.core.accounts.models import Role


class Permission(StrEnum):
    MANAGE_ACCOUNTS = "manage_accounts"  # users, role grants, sites, trials
    VIEW_ACCOUNTS = "view_accounts"  # read users and their grants (a read-only admin token may)
    VIEW_AUDIT = "view_audit"  # the audit trail (admin: all; monitor: their trials)
    VIEW_TRIAL = "view_trial"  # a trial's blinded pages and data
    ENTER_DATA = "enter_data"  # enrolment, assessments, adverse events at one's site
    FOLLOW_UP_SAFETY = "follow_up_safety"  # safety-event follow-up at one's site
    MANAGE_PROTOCOL = "manage_protocol"  # register, amend and lock protocols and SAPs
    VIEW_ALLOCATION = "view_allocation"  # randomization list and arms (unblinded only)
    LOCK_DATABASE = "lock_database"  # lock and unlock a trial's database (the sponsor's decision)
    VIEW_RESULTS = "view_results"  # the analysis results (pooled until the trial is unblinded)
    UNBLIND_TRIAL = "unblind_trial"  # release arm-level results (locked plan and database first)
    EMERGENCY_UNBLIND = "emergency_unblind"  # reveal one participant's arm in a clinical emergency
    VIEW_IDENTIFIERS = "view_identifiers"  # a participant's name and contact details (at their site)
    GENERATE_REPORT = "generate_report"  # generate and store an evidence report (blinded until unblinding)
    SIGN_REPORT = "sign_report"  # sign a generated report (review, approval, authorship)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({Permission.MANAGE_ACCOUNTS, Permission.VIEW_ACCOUNTS, Permission.VIEW_AUDIT}),
    Role.SPONSOR: frozenset(
        {
            Permission.VIEW_TRIAL,
            Permission.MANAGE_PROTOCOL,
            Permission.LOCK_DATABASE,
            Permission.UNBLIND_TRIAL,
            Permission.VIEW_RESULTS,
            Permission.GENERATE_REPORT,
            Permission.SIGN_REPORT,
        }
    ),
    Role.STATISTICIAN_BLINDED: frozenset(
        {
            Permission.VIEW_TRIAL,
            Permission.MANAGE_PROTOCOL,
            Permission.VIEW_RESULTS,
            Permission.GENERATE_REPORT,
            Permission.SIGN_REPORT,
        }
    ),
    # Whoever sees the allocation may not write the analysis plan (DOMAIN.md section 2: the SAP
    # is fixed before unblinding): the unblinded statistician reads the protocol, never edits it.
    Role.STATISTICIAN_UNBLINDED: frozenset(
        {
            Permission.VIEW_TRIAL,
            Permission.VIEW_ALLOCATION,
            Permission.UNBLIND_TRIAL,
            Permission.VIEW_RESULTS,
            Permission.GENERATE_REPORT,
            Permission.SIGN_REPORT,
        }
    ),
    Role.COORDINATOR: frozenset({Permission.VIEW_TRIAL, Permission.ENTER_DATA, Permission.VIEW_IDENTIFIERS}),
    Role.CLINICIAN: frozenset(
        {
            Permission.VIEW_TRIAL,
            Permission.FOLLOW_UP_SAFETY,
            Permission.EMERGENCY_UNBLIND,
            Permission.VIEW_IDENTIFIERS,
        }
    ),
    Role.MONITOR: frozenset({Permission.VIEW_TRIAL, Permission.VIEW_AUDIT}),
}

# Why a refusal happened, where the permission's name alone would not say who may.
REFUSALS: dict[Permission, str] = {
    Permission.LOCK_DATABASE: "only the trial's sponsor may lock or unlock its database",
    Permission.UNBLIND_TRIAL: "only the sponsor or the unblinded statistician may unblind the trial",
    Permission.EMERGENCY_UNBLIND: (
        "only a clinician of the participant's site may unblind them in an emergency"
    ),
    Permission.VIEW_IDENTIFIERS: "a participant's identifiers are visible only to the staff of their site",
}

# What a read-only API token may still do.
READ_PERMISSIONS = frozenset(
    {
        Permission.VIEW_ACCOUNTS,
        Permission.VIEW_AUDIT,
        Permission.VIEW_TRIAL,
        Permission.VIEW_ALLOCATION,
        Permission.VIEW_IDENTIFIERS,
        Permission.VIEW_RESULTS,
    }
)


@dataclass(frozen=True)
class Grant:
    role: Role
    trial_id: uuid.UUID | None = None
    site_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Principal:
    """An authenticated user with their grants as loaded for this request.

    `token_scope` is set when the request came with an API token: "read" narrows the user's
    rights to `READ_PERMISSIONS`; a token never adds a right its user lacks. The Flask-Login
    attributes let a principal be the web session's `current_user`.
    """

    user_id: uuid.UUID
    username: str
    printed_name: str
    grants: tuple[Grant, ...]
    session_version: str = ""
    token_scope: str | None = None

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.user_id}.{self.session_version}"

    def grant_for(
        self,
        permission: Permission,
        *,
        trial_id: uuid.UUID | None = None,
        site_id: uuid.UUID | None = None,
    ) -> Grant | None:
        """The grant that allows `permission` (in the trial / at the site if given), or None."""
        if self.token_scope == "read" and permission not in READ_PERMISSIONS:
            return None
        for grant in self.grants:
            if permission not in ROLE_PERMISSIONS[grant.role]:
                continue
            if grant.role in (Role.ADMIN,):
                return grant
            if trial_id is not None and grant.trial_id != trial_id:
                continue
            if site_id is not None and grant.site_id is not None and grant.site_id != site_id:
                continue
            return grant
        return None

    def trial_ids_with(self, permission: Permission) -> frozenset[uuid.UUID] | None:
        """Trials in which `permission` is held; None when it is held installation-wide."""
        ids = set()
        for grant in self.grants:
            if self.token_scope == "read" and permission not in READ_PERMISSIONS:
                continue
            if permission not in ROLE_PERMISSIONS[grant.role]:
                continue
            if grant.trial_id is None:
                return None
            ids.add(grant.trial_id)
        return frozenset(ids)

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(g.role for g in self.grants)
