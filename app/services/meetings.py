"""MDT meetings: create a meeting, put selected people on its agenda, work from the agenda (each
person's reasons, frailty, current plan and open actions; a printable copy) and record each
person's outcome against their plan.

An outcome is one of ``OUTCOMES``. "Lead professional assigned" names a person and a role and is
written through ``careplans.assign_lead_professional`` (versioned and audited like any other
assignment); "care plan started" opens a draft plan when the person has none; "care plan started"
and "care plan reviewed" may carry what the meeting agreed for the plan (what matters, actions
with owners and due dates, the contingency plan, follow-ups, the next review), saved through
``careplans.save_care_plan`` from the plan version the agenda showed; "not appropriate" needs a
reason. Agenda items carry a version so two people recording outcomes at the same meeting cannot
overwrite each other.

Every read of the agenda goes through ``access.person_scope`` and the meeting's practice: a person
who re-registers at another practice leaves the old practice's agenda.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from features.errors import UserInputError
from features.flags import EFI_CATEGORY_LABELS
from app.settings import today as app_today
from app.db import require_write_session
from app.services import assessments, audit, careplans, cohort, plan_content
from app.services.access import (
    AccessDenied,
    CurrentUser,
    check_person_access,
    normalise_nhs_number,
    person_scope,
    refuse,
    require,
)
from app.services.patients import age_on, current_run, flag_labels, judgement_text, reasons_list
from app.services.permissions import Permission
from app.services.versioning import day_of, moment
from app.store import (
    CarePlan, CohortDecision, LeadProfessional, MdtAgendaItem, MdtMeeting, Patient, Practice, Score,
)

ATTENDEE_ROLES = careplans.PROFESSIONAL_ROLES
OUTCOMES = {
    "lead_assigned": "Lead professional assigned",
    "plan_started": "Care plan started",
    "plan_reviewed": "Care plan reviewed",
    "not_appropriate": "Not appropriate",
}
AGENDA_COLUMNS = [
    "item_id", "position", "nhs_number", "given_name", "family_name", "name", "date_of_birth", "age",
    "probability", "flag_labels", "efi_category", "frailty", "reasons", "judgement", "plan_status",
    "plan_version", "what_matters", "open_actions", "overdue_actions", "has_contingency", "next_review",
    "lead_name", "lead_role", "last_assessed_on", "needs_action", "outcome", "outcome_reason", "version",
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
    attendee_roles: Iterable[str], *, at: datetime | None = None,
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
                     created_by=user.username, created_at=moment(at))
    session.add(row)
    session.flush()
    after = _meeting_dict(row)
    audit.record(session, user, "meeting_create", "mdt_meeting", str(row.id), after=after)
    return after


def _visible_items(user: CurrentUser):
    """Agenda items this user may see: the person is in their scope and still registered at the
    meeting's practice (the one scope check, plus the meeting's own practice)."""
    return (
        select(MdtAgendaItem)
        .join(MdtMeeting, MdtMeeting.id == MdtAgendaItem.meeting_id)
        .join(Patient, Patient.nhs_number == MdtAgendaItem.nhs_number)
        .where(person_scope(user), Patient.practice_code == MdtMeeting.practice_code)
    )


def list_meetings(session: Session, user: CurrentUser, from_date: date | None = None) -> pd.DataFrame:
    """Meetings at this user's practices (optionally from a date on), soonest first, with counts of
    the people on each agenda this user may see."""
    require(session, user, Permission.RUN_MEETINGS)
    visible = _visible_items(user).subquery()
    counts = (
        select(visible.c.meeting_id, func.count().label("people"), func.count(visible.c.outcome).label("outcomes"))
        .group_by(visible.c.meeting_id).subquery()
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


@dataclass
class AgendaAddition:
    """What adding a selection did: who was added, who was already there, who was refused and why."""

    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # NHS number -> why, in words

    def sentence(self) -> str:
        from app.presentation import count, nhs_number

        parts = [f"Added {count(len(self.added))} {'person' if len(self.added) == 1 else 'people'} to the agenda"]
        if self.already:
            parts.append(f"{count(len(self.already))} already on it")
        text = "; ".join(parts) + "."
        if self.refused:
            text += " Not added: " + "; ".join(f"{nhs_number(n)} ({why})" for n, why in self.refused.items()) + "."
        return text


def add_to_agenda(session: Session, user: CurrentUser, meeting_id: Any, nhs_numbers: Iterable[str]) -> AgendaAddition:
    """Add people to a meeting's agenda: the people this user may put on it are added (in the order
    given), people already on it are skipped, and each refused person is named with the reason."""
    require_write_session(session)
    meeting = get_meeting(session, user, meeting_id)
    result = AgendaAddition()
    existing = set(session.scalars(
        select(MdtAgendaItem.nhs_number).where(MdtAgendaItem.meeting_id == meeting.id)
    ))
    position = session.scalar(
        select(func.coalesce(func.max(MdtAgendaItem.position), 0)).where(MdtAgendaItem.meeting_id == meeting.id)
    )
    for given in dict.fromkeys(nhs_numbers):
        try:
            nhs_number = normalise_nhs_number(given)
            patient = check_person_access(session, user, nhs_number, doing="put on an MDT agenda")
        except (UserInputError, AccessDenied) as error:  # refusals are audited by the access check
            result.refused[str(given)] = _why(error)
            continue
        if nhs_number in existing:
            result.already.append(nhs_number)
            continue
        if patient.practice_code != meeting.practice_code:
            result.refused[nhs_number] = (f"registered at {patient.practice_code}, not at this meeting's "
                                          f"practice {meeting.practice_code}")
            continue
        position += 1
        session.add(MdtAgendaItem(meeting_id=meeting.id, nhs_number=nhs_number, position=position, version=1))
        existing.add(nhs_number)
        result.added.append(nhs_number)
    session.flush()
    if result.added or result.refused:
        audit.record(session, user, "agenda_add", "mdt_meeting", str(meeting.id),
                     after={"nhs_numbers": result.added, "refused": sorted(result.refused)})
    return result


def _why(error: Exception) -> str:
    if isinstance(error, AccessDenied) and "not registered at your practices" in str(error):
        return "not registered at your practices"
    if isinstance(error, AccessDenied) and "no person" in str(error):
        return "no such person in the store"
    return str(error).rstrip(".")


def agenda(session: Session, user: CurrentUser, meeting_id: Any, today: date | None = None) -> pd.DataFrame:
    """The meeting's people in agenda order, as the meeting works from them: who they are, their
    risk, flags, frailty and reasons, any programme decision, the current plan (status, what matters,
    open and overdue actions, whether it has a contingency plan, next review), the lead professional,
    the latest assessment and the outcome recorded. People no longer in the user's scope or no longer
    registered at the meeting's practice are left out (``frame.attrs["not_shown"]`` counts them)."""
    meeting = get_meeting(session, user, meeting_id)
    today = today or app_today()
    run = current_run(session)
    query = (
        select(
            MdtAgendaItem.id.label("item_id"), MdtAgendaItem.position, MdtAgendaItem.nhs_number,
            Patient.given_name, Patient.family_name, Patient.date_of_birth,
            Score.probability, Score.flags, Score.efi_category, Score.reasons,
            CarePlan.status.label("stored_status"), CarePlan.next_review, CarePlan.version.label("plan_version"),
            CarePlan.what_matters, CarePlan.actions, CarePlan.contingency,
            LeadProfessional.name.label("lead_name"), LeadProfessional.role.label("lead_role"),
            CohortDecision.decision, CohortDecision.reason.label("decision_reason"),
            MdtAgendaItem.outcome, MdtAgendaItem.outcome_reason, MdtAgendaItem.version,
        )
        .join(Patient, Patient.nhs_number == MdtAgendaItem.nhs_number)
        .outerjoin(Score, and_(Score.nhs_number == MdtAgendaItem.nhs_number,
                               Score.run_id == (run.id if run is not None else None)))
        .outerjoin(CarePlan, CarePlan.nhs_number == MdtAgendaItem.nhs_number)
        .outerjoin(LeadProfessional, LeadProfessional.nhs_number == MdtAgendaItem.nhs_number)
        .outerjoin(CohortDecision, CohortDecision.nhs_number == MdtAgendaItem.nhs_number)
        .where(MdtAgendaItem.meeting_id == meeting.id, person_scope(user),
               Patient.practice_code == meeting.practice_code)
        .order_by(MdtAgendaItem.position)
    )
    rows = [dict(r._mapping) for r in session.execute(query)]
    on_agenda = session.scalar(select(func.count()).select_from(MdtAgendaItem)
                               .where(MdtAgendaItem.meeting_id == meeting.id))
    frame = pd.DataFrame([_agenda_row(session, row, run, today) for row in rows], columns=AGENDA_COLUMNS)
    frame.attrs["not_shown"] = on_agenda - len(frame)
    audit.record(session, user, "agenda_view", "mdt_meeting", str(meeting.id),
                 detail=f"{len(frame)} people: {', '.join(frame['nhs_number'])}" if len(frame) else "0 people")
    return frame


def _agenda_row(session: Session, row: dict, run, today: date) -> dict:
    from app.presentation import person_name

    labels = flag_labels(run)
    held = run.flags_of(row["flags"]) if run is not None and row["flags"] is not None else []
    actions = list(row["actions"] or [])
    latest = next(iter(assessments.assessments_of(session, row["nhs_number"])), None)
    return {
        **{k: row[k] for k in ("item_id", "position", "nhs_number", "given_name", "family_name", "date_of_birth",
                               "probability", "efi_category", "next_review", "what_matters", "lead_name",
                               "lead_role", "outcome", "outcome_reason", "version")},
        "name": person_name(row["given_name"], row["family_name"]),
        "age": age_on(row["date_of_birth"], today),
        "flag_labels": [labels[f] for f in held if f in labels]
                       + ([cohort.JUDGEMENT_LABEL] if row["decision"] == "include" else []),
        "frailty": EFI_CATEGORY_LABELS.get(row["efi_category"] or "", "Not known (under 65 or no eFI)"),
        "reasons": [r["text"] for r in reasons_list(row["reasons"])[:3]],
        "judgement": judgement_text(row["decision"], row["decision_reason"]),
        "plan_status": careplans.derived_status(row["stored_status"], row["next_review"], today),
        "plan_version": int(row["plan_version"] or 0),
        "open_actions": plan_content.open_items(actions),
        "overdue_actions": len(plan_content.overdue_items(actions, today)),
        "has_contingency": plan_content.has_contingency(row["contingency"]),
        "last_assessed_on": latest["assessed_on"] if latest else None,
        "needs_action": assessments.needing_action(latest),
    }


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
    plan: dict | None = None,
    plan_version: int | None = None,
    today: date | None = None,
    at: datetime | None = None,
) -> dict:
    """Record the MDT's outcome for one agenda item (see the module docstring for what each does).

    ``plan``: care-plan fields the meeting agreed (``careplans.PLAN_FIELDS``, plus ``add_actions``
    and ``add_follow_ups``: entries added to the plan's own), saved from ``plan_version`` (the
    version the agenda showed; a newer saved plan raises ``StaleEditError``). Everything is written
    together or nothing is.
    """
    require_write_session(session)
    today = day_of(today, at)
    item = session.get(MdtAgendaItem, int(item_id)) if str(item_id).isdigit() else None
    if item is None:
        raise UserInputError(f"There is no agenda item number {item_id!r}.")
    meeting = get_meeting(session, user, item.meeting_id)
    if outcome not in OUTCOMES:
        raise UserInputError(f"The outcome must be one of {', '.join(OUTCOMES.values())}.")
    reason = plan_content.clean_text(reason, "the reason or note", plan_content.TEXT_LIMIT, multiline=True)
    if outcome == "not_appropriate" and reason is None:
        raise UserInputError("Say why an MDT review is not appropriate for this person.")
    patient = check_person_access(session, user, item.nhs_number, doing="record an MDT outcome for")
    if patient.practice_code != meeting.practice_code:
        raise UserInputError(f"This person is now registered at {patient.practice_code}, not at this meeting's "
                             f"practice {meeting.practice_code}.")
    before = {"outcome": item.outcome, "outcome_reason": item.outcome_reason, "version": item.version}
    if expected_version != item.version:
        _raise_stale(item, expected_version)
    plan = {k: v for k, v in (plan or {}).items() if v not in (None, "", [], {})}
    current_plan = careplans.plan_of(session, patient.nhs_number, today)
    for added, field in (("add_actions", "actions"), ("add_follow_ups", "follow_ups")):
        if added in plan:
            plan[field] = list(plan.get(field, current_plan[field])) + list(plan.pop(added))
    plan_version = current_plan["version"] if plan_version is None else int(plan_version)
    if plan and outcome not in ("plan_started", "plan_reviewed"):
        raise UserInputError("Changes to the care plan are recorded with the outcome 'Care plan started' or "
                             "'Care plan reviewed'.")
    if outcome == "lead_assigned":
        if not (lead_name or "").strip():
            raise UserInputError("Name the lead professional the MDT assigned.")
        lead = careplans.lead_of(session, patient.nhs_number)
        careplans.assign_lead_professional(session, user, patient.nhs_number, lead_name, lead_role,
                                           expected_version=lead["version"], at=at)
        reason = reason or f"{lead_name.strip()} ({lead_role})"
    elif outcome == "plan_reviewed":
        if current_plan["version"] == 0:
            raise UserInputError("This person has no care plan to review: record 'Care plan started' instead.")
        if not plan.get("next_review"):
            raise UserInputError("A care plan review needs the date of the next review.")
    if outcome in ("plan_started", "plan_reviewed") and (plan or current_plan["version"] == 0):
        fields = {"status": "draft", **plan} if current_plan["version"] == 0 else plan
        careplans.save_care_plan(session, user, patient.nhs_number, plan_version, today=today, at=at, **fields)
    result = session.execute(
        update(MdtAgendaItem)
        .where(MdtAgendaItem.id == item.id, MdtAgendaItem.version == expected_version)
        .values(outcome=outcome, outcome_reason=reason, outcome_recorded_by=user.username,
                outcome_recorded_at=moment(at), version=expected_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(item)
    if result.rowcount != 1:
        _raise_stale(item, expected_version)
    after = {"outcome": item.outcome, "outcome_reason": item.outcome_reason, "version": item.version,
             "plan_fields": sorted(plan)}
    audit.record(session, user, "mdt_outcome", "mdt_agenda_item", patient.nhs_number,
                 before=before, after=after, detail=f"meeting {meeting.id}")
    return after


def _raise_stale(item: MdtAgendaItem, expected_version: int):
    current = {"outcome": item.outcome, "outcome_reason": item.outcome_reason, "version": item.version,
               "updated_by": item.outcome_recorded_by}
    raise careplans.StaleEditError("MDT outcome", expected_version, current, ["outcome"])
