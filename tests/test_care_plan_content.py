"""The personalised care and support plan's content: what matters, actions with owners and due
dates, the contingency plan, carers and key contacts, follow-ups; checked, versioned and audited on
SQLite and PostgreSQL; nothing half-written; reads audited; services that stamp time take ``at``."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.services import careplans
from app.services.careplans import InvalidCarePlan, StaleEditError
from app.store import AuditEvent, CarePlan, CarePlanHistory, LeadProfessionalHistory, Patient

TODAY = date.today()
SOON = TODAY + timedelta(days=14)
REVIEW = TODAY + timedelta(days=120)
CONTINGENCY = {"day_name": "Community nursing team", "day_phone": "0116 225 6000",
               "night_name": "NHS 111", "night_phone": "111",
               "what_to_do": "If breathless at rest or the ankles swell more, call the nursing team the same day."}
FULL_PLAN = dict(
    status="agreed", what_matters="Staying in my own home and seeing my grandchildren on Sundays.",
    goals=["Walk to the shop twice a week", "No more falls"],
    actions=[{"action": "Structured medication review", "owner": "Practice pharmacist", "due": SOON},
             {"action": "Falls assessment", "owner": "Community physiotherapist", "due": SOON.isoformat()}],
    contingency=CONTINGENCY,
    contacts=[{"name": "Priya Shah", "relationship": "Daughter", "phone": "07700 900123", "carer": True}],
    follow_ups=[{"due": SOON + timedelta(days=30), "what": "Phone call", "who": "Care navigator"}],
    consent_to_share=True, next_review=REVIEW,
)


@pytest.fixture
def person(loaded_engine):
    with session_scope(loaded_engine) as session:
        return session.scalar(select(Patient.nhs_number).where(Patient.practice_code == "P001")
                              .order_by(Patient.nhs_number))


def _history_count(engine, person) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(CarePlanHistory).where(CarePlanHistory.nhs_number == person))


def test_a_full_plan_is_saved_in_the_stores_shape_and_audited(loaded_engine, users, person):
    with session_scope(loaded_engine, write=True) as session:
        saved = careplans.save_care_plan(session, users["practice1"], person, 0, **FULL_PLAN)
    assert saved["what_matters"].startswith("Staying in my own home")
    assert saved["actions"][0] == {"action": "Structured medication review", "owner": "Practice pharmacist",
                                   "due": SOON.isoformat(), "done_on": None}
    assert saved["contingency"] == CONTINGENCY
    assert saved["contacts"] == [{"name": "Priya Shah", "relationship": "Daughter", "phone": "07700 900123",
                                  "carer": True}]
    assert saved["follow_ups"][0]["due"] == (SOON + timedelta(days=30)).isoformat()
    with session_scope(loaded_engine) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "care_plan_save",
                                                         AuditEvent.entity_id == person)).one()
    assert event.after["contingency"]["night_phone"] == "111" and event.after["actions"][1]["owner"] == "Community physiotherapist"


@pytest.mark.parametrize("change, message", [
    ({"actions": [{"action": "Call", "owner": "Sam"}]}, r"action 1 \(Call\) needs a due date"),
    ({"actions": [{"action": "Call", "owner": "Sam", "due": "soon"}]}, "action 1's due date 'soon' is not a date"),
    ({"actions": [{"action": "Call", "owner": "Sam", "due": SOON, "done_on": TODAY + timedelta(days=2)}]},
     "action 1's date done .* is in the future"),
    ({"contingency": {"day_name": "Community nursing team"}}, "needs both who to call in the day and their phone"),
    ({"contingency": {"night_name": "NHS 111", "night_phone": "call me"}}, "'call me' is not a phone number"),
    ({"contingency": {"colour": "blue"}}, "no field"),
    ({"contacts": [{"relationship": "Son", "phone": "07700 900456"}]}, "Contact 1 needs a name"),
    ({"contacts": [{"name": "Tom", "phone": "12"}]}, "not a phone number"),
    ({"follow_ups": [{"due": SOON, "what": "Home visit"}]}, "Follow-up 1 needs what will happen, who"),
    ({"what_matters": "x" * 4001}, "limit is 4,000"),
    ({"goals": ["Line one\x00"]}, "control character"),
    ({"actions": "tidy the house"}, "must be a list of entries"),
])
def test_bad_content_is_one_sentence_saying_where_and_nothing_is_written(loaded_engine, users, person, change, message):
    with session_scope(loaded_engine, write=True) as session:
        careplans.save_care_plan(session, users["practice1"], person, 0, **FULL_PLAN)
    with pytest.raises(InvalidCarePlan, match=message) as refused:
        with session_scope(loaded_engine, write=True) as session:
            careplans.save_care_plan(session, users["practice1"], person, 1, **change)
    assert str(refused.value).count(".") >= 1 and "\n" not in str(refused.value)
    with session_scope(loaded_engine) as session:
        plan = careplans.get_care_plan(session, users["practice1"], person)
    assert plan["version"] == 1 and plan["contingency"] == CONTINGENCY
    assert _history_count(loaded_engine, person) == 1


def test_a_stale_save_of_the_new_fields_names_them(loaded_engine, users, person):
    with session_scope(loaded_engine, write=True) as session:
        careplans.save_care_plan(session, users["practice1"], person, 0, **FULL_PLAN)
    with session_scope(loaded_engine, write=True) as session:  # the MDT changes the contingency plan
        careplans.save_care_plan(session, users["mdt1"], person, 1,
                                 contingency={**CONTINGENCY, "day_name": "Dr Rao's team"})
    with pytest.raises(StaleEditError) as refused:
        with session_scope(loaded_engine, write=True) as session:
            careplans.save_care_plan(session, users["practice1"], person, 1, what_matters="Gardening")
    assert refused.value.changed_fields == ["contingency"]
    assert refused.value.current["contingency"]["day_name"] == "Dr Rao's team"
    assert _history_count(loaded_engine, person) == 2
    assert careplans.field_in_words("contingency", refused.value.current["contingency"]).startswith(
        "In the day, call Dr Rao's team on 0116 225 6000.")


def test_history_is_stamped_at_the_time_given(loaded_engine, users, person):
    """A programme history can be recorded at its own dates: ``at`` stamps the history rows and the
    rules judge dates on that day (a review in 2025 is in the future on 1 March 2025)."""
    then = datetime(2025, 3, 1, 10, 30, tzinfo=timezone.utc)
    with session_scope(loaded_engine, write=True) as session:
        plan = careplans.save_care_plan(session, users["mdt1"], person, 0, at=then, status="agreed",
                                        next_review=date(2025, 9, 1))
        careplans.assign_lead_professional(session, users["mdt1"], person, "Dr Asha Rao", "GP", 0, at=then)
    assert plan["agreed_on"] == date(2025, 3, 1) and plan["status"] == "agreed"  # as seen on that day
    with session_scope(loaded_engine) as session:
        assert careplans.get_care_plan(session, users["mdt1"], person)["status"] == "review_due"  # as seen today
        stamps = [session.scalar(select(model.changed_at).where(model.nhs_number == person))
                  for model in (CarePlanHistory, LeadProfessionalHistory)]
        updated = session.scalar(select(CarePlan.updated_at).where(CarePlan.nhs_number == person))
    for stamp in (*stamps, updated):
        assert (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)) == then


def test_reading_a_plan_or_a_lead_professional_is_audited(loaded_engine, users, person):
    with session_scope(loaded_engine, write=True) as session:
        careplans.save_care_plan(session, users["practice1"], person, 0, **FULL_PLAN)
        careplans.assign_lead_professional(session, users["practice1"], person, "Dr Asha Rao", "GP", 0)
    with session_scope(loaded_engine) as session:
        careplans.get_care_plan(session, users["mdt1"], person)
        careplans.get_lead_professional(session, users["mdt1"], person)
        careplans.care_plan_history(session, users["mdt1"], person)
    with session_scope(loaded_engine) as session:
        views = session.execute(select(AuditEvent.entity, AuditEvent.detail).where(
            AuditEvent.action == "view", AuditEvent.username == "mdt1", AuditEvent.entity_id == person)
            .order_by(AuditEvent.id)).all()
    assert [tuple(v) for v in views] == [("care_plan", "version 1"), ("lead_professional", "version 1"),
                                         ("care_plan_history", "1 versions")]


def test_closing_and_reopening_stamps_the_period(loaded_engine, users, person):
    with session_scope(loaded_engine, write=True) as session:
        careplans.save_care_plan(session, users["practice1"], person, 0, **FULL_PLAN)
        closed = careplans.save_care_plan(session, users["practice1"], person, 1, status="closed",
                                          close_reason="declined")
        assert closed["closed_on"] == TODAY and closed["agreed_on"] == TODAY
        reopened = careplans.save_care_plan(session, users["practice1"], person, 2, status="draft")
        assert reopened["closed_on"] is None and reopened["close_reason"] is None


def test_an_action_or_follow_up_is_added_as_one_versioned_event(loaded_engine, users, person):
    follow_up = {"due": SOON, "what": "Home visit", "who": "District nurse"}
    with pytest.raises(InvalidCarePlan, match="Save the care plan first"):
        with session_scope(loaded_engine, write=True) as session:
            careplans.add_to_plan(session, users["practice1"], person, 0, follow_up=follow_up)
    with session_scope(loaded_engine, write=True) as session:
        careplans.save_care_plan(session, users["practice1"], person, 0, **FULL_PLAN)
        added = careplans.add_to_plan(session, users["navigator1"], person, 1, follow_up=follow_up)
        assert [f["what"] for f in added["follow_ups"]] == ["Home visit", "Phone call"]  # in date order
        with pytest.raises(StaleEditError):
            careplans.add_to_plan(session, users["mdt1"], person, 1, action={"action": "X", "owner": "Y", "due": SOON})
        with pytest.raises(InvalidCarePlan, match="needs a due date"):
            careplans.add_to_plan(session, users["mdt1"], person, 2, action={"action": "Rails", "owner": "OT"})
    assert _history_count(loaded_engine, person) == 2
