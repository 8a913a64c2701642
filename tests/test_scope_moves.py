"""Issue 18, finding 3: every read of a person's data goes through the same scope check, agendas
included, so a person who re-registers at another practice leaves the old practice's views (agenda,
list, caseload) unless a navigator holds them on their caseload by assignment. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.db import session_scope
from app.load import load
from app.services import caseload, documents, meetings, patients
from app.services.access import AccessDenied
from app.store import AuditEvent, Score, ScoreRun
from conftest import make_records, make_scores, write_score_file
from features.records import write_records

MEETING_DAY = date.today() + timedelta(days=7)


def _flagged_at(engine, practice: str, count: int) -> list[str]:
    with session_scope(engine) as session:
        run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
        return list(session.scalars(select(Score.nhs_number).where(
            Score.run_id == run.id, Score.practice_code == practice, Score.flagged).order_by(Score.nhs_number).limit(count)))


def _only_held_by_navigator(session, user, held: list[str], not_held: list[str]) -> None:
    """navigator1 holds ``held`` on their caseload and not ``not_held`` (the demo seeding put the
    highest-risk people of their practices on it)."""
    from sqlalchemy import delete

    from app.store import CaseloadAssignment

    session.execute(delete(CaseloadAssignment).where(CaseloadAssignment.nhs_number.in_(not_held)))
    for nhs in held:
        if session.get(CaseloadAssignment, nhs) is None:
            caseload.assign_to_navigator(session, user, nhs, "navigator1")


def _reregister(url: str, tiny_inputs: dict, tmp_path, movers: list[str]) -> None:
    """The next monthly load: the records now have ``movers`` registered at P003 (another PCN)."""
    records = make_records()
    moving = records.patients["nhs_number"].isin(movers)
    records.patients.loc[moving, ["practice_code", "pcn_code"]] = ["P003", "N02"]
    write_records(records, tmp_path / "moved")
    write_score_file(make_scores(records), tmp_path / "moved.parquet", tiny_inputs["model"])
    load(tmp_path / "moved", tmp_path / "moved.parquet", tiny_inputs["model"], url, progress=False)


def test_a_person_who_moves_practice_leaves_the_old_practices_views(loaded_url, loaded_engine, users, tiny_inputs,
                                                                    tmp_path):
    practice, navigator, new_practice = users["practice1"], users["navigator1"], users["practice2"]
    held, moved, stays = _flagged_at(loaded_engine, "P001", 3)
    with session_scope(loaded_engine, write=True) as session:
        meeting = meetings.create_meeting(session, practice, "P001", MEETING_DAY, ["GP"])["meeting_id"]
        meetings.add_to_agenda(session, practice, meeting, [held, moved, stays])
        _only_held_by_navigator(session, practice, [held], [moved, stays])
    with session_scope(loaded_engine) as session:
        items = meetings.agenda(session, practice, meeting)
        item_of = dict(zip(items["nhs_number"], items["item_id"]))
    assert set(items["nhs_number"]) == {held, moved, stays}

    _reregister(loaded_url, tiny_inputs, tmp_path, [held, moved])

    with session_scope(loaded_engine) as session:
        agenda = meetings.agenda(session, practice, meeting)
        counted = meetings.list_meetings(session, practice).set_index("meeting_id").at[meeting, "people"]
        printed = documents.agenda_document(session, practice, meeting).content.decode()
        listed = set(patients.flagged_list(session, practice)["nhs_number"])
        held_by_navigator = set(caseload.my_caseload(session, navigator)["nhs_number"])
        seen_by_practice = set(caseload.my_caseload(session, practice, navigator_username="navigator1")["nhs_number"])
        without_plan = set(caseload.flagged_without_plan(session, navigator)["nhs_number"])
        navigator_agenda = set(meetings.agenda(session, navigator, meeting)["nhs_number"])
    with session_scope(loaded_engine) as session:  # the views were audited when that session closed
        views = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "agenda_view",
                                                                AuditEvent.username == "practice1")
                                .order_by(AuditEvent.id.desc())).first()
    assert list(agenda["nhs_number"]) == [stays] and agenda.attrs["not_shown"] == 2
    assert counted == 1
    for nhs in (held, moved):
        assert f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" not in printed and nhs not in listed and nhs not in without_plan
        assert nhs not in views and nhs not in navigator_agenda  # the old practice's agenda, for everyone
    assert f"{stays[:3]} {stays[3:6]} {stays[6:]}" in printed and stays in listed
    assert held in held_by_navigator  # on the navigator's caseload by assignment: they keep them
    assert held not in seen_by_practice  # the old practice looking at that caseload does not
    for read in (lambda s: patients.patient_record(s, practice, moved),
                 lambda s: meetings.record_outcome(s, practice, item_of[moved], 1, "plan_started")):
        with pytest.raises(AccessDenied, match="not registered at your practices"):
            with session_scope(loaded_engine, write=True) as session:
                read(session)
    with session_scope(loaded_engine) as session:  # the new practice reaches them
        assert patients.patient_record(session, new_practice, moved)["practice_code"] == "P003"
        assert moved in set(patients.flagged_list(session, new_practice)["nhs_number"])
        assert patients.patient_record(session, navigator, held)["practice_code"] == "P003"


def test_the_navigator_cannot_record_an_outcome_at_the_old_practices_meeting(loaded_url, loaded_engine, users,
                                                                              tiny_inputs, tmp_path):
    """Holding someone on a caseload reaches their record, not the agenda of a practice they left."""
    practice, navigator = users["practice1"], users["navigator1"]
    (held,) = _flagged_at(loaded_engine, "P002", 1)
    with session_scope(loaded_engine, write=True) as session:
        meeting = meetings.create_meeting(session, practice, "P002", MEETING_DAY, ["GP"])["meeting_id"]
        meetings.add_to_agenda(session, practice, meeting, [held])
        _only_held_by_navigator(session, practice, [held], [])
        item = int(meetings.agenda(session, practice, meeting)["item_id"].iloc[0])
    _reregister(loaded_url, tiny_inputs, tmp_path, [held])
    from features.errors import UserInputError

    with pytest.raises(UserInputError, match="now registered at P003"):
        with session_scope(loaded_engine, write=True) as session:
            meetings.record_outcome(session, navigator, item, 1, "plan_started")
