"""The audit trail: every view and change recorded; the database refuses UPDATE and DELETE."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.db import session_scope
from app.services import audit, careplans, patients
from app.store import AuditEvent, Patient


def _count(session, **where) -> int:
    query = select(func.count()).select_from(AuditEvent)
    for key, value in where.items():
        query = query.where(getattr(AuditEvent, key) == value)
    return session.scalar(query)


def test_views_and_changes_are_recorded_with_who_and_what(loaded_engine, users):
    gp = users["practice1"]
    with session_scope(loaded_engine, write=True) as session:
        person = session.scalar(select(Patient.nhs_number).where(Patient.practice_code == "P002"))
        patients.patient_record(session, gp, person)
        careplans.save_care_plan(session, gp, person, 0, status="draft", goals=["Fewer falls"])
    with session_scope(loaded_engine) as session:
        view = session.scalars(select(AuditEvent).where(AuditEvent.action == "view")).one()
        assert (view.username, view.role, view.entity_id) == ("practice1", "practice", person)
        change = session.scalars(select(AuditEvent).where(AuditEvent.action == "care_plan_save")).one()
        assert change.before is None and change.after["goals"] == ["Fewer falls"] and change.at is not None


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET username = 'someone else'",
                                       "DELETE FROM audit_events"])
def test_database_refuses_to_rewrite_the_audit_trail(loaded_engine, statement):
    with session_scope(loaded_engine) as session:
        before = _count(session)
        assert before > 0
    with pytest.raises(DBAPIError, match="append-only"):
        with session_scope(loaded_engine, write=True) as session:
            session.execute(text(statement))
    with session_scope(loaded_engine) as session:
        assert _count(session) == before
        assert _count(session, username="someone else") == 0


def test_admin_search_and_csv_export(loaded_engine, users):
    with session_scope(loaded_engine, write=True) as session:
        person = session.scalar(select(Patient.nhs_number).where(Patient.practice_code == "P001"))
        careplans.save_care_plan(session, users["practice1"], person, 0, status="draft")
        careplans.assign_lead_professional(session, users["mdt1"], person, "Jo Hill", "Social worker", 0)
    with session_scope(loaded_engine) as session:
        by_person = audit.search_audit(session, users["admin"], entity_id=person)
        assert set(by_person["action"]) == {"care_plan_save", "lead_professional_assign"}
        by_mdt = audit.search_audit(session, users["admin"], username="mdt1")
        assert list(by_mdt["action"]) == ["lead_professional_assign"]
        assert audit.search_audit(session, users["admin"], until=date.today() - timedelta(days=1)).empty
        exported = pd.read_csv(io.StringIO(audit.audit_csv(by_person)), dtype=str)
        assert list(exported.columns) == list(audit.AUDIT_COLUMNS)
        assert "Jo Hill" in exported.loc[exported["action"] == "lead_professional_assign", "after"].iloc[0]
    with session_scope(loaded_engine) as session:  # the admin's own searches are themselves audited
        assert _count(session, action="audit_search", username="admin") == 3
