"""MDT meetings: create a meeting, put selected people on its agenda, record each person's outcome.

An outcome is one of ``OUTCOMES``. "Lead professional assigned" names a person and a role and is
written through ``careplans.assign_lead_professional`` (so it is versioned and audited like any
other assignment); "care plan started" opens a draft plan when the person has none; "not
appropriate" needs a reason. Agenda items carry a version so two people recording outcomes at the
same meeting cannot overwrite each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from features.errors import UserInputError
from app.db import require_write_session
from app.services import audit, careplans
from app.services.access import (
    CurrentUser,
    check_person_access,
    normalise_nhs_number,
    refuse,
    require,
)
from app.services.permissions import Permission
from app.services.caseload import current_run_id
from app.store import CarePlan, LeadProfessional, MdtAgendaItem, MdtMeeting, Patient, Practice, Score

ATTENDEE_ROLES = careplans.LEAD_PROFESSIONAL_ROLES
OUTCOMES = {
    "lead_assigned": "Lead professional assigned",
    "plan_started": "Care plan started",
    "plan_reviewed": "Care plan reviewed",
    "not_appropriate": "Not appropriate",
}
AGENDA_COLUMNS = [
    "item_id", "position", "nhs_number", "name", "probability", "plan_status", "lead_name",
    "lead_role", "outcome", "outcome_reason", "version",
]


def parse_day(value: Any, what: str) -> date:
    """A date from a date, a datetime or 'YYYY-MM-DD' text; anything else is bad input."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise UserInputError(f"The {what} {value!r} is not a date (YYYY-MM-DD).") from None


def _meeting_dict(row: MdtMeeting) -> dict:
    return {
        "meeting_id": row.id, "practice_code": row.practice_code, "meeting_date": row.meeting_date,
        "attendee_roles": list(row.attendee_roles or []), "created_by": row.created_by,
    }


def _practice_meeting_scope(session: Session, user: CurrentUser, practice_code: str, doing: str) -> None:
    require(session, user, Permission.RUN_MEETINGS, doing=doing, entity="mdt_meeting")
    if practice_code not in user.practice_codes:
        refuse(session, user, f"Practice {practice_code} is not one of your practices.", "mdt_meeting",
               practice_code)


def create_meeting(
    session: Session, user: CurrentUser, practice_code: str, meeting_date: Any,
    attendee_roles: Iterable[str],
) -> dict:
    require_write_session(session)
    practice_code = (practice_code or "").strip()
    if session.get(Practice, practice_code) is None:
        raise UserInputError(f"There is no practice with code {practice_code!r}.")
    _practice_meeting_scope(session, user, practice_code, "create MDT meetings")
    day = parse_day(meeting_date, "meeting date")
    roles = list(dict.fromkeys(attendee_roles or ()))
    unknown = [r for r in roles if r not in ATTENDEE_ROLES]
    if unknown:
        raise UserInputError(
            f"Attendee role(s) {', '.join(unknown)} are not one of {', '.join(ATTENDEE_ROLES)}."
        )
    if not roles:
        raise UserInputError("An MDT meeting needs at least one attendee role.")
    row = MdtMeeting(practice_code=practice_code, meeting_date=day, attendee_roles=roles,
                     created_by=user.username)
    session.add(row)
    session.flush()
    after = _meeting_dict(row)
    audit.record(session, user, "meeting_create", "mdt_meeting", str(row.id), after=after)
    return after


def list_meetings(session: Session, user: CurrentUser, from_date: date | None = None) -> pd.DataFrame:
    """Meetings at this user's practices (optionally from a date on), soonest first, with counts."""
    require(session, user, Permission.RUN_MEETINGS)
    counts = (
        select(MdtAgendaItem.meeting_id, func.count().label("people"),
               func.count(MdtAgendaItem.outcome).label("outcomes"))
        .group_by(MdtAgendaItem.meeting_id).subquery()
    )
    query = (
        select(MdtMeeting, func.coalesce(counts.c.people, 0), func.coalesce(counts.c.outcomes, 0))
        .outerjoin(counts, counts.c.meeting_id == MdtMeeting.id)
        .where(MdtMeeting.practice_code.in_(sorted(user.practice_codes)))
        .order_by(MdtMeeting.meeting_date, MdtMeeting.id)
    )
    if from_date is not None:
        query = query.where(MdtMeeting.meeting_date >= from_date)
    rows = [
        {**_meeting_dict(meeting), "people": people, "outcomes_recorded": outcomes}
        for meeting, people, outcomes in session.execute(query)
    ]
    return pd.DataFrame(rows, columns=["meeting_id", "practice_code", "meeting_date", "attendee_roles",
                                       "created_by", "people", "outcomes_recorded"])


def get_meeting(session: Session, user: CurrentUser, meeting_id: Any) -> MdtMeeting:
    try:
        key = int(meeting_id)
    except (TypeError, ValueError):
        raise UserInputError(f"{meeting_id!r} is not a meeting number.") from None
    row = session.get(MdtMeeting, key)
    if row is None:
        raise UserInputError(f"There is no MDT meeting number {key}.")
    _practice_meeting_scope(session, user, row.practice_code, "open MDT meetings")
    return row


def add_to_agenda(session: Session, user: CurrentUser, meeting_id: Any, nhs_numbers: Iterable[str]) -> int:
    """Add people to a meeting's agenda (people already on it are skipped); returns how many were added."""
    require_write_session(session)
    meeting = get_meeting(session, user, meeting_id)
    wanted = list(dict.fromkeys(normalise_nhs_number(n) for n in nhs_numbers))
    existing = set(session.scalars(
        select(MdtAgendaItem.nhs_number).where(MdtAgendaItem.meeting_id == meeting.id)
    ))
    position = session.scalar(
        select(func.coalesce(func.max(MdtAgendaItem.position), 0)).where(MdtAgendaItem.meeting_id == meeting.id)
    )
    added = []
    for nhs_number in wanted:
        if nhs_number in existing:
            continue
        patient = check_person_access(session, user, nhs_number, doing="put on an MDT agenda")
        if patient.practice_code != meeting.practice_code:
            raise UserInputError(
                f"NHS number {nhs_number} is registered at {patient.practice_code}, not at this "
                f"meeting's practice {meeting.practice_code}."
            )
        position += 1
        session.add(MdtAgendaItem(meeting_id=meeting.id, nhs_number=nhs_number, position=position, version=1))
        added.append(nhs_number)
    session.flush()
    if added:
        audit.record(session, user, "agenda_add", "mdt_meeting", str(meeting.id),
                     after={"nhs_numbers": added})
    return len(added)


def agenda(session: Session, user: CurrentUser, meeting_id: Any, today: date | None = None) -> pd.DataFrame:
    """The meeting's people in agenda order with their risk, plan status, lead and outcome."""
    meeting = get_meeting(session, user, meeting_id)
    today = today or date.today()
    run_id = current_run_id(session)
    query = (
        select(
            MdtAgendaItem.id.label("item_id"), MdtAgendaItem.position, MdtAgendaItem.nhs_number,
            func.coalesce(Patient.given_name, "").label("given_name"),
            func.coalesce(Patient.family_name, "").label("family_name"),
            Score.probability, CarePlan.status.label("stored_status"), CarePlan.next_review,
            LeadProfessional.name.label("lead_name"), LeadProfessional.role.label("lead_role"),
            MdtAgendaItem.outcome, MdtAgendaItem.outcome_reason, MdtAgendaItem.version,
        )
        .join(Patient, Patient.nhs_number == MdtAgendaItem.nhs_number)
        .outerjoin(Score, and_(Score.nhs_number == MdtAgendaItem.nhs_number, Score.run_id == run_id))
        .outerjoin(CarePlan, CarePlan.nhs_number == MdtAgendaItem.nhs_number)
        .outerjoin(LeadProfessional, LeadProfessional.nhs_number == MdtAgendaItem.nhs_number)
        .where(MdtAgendaItem.meeting_id == meeting.id)
        .order_by(MdtAgendaItem.position)
    )
    frame = pd.DataFrame([dict(r._mapping) for r in session.execute(query)])
    if frame.empty:
        return pd.DataFrame(columns=AGENDA_COLUMNS)
    frame["name"] = (frame.pop("given_name") + " " + frame.pop("family_name")).str.strip()
    frame["plan_status"] = careplans.derived_statuses(frame["stored_status"], frame["next_review"], today)
    audit.record(session, user, "agenda_view", "mdt_meeting", str(meeting.id), detail=f"{len(frame)} people")
    return frame[AGENDA_COLUMNS]


def record_outcome(
    session: Session,
    user: CurrentUser,
    item_id: Any,
    expected_version: int,
    outcome: str,
    *,
    lead_name: str | None = None,
    lead_role: str | None = None,
    reason: str | None = None,
) -> dict:
    """Record the MDT's outcome for one agenda item (see the module docstring for what each does)."""
    require_write_session(session)
    item = session.get(MdtAgendaItem, int(item_id)) if str(item_id).isdigit() else None
    if item is None:
        raise UserInputError(f"There is no agenda item number {item_id!r}.")
    meeting = get_meeting(session, user, item.meeting_id)
    if outcome not in OUTCOMES:
        raise UserInputError(f"The outcome must be one of {', '.join(OUTCOMES.values())}.")
    reason = (reason or "").strip() or None
    if outcome == "not_appropriate" and reason is None:
        raise UserInputError("Say why an MDT review is not appropriate for this person.")
    patient = check_person_access(session, user, item.nhs_number, doing="record an MDT outcome for")
    before = {"outcome": item.outcome, "outcome_reason": item.outcome_reason, "version": item.version}
    if expected_version != item.version:
        _raise_stale(item, expected_version)
    if outcome == "lead_assigned":
        if not (lead_name or "").strip():
            raise UserInputError("Name the lead professional the MDT assigned.")
        lead = careplans.get_lead_professional(session, user, patient.nhs_number)
        careplans.assign_lead_professional(
            session, user, patient.nhs_number, lead_name, lead_role, expected_version=lead["version"]
        )
        reason = reason or f"{lead_name.strip()} ({lead_role})"
    elif outcome == "plan_started":
        plan = careplans.get_care_plan(session, user, patient.nhs_number)
        if plan["version"] == 0:
            careplans.save_care_plan(session, user, patient.nhs_number, 0, status="draft")
    result = session.execute(
        update(MdtAgendaItem)
        .where(MdtAgendaItem.id == item.id, MdtAgendaItem.version == expected_version)
        .values(outcome=outcome, outcome_reason=reason, outcome_recorded_by=user.username,
                outcome_recorded_at=datetime.now(timezone.utc), version=expected_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(item)
    if result.rowcount != 1:
        _raise_stale(item, expected_version)
    after = {"outcome": item.outcome, "outcome_reason": item.outcome_reason, "version": item.version}
    audit.record(session, user, "mdt_outcome", "mdt_agenda_item", patient.nhs_number,
                 before=before, after=after, detail=f"meeting {meeting.id}")
    return after


def _raise_stale(item: MdtAgendaItem, expected_version: int):
    current = {"outcome": item.outcome, "outcome_reason": item.outcome_reason, "version": item.version,
               "updated_by": item.outcome_recorded_by}
    raise careplans.StaleEditError("MDT outcome", expected_version, current, ["outcome"])
