"""Care navigator caseloads: my people (anything overdue first: a review, an action or a
follow-up of their plan), flagged people with no plan yet, capacity and reassignment.

Plain Python below the pages: every read is limited by ``access.person_scope`` and every change is
written to the audit trail. A person is on at most one navigator's caseload
(``CaseloadAssignment`` is keyed by NHS number); reassigning carries the row's version so two
people reassigning at once cannot silently overwrite each other.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from features.errors import UserInputError
from app.settings import today as app_today
from app.db import require_write_session
from app.services import audit, plan_content
from app.services.careplans import StaleEditError, derived_statuses
from app.services.versioning import moment
from app.services.access import (
    CurrentUser,
    check_person_access,
    person_scope,
    refuse,
    require,
)
from app.services.permissions import Permission, Role, allowed, roles_with
from app.store import (
    CarePlan, CaseloadAssignment, LeadProfessional, Patient, Score, ScoreRun, User,
)

MAX_CAPACITY = 1000

CASELOAD_COLUMNS = [
    "nhs_number", "name", "practice_code", "probability", "flagged", "plan_status",
    "next_review", "review_overdue", "overdue_actions", "overdue_follow_ups", "overdue", "overdue_summary",
    "lead_name", "lead_role", "navigator", "assigned_at", "assignment_version",
]


def current_run_id(session: Session) -> int | None:
    return session.scalar(select(ScoreRun.id).where(ScoreRun.is_current).order_by(ScoreRun.id.desc()))


def _people_query(session: Session, user: CurrentUser, today: date):
    run_id = current_run_id(session)
    return (
        select(
            Patient.nhs_number,
            func.coalesce(Patient.given_name, "").label("given_name"),
            func.coalesce(Patient.family_name, "").label("family_name"),
            Patient.practice_code,
            Score.probability,
            func.coalesce(Score.flagged, False).label("flagged"),
            CarePlan.status.label("stored_status"),
            CarePlan.next_review,
            CarePlan.actions,
            CarePlan.follow_ups,
            LeadProfessional.name.label("lead_name"),
            LeadProfessional.role.label("lead_role"),
            CaseloadAssignment.navigator_username.label("navigator"),
            CaseloadAssignment.assigned_at,
            CaseloadAssignment.version.label("assignment_version"),
        )
        .select_from(Patient)
        .outerjoin(Score, and_(Score.nhs_number == Patient.nhs_number, Score.run_id == run_id))
        .outerjoin(CarePlan, CarePlan.nhs_number == Patient.nhs_number)
        .outerjoin(LeadProfessional, LeadProfessional.nhs_number == Patient.nhs_number)
        .outerjoin(CaseloadAssignment, CaseloadAssignment.nhs_number == Patient.nhs_number)
        .where(person_scope(user))
    )


def _frame(rows, today: date) -> pd.DataFrame:
    frame = pd.DataFrame([dict(r._mapping) for r in rows])
    if frame.empty:
        return pd.DataFrame(columns=CASELOAD_COLUMNS)
    frame["name"] = (frame.pop("given_name") + " " + frame.pop("family_name")).str.strip()
    frame["plan_status"] = derived_statuses(frame.pop("stored_status"), frame["next_review"], today)
    frame["review_overdue"] = frame["plan_status"].eq("review_due")
    frame["overdue_actions"] = [len(plan_content.overdue_items(a if isinstance(a, list) else [], today))
                                for a in frame.pop("actions")]
    frame["overdue_follow_ups"] = [len(plan_content.overdue_items(f if isinstance(f, list) else [], today))
                                   for f in frame.pop("follow_ups")]
    frame["overdue"] = frame["review_overdue"] | (frame["overdue_actions"] > 0) | (frame["overdue_follow_ups"] > 0)
    frame["overdue_summary"] = [
        overdue_in_words(review, actions, follow_ups)
        for review, actions, follow_ups in zip(frame["review_overdue"], frame["overdue_actions"],
                                               frame["overdue_follow_ups"])
    ]
    return frame[CASELOAD_COLUMNS]


def overdue_in_words(review: bool, actions: int, follow_ups: int) -> str:
    """ "Review, 2 actions, 1 follow-up" (empty when nothing is overdue)."""
    parts = ["Review"] if review else []
    if actions:
        parts.append(f"{actions} action{'s' if actions != 1 else ''}")
    if follow_ups:
        parts.append(f"{follow_ups} follow-up{'s' if follow_ups != 1 else ''}")
    return ", ".join(parts)


def my_caseload(
    session: Session, user: CurrentUser, navigator_username: str | None = None,
    today: date | None = None,
) -> pd.DataFrame:
    """A navigator's people: anything overdue first (a review, an action or a follow-up), then no
    plan yet, then by risk (highest first).

    Navigators see their own caseload; practice and MDT users may look at a navigator's caseload,
    limited to their own practices' people.
    """
    require(session, user, Permission.SEE_CASELOADS, doing="see a navigator's caseload")
    today = today or app_today()
    navigator_username = navigator_username or user.username
    if user.can(Permission.HOLD_CASELOAD) and navigator_username != user.username:
        refuse(session, user, "Care navigators can only open their own caseload.", "caseload", navigator_username)
    query = _people_query(session, user, today).where(CaseloadAssignment.navigator_username == navigator_username)
    frame = _frame(session.execute(query), today)
    if not frame.empty:  # overdue reviews first, then no plan yet, then the rest; soonest review, highest risk
        urgency = frame["plan_status"].map({"none": 1}).fillna(2).where(~frame["overdue"], 0)
        order = pd.DataFrame({"urgency": urgency, "review": pd.to_datetime(frame["next_review"]),
                              "risk": -frame["probability"].astype(float)})
        frame = frame.loc[order.sort_values(["urgency", "review", "risk"], na_position="last").index]
        frame = frame.reset_index(drop=True)
    audit.record(session, user, "caseload_view", "caseload", navigator_username,
                 detail=f"{len(frame)} people")
    return frame


def flagged_without_plan(
    session: Session, user: CurrentUser, today: date | None = None, limit: int = 500
) -> pd.DataFrame:
    """Flagged people at this user's practices with no care plan yet, highest risk first."""
    require(session, user, Permission.SEE_CASELOADS, doing="see people with no care plan")
    today = today or app_today()
    query = (
        # the practice filter on scores lets the database use the (run, practice, flagged) index
        _people_query(session, user, today).where(Score.flagged, CarePlan.nhs_number.is_(None),
                    Score.practice_code.in_(sorted(user.practice_codes)),
                    Patient.practice_code.in_(sorted(user.practice_codes)))
        .order_by(Score.probability.desc())
        .limit(limit)
    )
    frame = _frame(session.execute(query), today)
    audit.record(session, user, "list_view", "no_plan_list", None, detail=f"{len(frame)} people")
    return frame


def navigator_capacity(session: Session, user: CurrentUser) -> pd.DataFrame:
    """Navigators sharing a practice with this user: caseload size, capacity and whether over it."""
    require(session, user, Permission.SEE_CAPACITY)
    counts = (
        select(CaseloadAssignment.navigator_username, func.count().label("people"))
        .group_by(CaseloadAssignment.navigator_username)
        .subquery()
    )
    rows = session.execute(
        select(User.username, User.display_name, User.practice_codes, User.caseload_capacity,
               func.coalesce(counts.c.people, 0).label("people"))
        .outerjoin(counts, counts.c.navigator_username == User.username)
        .where(User.role.in_(roles_with(Permission.HOLD_CASELOAD)), User.active)
        .order_by(User.username)
    )
    frame = pd.DataFrame(
        [dict(r._mapping) for r in rows],
        columns=["username", "display_name", "practice_codes", "caseload_capacity", "people"],
    )
    if user.sees_people:  # the care team: navigators sharing a practice; an administrator: all
        shares = frame["practice_codes"].map(lambda codes: bool(set(codes or ()) & user.practice_codes))
        frame = frame[shares]
    frame = frame.assign(
        over_capacity=frame["caseload_capacity"].notna() & (frame["people"] > frame["caseload_capacity"]),
        practice_codes=frame["practice_codes"].map(lambda codes: ", ".join(codes or ())),
    )
    return frame.reset_index(drop=True)


def _navigator(session: Session, username: str) -> User:
    row = session.get(User, (username or "").strip())
    if row is None or not row.active or not allowed(Role(row.role), Permission.HOLD_CASELOAD):
        raise UserInputError(f"{username!r} is not an active care navigator.")
    return row


def assign_to_navigator(
    session: Session, user: CurrentUser, nhs_number: str, navigator_username: str,
    expected_version: int | None = None, *, at=None,
) -> dict:
    """Put a person on a navigator's caseload (or move them from another navigator).

    ``expected_version`` is the assignment version the form showed (None or 0 when it showed no
    navigator); if the row changed since, ``careplans.StaleEditError`` is raised and nothing changes.
    Returns the new assignment with ``over_capacity`` so the page can warn.
    """
    require_write_session(session)
    require(session, user, Permission.SEE_CASELOADS, doing="assign people to a care navigator")
    patient = check_person_access(session, user, nhs_number, doing="assign")
    navigator = _navigator(session, navigator_username)
    if patient.practice_code not in (navigator.practice_codes or ()):
        raise UserInputError(
            f"{navigator.display_name} does not work with practice {patient.practice_code}."
        )
    current = session.get(CaseloadAssignment, patient.nhs_number)
    before = None
    if current is None:
        if expected_version:
            _raise_stale(expected_version, None)
        current = CaseloadAssignment(
            nhs_number=patient.nhs_number, navigator_username=navigator.username,
            assigned_by=user.username, assigned_at=moment(at), version=1,
        )
        session.add(current)
        session.flush()
    else:
        before = {"navigator": current.navigator_username, "version": current.version}
        if expected_version != current.version:
            _raise_stale(expected_version, current)
        if current.navigator_username == navigator.username:
            return _assignment_result(session, navigator, patient.nhs_number, current.version)
        result = session.execute(
            update(CaseloadAssignment)
            .where(CaseloadAssignment.nhs_number == patient.nhs_number,
                   CaseloadAssignment.version == expected_version)
            .values(navigator_username=navigator.username, assigned_by=user.username,
                    assigned_at=moment(at), version=expected_version + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            session.refresh(current)
            _raise_stale(expected_version, current)
        session.expire(current)
    after = {"navigator": navigator.username, "version": current.version}
    audit.record(session, user, "caseload_assign", "caseload_assignment", patient.nhs_number,
                 before=before, after=after)
    return _assignment_result(session, navigator, patient.nhs_number, current.version)


def _assignment_result(session: Session, navigator: User, nhs_number: str, version: int) -> dict:
    people = session.scalar(
        select(func.count()).select_from(CaseloadAssignment)
        .where(CaseloadAssignment.navigator_username == navigator.username)
    )
    capacity = navigator.caseload_capacity
    return {
        "navigator": navigator.username, "version": version, "nhs_number": nhs_number,
        "people": people, "capacity": capacity,
        "over_capacity": capacity is not None and people > capacity,
    }


def _raise_stale(expected_version: int | None, current: CaseloadAssignment | None):
    values = {"navigator": None, "version": 0, "updated_by": None}
    if current is not None:
        values = {"navigator": current.navigator_username, "version": current.version,
                  "updated_by": current.assigned_by}
    raise StaleEditError("caseload assignment", expected_version or 0, values, ["navigator"])


def set_capacity(session: Session, user: CurrentUser, navigator_username: str, capacity) -> int:
    """A navigator sets their own capacity (admins use the users service for anyone)."""
    require_write_session(session)
    require(session, user, Permission.HOLD_CASELOAD, doing="set a caseload capacity")
    if navigator_username != user.username:
        refuse(session, user, "Care navigators can only set their own caseload capacity.", "user",
               navigator_username)
    try:
        value = int(capacity)
    except (TypeError, ValueError):
        raise UserInputError(f"The capacity {capacity!r} must be a whole number of people.") from None
    if not 1 <= value <= MAX_CAPACITY:
        raise UserInputError(f"The capacity {value} must be between 1 and {MAX_CAPACITY} people.")
    row = _navigator(session, navigator_username)
    before = {"caseload_capacity": row.caseload_capacity}
    row.caseload_capacity = value
    session.flush()
    audit.record(session, user, "capacity_set", "user", row.username, before=before,
                 after={"caseload_capacity": value})
    return value
