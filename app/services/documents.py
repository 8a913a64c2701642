"""Documents that leave the app, each scoped and audited: a person's care plan as FHIR R4 (for
another system) or as a printable page written for the person, every plan in a user's scope at
once (``proactive-care careplans export``), and the printable MDT agenda."""

from __future__ import annotations


from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from features.errors import UserInputError
from app import careplan_fhir, printable
from app.settings import today as app_today
from app.presentation import person_name
from app.services import audit, careplans, meetings, plan_content
from app.services.access import CurrentUser, check_person_access, person_scope, require_person_level
from app.services.versioning import day_of, moment
from app.store import CarePlan, CarePlanHistory, Patient, Practice

FORMATS = {"fhir": ("json", "application/fhir+json"), "html": ("html", "text/html")}


@dataclass(frozen=True)
class Document:
    filename: str
    mime: str
    content: bytes


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserInputError(f"The export format must be one of {', '.join(FORMATS)}, not {fmt!r}.")


def care_plan_document(session: Session, user: CurrentUser, nhs_number: str, fmt: str,
                       *, today: date | None = None, at: datetime | None = None) -> Document:
    """One person's care plan as a FHIR R4 Bundle (``fhir``) or a printable page (``html``); audited."""
    _check_format(fmt)
    today = day_of(today, at)
    patient = check_person_access(session, user, nhs_number, doing="export the care plan of")
    plan = careplans.plan_of(session, patient.nhs_number, today)
    if plan["version"] == 0:
        raise UserInputError("This person has no care plan to export yet.")
    lead = careplans.lead_of(session, patient.nhs_number)
    practice = session.get(Practice, patient.practice_code)
    person = {
        "nhs_number": patient.nhs_number, "given_name": patient.given_name, "family_name": patient.family_name,
        "date_of_birth": patient.date_of_birth, "sex": patient.sex, "practice_code": patient.practice_code,
        "practice_name": practice.practice_name if practice else patient.practice_code,
    }
    if fmt == "fhir":
        created = session.scalar(select(CarePlanHistory.changed_at).where(
            CarePlanHistory.nhs_number == patient.nhs_number).order_by(CarePlanHistory.version).limit(1))
        bundle = careplan_fhir.care_plan_bundle(person, plan, lead, created, moment(at))
        careplan_fhir.validate(bundle)
        content = careplan_fhir.to_json(bundle)
    else:
        content = _plan_page(person, plan, lead, today).encode("utf-8")
    audit.record(session, user, "care_plan_export", "care_plan", patient.nhs_number,
                 detail=f"{fmt}, version {plan['version']}")
    extension, mime = FORMATS[fmt]
    return Document(f"care_plan_{patient.nhs_number}.{extension}", mime, content)


def _plan_page(person: dict, plan: dict, lead: dict, today: date) -> str:
    status_words = {"draft": "being written (draft)", "agreed": "agreed", "review_due": "due for review",
                    "closed": "closed"}[plan["status"]]
    return printable.care_plan_html(
        name=person_name(person["given_name"], person["family_name"]), nhs=person["nhs_number"],
        date_of_birth=person["date_of_birth"], practice_name=person["practice_name"], plan=plan,
        status_words=status_words, what_matters=plan.get("what_matters"),
        contingency={key: (plan.get("contingency") or {}).get(key) for key in plan_content.CONTINGENCY_FIELDS},
        actions=plan_content.complete(plan.get("actions"), plan_content.ACTION_KEYS),
        follow_ups=plan_content.complete(plan.get("follow_ups"), plan_content.FOLLOW_UP_KEYS),
        contacts=plan_content.complete(plan.get("contacts"), plan_content.CONTACT_KEYS),
        lead_name=lead.get("name"), lead_role=lead.get("role"),
        lead_words=lead["name"] if lead.get("name") else "your GP practice", printed_on=today,
    )


def plans_in_scope(session: Session, user: CurrentUser, practice_codes: Iterable[str] | None = None) -> list[str]:
    """NHS numbers of everyone with a care plan this user may see (optionally at given practices)."""
    require_person_level(session, user, "export care plans", entity="care_plan")
    query = (select(CarePlan.nhs_number).join(Patient, Patient.nhs_number == CarePlan.nhs_number)
             .where(person_scope(user)).order_by(CarePlan.nhs_number))
    codes = sorted(set(practice_codes or ()))
    if codes:
        unknown = sorted(set(codes) - set(session.scalars(select(Practice.practice_code))))
        if unknown:
            raise UserInputError(f"There is no practice with code {', '.join(unknown)} in the store.")
        query = query.where(Patient.practice_code.in_(codes))
    return list(session.scalars(query))


def export_plans(session: Session, user: CurrentUser, out_dir: Path, fmt: str, *,
                 practice_codes: Iterable[str] | None = None, progress: bool = False) -> list[Path]:
    """Write every care plan in the user's scope to ``out_dir`` (one file per person, each export
    audited); returns the files written."""
    _check_format(fmt)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"{out_dir} is a file, not a folder.")
    people = plans_in_scope(session, user, practice_codes)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for nhs_number in tqdm(people, desc=f"Exporting care plans ({fmt})", unit=" plans", disable=not progress):
        document = care_plan_document(session, user, nhs_number, fmt)
        path = out_dir / document.filename
        path.write_bytes(document.content)
        written.append(path)
    return written


def agenda_document(session: Session, user: CurrentUser, meeting_id: Any, *, today: date | None = None) -> Document:
    """The MDT meeting's agenda as a printable page (the same people and scope as ``meetings.agenda``); audited."""
    today = today or app_today()
    meeting = meetings.get_meeting(session, user, meeting_id)
    frame = meetings.agenda(session, user, meeting.id, today=today)
    practice = session.get(Practice, meeting.practice_code)
    people = []
    for row in frame.to_dict("records"):
        row["plan_words"] = careplans.PLAN_STATUS_LABELS.get(row["plan_status"], row["plan_status"])
        row["outcome_words"] = meetings.OUTCOMES.get(row["outcome"]) if isinstance(row["outcome"], str) else None
        row["outcome_reason"] = row["outcome_reason"] if isinstance(row["outcome_reason"], str) else None
        row["open_actions"] = [{**a, "overdue": plan_content.is_overdue(a, today)}
                               for a in plan_content.complete(row["open_actions"], plan_content.ACTION_KEYS)]
        row["next_review"] = row["next_review"] if isinstance(row["next_review"], date) else None
        row["last_assessed_on"] = row["last_assessed_on"] if isinstance(row["last_assessed_on"], date) else None
        row["what_matters"] = row["what_matters"] if isinstance(row["what_matters"], str) else None
        row["lead_name"] = row["lead_name"] if isinstance(row["lead_name"], str) else None
        people.append(row)
    page = printable.agenda_html(
        practice_name=practice.practice_name if practice else meeting.practice_code,
        practice_code=meeting.practice_code, meeting_date=meeting.meeting_date,
        attendees=", ".join(meeting.attendee_roles or []), people=people, printed_on=today,
    )
    audit.record(session, user, "agenda_export", "mdt_meeting", str(meeting.id), detail=f"html, {len(people)} people")
    return Document(f"mdt_agenda_{meeting.practice_code}_{meeting.meeting_date.isoformat()}.html", "text/html",
                    page.encode("utf-8"))


