"""Clinical judgement about who is in the proactive-care programme, beside the flags.

NHS England's guidance finds the cohort with population-health tools *and* clinical judgement: a
practice or MDT user may add a person the flags missed, or exclude a flagged person (end-of-life
care already in place, declined, not appropriate), each with a reason, a note and a review date.
One decision per person, versioned like care plans (a stale save raises ``StaleEditError``) and
audited. Decisions: ``include`` (in the programme although not flagged), ``exclude`` (out of the
given flags' groups), ``ended`` (the earlier decision no longer applies).

Coverage counts people added by judgement as their own group (``JUDGEMENT_GROUP``) and leaves
excluded people out of the denominators of the flags they were excluded from; the SQL clauses and
the month-by-month masks for that live here so ``coverage.py`` only asks "who is in group g".
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, String, and_, cast, or_, select
from sqlalchemy.orm import Session

from features.errors import UserInputError
from features.flags import FLAG_NAMES, flag_labels as labels_at
from app.settings import today as app_today
from app.db import require_write_session
from app.services import audit, plan_content
from app.services.access import CurrentUser, check_person_access, require
from app.services.permissions import Permission
from app.services.versioning import (
    StaleEditError, changed_fields, current_row, day_of, moment, versioned_write,
)
from app.store import CohortDecision, CohortDecisionHistory, Score, ScoreRun

JUDGEMENT_GROUP = "clinical_judgement"
JUDGEMENT_LABEL = "Added by clinical judgement"
INCLUDE_REASONS = {
    "clinical_concern": "Clinical concern the flags do not show",
    "recent_change": "Recent decline or change in circumstances",
    "social_concern": "Concern from the person, a carer or social care",
    "other": "Another reason (say which in the note)",
}
EXCLUDE_REASONS = {
    "end_of_life": "End-of-life care already in place",
    "declined": "Declined proactive care",
    "not_appropriate": "Not appropriate (say why in the note)",
}
NOTE_NEEDED = frozenset({"other", "not_appropriate"})
DECISION_LABELS = {"include": JUDGEMENT_LABEL, "exclude": "Excluded by clinical judgement", "ended": "No decision"}
DECISION_FIELDS = ("decision", "reason", "note", "flags", "review_on")
EMPTY_DECISION = {"decision": None, "reason": None, "note": None, "flags": [], "review_on": None,
                  "decided_on": None, "version": 0, "updated_at": None, "updated_by": None}


class InvalidDecision(UserInputError):
    """A clinical-judgement decision the rules do not allow (one sentence saying which)."""


def reason_label(reason: str | None) -> str:
    return {**INCLUDE_REASONS, **EXCLUDE_REASONS}.get(reason or "", reason or "")


def _values(row) -> dict:
    return {"decision": row.decision, "reason": row.reason, "note": row.note, "flags": list(row.flags or []),
            "review_on": row.review_on, "decided_on": row.decided_on}


def decision_of(session: Session, nhs_number: str, today: date | None = None) -> dict:
    """The person's current decision (the caller has checked access); ``in_force`` and
    ``review_due`` say whether it applies and whether its review date has passed."""
    row = current_row(session, CohortDecision, nhs_number)
    values = dict(EMPTY_DECISION) if row is None else {
        **_values(row), "version": row.version, "updated_at": row.updated_at, "updated_by": row.updated_by}
    today = today or app_today()
    values["in_force"] = values["decision"] in ("include", "exclude")
    values["review_due"] = bool(values["in_force"] and values["review_on"] and values["review_on"] < today)
    return values


def decision_history(session: Session, nhs_number: str) -> list[dict]:
    rows = session.scalars(select(CohortDecisionHistory).where(CohortDecisionHistory.nhs_number == nhs_number)
                           .order_by(CohortDecisionHistory.version))
    return [{**_values(r), "version": r.version, "changed_at": r.changed_at, "changed_by": r.changed_by}
            for r in rows]


def get_decision(session: Session, user: CurrentUser, nhs_number: str, today: date | None = None) -> dict:
    patient = check_person_access(session, user, nhs_number, doing="open the programme decision of")
    decision = decision_of(session, patient.nhs_number, today)
    audit.record(session, user, "view", "cohort_decision", patient.nhs_number, detail=f"version {decision['version']}")
    return decision


def _current_flags(session: Session, nhs_number: str) -> tuple[ScoreRun | None, list[str]]:
    run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
    if run is None:
        return None, []
    score = session.get(Score, (run.id, nhs_number))
    return run, run.flags_of(score.flags) if score is not None else []


def _clean(session: Session, nhs_number: str, decision: str, reason, note, review_on, flags, today: date) -> dict:
    note = plan_content.clean_text(note, "the note", plan_content.TEXT_LIMIT, multiline=True)
    if decision == "ended":
        return {"decision": "ended", "reason": None, "note": note, "flags": [], "review_on": None}
    run, held = _current_flags(session, nhs_number)
    labels = labels_at(run.top_cutoffs if run is not None else None)
    if decision == "include":
        reasons = INCLUDE_REASONS
        if held:
            raise InvalidDecision(
                f"This person is already flagged ({', '.join(labels[f] for f in held)}), so there is no need to add them.")
        flags = []
    elif decision == "exclude":
        reasons = EXCLUDE_REASONS
        if not held:
            raise InvalidDecision("Only a flagged person can be excluded; this person has no flag in the current score run.")
        flags = list(dict.fromkeys(held if flags is None else flags))
        if not flags:
            raise InvalidDecision("Choose the flags this person is to be excluded from.")
        if not set(flags) <= set(held):
            other = ", ".join(labels.get(f, f) for f in flags if f not in held)
            raise InvalidDecision(f"This person is not flagged as {other}, so they cannot be excluded from it.")
    else:
        raise InvalidDecision(f"A programme decision is include, exclude or ended, not {decision!r}.")
    if reason not in reasons:
        raise InvalidDecision(f"Give a reason: one of {'; '.join(reasons.values())}.")
    if reason in NOTE_NEEDED and note is None:
        raise InvalidDecision(f"Say why in the note ({reasons[reason]}).")
    review = plan_content.iso_day(review_on, "the review date")
    if review is None or date.fromisoformat(review) <= today:
        raise InvalidDecision("Give a review date after today for this decision.")
    return {"decision": decision, "reason": reason, "note": note, "flags": flags,
            "review_on": date.fromisoformat(review)}


def decide(
    session: Session,
    user: CurrentUser,
    nhs_number: str,
    expected_version: int,
    decision: str,
    *,
    reason: str | None = None,
    note: str | None = None,
    review_on=None,
    flags: list[str] | None = None,
    today: date | None = None,
    at: datetime | None = None,
) -> dict:
    """Record a clinical-judgement decision (one event: added, excluded or ended) for a person.

    ``flags``: the flags an exclusion applies to (default: every flag the person has now).
    Raises ``StaleEditError`` if the decision changed since ``expected_version`` (0 = none yet),
    ``InvalidDecision`` for a decision the rules do not allow, ``AccessDenied`` out of scope.
    """
    require_write_session(session)
    today = day_of(today, at)
    require(session, user, Permission.JUDGE_COHORT, entity="cohort_decision")
    patient = check_person_access(session, user, nhs_number, doing="record a programme decision for")
    nhs_number = patient.nhs_number
    current = decision_of(session, nhs_number, today)
    if current["version"] != expected_version:
        _raise_stale(session, nhs_number, expected_version, current)
    if decision == "ended" and not current["in_force"]:
        raise InvalidDecision("There is no decision in force to end for this person.")
    new = {**_clean(session, nhs_number, decision, reason, note, review_on, flags, today), "decided_on": today}
    now = moment(at)
    if not versioned_write(session, CohortDecision, nhs_number, expected_version,
                           {**new, "updated_at": now, "updated_by": user.username}):
        _raise_stale(session, nhs_number, expected_version, decision_of(session, nhs_number, today))
    session.add(CohortDecisionHistory(nhs_number=nhs_number, version=expected_version + 1, changed_at=now,
                                      changed_by=user.username, **new))
    saved = decision_of(session, nhs_number, today)
    audit.record(session, user, f"cohort_{decision}", "cohort_decision", nhs_number,
                 before={k: current[k] for k in (*DECISION_FIELDS, "version")} if current["version"] else None,
                 after={k: saved[k] for k in (*DECISION_FIELDS, "version")})
    return saved


def _raise_stale(session: Session, nhs_number: str, expected_version: int, current: dict):
    old = next((h for h in decision_history(session, nhs_number) if h["version"] == expected_version),
               dict(EMPTY_DECISION))
    raise StaleEditError("programme decision", expected_version, current,
                         changed_fields(old, current, DECISION_FIELDS))


# ------------------------------------------------------------------ groups for lists and coverage
def coverage_groups() -> tuple[str, ...]:
    """The groups coverage reports: every flag of the registry, then people added by judgement."""
    return (*FLAG_NAMES, JUDGEMENT_GROUP)


def group_labels(run: ScoreRun | None) -> dict[str, str]:
    return {**labels_at(run.top_cutoffs if run is not None else None), JUDGEMENT_GROUP: JUDGEMENT_LABEL}


def _is(decision: str) -> ColumnElement[bool]:
    # NULL-safe: a person without a decision row (outer join) is neither
    return and_(CohortDecision.decision.is_not(None), CohortDecision.decision == decision)


def excluded_from(flag: str) -> ColumnElement[bool]:
    """On a query outer-joined to ``CohortDecision``: excluded from ``flag`` by judgement."""
    return and_(_is("exclude"), cast(CohortDecision.flags, String).like(f'%"{flag}"%'))


def added() -> ColumnElement[bool]:
    return _is("include")


def _added_ids():
    return select(CohortDecision.nhs_number).where(_is("include"))


def in_programme() -> ColumnElement[bool]:
    """On a query over ``Score``: flagged, or added by judgement (a look-up on the score's primary
    key, so the flagged index still serves the flagged part)."""
    return or_(Score.flagged, Score.nhs_number.in_(_added_ids()))


def programme_parts(session: Session, run: ScoreRun) -> list[ColumnElement[bool]]:
    """``in_programme`` as disjoint parts for counts over many people: the flagged, then (when
    anyone is) the people added by judgement who are not flagged, by practice and NHS number, so
    each part's query keeps the (run, practice, flagged) index where one OR scans the whole run
    (coverage at 100,000 people: bench/bench_careplans.py and docs/data.md)."""
    added = session.execute(select(Score.practice_code, Score.nhs_number).where(
        Score.run_id == run.id, ~Score.flagged, Score.nhs_number.in_(_added_ids()))).all()
    if not added:
        return [Score.flagged]
    return [Score.flagged, and_(Score.practice_code.in_(sorted({p for p, _ in added})),
                                Score.nhs_number.in_(sorted(n for _, n in added)))]


def member_of(run: ScoreRun, group: str) -> ColumnElement[bool]:
    """In coverage group ``group`` of ``run``: added by judgement, or flagged and not excluded from it."""
    if group == JUDGEMENT_GROUP:
        return added()
    return and_(run.has_flag(group), ~excluded_from(group))


def ever_decided() -> ColumnElement[bool]:
    """``Score`` rows of anyone who has had a decision (the trend's people besides the flagged)."""
    return Score.nhs_number.in_(select(CohortDecisionHistory.nhs_number))


def history_frame(session: Session) -> pd.DataFrame:
    """Every saved decision (the trend rebuilds who was in force at each month end)."""
    rows = session.execute(select(
        CohortDecisionHistory.nhs_number, CohortDecisionHistory.version, CohortDecisionHistory.decision,
        CohortDecisionHistory.flags, CohortDecisionHistory.changed_at)).all()
    frame = pd.DataFrame(rows, columns=["nhs_number", "version", "decision", "flags", "changed_at"])
    frame["changed_at"] = pd.to_datetime(frame["changed_at"], utc=True)
    return frame


def group_masks(people: pd.DataFrame, flag_names: list[str], history: pd.DataFrame, day: date) -> dict[str, np.ndarray]:
    """For people (``nhs_number``, ``flags`` bits in ``flag_names`` order) at the end of ``day``:
    a boolean mask per coverage group, with the decisions in force then."""
    cutoff = pd.Timestamp(datetime.combine(day, time.max, timezone.utc))
    latest = history[history["changed_at"] <= cutoff].sort_values("version").groupby("nhs_number").tail(1)
    ids = people["nhs_number"].astype(object)
    bits = people["flags"].to_numpy(dtype="int64")
    added_ids = set(latest.loc[latest["decision"] == "include", "nhs_number"])
    excluded = latest[latest["decision"] == "exclude"]
    masks = {}
    for flag in FLAG_NAMES:
        held = (bits & (1 << flag_names.index(flag))) != 0 if flag in flag_names else np.zeros(len(bits), bool)
        out = set(excluded.loc[excluded["flags"].map(lambda names, f=flag: f in (names or [])), "nhs_number"])
        masks[flag] = held & ~ids.isin(list(out)).to_numpy()
    masks[JUDGEMENT_GROUP] = ids.isin(list(added_ids)).to_numpy()
    return masks
