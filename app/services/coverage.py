"""Care-plan coverage: the share of each flagged group with an agreed, in-date plan AND a lead
professional, by practice, PCN and whole area, and month by month. Only disclosed counts leave here.
Who is in each group (the flags, less people excluded by clinical judgement, plus the people added
by judgement as a group of their own) is ``app/services/cohort.py``'s rule.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timezone

import pandas as pd
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from features.errors import UserInputError
from app.settings import today as app_today
from app.exports import csv_text
from app.services import audit, cohort
from app.services.access import CurrentUser, aggregate_practice_codes
from app.services.disclosure import disclose_count, disclosed_percentage
from app.services.patients import current_run
from app.store import (
    CarePlan,
    CarePlanHistory,
    CohortDecision,
    LeadProfessional,
    LeadProfessionalHistory,
    Pcn,
    Practice,
    Score,
    ScoreRun,
)

LEVELS = ("practice", "pcn", "area")
COVERAGE_COLUMNS = ("level", "code", "unit_name", "group", "group_label", "flagged", "covered", "percent")
AREA_CODE = "ALL"


def _raw_counts(session: Session, user: CurrentUser, run: ScoreRun | None, today: date) -> pd.DataFrame:
    """Raw (undisclosed) per-practice counts in ``run``; never returned to callers."""
    columns = ["practice_code"] + [f"{g}_{k}" for g in cohort.coverage_groups() for k in ("flagged", "covered")]
    if run is None:
        return pd.DataFrame(columns=columns)
    covered = and_(
        CarePlan.status == "agreed", CarePlan.next_review >= today, LeadProfessional.name.is_not(None)
    )
    sums = []
    for group in cohort.coverage_groups():
        flag = cohort.member_of(run, group)
        sums.append(func.sum(case((flag, 1), else_=0)).label(f"{group}_flagged"))
        sums.append(func.sum(case((and_(flag, covered), 1), else_=0)).label(f"{group}_covered"))
    query = (
        select(Score.practice_code, *sums)
        .outerjoin(CarePlan, CarePlan.nhs_number == Score.nhs_number)
        .outerjoin(LeadProfessional, LeadProfessional.nhs_number == Score.nhs_number)
        .outerjoin(CohortDecision, CohortDecision.nhs_number == Score.nhs_number)
        .where(Score.run_id == run.id)
        .group_by(Score.practice_code)
    )
    practices = aggregate_practice_codes(session, user)
    if practices is not None:
        query = query.where(Score.practice_code.in_(practices))
    parts = [pd.DataFrame(session.execute(query.where(part)).mappings().all(), columns=columns)
             for part in cohort.programme_parts(session, run)]
    frame = pd.concat([part for part in parts if not part.empty] or parts[:1])
    return frame.fillna(0).groupby("practice_code", as_index=False).sum()


def _disclose(long: pd.DataFrame, run: ScoreRun | None) -> pd.DataFrame:
    """Disclosed counts and percentages, each group labelled as ``run`` defines it."""
    long = long.copy()
    long["percent"] = [disclosed_percentage(c, f) for c, f in zip(long["covered"], long["flagged"])]
    long["flagged"] = pd.array([disclose_count(v) for v in long["flagged"]], dtype="Int64")
    long["covered"] = pd.array([disclose_count(v) for v in long["covered"]], dtype="Int64")
    long["percent"] = pd.array(long["percent"], dtype="Float64")
    long["group_label"] = long["group"].map(cohort.group_labels(run))
    return long


def _practices(session: Session) -> pd.DataFrame:
    return pd.DataFrame(
        session.execute(select(Practice.practice_code, Practice.practice_name, Practice.pcn_code,
                               Pcn.pcn_name).join(Pcn, Pcn.pcn_code == Practice.pcn_code)).all(),
        columns=["practice_code", "practice_name", "pcn_code", "pcn_name"],
    )


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise UserInputError(f"Coverage level {level!r} is not one of {', '.join(LEVELS)}.")


def _roll_up(raw: pd.DataFrame, practices: pd.DataFrame, level: str) -> pd.DataFrame:
    """Sum raw counts to the level, then one row per (unit, group)."""
    frame = raw.merge(practices, on="practice_code", how="left")
    if level == "practice":
        frame["code"], frame["unit_name"] = frame["practice_code"], frame["practice_name"]
    elif level == "pcn":
        frame["code"], frame["unit_name"] = frame["pcn_code"], frame["pcn_name"]
    else:
        frame["code"], frame["unit_name"] = AREA_CODE, "Whole area"
    value_columns = [c for c in raw.columns if c != "practice_code"]
    summed = frame.groupby(["code", "unit_name"], as_index=False)[value_columns].sum()
    rows = []
    for record in summed.to_dict("records"):
        for group in cohort.coverage_groups():
            rows.append({"level": level, "code": record["code"], "unit_name": record["unit_name"], "group": group,
                         "flagged": int(record[f"{group}_flagged"]), "covered": int(record[f"{group}_covered"])})
    return pd.DataFrame(rows, columns=["level", "code", "unit_name", "group", "flagged", "covered"])


def coverage(session: Session, user: CurrentUser, level: str = "practice", today: date | None = None) -> pd.DataFrame:
    """Disclosed coverage for the user's aggregate scope: columns ``COVERAGE_COLUMNS``.

    ``flagged``/``covered`` are nullable integers (NA = suppressed, 1-7), ``percent`` is computed
    from the rounded counts (NA when either is suppressed or nobody is flagged).
    """
    _check_level(level)
    today = today or app_today()
    run = current_run(session)
    long = _roll_up(_raw_counts(session, user, run, today), _practices(session), level)
    result = _disclose(long, run).loc[:, list(COVERAGE_COLUMNS)].reset_index(drop=True)
    audit.record(session, user, "coverage_view", "coverage", level, detail=f"{len(result)} rows")
    return result


def _month_ends(months: int, today: date) -> list[date]:
    ends = []
    year, month = today.year, today.month
    for _ in range(months):
        ends.append(min(today, date(year, month, calendar.monthrange(year, month)[1])))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return sorted(ends)


def _runs_by_month(session: Session, month_ends: list[date], current_id: int) -> dict[date, int]:
    """For each month end, the run that was current then (the latest loaded by that day) if the store
    still keeps it; otherwise the current run (the loader prunes all but the last two runs)."""
    runs = session.execute(select(ScoreRun.id, ScoreRun.created_at).order_by(ScoreRun.created_at)).all()
    chosen = {}
    for month_end in month_ends:
        cutoff = datetime.combine(month_end, time.max, timezone.utc)
        loaded = [run_id for run_id, created in runs if _aware(created) <= cutoff]
        chosen[month_end] = loaded[-1] if loaded else current_id
    return chosen


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for UTC columns."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def coverage_trend(
    session: Session, user: CurrentUser, months: int = 12, level: str = "area", today: date | None = None
) -> pd.DataFrame:
    """Coverage at the end of each of the last ``months`` months (the last point is today), rebuilt
    from the care-plan and lead-professional history. Each month's denominator is the flagged
    groups of the score run that was current at that month's end, when the store still keeps it
    (else the current run's), labelled with that run's cut-offs. Columns: ``month`` plus ``COVERAGE_COLUMNS``, disclosed like ``coverage``.
    """
    if not 1 <= months <= 60:
        raise UserInputError(f"The trend covers 1 to 60 months, not {months}.")
    _check_level(level)
    today = today or app_today()
    run = current_run(session)
    if run is None:
        return pd.DataFrame(columns=["month", *COVERAGE_COLUMNS])
    month_ends = _month_ends(months, today)
    run_of_month = _runs_by_month(session, month_ends, run.id)
    run_ids = sorted(set(run_of_month.values()))
    query = select(Score.run_id, Score.nhs_number, Score.practice_code, Score.flags).where(
        Score.run_id.in_(run_ids), or_(Score.flagged, cohort.ever_decided())
    )
    practices = aggregate_practice_codes(session, user)
    if practices is not None:
        query = query.where(Score.practice_code.in_(practices))
    people = pd.DataFrame(session.execute(query).all(), columns=["run_id", "nhs_number", "practice_code", "flags"])
    flagged_ids = select(Score.nhs_number).where(Score.run_id.in_(run_ids), or_(Score.flagged, cohort.ever_decided()))
    plans = pd.DataFrame(session.execute(
        select(CarePlanHistory.nhs_number, CarePlanHistory.version, CarePlanHistory.status,
               CarePlanHistory.next_review, CarePlanHistory.changed_at)
        .where(CarePlanHistory.nhs_number.in_(flagged_ids))
    ).all(), columns=["nhs_number", "version", "status", "next_review", "changed_at"])
    leads = pd.DataFrame(session.execute(
        select(LeadProfessionalHistory.nhs_number, LeadProfessionalHistory.version,
               LeadProfessionalHistory.name, LeadProfessionalHistory.changed_at)
        .where(LeadProfessionalHistory.nhs_number.in_(flagged_ids))
    ).all(), columns=["nhs_number", "version", "name", "changed_at"])
    for frame in (plans, leads):
        frame["changed_at"] = pd.to_datetime(frame["changed_at"], utc=True)
    practices_table = _practices(session)
    decisions = cohort.history_frame(session)
    by_run = {run_id: people[people["run_id"] == run_id] for run_id in run_ids}
    results = []
    for month_end in month_ends:
        flagged = by_run[run_of_month[month_end]]
        cutoff = pd.Timestamp(datetime.combine(month_end, time.max, timezone.utc))
        plan_now = plans[plans["changed_at"] <= cutoff].sort_values("version").groupby("nhs_number").tail(1)
        lead_now = leads[leads["changed_at"] <= cutoff].sort_values("version").groupby("nhs_number").tail(1)
        in_date = plan_now[(plan_now["status"] == "agreed")
                           & (pd.to_datetime(plan_now["next_review"]) >= pd.Timestamp(month_end))]
        covered_ids = set(in_date["nhs_number"]) & set(lead_now.loc[lead_now["name"].notna(), "nhs_number"])
        # hashtable look-ups on object values, not the Arrow string loop
        is_covered = flagged["nhs_number"].astype(object).isin(list(covered_ids)).to_numpy()
        counts = {"practice_code": flagged["practice_code"]}
        names = list(session.get(ScoreRun, run_of_month[month_end]).flag_names)
        members = cohort.group_masks(flagged, names, decisions, month_end)
        for group, in_group in members.items():
            counts[f"{group}_flagged"] = in_group.astype(int)
            counts[f"{group}_covered"] = (in_group & is_covered).astype(int)
        raw = pd.DataFrame(counts).groupby("practice_code", as_index=False).sum()
        long = _disclose(_roll_up(raw, practices_table, level), session.get(ScoreRun, run_of_month[month_end]))
        long.insert(0, "month", month_end)
        results.append(long)
    result = pd.concat(results, ignore_index=True).loc[:, ["month", *COVERAGE_COLUMNS]]
    audit.record(session, user, "coverage_view", "coverage_trend", level, detail=f"{months} months")
    return result


def coverage_csv(frame: pd.DataFrame) -> str:
    """CSV for download, suppressed cells shown as '*'."""
    out = frame.copy()
    for column in ("flagged", "covered", "percent"):
        out[column] = out[column].astype(object).where(out[column].notna(), "*")
    return csv_text(out)  # names from the records are neutralised like every export
