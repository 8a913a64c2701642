"""Person-level reads: the flagged list and a person's record, both scoped and audited.

The list holds the current run's flagged people and the people added to the programme by clinical
judgement ("Added by clinical judgement"); people excluded by judgement stay on it, marked as
excluded, so nobody silently drops off a practice's list."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from features.conditions import CONDITION_LABELS
from features.errors import UserInputError
from features.flags import FLAG_NAMES, check_known
from features.flags import flag_labels as labels_at
from model.score_file import cutoffs_in_force
from app.settings import today as app_today
from app.services import assessments, audit, cohort
from app.services.access import (
    CurrentUser,
    check_person_access,
    check_practice_access,
    person_scope,
    require_person_level,
    score_scope,
)
from app.services.careplans import PLAN_STATUSES, derived_statuses, lead_history, lead_of, plan_history, plan_of
from app.store import (
    CarePlan,
    CaseloadAssignment,
    CohortDecision,
    Condition,
    EncounterSummary,
    LeadProfessional,
    Patient,
    Practice,
    Score,
    ScoreRun,
    User,
)

LIST_COLUMNS = (
    "nhs_number", "name", "date_of_birth", "age", "sex", "practice_code", "probability", "percentile",
    "practice_percentile", *FLAG_NAMES, "flag_labels", "efi_category", "reasons", "lead_professional", "lead_professional_role",
    "plan_status", "plan_version", "next_review", "review_due", "navigator", "judgement", "added", "excluded",
)


def current_run(session: Session) -> ScoreRun | None:
    return session.scalar(select(ScoreRun).where(ScoreRun.is_current))


def flag_labels(run: ScoreRun | None) -> dict[str, str]:
    """Each flag's label in registry order; the risk flags say the run's cut-offs ("Top 1.3% risk")."""
    return labels_at(run.top_cutoffs if run is not None else cutoffs_in_force(None))


def list_groups(run: ScoreRun | None) -> dict[str, str]:
    """What the list can be filtered by: every flag, then the people added by clinical judgement."""
    return cohort.group_labels(run)


def judgement_text(decision: str | None, reason: str | None) -> str:
    """How the list shows a clinical-judgement decision in force ("" when there is none)."""
    if decision == "include":
        return cohort.JUDGEMENT_LABEL
    if decision == "exclude":
        return f"Excluded: {cohort.reason_label(reason)}"
    return ""


def age_on(date_of_birth: date, today: date) -> int:
    return today.year - date_of_birth.year - ((today.month, today.day) < (date_of_birth.month, date_of_birth.day))


def reasons_list(raw: str | None) -> list[dict]:
    """The stored reasons as dicts with at least ``text`` (the model also gives ``feature``,
    ``direction``, ``strength`` and ``contribution``); a plain string becomes ``{"text": ...}``."""
    if not isinstance(raw, str) or not raw:  # None, or NaN from a DataFrame: no reasons given
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return [{"text": raw}]
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, dict) and "text" in item else {"text": str(item)} for item in items]


def reasons_text(raw: str | None, top: int = 3) -> str:
    return "; ".join(item["text"] for item in reasons_list(raw)[:top])


def flagged_list(
    session: Session,
    user: CurrentUser,
    flags: list[str] | None = None,
    plan_statuses: list[str] | None = None,
    practice_code: str | None = None,
    search: str | None = None,
    today: date | None = None,
) -> pd.DataFrame:
    """The current run's flagged people this user may see, highest risk first.

    ``flags``: keep people with any of these flags (or ``cohort.JUDGEMENT_GROUP``: added by
    judgement; people excluded from a flag still show, marked); ``plan_statuses``: any of ``PLAN_STATUSES``;
    ``search``: part of a name or the start of an NHS number. One audit row per call.
    """
    require_person_level(session, user, "see the high-risk list", entity="flagged_list")
    today = today or app_today()
    check_known(set(flags or ()) - {cohort.JUDGEMENT_GROUP})
    unknown = set(plan_statuses or ()) - set(PLAN_STATUSES)
    if unknown:
        raise UserInputError(
            f"Unknown care-plan status(es) {', '.join(sorted(unknown))}; use {', '.join(PLAN_STATUSES)}."
        )
    run = current_run(session)
    if run is None:
        return pd.DataFrame(columns=list(LIST_COLUMNS))
    query = (
        select(
            Patient.nhs_number, Patient.given_name, Patient.family_name, Patient.date_of_birth, Patient.sex,
            Patient.practice_code, Score.probability, Score.percentile, Score.practice_percentile,
            Score.flags, Score.efi_category, Score.reasons,
            LeadProfessional.name.label("lead_professional"),
            LeadProfessional.role.label("lead_professional_role"),
            CarePlan.status.label("stored_status"), CarePlan.version.label("plan_version"),
            CarePlan.next_review, CaseloadAssignment.navigator_username.label("navigator"),
            CohortDecision.decision, CohortDecision.reason.label("decision_reason"),
        )
        .join(Score, and_(Score.nhs_number == Patient.nhs_number, Score.run_id == run.id))
        .outerjoin(LeadProfessional, LeadProfessional.nhs_number == Patient.nhs_number)
        .outerjoin(CarePlan, CarePlan.nhs_number == Patient.nhs_number)
        .outerjoin(CaseloadAssignment, CaseloadAssignment.nhs_number == Patient.nhs_number)
        .outerjoin(CohortDecision, CohortDecision.nhs_number == Patient.nhs_number)
        .where(cohort.in_programme(), score_scope(user), person_scope(user))
        .order_by(Score.probability.desc(), Patient.nhs_number)
    )
    if flags:
        query = query.where(or_(*[cohort.added() if f == cohort.JUDGEMENT_GROUP else run.has_flag(f)
                                  for f in flags]))
    if practice_code:
        check_practice_access(session, user, practice_code)
        query = query.where(Score.practice_code == practice_code, Patient.practice_code == practice_code)
    if search and search.strip():
        term = search.strip()
        digits = term.replace(" ", "")
        like = f"%{term.lower()}%"
        conditions = [func.lower(Patient.family_name).like(like), func.lower(Patient.given_name).like(like)]
        if digits.isdigit():
            conditions.append(Patient.nhs_number.like(f"{digits}%"))
        query = query.where(or_(*conditions))
    frame = pd.DataFrame(session.execute(query).mappings().all())
    if frame.empty:
        result = pd.DataFrame(columns=list(LIST_COLUMNS))
    else:
        frame["name"] = frame["family_name"].fillna("").str.upper() + ", " + frame["given_name"].fillna("")
        frame["age"] = [age_on(d, today) for d in frame["date_of_birth"]]
        frame["reasons"] = [reasons_text(r) for r in frame["reasons"]]
        held = [run.flags_of(bits) for bits in frame["flags"]]
        for name in FLAG_NAMES:
            frame[name] = [name in person for person in held]
        labels = flag_labels(run)
        frame["added"] = frame["decision"].eq("include")
        frame["excluded"] = frame["decision"].eq("exclude")
        frame["flag_labels"] = ["; ".join([labels[name] for name in person if name in labels]
                                          + ([cohort.JUDGEMENT_LABEL] if added else []))
                                for person, added in zip(held, frame["added"])]
        frame["judgement"] = [judgement_text(d if isinstance(d, str) else None, r if isinstance(r, str) else None)
                              for d, r in zip(frame["decision"], frame["decision_reason"])]
        frame["plan_status"] = derived_statuses(frame["stored_status"], frame["next_review"], today)
        frame["plan_version"] = frame["plan_version"].fillna(0).astype(int)
        frame["review_due"] = frame["plan_status"] == "review_due"
        if plan_statuses:
            frame = frame[frame["plan_status"].isin(plan_statuses)]
        result = frame.loc[:, list(LIST_COLUMNS)].reset_index(drop=True)
    audit.record(
        session, user, "list_view", "flagged_list", practice_code,
        detail=json.dumps({"rows": len(result), "flags": flags, "plan_statuses": plan_statuses,
                           "search": bool(search)}),
    )
    return result


def patient_record(session: Session, user: CurrentUser, nhs_number: str, today: date | None = None) -> dict:
    """Everything the patient page shows, for one person in the user's scope (audited as one view:
    the record, its care plan, lead professional, assessments and programme decision)."""
    today = today or app_today()
    patient = check_person_access(session, user, nhs_number, doing="open")
    nhs = patient.nhs_number
    practice = session.get(Practice, patient.practice_code)
    run = current_run(session)
    score_row = session.get(Score, (run.id, nhs)) if run is not None else None
    score = None
    if score_row is not None:
        held = run.flags_of(score_row.flags)
        score = {
            "run_id": run.id, "index_date": run.index_date, "scored_at": run.created_at,
            "probability": score_row.probability, "percentile": score_row.percentile,
            "practice_percentile": score_row.practice_percentile, "flagged": score_row.flagged,
            "flags": held, "efi_category": score_row.efi_category,
            "flag_labels": [label for f, label in flag_labels(run).items() if f in held],
        }
    conditions = [
        {"code": c.condition, "label": CONDITION_LABELS.get(c.condition, c.condition),
         "diagnosed_on": c.diagnosed_on}
        for c in session.scalars(select(Condition).where(Condition.nhs_number == nhs).order_by(Condition.diagnosed_on))
    ]
    hospital_use = [
        {"kind": e.kind, "year": e.year, "count": e.count, "last_date": e.last_date}
        for e in session.scalars(
            select(EncounterSummary).where(EncounterSummary.nhs_number == nhs)
            .order_by(EncounterSummary.year.desc(), EncounterSummary.kind)
        )
    ]
    caseload = session.get(CaseloadAssignment, nhs)
    record = {
        "nhs_number": nhs,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "name": f"{(patient.family_name or '').upper()}, {patient.given_name or ''}",
        "date_of_birth": patient.date_of_birth,
        "age": age_on(patient.date_of_birth, today),
        "sex": patient.sex,
        "ethnicity": patient.ethnicity,
        "imd_decile": patient.imd_decile,
        "practice_code": patient.practice_code,
        "practice_name": practice.practice_name if practice else None,
        "pcn_code": patient.pcn_code,
        "care_home": patient.care_home,
        "registered_to": patient.registered_to,
        "date_of_death": patient.date_of_death,
        "score": score,
        "reasons": reasons_list(score_row.reasons) if score_row is not None else [],
        "missing_predictors": [r["text"] for r in reasons_list(score_row.missing_predictors)] if score_row else [],
        "conditions": conditions,
        "hospital_use": hospital_use,
        "lead_professional": lead_of(session, nhs),
        "lead_professional_history": lead_history(session, nhs),
        "care_plan": plan_of(session, nhs, today),
        "care_plan_history": plan_history(session, nhs),
        "assessments": assessments.assessments_of(session, nhs),
        "decision": cohort.decision_of(session, nhs, today),
        "decision_history": cohort.decision_history(session, nhs),
        "navigator": caseload.navigator_username if caseload else None,
        "group_labels": list_groups(run),
    }
    record["display_names"] = display_names(session, _usernames(record))
    audit.record(session, user, "view", "patient", nhs)
    return record


def _usernames(record: dict) -> set[str]:
    names = {record["navigator"]}
    for key in ("care_plan_history", "lead_professional_history", "decision_history"):
        names |= {h["changed_by"] for h in record[key]}
    names |= {a["recorded_by"] for a in record["assessments"]}
    return {n for n in names if n}


def display_names(session: Session, usernames) -> dict[str, str]:
    """Colleagues as people know them (``presentation.user_name`` reads this map)."""
    wanted = sorted(set(usernames))
    if not wanted:
        return {}
    return dict(session.execute(select(User.username, User.display_name).where(User.username.in_(wanted))).all())
