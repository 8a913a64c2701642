"""Who may see or change which person: the one place that decides.

- practice: people registered at their practices.
- navigator: people on their caseload, and people at their practices.
- mdt: people at their practices.
- commissioner: aggregates only (coverage); no call returns an NHS number, name or date of birth.
  Scope: their PCNs, or the whole area when they have none.
- admin: manages users and reads the audit trail; no person-level data.

Every refusal of a person-level request is itself written to the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NoReturn

from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import Session

from features.errors import UserInputError
from app.store import CaseloadAssignment, Patient, Practice, Score


class Role(StrEnum):
    PRACTICE = "practice"
    NAVIGATOR = "navigator"
    MDT = "mdt"
    COMMISSIONER = "commissioner"
    ADMIN = "admin"


ROLE_LABELS = {
    Role.PRACTICE: "GP practice staff",
    Role.NAVIGATOR: "Care navigator",
    Role.MDT: "MDT clinician / social worker",
    Role.COMMISSIONER: "Commissioner",
    Role.ADMIN: "Administrator",
}

PERSON_LEVEL_ROLES = frozenset({Role.PRACTICE, Role.NAVIGATOR, Role.MDT})
AGGREGATE_ROLES = frozenset(Role)  # everyone may see suppressed aggregates within their scope


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
        return ROLE_LABELS[self.role]

    @property
    def sees_people(self) -> bool:
        return self.role in PERSON_LEVEL_ROLES


def refuse(session: Session, user: CurrentUser, message: str, entity: str, entity_id: str | None = None) -> NoReturn:
    """Record a refusal (kept even though the caller rolls back) and raise ``AccessDenied``."""
    from app.services import audit  # audit imports this module

    audit.record(session, user, "access_denied", entity, entity_id, detail=message, independent=True)
    raise AccessDenied(message)


def require_role(session: Session, user: CurrentUser, *roles: Role, doing: str, entity: str = "role") -> None:
    """Refuse (audited) unless the user has one of ``roles``; ``doing`` completes "cannot ..."."""
    if user.role not in roles:
        allowed = ", ".join(ROLE_LABELS[r] for r in roles)
        refuse(session, user, f"{user.role_label} users cannot {doing}; only {allowed} can.", entity)


def require_person_level(session: Session, user: CurrentUser, doing: str = "see identifiable records",
                         entity: str = "patient") -> None:
    require_role(session, user, *sorted(PERSON_LEVEL_ROLES), doing=doing, entity=entity)


def _scope(user: CurrentUser, practice_code, nhs_number) -> ColumnElement[bool]:
    """The people this user may see, as a WHERE clause on the given practice and NHS number columns."""
    if user.role in (Role.PRACTICE, Role.MDT):
        return practice_code.in_(sorted(user.practice_codes))
    if user.role == Role.NAVIGATOR:
        caseload = select(CaseloadAssignment.nhs_number).where(
            CaseloadAssignment.navigator_username == user.username
        )
        return or_(practice_code.in_(sorted(user.practice_codes)), nhs_number.in_(caseload))
    return false()


def person_scope(user: CurrentUser) -> ColumnElement[bool]:
    """A WHERE clause on ``Patient`` selecting the people this user may see (none for others)."""
    return _scope(user, Patient.practice_code, Patient.nhs_number)


def score_scope(user: CurrentUser) -> ColumnElement[bool]:
    """``person_scope`` restated on ``Score`` (which carries practice_code), so list queries can use
    the index on (run_id, practice_code, flagged); always combined with ``person_scope``."""
    return _scope(user, Score.practice_code, Score.nhs_number)


def check_person_access(
    session: Session, user: CurrentUser, nhs_number: str, doing: str = "open"
) -> Patient:
    """The person, if this user may see them; otherwise NotFound/AccessDenied (and an audit row)."""
    nhs_number = normalise_nhs_number(nhs_number)
    if not user.sees_people:
        refuse(session, user, f"{user.role_label} users cannot {doing} a person's record.", "patient", nhs_number)
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
               f"{' or on your caseload' if user.role == Role.NAVIGATOR else ''}, so you cannot {doing} it.",
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
    if user.role == Role.ADMIN:
        return None
    if user.role == Role.COMMISSIONER:
        if not user.pcn_codes:
            return None
        return list(session.scalars(
            select(Practice.practice_code).where(Practice.pcn_code.in_(sorted(user.pcn_codes)))
        ))
    return sorted(user.practice_codes)


def check_practice_access(session: Session, user: CurrentUser, practice_code: str) -> None:
    require_person_level(session, user, "see a practice's list", entity="practice")
    if practice_code not in user.practice_codes:
        refuse(session, user, f"Practice {practice_code} is not one of your practices.", "practice", practice_code)
