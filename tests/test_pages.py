"""The Streamlit app with streamlit.testing.v1.AppTest: every page per role, an assignment, bad input,
empty states and a stale form. No browser; the store is the small one from test_pages_support."""

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.db import session_scope
from features.flags import flag_labels
from app.store import Score
from app.services import careplans, caseload, coverage
from app.services.users import get_user
from test_pages_support import build_store, demo_password, flagged_numbers

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PAGE = {name: f"app/pages/{name}.py" for name in
        ("high_risk_list", "patient", "meetings", "caseload", "coverage", "model_card", "audit")}
PAGES_BY_ROLE = {
    "practice1": ["high_risk_list", "patient", "meetings", "caseload", "coverage", "model_card"],
    "navigator1": ["caseload", "high_risk_list", "patient", "meetings", "coverage", "model_card"],
    "mdt1": ["meetings", "high_risk_list", "patient", "caseload", "coverage", "model_card"],
    "commissioner": ["coverage", "model_card"],
    "admin": ["audit", "coverage", "model_card"],
}
FUTURE = date.today() + timedelta(days=120)


@pytest.fixture()
def engine(tmp_path, monkeypatch):
    monkeypatch.setenv("PROACTIVE_CARE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("PROACTIVE_CARE_MODEL_DIR", str(tmp_path / "model"))
    st.cache_data.clear()
    return build_store(tmp_path / "store.db")


@pytest.fixture()
def empty_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("PROACTIVE_CARE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    st.cache_data.clear()
    return build_store(tmp_path / "empty.db", flagged=False)


def signed_in(username: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="sign_in_username").input(username)
    at.text_input(key="sign_in_password").input(demo_password(username))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def open_page(at: AppTest, page: str, **params) -> AppTest:
    at.query_params.clear()
    at.query_params.update(params)
    at.switch_page(PAGE[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def keyed(widgets, prefix: str):
    found = [w for w in widgets if str(w.key or "").startswith(prefix)]
    assert found, f"no widget with a key starting {prefix!r}"
    return found[0]


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_wrong_password_is_one_sentence(engine):
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="sign_in_username").input("practice1")
    at.text_input(key="sign_in_password").input("wrong password")
    at.button[0].click().run()
    assert not at.exception
    assert "do not match" in texts(at.error)
    assert "user" not in at.session_state


@pytest.mark.parametrize("username", list(PAGES_BY_ROLE))
def test_every_page_of_each_role_opens_without_error(engine, username):
    at = signed_in(username)
    assert at.session_state["user"].username == username
    for page in PAGES_BY_ROLE[username]:
        open_page(at, page)
        assert not at.error, (page, texts(at.error))
    assert at.sidebar.button(key="sign_out")


def people_aged_60_plus(engine) -> list[str]:
    with session_scope(engine) as session:
        return list(session.scalars(
            select(Score.nhs_number).where(coverage.current_run(session).has_flag("age_60_plus"),
                                           Score.practice_code.in_(["P001", "P002"]))
            .order_by(Score.nhs_number)
        ))


def area_60_plus_covered(engine):
    with session_scope(engine, write=True) as session:
        table = coverage.coverage(session, get_user(session, "commissioner"), level="area")
    return table.set_index("group").at["age_60_plus", "covered"]


def test_practice_user_takes_a_flagged_person_to_an_agreed_plan_and_coverage_moves(engine):
    *seven, person = people_aged_60_plus(engine)[:8]
    with session_scope(engine, write=True) as session:  # 7 covered already: suppressed as 1-7
        practice = get_user(session, "practice1")
        for nhs in seven:
            careplans.assign_lead_professional(session, practice, nhs, "Dr Lee", "GP", 0)
            careplans.save_care_plan(session, practice, nhs, 0, status="agreed", goals=["Stay well"],
                                     next_review=FUTURE)
    assert pd.isna(area_60_plus_covered(engine))
    at = signed_in("practice1")
    open_page(at, "high_risk_list")
    assert person in list(at.dataframe[0].value["NHS number"])
    open_page(at, "patient", nhs=person)
    at.text_input(key=f"lead_name_{person}").input("Dr Asha Rao")
    at.selectbox(key=f"lead_role_{person}").select("GP")
    submit_form(at, "Save lead professional")
    at.selectbox(key=f"plan_status_{person}").select("agreed")
    at.text_area(key=f"plan_goals_{person}").input("Stay well at home\nFewer falls")
    at.checkbox(key=f"plan_consent_{person}").check()
    at.date_input(key=f"plan_next_review_{person}").set_value(FUTURE)
    submit_form(at, "Save care plan")
    assert not at.error, texts(at.error)
    assert "Care plan: Agreed" in texts(at.subheader)
    with session_scope(engine, write=True) as session:
        practice = get_user(session, "practice1")
        plan = careplans.get_care_plan(session, practice, person)
        lead = careplans.get_lead_professional(session, practice, person)
    assert plan["status"] == "agreed" and plan["goals"] == ["Stay well at home", "Fewer falls"]
    assert plan["consent_to_share"] and plan["next_review"] == FUTURE
    assert (lead["name"], lead["role"]) == ("Dr Asha Rao", "GP")
    assert area_60_plus_covered(engine) == 10  # 8 covered, rounded to the nearest 5
    at = open_page(signed_in("commissioner"), "coverage", level="area")
    assert flag_labels()["age_60_plus"] in [m.label for m in at.metric]


def submit_form(at: AppTest, label: str) -> None:
    buttons = [b for b in at.get("button") if getattr(b, "label", None) == label]
    assert buttons, f"no button {label!r}"
    buttons[0].click().run()
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"nhs": "12345"}, "is not an NHS number"),
        ({"nhs": "9990000000"}, "no person"),
        ({"nhs": flagged_numbers("P003")[0]}, "not registered at your practices"),
    ],
)
def test_bad_nhs_numbers_in_the_url_are_sentences_not_tracebacks(engine, params, expected):
    at = open_page(signed_in("practice1"), "patient", **params)
    assert expected in texts(at.error)


def test_unknown_practice_in_the_url_shows_a_warning_and_the_users_list(engine):
    at = open_page(signed_in("practice1"), "high_risk_list", practice="ZZZ99")
    assert "ZZZ99 is not one of your practices" in texts(at.warning)
    assert set(at.dataframe[0].value["Practice"]) <= {"P001", "P002"}


def test_review_date_in_the_past_is_refused_with_a_sentence(engine):
    person = flagged_numbers("P001")[1]
    at = open_page(signed_in("practice1"), "patient", nhs=person)
    at.selectbox(key=f"plan_status_{person}").select("agreed")
    at.date_input(key=f"plan_next_review_{person}").set_value(date.today() - timedelta(days=3))
    submit_form(at, "Save care plan")
    assert "is not in the future" in texts(at.error)


def test_stale_care_plan_form_shows_what_changed_and_merges(engine):
    person = flagged_numbers("P001")[2]
    at = open_page(signed_in("practice1"), "patient", nhs=person)
    with session_scope(engine, write=True) as session:  # a colleague saves first
        careplans.save_care_plan(session, get_user(session, "mdt1"), person, 0, status="draft",
                                 goals=["Colleague's goal"])
    at.checkbox(key=f"plan_consent_{person}").check()
    submit_form(at, "Save care plan")
    assert "changed by mdt1" in texts(at.error)
    submit_form(at, "Keep my changes over the saved version")
    with session_scope(engine, write=True) as session:
        plan = careplans.get_care_plan(session, get_user(session, "practice1"), person)
    assert plan["version"] == 2 and plan["consent_to_share"] and plan["goals"] == ["Colleague's goal"]


def test_empty_store_shows_empty_states(empty_engine):
    at = open_page(signed_in("practice1"), "high_risk_list")
    assert "Nobody matches" in texts(at.info)
    open_page(at, "patient")
    assert "No person chosen yet" in texts(at.info)
    open_page(at, "meetings")
    assert "No MDT meetings yet" in texts(at.info)
    at = open_page(signed_in("commissioner"), "coverage")
    assert "Nobody is flagged" in texts(at.info)


def test_meeting_created_and_outcome_recorded_from_the_page(engine):
    person = flagged_numbers("P001")[3]
    at = open_page(signed_in("mdt1"), "meetings")
    at.date_input(key="meeting_date").set_value(date.today() + timedelta(days=3))
    submit_form(at, "Create meeting")
    assert "Meeting created" in texts(at.success)
    open_page(at, "high_risk_list")
    at.selectbox(key="open_from_list").select(person).run()
    at.button(key="add_to_agenda").click().run()
    assert "Added 1 person to the agenda" in texts(at.success)
    open_page(at, "meetings")
    keyed(at.radio, "outcome_").set_value("lead_assigned")
    keyed(at.text_input, "outcome_lead_").input("Sam Patel")
    keyed(at.selectbox, "outcome_role_").select("Care navigator")
    submit_form(at, "Record outcome")
    with session_scope(engine, write=True) as session:
        lead = careplans.get_lead_professional(session, get_user(session, "mdt1"), person)
    assert (lead["name"], lead["role"]) == ("Sam Patel", "Care navigator")


def test_navigator_adds_a_person_and_sees_capacity_warning(engine):
    at = open_page(signed_in("navigator1"), "caseload")
    assert "Nobody on this caseload yet" in texts(at.info)
    at.number_input(key="capacity_value").set_value(1)
    submit_form(at, "Save capacity")
    with session_scope(engine, write=True) as session:  # one person already on the caseload
        caseload.assign_to_navigator(session, get_user(session, "navigator1"), flagged_numbers("P002")[0],
                                     "navigator1")
    at.button(key="unplanned_add").click().run()
    assert not at.exception
    assert "over their capacity of 1" in texts(at.success) + texts(at.warning)


def test_admin_searches_the_audit_trail(engine):
    at = open_page(signed_in("admin"), "audit")
    assert "sign_in" in set(at.dataframe[0].value["action"])
    at.date_input(key="audit_since").set_value(date.today() + timedelta(days=2))
    submit_form(at, "Search")
    assert "'From' date is after" in texts(at.error)


def test_model_card_page_renders_the_card_or_says_there_is_none(engine, tmp_path):
    at = open_page(signed_in("commissioner"), "model_card")
    assert "No model card yet" in texts(at.info)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_card.md").write_text("# Model card\n\nAUROC on 2025: 0.77\n", encoding="utf-8")
    open_page(at, "model_card")
    assert "AUROC on 2025: 0.77" in texts(at.markdown)


def test_monthly_chart_is_drawn_on_request(engine):
    at = open_page(signed_in("commissioner"), "coverage", level="area")
    assert "image" not in [e.type for e in at.main]
    at.toggle(key="show_trend").set_value(True).run()
    assert not at.exception
    assert "Making Data Count" in texts(at.caption)
    assert [e.type for e in at.main].count("image") == 1


def test_a_database_that_is_not_set_up_gets_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("PROACTIVE_CARE_DATABASE_URL", f"sqlite:///{tmp_path / 'nothing.db'}")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "database is not ready" in texts(at.error)


def test_list_and_patient_pages_with_reasons_as_the_model_writes_them(tmp_path, monkeypatch):
    """Reasons are dicts with contributions, and only the top 5% have any (the others are NULL)."""
    monkeypatch.setenv("PROACTIVE_CARE_DATABASE_URL", f"sqlite:///{tmp_path / 'model.db'}")
    st.cache_data.clear()
    engine = build_store(tmp_path / "model.db", model_reasons=True)
    at = open_page(signed_in("practice1"), "high_risk_list")
    reasons = list(at.dataframe[0].value["Top reasons"])
    assert any(r.startswith("2 emergency admissions") for r in reasons)
    with session_scope(engine) as session:
        top = session.scalars(select(Score.nhs_number).where(
            coverage.current_run(session).has_flag("top_5pct"), Score.practice_code == "P001")).first()
    open_page(at, "patient", nhs=top)
    assert "aged 83 — lowers risk a little" in texts(at.markdown)
    assert [e.type for e in at.main].count("image") == 1  # the contribution chart


def test_pages_label_the_top_flags_with_the_runs_cutoffs(engine):
    from sqlalchemy import update

    from app.store import ScoreRun

    with session_scope(engine, write=True) as session:
        session.execute(update(ScoreRun).values(cutoffs={"top_2pct": 0.013, "top_5pct": 0.05}))
        top = session.scalars(select(Score.nhs_number).where(
            coverage.current_run(session).has_flag("top_2pct"), Score.practice_code.in_(["P001", "P002"]))).first()
    at = open_page(signed_in("commissioner"), "coverage", level="area")
    assert {"Top 1.3% risk", "Top 5% risk"} <= {m.label for m in at.metric}
    assert "Top 2% risk" not in {m.label for m in at.metric}
    at = open_page(signed_in("practice1"), "high_risk_list")
    assert at.multiselect(key="list_flags").options[:2] == ["Top 1.3% risk", "Top 5% risk"]
    open_page(at, "patient", nhs=top)
    assert "**Flags:** Top 1.3% risk, Top 5% risk" in texts(at.markdown)
