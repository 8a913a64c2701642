"""Clinical judgement: practice and MDT users add people the flags missed or exclude flagged people,
with a reason, a note and a review date; versioned and audited; the list shows both; coverage counts
the added as their own group and leaves the excluded out of their flags' denominators (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from sqlalchemy import select

from app.db import session_scope
from app.services import careplans, cohort, coverage, patients
from app.services.access import AccessDenied
from app.services.careplans import StaleEditError
from app.services.cohort import InvalidDecision
from app.store import AuditEvent, Score, ScoreRun

REVIEW = date.today() + timedelta(days=90)


def _people(engine, practice: str, flagged: bool, flag: str | None = None) -> list[str]:
    with session_scope(engine) as session:
        run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
        query = select(Score.nhs_number).where(Score.run_id == run.id, Score.practice_code == practice,
                                               Score.flagged == flagged).order_by(Score.nhs_number)
        if flag:
            query = query.where(run.has_flag(flag))
        return list(session.scalars(query))


def decide(engine, user, nhs, version, decision, **fields):
    with session_scope(engine, write=True) as session:
        return cohort.decide(session, user, nhs, version, decision, **fields)


def _area(engine, user, **kwargs) -> pd.DataFrame:
    with session_scope(engine) as session:
        return coverage.coverage(session, user, level="practice", **kwargs).set_index(["code", "group"])


def test_add_and_exclude_show_on_the_list_and_in_coverage(loaded_engine, users):
    gp, commissioner = users["practice1"], users["commissioner"]
    unflagged = _people(loaded_engine, "P001", flagged=False)[:8]
    aged = _people(loaded_engine, "P001", flagged=True, flag="age_60_plus")
    before = _area(loaded_engine, commissioner)
    with session_scope(loaded_engine) as session:
        members_before = _members(session)
    for nhs in unflagged:
        decide(loaded_engine, gp, nhs, 0, "include", reason="clinical_concern", review_on=REVIEW,
               note="Housebound since a stroke; no eFI recorded")
    excluded = aged[0]
    with session_scope(loaded_engine) as session:
        held = patients.patient_record(session, gp, excluded)["score"]["flags"]
    saved = decide(loaded_engine, gp, excluded, 0, "exclude", reason="end_of_life", review_on=REVIEW)
    assert saved["flags"] == held and saved["in_force"]
    with session_scope(loaded_engine, write=True) as session:  # 8 added people, all covered
        for nhs in unflagged:
            careplans.save_care_plan(session, gp, nhs, 0, status="agreed", next_review=REVIEW)
            careplans.assign_lead_professional(session, gp, nhs, "Dr Asha Rao", "GP", 0)
        listed = patients.flagged_list(session, gp).set_index("nhs_number")
        only_added = patients.flagged_list(session, gp, flags=[cohort.JUDGEMENT_GROUP])
    assert set(unflagged) <= set(listed.index) and set(only_added["nhs_number"]) == set(unflagged)
    assert listed.loc[unflagged[0], "flag_labels"] == "Added by clinical judgement" and listed.loc[unflagged[0], "added"]
    assert listed.loc[excluded, "judgement"] == "Excluded: End-of-life care already in place"
    assert listed.loc[excluded, "excluded"] and not listed.loc[unflagged[0], "excluded"]
    after = _area(loaded_engine, commissioner)
    assert after.loc[("P001", cohort.JUDGEMENT_GROUP), "group_label"] == "Added by clinical judgement"
    assert after.loc[("P001", cohort.JUDGEMENT_GROUP), ["flagged", "covered"]].tolist() == [10, 10]  # 8 -> 10
    assert before.loc[("P001", cohort.JUDGEMENT_GROUP), "flagged"] == 0
    with session_scope(loaded_engine) as session:  # the group rule coverage counts with
        members_after = _members(session)
    for flag in cohort.coverage_groups():
        if flag == cohort.JUDGEMENT_GROUP:
            assert members_after[flag] - members_before[flag] == set(unflagged)
        elif flag in held:  # the excluded person left each of their flags' groups, and only those
            assert members_before[flag] - members_after[flag] == {excluded}
        else:
            assert members_after[flag] == members_before[flag]
    trend = _trend(loaded_engine, commissioner)
    assert trend.loc[cohort.JUDGEMENT_GROUP].tolist() == [0, 0, 10]  # added today: the last point only


def _members(session) -> dict[str, set[str]]:
    """Who is in each coverage group now, by ``cohort.member_of`` (the clause coverage sums)."""
    from app.store import CohortDecision

    run = coverage.current_run(session)
    return {group: set(session.scalars(
        select(Score.nhs_number).outerjoin(CohortDecision, CohortDecision.nhs_number == Score.nhs_number)
        .where(Score.run_id == run.id, cohort.in_programme(), cohort.member_of(run, group))))
        for group in cohort.coverage_groups()}


def _trend(engine, user) -> pd.DataFrame:
    with session_scope(engine) as session:
        trend = coverage.coverage_trend(session, user, months=3, level="practice")
    rows = trend[trend["code"] == "P001"]
    return rows.pivot_table(index="group", columns="month", values="flagged", aggfunc="first")


@pytest.mark.parametrize("flagged, decision, fields, message", [
    (True, "include", {"reason": "clinical_concern"}, "already flagged"),
    (False, "exclude", {"reason": "declined"}, "Only a flagged person can be excluded"),
    (False, "include", {"reason": "bored"}, "Give a reason: one of"),
    (False, "include", {"reason": "other"}, "Say why in the note"),
    (True, "exclude", {"reason": "not_appropriate", "note": "  "}, "Say why in the note"),
    (True, "exclude", {"reason": "declined", "review_on": date.today()}, "review date after today"),
    (True, "exclude", {"reason": "declined", "flags": ["dementia", "care_home", "top_2pct"]}, "not flagged as"),
    (True, "exclude", {"reason": "declined", "flags": []}, "Choose the flags"),
    (False, "ended", {}, "no decision in force"),
    (False, "maybe", {}, "include, exclude or ended"),
])
def test_decisions_the_rules_refuse_are_one_sentence_and_write_nothing(loaded_engine, users, flagged, decision,
                                                                       fields, message):
    person = _people(loaded_engine, "P001", flagged=flagged, flag="age_60_plus" if flagged else None)[0]
    if fields.get("flags"):  # a flag this person does not have
        with session_scope(loaded_engine) as session:
            held = patients.patient_record(session, users["practice1"], person)["score"]["flags"]
        fields = {**fields, "flags": [f for f in fields["flags"] if f not in held][:1]}
    with pytest.raises(InvalidDecision, match=message):
        decide(loaded_engine, users["practice1"], person, 0, decision, **{"review_on": REVIEW, **fields})
    with session_scope(loaded_engine) as session:
        assert cohort.decision_of(session, person)["version"] == 0
        assert not session.scalars(select(AuditEvent).where(AuditEvent.action.like("cohort_%"))).all()


def test_navigators_and_other_practices_cannot_decide(loaded_engine, users):
    person = _people(loaded_engine, "P001", flagged=False)[0]
    with pytest.raises(AccessDenied, match="Care navigator users cannot add people to the programme"):
        decide(loaded_engine, users["navigator1"], person, 0, "include", reason="clinical_concern", review_on=REVIEW)
    with pytest.raises(AccessDenied, match="not registered at your practices"):
        decide(loaded_engine, users["practice2"], person, 0, "include", reason="clinical_concern", review_on=REVIEW)
    with session_scope(loaded_engine) as session:
        refused = session.scalars(select(AuditEvent.username).where(AuditEvent.action == "access_denied")).all()
    assert sorted(refused) == ["navigator1", "practice2"]


def test_decisions_are_versioned_stale_saves_refused_and_ending_one_restores_the_counts(loaded_engine, users):
    person = _people(loaded_engine, "P001", flagged=True, flag="age_60_plus")[0]
    decide(loaded_engine, users["practice1"], person, 0, "exclude", reason="declined", review_on=REVIEW)
    with pytest.raises(StaleEditError) as stale:
        decide(loaded_engine, users["mdt1"], person, 0, "exclude", reason="end_of_life", review_on=REVIEW)
    assert stale.value.current["updated_by"] == "practice1" and "decision" in stale.value.changed_fields
    ended = decide(loaded_engine, users["mdt1"], person, 1, "ended", note="Changed their mind at the review")
    assert (ended["decision"], ended["in_force"], ended["version"]) == ("ended", False, 2)
    with session_scope(loaded_engine) as session:
        history = cohort.decision_history(session, person)
        listed = patients.flagged_list(session, users["practice1"]).set_index("nhs_number")
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity == "cohort_decision",
                                                                  AuditEvent.action != "view")
                                  .order_by(AuditEvent.id)).all()
    assert [h["decision"] for h in history] == ["exclude", "ended"]
    assert listed.loc[person, "judgement"] == "" and not listed.loc[person, "excluded"]
    assert actions == ["cohort_exclude", "cohort_ended"]


def test_a_decision_past_its_review_date_is_shown_as_due_for_review(loaded_engine, users):
    person = _people(loaded_engine, "P001", flagged=False)[0]
    decide(loaded_engine, users["mdt1"], person, 0, "include", reason="recent_change", review_on=REVIEW)
    with session_scope(loaded_engine) as session:
        later = cohort.decision_of(session, person, today=REVIEW + timedelta(days=1))
        on_the_day = cohort.decision_of(session, person, today=REVIEW)
    assert later["review_due"] and later["in_force"] and not on_the_day["review_due"]
