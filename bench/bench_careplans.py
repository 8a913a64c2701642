"""Care planning at scale, server-side, on a loaded store: saving full personalised care and
support plans, clinical-judgement decisions, the practice list and coverage with decisions in
force, an MDT agenda and its printable page, and exporting every plan as FHIR R4 (validated) and as
printable pages.

    .venv/bin/python bench/bench_careplans.py [--sizes 100000] [--plans 1000]

The loaded store (cached under bench/out/inputs) is copied first, so the cache stays as loaded.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta

from common import build_parser, loaded_database, main, measure, scratch


def _plan(number: int) -> dict:
    soon = date.today() + timedelta(days=14 + number % 30)
    return dict(
        status="agreed", next_review=date.today() + timedelta(days=180), consent_to_share=True,
        what_matters="Staying at home and seeing the family on Sundays", goals=["No more falls", "Walk daily"],
        actions=[{"action": "Medication review", "owner": "Practice pharmacist", "due": soon},
                 {"action": "Falls assessment", "owner": "Community physiotherapist", "due": soon}],
        contingency={"day_name": "Community nursing team", "day_phone": "0116 225 6000",
                     "night_name": "NHS 111", "night_phone": "111", "what_to_do": "If dizzy, call the same day."},
        contacts=[{"name": "Priya Shah", "relationship": "Daughter", "phone": "07700 900123", "carer": True}],
        follow_ups=[{"due": soon + timedelta(days=28), "what": "Phone call", "who": "Care navigator"}],
    )


def run_size(people: int, args) -> list:
    from sqlalchemy import select
    from sqlalchemy.engine import make_url

    from app.db import get_engine, session_scope
    from app.services import careplans, cohort, coverage, documents, meetings, patients
    from app.services.access import system_actor
    from app.services.users import get_user
    from app.store import Score, ScoreRun

    work = scratch("careplans", people)
    shutil.copyfile(make_url(loaded_database(people, args.seed)).database, work / "store.db")
    engine = get_engine(f"sqlite:///{work / 'store.db'}")
    results = []
    with session_scope(engine) as session:
        actor = system_actor(session, "bench")
        practice1, commissioner = get_user(session, "practice1"), get_user(session, "commissioner")
        run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
        flagged = list(session.scalars(select(Score.nhs_number).where(Score.run_id == run.id, Score.flagged)
                                       .order_by(Score.probability.desc()).limit(args.plans)))
        first_practice = sorted(practice1.practice_codes)[0]
        unflagged = list(session.scalars(select(Score.nhs_number).where(
            Score.run_id == run.id, ~Score.flagged, Score.practice_code == first_practice).limit(50)))
        at_practice = list(session.scalars(select(Score.nhs_number).where(
            Score.run_id == run.id, Score.flagged, Score.practice_code == first_practice)
            .order_by(Score.probability.desc()).limit(30)))
    with measure("save a full plan and a lead professional", people, rows=len(flagged)) as step:
        for number, nhs in enumerate(flagged):  # one transaction per save, as the page does
            with session_scope(engine, write=True) as session:
                careplans.save_care_plan(session, actor, nhs, 0, **_plan(number))
                careplans.assign_lead_professional(session, actor, nhs, "Dr Asha Rao", "GP", 0)
    step.note = "rows = plans, each in its own transaction"
    results.append(step)
    review = date.today() + timedelta(days=90)
    with measure("clinical-judgement decisions", people, rows=len(unflagged) + 50) as step:
        with session_scope(engine, write=True) as session:
            for nhs in unflagged:
                cohort.decide(session, actor, nhs, 0, "include", reason="clinical_concern", review_on=review)
            for nhs in flagged[-50:]:
                cohort.decide(session, actor, nhs, 0, "exclude", reason="declined", review_on=review)
    step.note = "rows = decisions (half added, half excluded)"
    results.append(step)
    with session_scope(engine) as session:
        with measure("service: flagged_list (practice1), decisions in force", people) as step:
            step.rows = len(patients.flagged_list(session, practice1))
        step.note = "rows = people listed"
        results.append(step)
        with measure("service: coverage by practice, decisions in force", people) as step:
            step.rows = len(coverage.coverage(session, commissioner, level="practice"))
        step.note = "rows = table rows"
        results.append(step)
        with measure("service: coverage trend, 12 months", people) as step:
            step.rows = len(coverage.coverage_trend(session, commissioner, months=12, level="area"))
        step.note = "rows = table rows"
        results.append(step)
    with session_scope(engine, write=True) as session:
        meeting = meetings.create_meeting(session, practice1, first_practice, date.today(), ["GP"])["meeting_id"]
        meetings.add_to_agenda(session, practice1, meeting, at_practice)
    with session_scope(engine) as session:
        with measure("MDT agenda (30 people)", people, rows=len(at_practice)) as step:
            meetings.agenda(session, practice1, meeting)
        results.append(step)
        with measure("printable agenda (30 people)", people, rows=len(at_practice)) as step:
            documents.agenda_document(session, practice1, meeting)
        results.append(step)
    for fmt in ("fhir", "html"):
        with session_scope(engine) as session:
            with measure(f"careplans export --format {fmt}", people) as step:
                step.rows = len(documents.export_plans(session, actor, work / fmt, fmt))
        step.note = "rows = plans written" + (" (each validated)" if fmt == "fhir" else "") + ", each audited"
        results.append(step)
    engine.dispose()
    return results


if __name__ == "__main__":
    parser = build_parser("care planning server-side")
    parser.add_argument("--plans", type=int, default=1000, help="plans to create and export (default 1000)")
    main("care planning server-side", run_size, parser)
