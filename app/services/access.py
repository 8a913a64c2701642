"""Which people a user may reach: the one place that decides (what each role may do at all is the
table in ``app/services/permissions.py``).

- GP practice and MDT users: people registered at their practices.
- Care navigators: people on their caseload, and people at their practices.
- Commissioners and administrators: nobody (aggregates only). Aggregate scope: a commissioner's
  PCNs, or the whole area when they have none.

Every refusal of a person-level request is itself written to the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import Session

from features.errors import UserInputError
from app.services.permissions import ROLES, Permission, Role, allowed, refusal, role_label
from app.store import CaseloadAssignment, Patient, Practice, Score


class AccessDenied(Exception):
    """The signed-in user may not do this; the message is one sentence for the screen."""


class NotFound(AccessDenied):
    """No such person (a subclass so pages can treat both as 'you cannot open this')."""


@dataclass(frozen=True)
class CurrentUser:
    username: str
    display_name: str
    role: Role
    practice_codes: frozenset[str] = field(default_factory=frozenset)
    pcn_codes: frozenset[str] = field(default_factory=frozenset)
    caseload_capacity: int | None = None

    @property
    def role_label(self) -> str:
        return role_label(self.role)

    def can(self, permission: Permission) -> bool:
        return allowed(self.role, permission)

    @property
    def sees_people(self) -> bool:
        return self.can(Permission.SEE_PEOPLE)


def refuse(session: Session, user: CurrentUser, message: str, entity: str, entity_id: str | None = None) -> NoReturn:
    """Record a refusal (kept even though the caller rolls back) and raise ``AccessDenied``."""
    from app.services import audit  # audit imports this module

    audit.record(session, user, "access_denied", entity, entity_id, detail=message, independent=True)
    raise AccessDenied(message)


def require(session: Session, user: CurrentUser, permission: Permission, doing: str | None = None,
            entity: str = "role") -> None:
    """Refuse (audited) unless the permission table grants ``permission`` to the user's role;
    ``doing`` (completing "cannot ...") words the refusal for this call."""
    if not user.can(permission):
        refuse(session, user, refusal(user.role, permission, doing), entity)


def require_person_level(session: Session, user: CurrentUser, doing: str = "see identifiable records",
                         entity: str = "patient") -> None:
    require(session, user, Permission.SEE_PEOPLE, doing=doing, entity=entity)


def _scope(user: CurrentUser, practice_code, nhs_number) -> ColumnElement[bool]:
    """The people this user may see, as a WHERE clause on the given practice and NHS number columns."""
    if not user.sees_people:
        return false()
    at_practices = practice_code.in_(sorted(user.practice_codes))
    if not user.can(Permission.HOLD_CASELOAD):
        return at_practices
    caseload = select(CaseloadAssignment.nhs_number).where(CaseloadAssignment.navigator_username == user.username)
    return or_(at_practices, nhs_number.in_(caseload))


def person_scope(user: CurrentUser) -> ColumnElement[bool]:
    """A WHERE clause on ``Patient`` selecting the people this user may see (none for others)."""
    return _scope(user, Patient.practice_code, Patient.nhs_number)


def score_scope(user: CurrentUser) -> ColumnElement[bool]:
    """``person_scope`` restated on ``Score`` (which carries practice_code), so list queries can use
    the index on (run_id, practice_code, flagged); always combined with ``person_scope``."""
    return _scope(user, Score.practice_code, Score.nhs_number)


def check_person_access(
    session: Session, user: CurrentUser, nhs_number: str, doing: str = "open",
    permission: Permission = Permission.SEE_PEOPLE,
) -> Patient:
    """The person, if this user may see them (and has ``permission``); otherwise NotFound or
    AccessDenied (and an audit row)."""
    nhs_number = normalise_nhs_number(nhs_number)
    if not user.can(permission):
        refuse(session, user, refusal(user.role, permission, f"{doing} a person's record"), "patient", nhs_number)
    patient = session.get(Patient, nhs_number)
    if patient is None:
        from app.services import audit  # audit imports this module

        audit.record(session, user, "access_denied", "patient", nhs_number, detail="not found",
                     independent=True)
        raise NotFound(f"There is no person with NHS number {nhs_number} in the store.")
    allowed = session.scalar(select(Patient.nhs_number).where(
        Patient.nhs_number == nhs_number, person_scope(user)
    ))
    if allowed is None:
        refuse(session, user,
               f"NHS number {nhs_number} is not registered at your practices"
               f"{' or on your caseload' if user.can(Permission.HOLD_CASELOAD) else ''}, so you cannot {doing} it.",
               "patient", nhs_number)
    return patient


def normalise_nhs_number(value: str) -> str:
    """Digits only ('943 476 5919' -> '9434765919'); anything else is bad input."""
    digits = "".join(ch for ch in str(value) if not ch.isspace() and ch != "-")
    if len(digits) != 10 or not digits.isdigit():
        raise UserInputError(f"{value!r} is not an NHS number (10 digits).")
    return digits


def aggregate_practice_codes(session: Session, user: CurrentUser) -> list[str] | None:
    """Practices whose suppressed aggregates this user may see; None means the whole area."""
    if ROLES[user.role].needs_practices:
        return sorted(user.practice_codes)
    if not user.pcn_codes:
        return None
    return list(session.scalars(
        select(Practice.practice_code).where(Practice.pcn_code.in_(sorted(user.pcn_codes)))
    ))


def system_actor(session: Session, name: str, role: Role = Role.MDT) -> CurrentUser:
    """A named system actor (username ``system:<name>``) acting for every practice in the store:
    the command line's care-plan export, or a programme history being recorded through the
    services. Its reads and changes go through the same checks and are audited under its name."""
    practices = frozenset(session.scalars(select(Practice.practice_code)))
    return CurrentUser(username=f"system:{name}", display_name=f"Proactive Care ({name})", role=role,
                       practice_codes=practices)


def check_practice_access(session: Session, user: CurrentUser, practice_code: str) -> None:
    require_person_level(session, user, "see a practice's list", entity="practice")
    if practice_code not in user.practice_codes:
        refuse(session, user, f"Practice {practice_code} is not one of your practices.", "practice", practice_code)
