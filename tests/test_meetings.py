"""MDT meetings through the service layer: creation rules, agenda scope, outcomes and stale forms."""

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from features.errors import UserInputError
from app.db import session_scope
from app.services import careplans, meetings
from app.services.access import AccessDenied
from app.services.users import get_user
from app.store import AuditEvent
from test_pages_support import build_store, flagged_numbers


@pytest.fixture()
def engine(tmp_path):
    return build_store(tmp_path / "store.db")


def user(engine, name):
    with session_scope(engine) as session:
        return get_user(session, name)


def new_meeting(engine, actor, practice="P001", day="2026-04-01", roles=("GP", "Social worker")):
    with session_scope(engine, write=True) as session:
        return meetings.create_meeting(session, actor, practice, day, roles)


@pytest.mark.parametrize(
    "practice, day, roles",
    [
        ("P001", "2026-02-30", ["GP"]),  # no such day
        ("P001", "next week", ["GP"]),
        ("P001", "2026-04-01", []),  # nobody attending
        ("P001", "2026-04-01", ["Wizard"]),
        ("NOPE", "2026-04-01", ["GP"]),  # unknown practice
    ],
)
def test_bad_meeting_details_are_one_sentence(engine, practice, day, roles):
    with pytest.raises(UserInputError):
        new_meeting(engine, user(engine, "practice1"), practice, day, roles)


def test_meeting_at_another_practice_or_by_a_commissioner_is_refused(engine):
    with pytest.raises(AccessDenied):
        new_meeting(engine, user(engine, "practice1"), practice="P003")
    with pytest.raises(AccessDenied):
        new_meeting(engine, user(engine, "commissioner"))
    with session_scope(engine) as session:  # both refusals kept although the writes rolled back
        refused = session.scalars(select(AuditEvent.username).where(AuditEvent.action == "access_denied")).all()
    assert sorted(refused) == ["commissioner", "practice1"]


def test_agenda_keeps_order_skips_duplicates_and_adds_a_mixed_selection(engine):
    practice = user(engine, "practice1")
    meeting = new_meeting(engine, practice)
    people = flagged_numbers("P001")[:3]
    other_practice, out_of_scope = flagged_numbers("P002")[0], flagged_numbers("P003")[0]
    with session_scope(engine, write=True) as session:
        assert meetings.add_to_agenda(session, practice, meeting["meeting_id"], people[:2]).added == people[:2]
        # a mixed selection: one new, one already on, one of theirs at another practice, one not theirs, one typo
        result = meetings.add_to_agenda(session, practice, meeting["meeting_id"],
                                        [people[1], other_practice, people[2], out_of_scope, "12345"])
    assert result.added == [people[2]] and result.already == [people[1]]
    assert set(result.refused) == {other_practice, out_of_scope, "12345"}
    assert "not at this meeting's practice P001" in result.refused[other_practice]
    assert result.refused[out_of_scope] == "not registered at your practices"
    sentence = result.sentence()
    assert sentence.startswith("Added 1 person to the agenda; 1 already on it. Not added: ")
    assert f"{out_of_scope[:3]} {out_of_scope[3:6]} {out_of_scope[6:]} (not registered at your practices)" in sentence
    with session_scope(engine) as session:
        items = meetings.agenda(session, practice, meeting["meeting_id"])
        listed = meetings.list_meetings(session, practice)
        refusals = session.scalars(select(AuditEvent.entity_id).where(AuditEvent.action == "access_denied")).all()
        added = session.scalars(select(AuditEvent).where(AuditEvent.action == "agenda_add")
                                .order_by(AuditEvent.id)).all()
    assert list(items["nhs_number"]) == people
    assert listed.set_index("meeting_id").loc[meeting["meeting_id"], "people"] == 3
    assert out_of_scope in refusals  # the out-of-scope person was refused by the access check, on the record
    assert added[-1].after == {"nhs_numbers": [people[2]], "refused": sorted(["12345", other_practice, out_of_scope])}
    with session_scope(engine) as session:
        with pytest.raises(AccessDenied):
            meetings.agenda(session, user(engine, "practice2"), meeting["meeting_id"])


def test_outcomes_assign_a_lead_start_a_plan_or_record_why_not(engine):
    mdt = user(engine, "mdt1")
    meeting = new_meeting(engine, mdt)
    lead_person, plan_person, not_person = flagged_numbers("P001")[:3]
    with session_scope(engine, write=True) as session:
        meetings.add_to_agenda(session, mdt, meeting["meeting_id"], [lead_person, plan_person, not_person])
    with session_scope(engine) as session:
        items = meetings.agenda(session, mdt, meeting["meeting_id"]).set_index("nhs_number")
    with session_scope(engine, write=True) as session:
        meetings.record_outcome(session, mdt, items.loc[lead_person, "item_id"], 1, "lead_assigned",
                                lead_name="Dr Asha Rao", lead_role="GP")
        meetings.record_outcome(session, mdt, items.loc[plan_person, "item_id"], 1, "plan_started")
        with pytest.raises(UserInputError):
            meetings.record_outcome(session, mdt, items.loc[not_person, "item_id"], 1, "not_appropriate")
    with session_scope(engine, write=True) as session:
        meetings.record_outcome(session, mdt, items.loc[not_person, "item_id"], 1, "not_appropriate",
                                reason="Already under the community palliative care team")
    with session_scope(engine) as session:
        lead = careplans.get_lead_professional(session, mdt, lead_person)
        plan = careplans.get_care_plan(session, mdt, plan_person)
        after = meetings.agenda(session, mdt, meeting["meeting_id"]).set_index("nhs_number")
        outcomes = session.scalars(select(AuditEvent.entity_id).where(AuditEvent.action == "mdt_outcome")).all()
    assert (lead["name"], lead["role"]) == ("Dr Asha Rao", "GP")
    assert plan["status"] == "draft"
    assert after.loc[not_person, "outcome_reason"].startswith("Already under")
    assert list(after["version"]) == [2, 2, 2]
    assert sorted(outcomes) == sorted([lead_person, plan_person, not_person])


def test_lead_outcome_needs_a_name_and_a_known_role(engine):
    mdt = user(engine, "mdt1")
    meeting = new_meeting(engine, mdt)
    person = flagged_numbers("P001")[0]
    with session_scope(engine, write=True) as session:
        meetings.add_to_agenda(session, mdt, meeting["meeting_id"], [person])
    with session_scope(engine) as session:
        item = int(meetings.agenda(session, mdt, meeting["meeting_id"])["item_id"].iloc[0])
    for name, role in (("", "GP"), ("Jo Bloggs", "Astronaut")):
        with session_scope(engine, write=True) as session:
            with pytest.raises(UserInputError):
                meetings.record_outcome(session, mdt, item, 1, "lead_assigned", lead_name=name, lead_role=role)


def test_outcome_from_a_stale_form_is_refused_with_what_changed(engine):
    practice, mdt = user(engine, "practice1"), user(engine, "mdt1")
    meeting = new_meeting(engine, practice, day=date(2026, 4, 2))
    person = flagged_numbers("P001")[0]
    with session_scope(engine, write=True) as session:
        meetings.add_to_agenda(session, practice, meeting["meeting_id"], [person])
    with session_scope(engine) as session:
        item = int(meetings.agenda(session, practice, meeting["meeting_id"])["item_id"].iloc[0])
    with session_scope(engine, write=True) as session:
        meetings.record_outcome(session, mdt, item, 1, "plan_started")
    with session_scope(engine, write=True) as session:
        with pytest.raises(careplans.StaleEditError) as stale:
            meetings.record_outcome(session, practice, item, 1, "not_appropriate", reason="Declined")
    assert stale.value.current["outcome"] == "plan_started"
    assert stale.value.changed_fields == ["outcome"]


def test_the_agenda_carries_reasons_frailty_plan_and_open_actions(engine):
    from app.services import assessments

    mdt = user(engine, "mdt1")
    person, other = flagged_numbers("P001")[:2]
    due = date.today() + timedelta(days=5)
    with session_scope(engine, write=True) as session:
        careplans.save_care_plan(session, mdt, person, 0, status="draft", what_matters="My garden",
                                 actions=[{"action": "Medication review", "owner": "Pharmacist", "due": due},
                                          {"action": "Rails fitted", "owner": "OT", "due": date.today() - timedelta(days=3)},
                                          {"action": "Blood test", "owner": "Nurse", "due": due, "done_on": date.today()}])
        assessments.record_assessment(session, mdt, person, assessed_on=date.today(), assessor_name="Jo Hill",
                                      assessor_role="Community matron",
                                      findings={"falls": {"finding": "needs_action", "note": "Two falls"}})
        meeting = meetings.create_meeting(session, mdt, "P001", date.today() + timedelta(days=2), ["GP"])
        meetings.add_to_agenda(session, mdt, meeting["meeting_id"], [person, other])
    with session_scope(engine) as session:
        items = meetings.agenda(session, mdt, meeting["meeting_id"]).set_index("nhs_number")
    row = items.loc[person]
    assert row["name"] == "Given0 Family0" and row["what_matters"] == "My garden"
    assert row["reasons"] == ["Two emergency admissions in the last year", "Aged 80 or over"]
    assert [a["action"] for a in row["open_actions"]] == ["Medication review", "Rails fitted"]
    assert row["overdue_actions"] == 1 and not row["has_contingency"] and row["plan_status"] == "draft"
    assert row["needs_action"] == ["Falls"] and row["last_assessed_on"] == date.today()
    assert row["frailty"] == "Not known (under 65 or no eFI)"  # this small store has no eFI categories
    assert row["flag_labels"] and items.loc[other, "plan_status"] == "none"


def test_the_printable_agenda_escapes_record_text_and_is_audited(engine):
    mdt = user(engine, "mdt1")
    person = flagged_numbers("P001")[0]
    with session_scope(engine, write=True) as session:
        careplans.save_care_plan(session, mdt, person, 0, status="draft",
                                 what_matters="<img src=x onerror=alert(1)> my dog")
        meeting = meetings.create_meeting(session, mdt, "P001", date.today() + timedelta(days=2), ["GP", "Pharmacist"])
        meetings.add_to_agenda(session, mdt, meeting["meeting_id"], [person])
    from app.services import documents

    with session_scope(engine) as session:
        page = documents.agenda_document(session, mdt, meeting["meeting_id"]).content.decode()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt; my dog" in page
    assert "MDT meeting agenda" in page and "attending: GP, Pharmacist" in page and "1 person" in page
    assert f"NHS number {person[:3]} {person[3:6]} {person[6:]}" in page
    with session_scope(engine) as session:
        exported = session.scalars(select(AuditEvent).where(AuditEvent.action == "agenda_export")).one()
    assert exported.entity_id == str(meeting["meeting_id"]) and exported.detail == "html, 1 people"


def test_outcomes_are_recorded_against_the_plan_fields(engine):
    mdt = user(engine, "mdt1")
    started, reviewed = flagged_numbers("P001")[:2]
    review = date.today() + timedelta(days=90)
    with session_scope(engine, write=True) as session:
        careplans.save_care_plan(session, mdt, reviewed, 0, status="agreed", next_review=date.today() + timedelta(days=3),
                                 actions=[{"action": "Walk daily", "owner": "Person", "due": review}])
        meeting = meetings.create_meeting(session, mdt, "P001", date.today(), ["GP"])["meeting_id"]
        meetings.add_to_agenda(session, mdt, meeting, [started, reviewed])
    with session_scope(engine) as session:
        items = meetings.agenda(session, mdt, meeting).set_index("nhs_number")
    new_action = {"action": "Falls clinic referral", "owner": "Dr Rao", "due": date.today() + timedelta(days=14)}
    with session_scope(engine, write=True) as session:
        with pytest.raises(UserInputError, match="needs the date of the next review"):
            meetings.record_outcome(session, mdt, items.loc[reviewed, "item_id"], 1, "plan_reviewed",
                                    plan={"add_actions": [new_action]}, plan_version=1)
    with session_scope(engine, write=True) as session:
        with pytest.raises(UserInputError, match="recorded with the outcome 'Care plan started'"):
            meetings.record_outcome(session, mdt, items.loc[reviewed, "item_id"], 1, "lead_assigned",
                                    lead_name="Dr Rao", lead_role="GP", plan={"next_review": review})
    with session_scope(engine, write=True) as session:
        meetings.record_outcome(session, mdt, items.loc[started, "item_id"], 1, "plan_started",
                                plan={"what_matters": "Stay at home", "add_actions": [new_action]}, plan_version=0)
        meetings.record_outcome(session, mdt, items.loc[reviewed, "item_id"], 1, "plan_reviewed",
                                plan={"next_review": review, "add_actions": [new_action]}, plan_version=1)
    with session_scope(engine) as session:
        first = careplans.get_care_plan(session, mdt, started)
        second = careplans.get_care_plan(session, mdt, reviewed)
    assert (first["status"], first["what_matters"], first["version"]) == ("draft", "Stay at home", 1)
    assert [a["action"] for a in first["actions"]] == ["Falls clinic referral"]
    assert second["next_review"] == review and second["version"] == 2
    assert [a["action"] for a in second["actions"]] == ["Walk daily", "Falls clinic referral"]


def test_an_outcome_from_an_old_plan_version_changes_nothing(engine):
    practice, mdt = user(engine, "practice1"), user(engine, "mdt1")
    person = flagged_numbers("P001")[0]
    with session_scope(engine, write=True) as session:
        meeting = meetings.create_meeting(session, mdt, "P001", date.today(), ["GP"])["meeting_id"]
        meetings.add_to_agenda(session, mdt, meeting, [person])
        item = int(meetings.agenda(session, mdt, meeting)["item_id"].iloc[0])
        careplans.save_care_plan(session, practice, person, 0, status="draft", goals=["Colleague's goal"])
    with pytest.raises(careplans.StaleEditError):
        with session_scope(engine, write=True) as session:  # the agenda showed no plan (version 0)
            meetings.record_outcome(session, mdt, item, 1, "plan_started", plan={"what_matters": "Mine"}, plan_version=0)
    with session_scope(engine) as session:
        assert meetings.agenda(session, mdt, meeting)["outcome"].isna().all()
        assert careplans.get_care_plan(session, mdt, person)["version"] == 1
