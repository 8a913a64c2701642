"""Care plans and lead professionals: the lifecycle and versioned, audited changes, in one place.

Lifecycle: none -> draft -> agreed -> review_due (derived: agreed and past next_review) -> closed
(reason: died, moved away, no longer needed, declined); a closed plan may be reopened as a draft.
A plan is the personalised care and support plan: what matters to the person, goals, actions with
owners and due dates, a contingency plan, carers and key contacts, consent to share and the
follow-up schedule (their shapes and checks: ``plan_content.py``). Every save names the version the
user started from; saving over a newer version raises ``StaleEditError`` (``versioning.py``) with
the current values and the fields that changed, so the page can offer to merge or reload. Plans
live apart from score runs, so they survive refreshes and people leaving the flagged cohort.

Services that stamp time take ``at`` (when it happened; default now) so a programme history can be
recorded at its own dates; rules about dates use ``today`` (default: the day of ``at``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.settings import today as app_today
from app.db import require_write_session
from app.services import audit, plan_content
from app.services.access import CurrentUser, check_person_access
from app.services.plan_content import InvalidCarePlan  # noqa: F401 (re-exported: callers catch it here)
from app.services.versioning import (  # noqa: F401 (StaleEditError re-exported)
    StaleEditError, changed_fields, current_row, day_of, moment, versioned_write,
)
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
# The professionals of a proactive-care MDT (NHS England 2023): leads, assessors and attendees.
PROFESSIONAL_ROLES = (
    "GP", "Practice nurse", "District nurse", "Community matron", "Geriatrician", "Pharmacist",
    "Occupational therapist", "Physiotherapist", "Social worker", "Care navigator",
    "Mental-health practitioner", "Voluntary-sector worker", "Other",
)
LEAD_PROFESSIONAL_ROLES = PROFESSIONAL_ROLES
CONTENT_FIELDS = ("what_matters", "goals", "actions", "contingency", "contacts", "follow_ups", "consent_to_share")
PLAN_FIELDS = ("status", *CONTENT_FIELDS, "next_review", "close_reason")
STORED_FIELDS = (*PLAN_FIELDS, "agreed_on", "closed_on")
LEAD_FIELDS = ("name", "role")
EMPTY_PLAN = {
    "status": "none", "what_matters": None, "goals": [], "actions": [], "contingency": {}, "contacts": [],
    "follow_ups": [], "consent_to_share": False, "next_review": None, "close_reason": None,
    "agreed_on": None, "closed_on": None, "version": 0, "updated_at": None, "updated_by": None,
}
EMPTY_LEAD = {"name": None, "role": None, "version": 0, "updated_at": None, "updated_by": None}
FIELD_LABELS = {
    "status": "Status", "what_matters": "What matters to the person", "goals": "Goals", "actions": "Actions",
    "contingency": "Contingency plan", "contacts": "Carers and key contacts", "follow_ups": "Follow-ups",
    "consent_to_share": "Consent to share", "next_review": "Next review", "close_reason": "Reason for closing",
    "name": "Lead professional", "role": "Their role",
}


def field_in_words(field: str, value: Any) -> str:
    """One field of a plan (or lead professional) as a practice nurse would read it: for the
    history and for "what changed" when a colleague saved first. No codes, no JSON."""
    from app import presentation

    if field == "status":
        return PLAN_STATUS_LABELS.get(value or "none", str(value))
    if field == "close_reason":
        return CLOSE_REASONS.get(value, "") if value else ""
    if field == "consent_to_share":
        return presentation.yes_no(value)
    if field == "next_review":
        return presentation.day(value, missing="")
    if field == "contingency":
        return plan_content.contingency_in_words(value) or "None"
    if field == "goals":
        return "; ".join(value or []) or "None"
    if field == "actions":
        return "; ".join(f"{a.get('action')} ({a.get('owner')}, due {presentation.day(a.get('due'), missing='no date')}"
                         f"{', done' if a.get('done_on') else ''})" for a in value or []) or "None"
    if field == "follow_ups":
        return "; ".join(f"{presentation.day(f.get('due'))}: {f.get('what')} ({f.get('who')}"
                         f"{', done' if f.get('done_on') else ''})" for f in value or []) or "None"
    if field == "contacts":
        return "; ".join(f"{c.get('name')}" + (f" ({c['relationship']})" if c.get("relationship") else "")
                         + (", carer" if c.get("carer") else "") + (f", {c['phone']}" if c.get("phone") else "")
                         for c in value or []) or "None"
    return "" if value is None else str(value)


def derived_status(status: str | None, next_review: date | None, today: date | None = None) -> str:
    """The lifecycle state shown to people: the stored status, "none" without a plan, and
    "review_due" for an agreed plan whose review date has passed (on the date itself it is still agreed).
    The one rule: every view that shows a plan status calls this (or ``derived_statuses``)."""
    if status is None:
        return "none"
    today = today or app_today()
    if status == "agreed" and next_review is not None and next_review < today:
        return "review_due"
    return status


def derived_statuses(stored: pd.Series, next_review: pd.Series, today: date) -> list[str]:
    """``derived_status`` for columns from an outer join (missing plans come back as None or NaN)."""
    return [derived_status(s if isinstance(s, str) else None, n if isinstance(n, date) else None, today)
            for s, n in zip(stored, next_review)]


def plan_values(row: CarePlan | CarePlanHistory) -> dict:
    """The stored fields of a plan or a saved version (NULL lists from before 0005 as empty)."""
    return {
        "status": row.status, "what_matters": row.what_matters, "goals": list(row.goals or []),
        "actions": list(row.actions or []), "contingency": dict(row.contingency or {}),
        "contacts": list(row.contacts or []), "follow_ups": list(row.follow_ups or []),
        "consent_to_share": bool(row.consent_to_share), "next_review": row.next_review,
        "close_reason": row.close_reason, "agreed_on": row.agreed_on, "closed_on": row.closed_on,
    }


def plan_snapshot(row: CarePlan | None, today: date | None = None) -> dict:
    if row is None:
        return dict(EMPTY_PLAN)
    values = plan_values(row)
    values.update(
        version=row.version, updated_at=row.updated_at, updated_by=row.updated_by,
        stored_status=row.status, status=derived_status(row.status, row.next_review, today),
    )
    return values


def lead_snapshot(row: LeadProfessional | None) -> dict:
    if row is None:
        return dict(EMPTY_LEAD)
    return {"name": row.name, "role": row.role, "version": row.version,
            "updated_at": row.updated_at, "updated_by": row.updated_by}


def plan_of(session: Session, nhs_number: str, today: date | None = None) -> dict:
    """The current plan of a person whose access the caller has already checked (no audit row)."""
    return plan_snapshot(current_row(session, CarePlan, nhs_number), today)


def lead_of(session: Session, nhs_number: str) -> dict:
    """The current lead professional of a person whose access the caller has already checked."""
    return lead_snapshot(current_row(session, LeadProfessional, nhs_number))


def plan_history(session: Session, nhs_number: str) -> list[dict]:
    """Every saved version, oldest first (the caller has already checked access)."""
    rows = session.scalars(
        select(CarePlanHistory).where(CarePlanHistory.nhs_number == nhs_number).order_by(CarePlanHistory.version)
    )
    return [{**plan_values(r), "version": r.version, "changed_at": r.changed_at, "changed_by": r.changed_by}
            for r in rows]


def lead_history(session: Session, nhs_number: str) -> list[dict]:
    rows = session.scalars(
        select(LeadProfessionalHistory).where(LeadProfessionalHistory.nhs_number == nhs_number)
        .order_by(LeadProfessionalHistory.version)
    )
    return [{"name": r.name, "role": r.role, "version": r.version, "changed_at": r.changed_at,
             "changed_by": r.changed_by} for r in rows]


def get_care_plan(session: Session, user: CurrentUser, nhs_number: str, today: date | None = None) -> dict:
    """A person's current plan, for a user who may see them (audited as a view)."""
    patient = check_person_access(session, user, nhs_number, doing="open the care plan of")
    plan = plan_of(session, patient.nhs_number, today)
    audit.record(session, user, "view", "care_plan", patient.nhs_number, detail=f"version {plan['version']}")
    return plan


def care_plan_history(session: Session, user: CurrentUser, nhs_number: str) -> list[dict]:
    """Every saved version of a person's plan, oldest first (audited as a view)."""
    patient = check_person_access(session, user, nhs_number, doing="open the care plan history of")
    history = plan_history(session, patient.nhs_number)
    audit.record(session, user, "view", "care_plan_history", patient.nhs_number, detail=f"{len(history)} versions")
    return history


def get_lead_professional(session: Session, user: CurrentUser, nhs_number: str) -> dict:
    """A person's lead professional, for a user who may see them (audited as a view)."""
    patient = check_person_access(session, user, nhs_number, doing="open the lead professional of")
    lead = lead_of(session, patient.nhs_number)
    audit.record(session, user, "view", "lead_professional", patient.nhs_number, detail=f"version {lead['version']}")
    return lead


def _parse_date(value: Any, field: str) -> date | None:
    day = plan_content.iso_day(value, f"the {field.replace('_', ' ')}")
    return None if day is None else date.fromisoformat(day)


def _clean_plan(current: dict, fields: dict, today: date) -> dict:
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise InvalidCarePlan(f"Care plans have no field(s) {', '.join(sorted(unknown))}.")
    new = {k: current[k] for k in STORED_FIELDS}
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
    new["goals"] = [plan_content.clean_text(g, f"goal {n}") for n, g in enumerate(goals, start=1)]
    new["what_matters"] = plan_content.clean_text(new["what_matters"], "what matters to the person",
                                                  plan_content.TEXT_LIMIT, multiline=True)
    new["actions"] = plan_content.clean_actions(new["actions"], today)
    new["follow_ups"] = plan_content.clean_follow_ups(new["follow_ups"], today)
    new["contacts"] = plan_content.clean_contacts(new["contacts"])
    new["contingency"] = plan_content.clean_contingency(new["contingency"])
    new["consent_to_share"] = bool(new["consent_to_share"])
    new["next_review"] = _parse_date(new["next_review"], "next_review")
    stored_status = current.get("stored_status")
    if new["status"] == "agreed":
        if new["next_review"] is None:
            raise InvalidCarePlan("An agreed care plan needs a next review date.")
        becoming_agreed = stored_status != "agreed"
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
        if stored_status != "closed":
            new["closed_on"] = today
    else:
        new["close_reason"] = None
        new["closed_on"] = None
    return new


def save_care_plan(
    session: Session,
    user: CurrentUser,
    nhs_number: str,
    expected_version: int,
    *,
    today: date | None = None,
    at: datetime | None = None,
    **fields,
) -> dict:
    """Save a change to a person's care plan (fields from ``PLAN_FIELDS``); returns the new plan.

    Raises ``StaleEditError`` if the plan is no longer at ``expected_version`` (0 = no plan yet),
    ``InvalidCarePlan`` for a change the rules do not allow, ``AccessDenied`` out of scope.
    Nothing is written unless everything is valid.
    """
    require_write_session(session)
    today = day_of(today, at)
    patient = check_person_access(session, user, nhs_number, doing="change the care plan of")
    nhs_number = patient.nhs_number
    current = plan_of(session, nhs_number, today)
    if current["version"] != expected_version:
        _raise_stale(session, "care plan", nhs_number, expected_version, current)
    new = _clean_plan(current, fields, today)
    if current["version"] and not changed_fields(
        {**current, "status": current.get("stored_status")}, new, PLAN_FIELDS
    ):
        return current  # nothing to save
    now = moment(at)
    if not versioned_write(session, CarePlan, nhs_number, expected_version,
                           {**new, "updated_at": now, "updated_by": user.username}):
        _raise_stale(session, "care plan", nhs_number, expected_version, plan_of(session, nhs_number, today))
    session.add(CarePlanHistory(nhs_number=nhs_number, version=expected_version + 1, changed_at=now,
                                changed_by=user.username, **new))
    saved = plan_of(session, nhs_number, today)
    before = {k: current[k] for k in (*PLAN_FIELDS, "version")} if current["version"] else None
    audit.record(session, user, "care_plan_save", "care_plan", nhs_number, before=before,
                 after={k: saved[k] for k in (*PLAN_FIELDS, "version")})
    return saved


def add_to_plan(
    session: Session,
    user: CurrentUser,
    nhs_number: str,
    expected_version: int,
    *,
    action: dict | None = None,
    follow_up: dict | None = None,
    today: date | None = None,
    at: datetime | None = None,
) -> dict:
    """Add one action ({action, owner, due}) or follow-up ({due, what, who}) to an existing plan:
    one event, versioned and checked like any other save."""
    require_write_session(session)
    if (action is None) == (follow_up is None):
        raise InvalidCarePlan("Add either an action or a follow-up.")
    patient = check_person_access(session, user, nhs_number, doing="change the care plan of")
    current = plan_of(session, patient.nhs_number, day_of(today, at))
    if current["version"] == 0:
        raise InvalidCarePlan("Save the care plan first; then add actions and follow-ups to it.")
    field, item = ("actions", action) if action is not None else ("follow_ups", follow_up)
    return save_care_plan(session, user, patient.nhs_number, expected_version, today=today, at=at,
                          **{field: [*current[field], item]})


def assign_lead_professional(
    session: Session,
    user: CurrentUser,
    nhs_number: str,
    name: str | None,
    role: str | None,
    expected_version: int,
    *,
    at: datetime | None = None,
) -> dict:
    """Name (or, with name=None, remove) the person's lead professional; versioned like plans."""
    require_write_session(session)
    patient = check_person_access(session, user, nhs_number, doing="assign a lead professional for")
    nhs_number = patient.nhs_number
    name = plan_content.clean_text(name, "the lead professional's name", plan_content.NAME_LIMIT)
    if name is not None and role not in LEAD_PROFESSIONAL_ROLES:
        raise InvalidCarePlan(
            f"The lead professional's role must be one of {', '.join(LEAD_PROFESSIONAL_ROLES)}."
        )
    role = role if name is not None else None
    current = lead_of(session, nhs_number)
    if current["version"] != expected_version:
        _raise_stale(session, "lead professional", nhs_number, expected_version, current)
    if current["version"] and current["name"] == name and current["role"] == role:
        return current
    now = moment(at)
    if not versioned_write(session, LeadProfessional, nhs_number, expected_version,
                           {"name": name, "role": role, "updated_at": now, "updated_by": user.username}):
        _raise_stale(session, "lead professional", nhs_number, expected_version, lead_of(session, nhs_number))
    session.add(LeadProfessionalHistory(nhs_number=nhs_number, version=expected_version + 1, name=name,
                                        role=role, changed_at=now, changed_by=user.username))
    saved = lead_of(session, nhs_number)
    audit.record(
        session, user, "lead_professional_assign", "lead_professional", nhs_number,
        before={k: current[k] for k in (*LEAD_FIELDS, "version")} if current["version"] else None,
        after={k: saved[k] for k in (*LEAD_FIELDS, "version")},
    )
    return saved


def _raise_stale(session: Session, what: str, nhs_number: str, expected_version: int, current: dict):
    if what == "care plan":
        old = next((h for h in plan_history(session, nhs_number) if h["version"] == expected_version),
                   {**EMPTY_PLAN})
        fields = PLAN_FIELDS
        current_cmp = {**current, "status": current.get("stored_status", current["status"])}
    else:
        old = next((h for h in lead_history(session, nhs_number) if h["version"] == expected_version),
                   {**EMPTY_LEAD})
        fields, current_cmp = LEAD_FIELDS, current
    raise StaleEditError(what, expected_version, current, changed_fields(old, current_cmp, fields))
