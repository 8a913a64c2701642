"""Holistic assessments (CGA domains): recorded per person with date and author, history kept,
checked, scoped and audited, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.services import assessments, patients
from app.services.access import AccessDenied
from app.services.assessments import InvalidAssessment
from features.errors import UserInputError
from app.store import Assessment, AuditEvent, Patient

TODAY = date.today()
FINDINGS = {
    "medicines": {"finding": "needs_action", "note": "12 medicines; review the sedatives"},
    "falls": {"finding": "needs_action", "note": "Two falls since the summer"},
    "mood": {"finding": "no_concern"},
    "carers": {"finding": "some_concern", "note": "Daughter works full time"},
}


@pytest.fixture
def people(loaded_engine):
    with session_scope(loaded_engine) as session:
        return {code: session.scalar(select(Patient.nhs_number).where(Patient.practice_code == code)
                                     .order_by(Patient.nhs_number)) for code in ("P001", "P003")}


def record(engine, user, nhs, **changes):
    fields = dict(assessed_on=TODAY - timedelta(days=3), assessor_name="Jo Hill", assessor_role="Community matron",
                  findings=FINDINGS, what_matters="Staying at home with my cat")
    fields.update(changes)
    with session_scope(engine, write=True) as session:
        return assessments.record_assessment(session, user, nhs, **fields)


def test_assessments_are_kept_newest_first_with_author_and_date(loaded_engine, users, people):
    person = people["P001"]
    first = record(loaded_engine, users["practice1"], person, assessed_on=TODAY - timedelta(days=200))
    second = record(loaded_engine, users["mdt1"], person, assessor_name="Dr Asha Rao", assessor_role="Geriatrician",
                    findings={"falls": {"finding": "no_concern"}})
    assert first["findings"]["medicines"] == {"finding": "needs_action", "note": "12 medicines; review the sedatives"}
    assert first["findings"]["cognition"] == {"finding": "not_assessed", "note": None}  # every item, always
    assert assessments.needing_action(first) == ["Medicines review", "Falls"]
    with session_scope(loaded_engine) as session:
        found = assessments.list_assessments(session, users["practice1"], person)
        shown = patients.patient_record(session, users["practice1"], person)["assessments"]
        audited = session.scalars(select(AuditEvent).where(AuditEvent.action == "assessment_record")
                                  .order_by(AuditEvent.id)).all()
    assert [a["assessment_id"] for a in found] == [second["assessment_id"], first["assessment_id"]]
    assert (found[0]["assessor_name"], found[0]["recorded_by"]) == ("Dr Asha Rao", "mdt1")
    assert shown == found
    assert [(e.username, e.entity_id) for e in audited] == [("practice1", person), ("mdt1", person)]
    assert audited[0].after["findings"]["falls"]["note"] == "Two falls since the summer"


@pytest.mark.parametrize("changes, message", [
    ({"assessed_on": TODAY + timedelta(days=1)}, "is in the future"),
    ({"assessed_on": "01/02/2026"}, "is not a date"),
    ({"assessed_on": date(1900, 1, 1)}, "before the person was born"),
    ({"assessor_name": "  "}, "Name the professional"),
    ({"assessor_role": "Wizard"}, "role must be one of"),
    ({"findings": {"falls": {"finding": "needs_action"}}}, "Falls needs action: say what"),
    ({"findings": {"falls": {"finding": "awful"}}}, "The finding for Falls must be one of"),
    ({"findings": {"hearing": {"finding": "no_concern"}}}, "no item"),
    ({"findings": {}}, "at least one item"),
])
def test_bad_assessments_are_one_sentence_and_write_nothing(loaded_engine, users, people, changes, message):
    with pytest.raises(UserInputError, match=message):
        record(loaded_engine, users["practice1"], people["P001"], **changes)
    with session_scope(loaded_engine) as session:
        assert session.scalar(select(func.count()).select_from(Assessment)) == 0


def test_assessments_are_scoped_like_every_other_read_and_write(loaded_engine, users, people):
    record(loaded_engine, users["practice2"], people["P003"])
    with pytest.raises(AccessDenied):
        record(loaded_engine, users["practice1"], people["P003"])
    for username in ("practice1", "commissioner"):
        with pytest.raises(AccessDenied):
            with session_scope(loaded_engine) as session:
                assessments.list_assessments(session, users[username], people["P003"])


def test_an_assessment_recorded_at_an_earlier_date(loaded_engine, users, people):
    then = datetime(2025, 5, 2, 9, 0, tzinfo=timezone.utc)
    saved = record(loaded_engine, users["mdt1"], people["P001"], assessed_on=date(2025, 5, 1), at=then)
    assert saved["recorded_at"] == then and saved["assessed_on"] == date(2025, 5, 1)
    with pytest.raises(InvalidAssessment, match="in the future"):  # judged on that day, not today
        record(loaded_engine, users["mdt1"], people["P001"], assessed_on=date(2025, 6, 1), at=then)
