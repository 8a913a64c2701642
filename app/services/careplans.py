"""Care plans and lead professionals: the lifecycle and versioned, audited changes, in one place.

Lifecycle: none -> draft -> agreed -> review_due (derived: agreed and past next_review) -> closed
(reason: died, moved away, no longer needed, declined); a closed plan may be reopened as a draft.
Every save names the version the user started from; saving over a newer version raises
``StaleEditError`` with the current values and the fields that changed, so the page can offer to
merge or reload. Plans live apart from score runs, so they survive refreshes and people leaving
the flagged cohort.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from features.errors import UserInputError
from app.db import require_write_session
from app.services import audit
from app.services.access import CurrentUser, check_person_access
from app.store import CarePlan, CarePlanHistory, LeadProfessional, LeadProfessionalHistory

PLAN_STATUSES = ("none", "draft", "agreed", "review_due", "closed")
PLAN_STATUS_LABELS = {
    "none": "No plan", "draft": "Draft", "agreed": "Agreed", "review_due": "Review due", "closed": "Closed",
}
SAVED_STATUSES = ("draft", "agreed", "closed")  # review_due is derived, never saved
CLOSE_REASONS = {
    "died": "Died",
    "moved_away": "Moved away",
    "no_longer_needed": "No longer needed",
    "declined": "Declined",
}
LEAD_PROFESSIONAL_ROLES = (
    "GP", "Practice nurse", "Community matron", "Social worker", "Care navigator",
    "Mental-health practitioner", "Other",
)
PLAN_FIELDS = ("status", "goals", "actions", "consent_to_share", "next_review", "close_reason")
LEAD_FIELDS = ("name", "role")
EMPTY_PLAN = {
    "status": "none", "goals": [], "actions": [], "consent_to_share": False,
    "next_review": None, "close_reason": None, "agreed_on": None, "version": 0,
    "updated_at": None, "updated_by": None,
}
EMPTY_LEAD = {"name": None, "role": None, "version": 0, "updated_at": None, "updated_by": None}


class InvalidCarePlan(UserInputError):
    """A change that breaks the lifecycle rules (one sentence saying which)."""


class StaleEditError(Exception):
    """Someone saved a newer version since the user opened the form."""

    def __init__(self, what: str, expected_version: int, current: dict, changed_fields: list[str]):
        self.expected_version = expected_version
        self.current = current
        self.changed_fields = changed_fields
        changed = ", ".join(changed_fields) or "nothing visible"
        who = current.get("updated_by") or "someone"
        super().__init__(
            f"The {what} was changed by {who} (now version {current.get('version')}, you started from "
            f"version {expected_version}; changed: {changed}); reload or merge before saving."
        )


def derived_status(status: str | None, next_review: date | None, today: date | None = None) -> str:
    """The lifecycle state shown to people: the stored status, "none" without a plan, and
    "review_due" for an agreed plan whose review date has passed (on the date itself it is still agreed).
    The one rule: every view that shows a plan status calls this (or ``derived_statuses``)."""
    if status is None:
        return "none"
    today = today or date.today()
    if status == "agreed" and next_review is not None and next_review < today:
        return "review_due"
    return status


def derived_statuses(stored: pd.Series, next_review: pd.Series, today: date) -> list[str]:
    """``derived_status`` for columns from an outer join (missing plans come back as None or NaN)."""
    return [derived_status(s if isinstance(s, str) else None, n if isinstance(n, date) else None, today)
            for s, n in zip(stored, next_review)]


def _plan_values(row: CarePlan | CarePlanHistory) -> dict:
    return {
        "status": row.status, "goals": list(row.goals or []), "actions": list(row.actions or []),
        "consent_to_share": bool(row.consent_to_share), "next_review": row.next_review,
        "close_reason": row.close_reason, "agreed_on": row.agreed_on,
    }


def plan_snapshot(row: CarePlan | None, today: date | None = None) -> dict:
    if row is None:
        return dict(EMPTY_PLAN)
    values = _plan_values(row)
    values.update(
        version=row.version, updated_at=row.updated_at, updated_by=row.updated_by,
        stored_status=row.status, status=derived_status(row.status, row.next_review, today),
    )
    return values


def _lead_snapshot(row: LeadProfessional | None) -> dict:
    if row is None:
        return dict(EMPTY_LEAD)
    return {"name": row.name, "role": row.role, "version": row.version,
            "updated_at": row.updated_at, "updated_by": row.updated_by}


def _current(session: Session, model, nhs_number: str):
    return session.execute(
        select(model).where(model.nhs_number == nhs_number).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _versioned_write(session: Session, model, nhs_number: str, expected_version: int, values: dict) -> bool:
    """Write ``values`` as version expected+1 only if the row is still at ``expected_version``.

    The conditional UPDATE (or the primary key, for the first version) is the atomic check, so two
    writers can never both succeed from the same version on either database.
    """
    stamp = {"version": expected_version + 1, **values}
    if expected_version == 0:
        try:
            with session.begin_nested():
                session.add(model(nhs_number=nhs_number, **stamp))
                session.flush()
        except IntegrityError:
            return False
        return True
    result = session.execute(
        update(model)
        .where(model.nhs_number == nhs_number, model.version == expected_version)
        .values(**stamp)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _changed(old: dict, new: dict, fields: tuple[str, ...]) -> list[str]:
    return [f for f in fields if old.get(f) != new.get(f)]


def get_care_plan(session: Session, user: CurrentUser, nhs_number: str, today: date | None = None) -> dict:
    patient = check_person_access(session, user, nhs_number, doing="open the care plan of")
    return plan_snapshot(_current(session, CarePlan, patient.nhs_number), today)


def care_plan_history(session: Session, nhs_number: str) -> list[dict]:
    """Every saved version, oldest first (callers have already checked access)."""
    rows = session.scalars(
        select(CarePlanHistory).where(CarePlanHistory.nhs_number == nhs_number).order_by(CarePlanHistory.version)
    )
    return [{**_plan_values(r), "version": r.version, "changed_at": r.changed_at, "changed_by": r.changed_by}
            for r in rows]


def lead_professional_history(session: Session, nhs_number: str) -> list[dict]:
    rows = session.scalars(
        select(LeadProfessionalHistory).where(LeadProfessionalHistory.nhs_number == nhs_number)
        .order_by(LeadProfessionalHistory.version)
    )
    return [{"name": r.name, "role": r.role, "version": r.version, "changed_at": r.changed_at,
             "changed_by": r.changed_by} for r in rows]


def get_lead_professional(session: Session, user: CurrentUser, nhs_number: str) -> dict:
    patient = check_person_access(session, user, nhs_number, doing="open the lead professional of")
    return _lead_snapshot(_current(session, LeadProfessional, patient.nhs_number))


def _parse_date(value: Any, field: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidCarePlan(f"The {field.replace('_', ' ')} {value!r} is not a date (YYYY-MM-DD).") from None


def _clean_plan(current: dict, fields: dict, today: date) -> dict:
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise InvalidCarePlan(f"Care plans have no field(s) {', '.join(sorted(unknown))}.")
    new = {k: current[k] for k in ("status", "goals", "actions", "consent_to_share", "next_review",
                                   "close_reason", "agreed_on")}
    if new["status"] == "none":
        new["status"] = "draft"
    new.update(fields)
    if new["status"] not in SAVED_STATUSES:
        raise InvalidCarePlan(
            f"A care plan's status can be set to {', '.join(SAVED_STATUSES)}, not {new['status']!r}."
        )
    goals = new["goals"] or []
    if isinstance(goals, str) or not all(isinstance(g, str) and g.strip() for g in goals):
        raise InvalidCarePlan("Care plan goals must be a list of non-empty sentences.")
    new["goals"] = [g.strip() for g in goals]
    actions = []
    for number, action in enumerate(new["actions"] or [], start=1):
        if not isinstance(action, dict) or not str(action.get("action") or "").strip() \
                or not str(action.get("owner") or "").strip():
            raise InvalidCarePlan(f"Care plan action {number} needs both an action and an owner.")
        actions.append({"action": str(action["action"]).strip(), "owner": str(action["owner"]).strip()})
    new["actions"] = actions
    new["consent_to_share"] = bool(new["consent_to_share"])
    new["next_review"] = _parse_date(new["next_review"], "next_review")
    if new["status"] == "agreed":
        if new["next_review"] is None:
            raise InvalidCarePlan("An agreed care plan needs a next review date.")
        becoming_agreed = current["stored_status"] != "agreed" if "stored_status" in current else True
        if ("next_review" in fields or becoming_agreed) and new["next_review"] <= today:
            raise InvalidCarePlan(
                f"The next review date {new['next_review'].isoformat()} is not in the future."
            )
        if becoming_agreed:
            new["agreed_on"] = today
    if new["status"] == "closed":
        if new["close_reason"] not in CLOSE_REASONS:
            raise InvalidCarePlan(
                f"Closing a care plan needs a reason: one of {', '.join(CLOSE_REASONS)}."
            )
    else:
        new["close_reason"] = None
    return new


def save_care_plan(
    session: Session,
    user: CurrentUser,
    nhs_number: str,
    expected_version: int,
    *,
    today: date | None = None,
    **fields,
) -> dict:
    """Save a change to a person's care plan (fields from ``PLAN_FIELDS``); returns the new plan.

    Raises ``StaleEditError`` if the plan is no longer at ``expected_version`` (0 = no plan yet),
    ``InvalidCarePlan`` for a change the lifecycle does not allow, ``AccessDenied`` out of scope.
    """
    require_write_session(session)
    today = today or date.today()
    patient = check_person_access(session, user, nhs_number, doing="change the care plan of")
    nhs_number = patient.nhs_number
    current = plan_snapshot(_current(session, CarePlan, nhs_number), today)
    if current["version"] != expected_version:
        _raise_stale(session, "care plan", nhs_number, expected_version, current)
    new = _clean_plan(current, fields, today)
    if current["version"] and not _changed(
        {**current, "status": current.get("stored_status")}, new, PLAN_FIELDS
    ):
        return current  # nothing to save
    now = datetime.now(timezone.utc)
    if not _versioned_write(session, CarePlan, nhs_number, expected_version,
                            {**new, "updated_at": now, "updated_by": user.username}):
        _raise_stale(session, "care plan", nhs_number, expected_version,
                     plan_snapshot(_current(session, CarePlan, nhs_number), today))
    session.add(CarePlanHistory(nhs_number=nhs_number, version=expected_version + 1, changed_at=now,
                                changed_by=user.username, **new))
    saved = plan_snapshot(_current(session, CarePlan, nhs_number), today)
    before = {k: current[k] for k in (*PLAN_FIELDS, "version")} if current["version"] else None
    audit.record(session, user, "care_plan_save", "care_plan", nhs_number, before=before,
                 after={k: saved[k] for k in (*PLAN_FIELDS, "version")})
    return saved


def assign_lead_professional(
    session: Session,
    user: CurrentUser,
    nhs_number: str,
    name: str | None,
    role: str | None,
    expected_version: int,
) -> dict:
    """Name (or, with name=None, remove) the person's lead professional; versioned like plans."""
    require_write_session(session)
    patient = check_person_access(session, user, nhs_number, doing="assign a lead professional for")
    nhs_number = patient.nhs_number
    name = (name or "").strip() or None
    if name is not None and role not in LEAD_PROFESSIONAL_ROLES:
        raise InvalidCarePlan(
            f"The lead professional's role must be one of {', '.join(LEAD_PROFESSIONAL_ROLES)}."
        )
    role = role if name is not None else None
    current = _lead_snapshot(_current(session, LeadProfessional, nhs_number))
    if current["version"] != expected_version:
        _raise_stale(session, "lead professional", nhs_number, expected_version, current)
    if current["version"] and current["name"] == name and current["role"] == role:
        return current
    now = datetime.now(timezone.utc)
    if not _versioned_write(session, LeadProfessional, nhs_number, expected_version,
                            {"name": name, "role": role, "updated_at": now, "updated_by": user.username}):
        _raise_stale(session, "lead professional", nhs_number, expected_version,
                     _lead_snapshot(_current(session, LeadProfessional, nhs_number)))
    session.add(LeadProfessionalHistory(nhs_number=nhs_number, version=expected_version + 1, name=name,
                                        role=role, changed_at=now, changed_by=user.username))
    saved = _lead_snapshot(_current(session, LeadProfessional, nhs_number))
    audit.record(
        session, user, "lead_professional_assign", "lead_professional", nhs_number,
        before={k: current[k] for k in (*LEAD_FIELDS, "version")} if current["version"] else None,
        after={k: saved[k] for k in (*LEAD_FIELDS, "version")},
    )
    return saved


def _raise_stale(session: Session, what: str, nhs_number: str, expected_version: int, current: dict):
    if what == "care plan":
        old = next((h for h in care_plan_history(session, nhs_number) if h["version"] == expected_version),
                   {**EMPTY_PLAN})
        fields = PLAN_FIELDS
        current_cmp = {**current, "status": current.get("stored_status", current["status"])}
    else:
        old = next((h for h in lead_professional_history(session, nhs_number)
                    if h["version"] == expected_version), {**EMPTY_LEAD})
        fields, current_cmp = LEAD_FIELDS, current
    raise StaleEditError(what, expected_version, current, _changed(old, current_cmp, fields))
