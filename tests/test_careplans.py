"""The care-plan lifecycle, lead professionals and refusal of stale edits."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.services import careplans, patients
from app.services.careplans import InvalidCarePlan, StaleEditError
from app.store import AuditEvent, CarePlanHistory, Patient
from conftest import TINY_REASONS

TODAY = date.today()
REVIEW = TODAY + timedelta(days=90)


@pytest.fixture
def person(loaded_engine):
    with session_scope(loaded_engine) as session:
        return session.scalar(select(Patient.nhs_number).where(Patient.practice_code == "P001").order_by(Patient.nhs_number))


def test_lifecycle_from_none_to_closed_and_reopened(loaded_engine, users, person):
    gp = users["practice1"]
    with session_scope(loaded_engine, write=True) as session:
        assert careplans.get_care_plan(session, gp, person)["status"] == "none"
        draft = careplans.save_care_plan(session, gp, person, 0, status="draft", goals=["Stay at home"])
        assert (draft["status"], draft["version"]) == ("draft", 1)
        agreed = careplans.save_care_plan(
            session, gp, person, 1, status="agreed", next_review=REVIEW, consent_to_share=True,
            actions=[{"action": "Medication review", "owner": "Practice pharmacist", "due": REVIEW}])
        assert (agreed["status"], agreed["version"], agreed["agreed_on"]) == ("agreed", 2, TODAY)
        # review_due is derived: the same saved plan, seen after its review date.
        later = careplans.get_care_plan(session, gp, person, today=REVIEW + timedelta(days=1))
        assert later["status"] == "review_due"
        closed = careplans.save_care_plan(session, gp, person, 2, status="closed", close_reason="moved_away")
        assert (closed["status"], closed["close_reason"]) == ("closed", "moved_away")
        reopened = careplans.save_care_plan(session, gp, person, 3, status="draft")
        assert reopened["close_reason"] is None and reopened["version"] == 4
        history = careplans.care_plan_history(session, gp, person)
        assert [h["status"] for h in history] == ["draft", "agreed", "closed", "draft"]
    with session_scope(loaded_engine) as session:  # audit rows join the chain as the change commits
        saves = session.scalars(select(AuditEvent).where(AuditEvent.action == "care_plan_save",
                                                         AuditEvent.entity_id == person).order_by(AuditEvent.id)).all()
        assert len(saves) == 4
        assert saves[0].before is None and saves[1].before["status"] == "draft"
        assert saves[1].after["status"] == "agreed" and saves[1].after["next_review"] == REVIEW.isoformat()


@pytest.mark.parametrize("fields, message", [
    ({"status": "agreed"}, "needs a next review date"),
    ({"status": "agreed", "next_review": TODAY - timedelta(days=1)}, "not in the future"),
    ({"status": "agreed", "next_review": "31/12/2030"}, "not a date"),
    ({"status": "closed"}, "needs a reason"),
    ({"status": "closed", "close_reason": "bored"}, "needs a reason"),
    ({"status": "review_due"}, "can be set to"),
    ({"actions": [{"action": "Call", "owner": "", "due": REVIEW}]}, "needs both an action and an owner"),
    ({"actions": [{"action": "Call", "owner": "Sam"}]}, "action 1 \\(Call\\) needs a due date"),
    ({"goals": "not a list"}, "list of non-empty sentences"),
    ({"colour": "blue"}, "no field"),
])
def test_lifecycle_refuses_invalid_changes(loaded_engine, users, person, fields, message):
    with session_scope(loaded_engine, write=True) as session:
        with pytest.raises(InvalidCarePlan, match=message):
            careplans.save_care_plan(session, users["practice1"], person, 0, **fields)
        assert careplans.get_care_plan(session, users["practice1"], person)["version"] == 0


def test_stale_care_plan_edit_is_refused_with_what_changed(loaded_engine, users, person):
    with session_scope(loaded_engine, write=True) as session:
        careplans.save_care_plan(session, users["practice1"], person, 0, status="draft", goals=["Walk daily"])
    with session_scope(loaded_engine, write=True) as session:  # MDT colleague saves first
        careplans.save_care_plan(session, users["mdt1"], person, 1, goals=["Walk daily", "See family weekly"],
                                 status="agreed", next_review=REVIEW)
    with session_scope(loaded_engine, write=True) as session:
        with pytest.raises(StaleEditError) as refused:
            careplans.save_care_plan(session, users["practice1"], person, 1, consent_to_share=True)
    error = refused.value
    assert error.current["version"] == 2 and error.current["updated_by"] == "mdt1"
    assert set(error.changed_fields) == {"status", "goals", "next_review"}
    assert "mdt1" in str(error) and "version 2" in str(error)
    with session_scope(loaded_engine) as session:
        assert session.scalar(select(func.count()).select_from(CarePlanHistory)
                              .where(CarePlanHistory.nhs_number == person)) == 2


def test_lead_professional_is_versioned_and_stale_edits_refused(loaded_engine, users, person):
    with session_scope(loaded_engine, write=True) as session:
        lead = careplans.assign_lead_professional(session, users["practice1"], person, "Dr Asha Rao", "GP", 0)
        assert (lead["name"], lead["version"]) == ("Dr Asha Rao", 1)
        with pytest.raises(InvalidCarePlan, match="role must be one of"):
            careplans.assign_lead_professional(session, users["practice1"], person, "Kim", "Wizard", 1)
        careplans.assign_lead_professional(session, users["mdt1"], person, "Jo Hill", "Social worker", 1)
        with pytest.raises(StaleEditError) as refused:
            careplans.assign_lead_professional(session, users["practice1"], person, "Dr B", "GP", 1)
        assert refused.value.changed_fields == ["name", "role"]
        record = patients.patient_record(session, users["practice1"], person)
        assert record["lead_professional"]["name"] == "Jo Hill"
        assert [h["name"] for h in record["lead_professional_history"]] == ["Dr Asha Rao", "Jo Hill"]


def test_flagged_list_shows_plan_lead_and_filters(loaded_engine, users):
    gp = users["practice1"]
    with session_scope(loaded_engine, write=True) as session:
        listed = patients.flagged_list(session, gp)
        assert list(listed["probability"]) == sorted(listed["probability"], reverse=True)
        first = listed.iloc[0]["nhs_number"]
        assert listed.iloc[0]["reasons"] == "; ".join(r["text"] for r in TINY_REASONS)
        record = patients.patient_record(session, gp, first)
        assert record["reasons"] == TINY_REASONS and record["missing_predictors"] == []
        last = listed.iloc[-1]["nhs_number"]  # lowest risk: no reasons given
        assert listed.iloc[-1]["reasons"] == "" and patients.patient_record(session, gp, last)["reasons"] == []
        careplans.save_care_plan(session, gp, first, 0, status="agreed", next_review=REVIEW)
        careplans.assign_lead_professional(session, gp, first, "Dr Asha Rao", "GP", 0)
        agreed = patients.flagged_list(session, gp, plan_statuses=["agreed"])
        assert list(agreed["nhs_number"]) == [first]
        assert agreed.iloc[0]["lead_professional"] == "Dr Asha Rao"
        no_plan = patients.flagged_list(session, gp, plan_statuses=["none"])
        assert first not in set(no_plan["nhs_number"]) and len(no_plan) == len(listed) - 1
        dementia = patients.flagged_list(session, gp, flags=["dementia"])
        assert dementia["dementia"].all()
        found = patients.flagged_list(session, gp, search=first[:6])
        assert first in set(found["nhs_number"])


def test_list_caseload_agenda_and_plan_agree_on_every_status(loaded_engine, users):
    """One status rule: the flagged list, the navigator's caseload, an MDT agenda and the plan itself
    say the same for none, draft, agreed, review due (the day after the review date, not on it) and closed."""
    from app.services import caseload, meetings

    navigator = users["navigator1"]
    review = date.today() + timedelta(days=30)
    with session_scope(loaded_engine, write=True) as session:
        mine = caseload.my_caseload(session, navigator)
        no_plan, draft, agreed, closed = mine.loc[mine["practice_code"] == "P001", "nhs_number"].tolist()[:4]
        careplans.save_care_plan(session, navigator, draft, 0, status="draft")
        careplans.save_care_plan(session, navigator, agreed, 0, status="agreed", next_review=review)
        careplans.save_care_plan(session, navigator, closed, 0, status="draft")
        careplans.save_care_plan(session, navigator, closed, 1, status="closed", close_reason="declined")
        meeting = meetings.create_meeting(session, navigator, "P001", review, ["GP"])["meeting_id"]
        meetings.add_to_agenda(session, navigator, meeting, [no_plan, draft, agreed, closed])
    expected = {no_plan: "none", draft: "draft", closed: "closed"}
    for today, agreed_status in ((review, "agreed"), (review + timedelta(days=1), "review_due")):
        with session_scope(loaded_engine) as session:
            views = {
                "list": patients.flagged_list(session, navigator, today=today),
                "caseload": caseload.my_caseload(session, navigator, today=today),
                "agenda": meetings.agenda(session, navigator, meeting, today=today),
            }
            for nhs, status in {**expected, agreed: agreed_status}.items():
                seen = {name: frame.set_index("nhs_number").loc[nhs, "plan_status"] for name, frame in views.items()}
                seen["plan"] = careplans.get_care_plan(session, navigator, nhs, today=today)["status"]
                assert set(seen.values()) == {status}, (nhs, seen)
