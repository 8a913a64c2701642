"""Navigator caseloads through the service layer: scope, ordering, capacity and stale reassignment."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from features.errors import UserInputError
from app.db import session_scope
from app.services import careplans, caseload
from app.services.access import AccessDenied
from app.services.users import get_user
from app.store import AuditEvent, User
from test_pages_support import build_store, flagged_numbers

TODAY = date(2026, 3, 1)


@pytest.fixture()
def engine(tmp_path):
    return build_store(tmp_path / "store.db")


def user(engine, name):
    with session_scope(engine) as session:
        return get_user(session, name)


def assign(engine, actor, nhs, navigator="navigator1", expected=None):
    with session_scope(engine, write=True) as session:
        return caseload.assign_to_navigator(session, actor, nhs, navigator, expected)


def test_caseload_orders_overdue_reviews_first_then_no_plan(engine):
    practice, navigator = user(engine, "practice1"), user(engine, "navigator1")
    overdue, no_plan, in_date = flagged_numbers("P001")[:3]
    for nhs in (overdue, no_plan, in_date):
        assign(engine, practice, nhs)
    with session_scope(engine, write=True) as session:
        for nhs, review in ((overdue, TODAY + timedelta(days=10)), (in_date, TODAY + timedelta(days=90))):
            careplans.save_care_plan(session, practice, nhs, 0, today=TODAY, status="agreed",
                                     goals=["Stay at home"], next_review=review)
    with session_scope(engine) as session:
        # 20 days later the first plan is past its review date
        frame = caseload.my_caseload(session, navigator, today=TODAY + timedelta(days=20))
    assert list(frame["nhs_number"]) == [overdue, no_plan, in_date]
    assert list(frame["plan_status"]) == ["review_due", "none", "agreed"]
    assert frame["review_overdue"].tolist() == [True, False, False]


def test_navigator_cannot_open_someone_elses_caseload_and_the_refusal_is_audited(engine):
    with pytest.raises(AccessDenied):
        with session_scope(engine) as session:
            caseload.my_caseload(session, user(engine, "navigator1"), navigator_username="other")
    with session_scope(engine) as session:
        refusal = session.scalars(select(AuditEvent).where(AuditEvent.action == "access_denied")).one()
    assert (refusal.username, refusal.entity_id) == ("navigator1", "other")


def test_commissioner_cannot_see_people_without_plans(engine):
    with session_scope(engine) as session:
        with pytest.raises(AccessDenied):
            caseload.flagged_without_plan(session, user(engine, "commissioner"))


def test_flagged_without_plan_drops_people_once_they_have_a_plan(engine):
    practice = user(engine, "practice1")
    with session_scope(engine) as session:
        before = caseload.flagged_without_plan(session, practice)
    first = before["nhs_number"].iloc[0]
    with session_scope(engine, write=True) as session:
        careplans.save_care_plan(session, practice, first, 0, status="draft")
    with session_scope(engine) as session:
        after = caseload.flagged_without_plan(session, practice)
    assert set(before["practice_code"]) <= {"P001", "P002"}
    assert before["flagged"].all()
    assert first not in set(after["nhs_number"])
    assert len(after) == len(before) - 1


def test_capacity_warning_when_over(engine):
    navigator = user(engine, "navigator1")
    with session_scope(engine, write=True) as session:
        caseload.set_capacity(session, navigator, "navigator1", 2)
    results = [assign(engine, navigator, nhs) for nhs in flagged_numbers("P001")[:3]]
    assert [r["over_capacity"] for r in results] == [False, False, True]
    with session_scope(engine) as session:
        table = caseload.navigator_capacity(session, navigator)
    row = table.set_index("username").loc["navigator1"]
    assert row["people"] == 3 and row["caseload_capacity"] == 2 and row["over_capacity"]


@pytest.mark.parametrize("bad", ["lots", 0, -5, 5000])
def test_bad_capacity_is_refused_with_a_sentence(engine, bad):
    with session_scope(engine, write=True) as session:
        with pytest.raises(UserInputError):
            caseload.set_capacity(session, user(engine, "navigator1"), "navigator1", bad)


def test_reassignment_from_a_stale_form_is_refused_and_not_audited(engine):
    practice = user(engine, "practice1")
    nhs = flagged_numbers("P001")[0]
    with session_scope(engine, write=True) as session:
        session.add(User(username="navigator2", display_name="Navigator two", role="navigator",
                         password_hash="x", practice_codes=["P001"], caseload_capacity=50))
    first = assign(engine, practice, nhs)
    moved = assign(engine, practice, nhs, "navigator2", expected=first["version"])
    assert moved["navigator"] == "navigator2" and moved["version"] == first["version"] + 1
    with pytest.raises(careplans.StaleEditError) as refused:
        assign(engine, practice, nhs, "navigator1", expected=first["version"])
    assert refused.value.current["navigator"] == "navigator2"
    with pytest.raises(careplans.StaleEditError):
        assign(engine, practice, nhs, "navigator1", expected=None)
    with session_scope(engine) as session:
        audited = session.scalar(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.action == "caseload_assign"))
    assert audited == 2


def test_cannot_assign_another_practices_person_or_to_a_non_navigator(engine):
    practice = user(engine, "practice1")
    with pytest.raises(AccessDenied):
        assign(engine, practice, flagged_numbers("P003")[0])
    with pytest.raises(UserInputError):
        assign(engine, practice, flagged_numbers("P001")[0], navigator="mdt1")


def test_an_overdue_action_or_follow_up_puts_a_person_first(engine):
    practice, navigator = user(engine, "practice1"), user(engine, "navigator1")
    late_action, late_follow_up, no_plan, fine = flagged_numbers("P001")[:4]
    for nhs in (late_action, late_follow_up, no_plan, fine):
        assign(engine, practice, nhs)
    review = TODAY + timedelta(days=90)
    with session_scope(engine, write=True) as session:
        careplans.save_care_plan(session, practice, late_action, 0, today=TODAY, status="agreed", next_review=review,
                                 actions=[{"action": "Rails", "owner": "OT", "due": TODAY + timedelta(days=5)},
                                          {"action": "Bloods", "owner": "Nurse", "due": TODAY + timedelta(days=6)},
                                          {"action": "Done", "owner": "GP", "due": TODAY, "done_on": TODAY}])
        careplans.save_care_plan(session, practice, late_follow_up, 0, today=TODAY, status="agreed", next_review=review,
                                 follow_ups=[{"due": TODAY + timedelta(days=7), "what": "Phone call", "who": "Navigator"}])
        careplans.save_care_plan(session, practice, fine, 0, today=TODAY, status="agreed", next_review=review,
                                 actions=[{"action": "Walk", "owner": "Person", "due": TODAY + timedelta(days=60)}])
    with session_scope(engine) as session:
        on_the_day = caseload.my_caseload(session, navigator, today=TODAY + timedelta(days=6)).set_index("nhs_number")
        frame = caseload.my_caseload(session, navigator, today=TODAY + timedelta(days=10))
    assert on_the_day.loc[late_action, "overdue_actions"] == 1  # "Bloods" is due that day, not overdue
    mine = frame.set_index("nhs_number")
    assert set(frame["nhs_number"].iloc[:2]) == {late_action, late_follow_up}
    assert frame["nhs_number"].iloc[2] == no_plan
    assert mine.loc[late_action, "overdue_summary"] == "2 actions"
    assert mine.loc[late_follow_up, "overdue_summary"] == "1 follow-up"
    assert not mine.loc[fine, "overdue"] and mine.loc[fine, "overdue_summary"] == ""
    assert caseload.overdue_in_words(True, 1, 2) == "Review, 1 action, 2 follow-ups"
