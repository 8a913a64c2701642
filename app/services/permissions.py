"""Who may do what: the roles and the one table of permissions that services, pages and the
navigation all read. Adding a role or a permission is an edit here (plus its tests).

Which *people* a permitted user may reach (their practices, their caseload) is decided by
``app/services/access.py``; this table says only which kinds of thing each role may do at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    PRACTICE = "practice"
    NAVIGATOR = "navigator"
    MDT = "mdt"
    COMMISSIONER = "commissioner"
    ADMIN = "admin"


class Permission(StrEnum):
    SEE_PEOPLE = "see_people"
    PLAN_CARE = "plan_care"
    JUDGE_COHORT = "judge_cohort"
    RUN_MEETINGS = "run_meetings"
    SEE_CASELOADS = "see_caseloads"
    HOLD_CASELOAD = "hold_caseload"
    SEE_CAPACITY = "see_capacity"
    SEE_COVERAGE = "see_coverage"
    SEE_MODEL = "see_model"
    MANAGE_USERS = "manage_users"
    READ_AUDIT = "read_audit"


@dataclass(frozen=True)
class RoleInfo:
    label: str
    home: str  # the page key (streamlit_app.PAGES) a user of this role lands on
    needs_practices: bool  # a user of this role works for named practices


ROLES: dict[Role, RoleInfo] = {
    Role.PRACTICE: RoleInfo("GP practice staff", "list", needs_practices=True),
    Role.NAVIGATOR: RoleInfo("Care navigator", "caseload", needs_practices=True),
    Role.MDT: RoleInfo("MDT clinician / social worker", "meetings", needs_practices=True),
    Role.COMMISSIONER: RoleInfo("Commissioner", "coverage", needs_practices=False),
    Role.ADMIN: RoleInfo("Administrator", "audit", needs_practices=False),
}

_CARE_TEAM = frozenset({Role.PRACTICE, Role.NAVIGATOR, Role.MDT})

# permission -> (the roles that have it, what it lets you do: completes "cannot ...")
GRANTS: dict[Permission, tuple[frozenset[Role], str]] = {
    Permission.SEE_PEOPLE: (_CARE_TEAM, "see identifiable records"),
    Permission.PLAN_CARE: (_CARE_TEAM, "change care plans, assessments or lead professionals"),
    Permission.JUDGE_COHORT: (frozenset({Role.PRACTICE, Role.MDT}),
                              "add people to the programme or exclude them by clinical judgement"),
    Permission.RUN_MEETINGS: (_CARE_TEAM, "see or run MDT meetings"),
    Permission.SEE_CASELOADS: (_CARE_TEAM, "see or assign care navigators' caseloads"),
    Permission.HOLD_CASELOAD: (frozenset({Role.NAVIGATOR}), "hold a caseload"),
    Permission.SEE_CAPACITY: (_CARE_TEAM | {Role.ADMIN}, "see navigator capacity"),
    Permission.SEE_COVERAGE: (frozenset(Role), "see care-plan coverage"),
    Permission.SEE_MODEL: (frozenset(Role), "read about the model"),
    Permission.MANAGE_USERS: (frozenset({Role.ADMIN}), "manage users"),
    Permission.READ_AUDIT: (frozenset({Role.ADMIN}), "read the audit trail"),
}


def role_label(role: Role) -> str:
    return ROLES[role].label


def allowed(role: Role, permission: Permission) -> bool:
    return role in GRANTS[permission][0]


def roles_with(permission: Permission) -> list[Role]:
    return [role for role in Role if allowed(role, permission)]


def refusal(role: Role, permission: Permission, doing: str | None = None) -> str:
    """The one sentence a refused user reads, e.g. "Commissioner users cannot see identifiable
    records; only GP practice staff, Care navigator, MDT clinician / social worker can."."""
    others = ", ".join(role_label(r) for r in roles_with(permission))
    return f"{role_label(role)} users cannot {doing or GRANTS[permission][1]}; only {others} can."


def markdown_table() -> str:
    """The permission table as docs/data.md shows it (a test keeps the two the same)."""
    roles = list(Role)
    lines = ["| may ... | " + " | ".join(role_label(r) for r in roles) + " |",
             "|---|" + "---|" * len(roles)]
    for permission, (granted, words) in GRANTS.items():
        lines.append(f"| {words} | " + " | ".join("yes" if r in granted else "" for r in roles) + " |")
    return "\n".join(lines)
