"""Holistic assessment: a Comprehensive Geriatric Assessment's domains recorded per person, with its
date and author. Each assessment is one event, appended and never changed, so the history is every
assessment in date order; a later assessment supersedes an earlier one without erasing it.

The domains and their items are ``DOMAINS`` (one owner: forms, the patient page, the MDT agenda and
the printable plan read it). Each item gets a finding (``FINDINGS``) and an optional note; "needs
action" needs a note saying what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import require_write_session
from app.services import audit, plan_content
from app.services.access import CurrentUser, check_person_access, require
from app.services.careplans import PROFESSIONAL_ROLES
from app.services.permissions import Permission
from app.services.plan_content import InvalidCarePlan
from app.services.versioning import day_of, moment
from app.store import Assessment


@dataclass(frozen=True)
class Item:
    name: str
    label: str
    prompt: str  # what the assessor looks at, in plain words


@dataclass(frozen=True)
class Domain:
    name: str
    label: str
    items: tuple[Item, ...]


DOMAINS: tuple[Domain, ...] = (
    Domain("medical", "Health and medicines", (
        Item("conditions", "Long-term conditions", "conditions reviewed, symptoms, recent admissions"),
        Item("medicines", "Medicines review", "a structured medication review: what is taken, side effects, "
             "what could stop"),
    )),
    Domain("functional", "Getting about and daily living", (
        Item("mobility", "Mobility", "walking, transfers, aids"),
        Item("falls", "Falls", "falls in the last year, fear of falling"),
        Item("daily_living", "Daily living", "washing, dressing, eating, continence, managing the home"),
    )),
    Domain("psychological", "Mood and memory", (
        Item("mood", "Mood", "low mood, anxiety"),
        Item("cognition", "Memory and thinking", "memory, confusion, capacity"),
    )),
    Domain("social", "Family, carers and money", (
        Item("carers", "Carers and support", "who helps, how the carer is coping"),
        Item("isolation", "Loneliness", "contact with others, isolation"),
        Item("finances", "Money and benefits", "worries about money, benefits claimed"),
    )),
    Domain("environment", "Home", (
        Item("home", "Home and housing", "heating, stairs, adaptations"),
        Item("safety", "Safety at home", "hazards, alarms, key safe"),
    )),
)
ITEMS: dict[str, Item] = {item.name: item for domain in DOMAINS for item in domain.items}
FINDINGS = {
    "no_concern": "No concerns",
    "some_concern": "Some concerns",
    "needs_action": "Needs action",
    "not_assessed": "Not assessed",
}
ASSESSOR_ROLES = PROFESSIONAL_ROLES


class InvalidAssessment(InvalidCarePlan):
    """An assessment that cannot be recorded as given (one sentence saying what and where)."""


def _snapshot(row: Assessment) -> dict:
    return {"assessment_id": row.id, "assessed_on": row.assessed_on, "assessor_name": row.assessor_name,
            "assessor_role": row.assessor_role, "findings": dict(row.findings or {}),
            "what_matters": row.what_matters, "recorded_at": row.recorded_at, "recorded_by": row.recorded_by}


def assessments_of(session: Session, nhs_number: str) -> list[dict]:
    """Every assessment of a person, newest first (the caller has already checked access)."""
    rows = session.scalars(select(Assessment).where(Assessment.nhs_number == nhs_number)
                           .order_by(Assessment.assessed_on.desc(), Assessment.id.desc()))
    return [_snapshot(row) for row in rows]


def list_assessments(session: Session, user: CurrentUser, nhs_number: str) -> list[dict]:
    patient = check_person_access(session, user, nhs_number, doing="open the assessments of")
    found = assessments_of(session, patient.nhs_number)
    audit.record(session, user, "view", "assessment", patient.nhs_number, detail=f"{len(found)} assessments")
    return found


def needing_action(assessment: dict | None) -> list[str]:
    """The labels of the items an assessment found needing action, in ``DOMAINS`` order."""
    findings = (assessment or {}).get("findings") or {}
    return [ITEMS[name].label for name in ITEMS if (findings.get(name) or {}).get("finding") == "needs_action"]


def _clean_findings(findings: Any) -> dict:
    if not isinstance(findings, dict):
        raise InvalidAssessment("An assessment's findings must say, for each item, a finding and a note.")
    unknown = sorted(set(findings) - set(ITEMS))
    if unknown:
        raise InvalidAssessment(f"An assessment has no item(s) {', '.join(unknown)}; use {', '.join(ITEMS)}.")
    cleaned = {}
    for name, item in ITEMS.items():
        given = findings.get(name) or {}
        if isinstance(given, str):
            given = {"finding": given}
        finding = given.get("finding") or "not_assessed"
        if finding not in FINDINGS:
            raise InvalidAssessment(
                f"The finding for {item.label} must be one of {', '.join(FINDINGS.values())}, not {finding!r}.")
        note = plan_content.clean_text(given.get("note"), f"the note on {item.label}", plan_content.TEXT_LIMIT,
                                       multiline=True)
        if finding == "needs_action" and note is None:
            raise InvalidAssessment(f"{item.label} needs action: say what in its note.")
        cleaned[name] = {"finding": finding, "note": note}
    if all(value["finding"] == "not_assessed" for value in cleaned.values()):
        raise InvalidAssessment("Record a finding for at least one item of the assessment.")
    return cleaned


def record_assessment(
    session: Session,
    user: CurrentUser,
    nhs_number: str,
    *,
    assessed_on: Any,
    assessor_name: str,
    assessor_role: str,
    findings: dict,
    what_matters: str | None = None,
    today: date | None = None,
    at: datetime | None = None,
) -> dict:
    """Record one holistic assessment (done on ``assessed_on`` by the named assessor); returns it."""
    require_write_session(session)
    require(session, user, Permission.PLAN_CARE, doing="record assessments", entity="assessment")
    today = day_of(today, at)
    patient = check_person_access(session, user, nhs_number, doing="record an assessment for")
    day = plan_content.iso_day(assessed_on, "the assessment date")
    if day is None:
        raise InvalidAssessment("Give the date the assessment was done.")
    day = date.fromisoformat(day)
    if day > today:
        raise InvalidAssessment(f"The assessment date {day.isoformat()} is in the future.")
    if day < patient.date_of_birth:
        raise InvalidAssessment(f"The assessment date {day.isoformat()} is before the person was born.")
    name = plan_content.clean_text(assessor_name, "the assessor's name", plan_content.NAME_LIMIT)
    if name is None:
        raise InvalidAssessment("Name the professional who did the assessment.")
    if assessor_role not in ASSESSOR_ROLES:
        raise InvalidAssessment(f"The assessor's role must be one of {', '.join(ASSESSOR_ROLES)}.")
    row = Assessment(
        nhs_number=patient.nhs_number, assessed_on=day, assessor_name=name, assessor_role=assessor_role,
        findings=_clean_findings(findings),
        what_matters=plan_content.clean_text(what_matters, "what matters to the person", plan_content.TEXT_LIMIT,
                                             multiline=True),
        recorded_at=moment(at), recorded_by=user.username,
    )
    session.add(row)
    session.flush()
    saved = _snapshot(row)
    audit.record(session, user, "assessment_record", "assessment", patient.nhs_number,
                 after={k: v for k, v in saved.items() if k != "recorded_at"})
    return saved
