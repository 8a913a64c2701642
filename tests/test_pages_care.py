"""The patient and MDT pages' care-planning parts with Streamlit's AppTest (no browser): assessment,
a plan with its contingency plan, clinical judgement, downloads, the stale panel in words, and the
agenda. The store is the small one from test_pages_support."""

from __future__ import annotations

from datetime import date, timedelta


from app.db import session_scope
from app.services import assessments, careplans, cohort, meetings
from app.services.users import get_user
from test_pages import engine, open_page, signed_in, submit_form, texts  # noqa: F401 (fixture)
from test_pages_support import PEOPLE_PER_PRACTICE, flagged_numbers, synthetic_nhs_numbers

FUTURE = date.today() + timedelta(days=120)


def _unflagged_at_p001() -> str:
    flagged = set(flagged_numbers("P001"))
    return next(n for n in synthetic_nhs_numbers(PEOPLE_PER_PRACTICE) if n not in flagged)


def _as(engine, username):
    with session_scope(engine) as session:
        return get_user(session, username)


def test_assessment_and_a_plan_with_its_contingency_from_the_patient_page(engine):
    person = flagged_numbers("P001")[4]
    at = open_page(signed_in("practice1"), "patient", nhs=person)
    assert "No holistic assessment recorded yet." in texts(at.caption)
    at.text_input(key=f"assessment_by_{person}").input("Jo Hill")
    at.selectbox(key=f"assessment_role_{person}").select("Community matron")
    at.selectbox(key=f"assessment_falls_{person}").select("needs_action")
    at.text_input(key=f"assessment_falls_note_{person}").input("Two falls since June")
    at.text_area(key=f"assessment_what_matters_{person}").input("Staying in my flat")
    submit_form(at, "Save assessment")
    assert not at.error, texts(at.error)
    at.selectbox(key=f"plan_status_{person}").select("agreed")
    at.text_area(key=f"plan_what_matters_{person}").input("Staying in my flat with my cat")
    at.text_input(key=f"plan_day_name_{person}").input("Community nursing team")
    at.text_input(key=f"plan_day_phone_{person}").input("0116 225 6000")
    at.text_input(key=f"plan_night_name_{person}").input("NHS 111")
    at.text_input(key=f"plan_night_phone_{person}").input("111")
    at.date_input(key=f"plan_next_review_{person}").set_value(FUTURE)
    submit_form(at, "Save care plan")
    assert not at.error, texts(at.error)
    assert "Care plan: Agreed" in texts(at.subheader)
    assert {"Download the plan for the person (to print)", "Download for another system (FHIR R4)"} <= {
        b.label for b in at.get("download_button")}
    with session_scope(engine) as session:
        gp = get_user(session, "practice1")
        (found,) = assessments.list_assessments(session, gp, person)
        plan = careplans.get_care_plan(session, gp, person)
    assert found["assessor_name"] == "Jo Hill" and found["findings"]["falls"]["note"] == "Two falls since June"
    assert plan["contingency"]["night_phone"] == "111" and plan["what_matters"] == "Staying in my flat with my cat"
    assert "Latest: " in texts(at.caption) and "Jo Hill (Community matron)" in texts(at.caption)


def test_half_a_contingency_plan_is_one_sentence_and_nothing_is_saved(engine):
    person = flagged_numbers("P001")[5]
    at = open_page(signed_in("practice1"), "patient", nhs=person)
    at.text_input(key=f"plan_day_name_{person}").input("Community nursing team")
    submit_form(at, "Save care plan")
    assert "needs both who to call in the day and their phone number" in texts(at.error)
    with session_scope(engine) as session:
        assert careplans.get_care_plan(session, get_user(session, "practice1"), person)["version"] == 0


def test_a_practice_user_adds_an_unflagged_person_and_the_page_says_so(engine):
    person = _unflagged_at_p001()
    at = open_page(signed_in("practice1"), "patient", nhs=person)
    at.selectbox(key=f"judgement_reason_{person}").select("recent_change")
    at.text_area(key=f"judgement_note_{person}").input("Two admissions with [falls](http://example.com)")
    submit_form(at, "Add to the programme")
    assert not at.error, texts(at.error)
    shown = texts(at.info)
    assert "Added to the programme by clinical judgement: Recent decline or change in circumstances." in shown
    assert "\\[falls\\]\\(http" in shown  # the note is shown as typed, never as a link
    with session_scope(engine) as session:
        decision = cohort.decision_of(session, person)
    assert decision["decision"] == "include" and decision["updated_by"] == "practice1"
    at = open_page(signed_in("navigator1"), "patient", nhs=person)
    assert "GP practice staff and MDT clinicians record these decisions." in texts(at.caption)


def test_the_stale_panel_says_what_changed_in_words(engine):
    person = flagged_numbers("P001")[6]
    at = open_page(signed_in("practice1"), "patient", nhs=person)
    with session_scope(engine, write=True) as session:
        careplans.save_care_plan(session, get_user(session, "mdt1"), person, 0, status="draft",
                                 contingency={"day_name": "Dr Rao", "day_phone": "0116 000 0000"})
    at.text_area(key=f"plan_what_matters_{person}").input("My garden")
    submit_form(at, "Save care plan")
    assert "changed by mdt1" in texts(at.error)
    table = at.dataframe[-1].value
    shown = " ".join(str(v) for v in table.to_numpy().ravel())
    assert "In the day, call Dr Rao on 0116 000 0000." in shown and "{" not in shown


def test_the_agenda_page_shows_each_persons_plan_and_offers_a_printable_agenda(engine):
    mdt = _as(engine, "mdt1")
    person = flagged_numbers("P001")[7]
    with session_scope(engine, write=True) as session:
        careplans.save_care_plan(session, mdt, person, 0, status="draft", what_matters="Seeing my grandson",
                                 actions=[{"action": "Medication review", "owner": "Pharmacist",
                                           "due": date.today() - timedelta(days=1)}])
        meeting = meetings.create_meeting(session, mdt, "P001", date.today() + timedelta(days=1), ["GP"])
        meetings.add_to_agenda(session, mdt, meeting["meeting_id"], [person])
    at = open_page(signed_in("mdt1"), "meetings")
    table = at.dataframe[0].value
    assert table["Open actions"].iloc[0] == "1 (1 overdue)" and table["Care plan"].iloc[0] == "Draft"
    assert table["NHS number"].iloc[0] == f"{person[:3]} {person[3:6]} {person[6:]}"
    assert "Seeing my grandson" in texts(at.markdown) and "Medication review" in texts(at.markdown)
    assert "Print the agenda" in {b.label for b in at.get("download_button")}
