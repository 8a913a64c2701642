"""Access rules, called at the service layer: each role's reach and each refusal."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.services import audit, careplans, coverage, patients
from app.services.access import AccessDenied, NotFound
from app.services.users import assert_safe_to_start, authenticate, update_user, UnsafeToStart
from app.store import AuditEvent, CaseloadAssignment, Patient, Score
from features.errors import UserInputError

REVIEW = date.today() + timedelta(days=90)


def _person_at(session, practice_code: str) -> str:
    return session.scalar(select(Patient.nhs_number).where(Patient.practice_code == practice_code)
                          .order_by(Patient.nhs_number))


def _denials(session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "access_denied"))


def test_practice_user_reads_only_their_practices(loaded_engine, users):
    practice1 = users["practice1"]
    assert practice1.practice_codes == {"P001", "P002"}
    with session_scope(loaded_engine) as session:
        listed = patients.flagged_list(session, practice1)
        assert len(listed) > 0
        assert set(listed["practice_code"]) <= {"P001", "P002"}
        own = _person_at(session, "P001")
        assert patients.patient_record(session, practice1, own)["nhs_number"] == own
        other = _person_at(session, "P003")
        before = _denials(session)
    with pytest.raises(AccessDenied, match="not registered at your practices"):
        with session_scope(loaded_engine, write=True) as session:  # the caller's work rolls back...
            patients.patient_record(session, practice1, other)
    with session_scope(loaded_engine) as session:
        with pytest.raises(AccessDenied):
            patients.flagged_list(session, practice1, practice_code="P003")
    with session_scope(loaded_engine) as session:  # ...but both refusals are on the record
        assert _denials(session) == before + 2
        denials = session.scalars(select(AuditEvent).where(AuditEvent.action == "access_denied")
                                  .order_by(AuditEvent.id)).all()
        assert [(d.username, d.entity, d.entity_id) for d in denials] == [
            ("practice1", "patient", other), ("practice1", "practice", "P003")]


def test_practice_user_cannot_change_another_practices_person(loaded_engine, users):
    with session_scope(loaded_engine, write=True) as session:
        other = _person_at(session, "P004")
        with pytest.raises(AccessDenied):
            careplans.save_care_plan(session, users["practice1"], other, 0, status="draft")
        with pytest.raises(AccessDenied):
            careplans.assign_lead_professional(session, users["practice1"], other, "Dr Who", "GP", 0)
        assert careplans.get_care_plan(session, users["practice2"], other)["version"] == 0


def test_navigator_reaches_caseload_outside_their_practices(loaded_engine, users):
    navigator = users["navigator1"]
    with session_scope(loaded_engine, write=True) as session:
        outside = session.scalars(select(Score.nhs_number).where(Score.practice_code == "P003", Score.flagged)
                                  .order_by(Score.nhs_number).limit(2)).all()
        with pytest.raises(AccessDenied):
            patients.patient_record(session, navigator, outside[0])
        session.add(CaseloadAssignment(nhs_number=outside[0], navigator_username="navigator1", assigned_by="test"))
        session.flush()
        assert patients.patient_record(session, navigator, outside[0])["practice_code"] == "P003"
        listed = set(patients.flagged_list(session, navigator)["nhs_number"])
        assert outside[0] in listed and outside[1] not in listed
        with pytest.raises(AccessDenied, match="or on your caseload"):
            patients.patient_record(session, navigator, outside[1])


def test_mdt_user_reads_their_practices(loaded_engine, users):
    with session_scope(loaded_engine) as session:
        assert patients.patient_record(session, users["mdt1"], _person_at(session, "P002"))
        with pytest.raises(AccessDenied):
            patients.patient_record(session, users["mdt1"], _person_at(session, "P004"))


@pytest.mark.parametrize("username", ["commissioner", "commissioner_pcn1", "admin"])
def test_aggregate_roles_reach_no_person(loaded_engine, users, username):
    user = users[username]
    with session_scope(loaded_engine, write=True) as session:
        person = _person_at(session, "P001")
        person_level_calls = [
            lambda: patients.flagged_list(session, user),
            lambda: patients.patient_record(session, user, person),
            lambda: careplans.get_care_plan(session, user, person),
            lambda: careplans.get_lead_professional(session, user, person),
            lambda: careplans.save_care_plan(session, user, person, 0, status="draft"),
            lambda: careplans.assign_lead_professional(session, user, person, "A Name", "GP", 0),
        ]
        for call in person_level_calls:
            with pytest.raises(AccessDenied):
                call()


def test_commissioner_coverage_holds_no_identifiers(loaded_engine, users):
    with session_scope(loaded_engine) as session:
        identifiers = set(session.scalars(select(Patient.nhs_number)))
        names = set(session.scalars(select(Patient.family_name)))
        for level in ("practice", "pcn", "area"):
            table = coverage.coverage(session, users["commissioner"], level=level)
            trend = coverage.coverage_trend(session, users["commissioner"], months=3, level=level)
            for frame in (table, trend):
                cells = {str(v) for v in frame.astype(str).to_numpy().ravel()}
                assert not cells & identifiers and not cells & names
                assert not {"nhs_number", "name", "date_of_birth"} & set(frame.columns)


def test_pcn_commissioner_sees_only_their_pcn(loaded_engine, users):
    with session_scope(loaded_engine) as session:
        pcn = coverage.coverage(session, users["commissioner_pcn1"], level="practice")
        everyone = coverage.coverage(session, users["commissioner"], level="practice")
    assert set(pcn["code"]) == {"P001", "P002"}
    assert set(everyone["code"]) == {"P001", "P002", "P003", "P004"}


def test_only_admins_read_the_audit_trail(loaded_engine, users):
    with session_scope(loaded_engine) as session:
        assert len(audit.search_audit(session, users["admin"])) > 0
        for username in ("practice1", "commissioner", "navigator1"):
            with pytest.raises(AccessDenied):
                audit.search_audit(session, users[username])


def test_unknown_and_malformed_nhs_numbers(loaded_engine, users):
    with session_scope(loaded_engine) as session:
        with pytest.raises(NotFound, match="no person with NHS number 9434765919"):
            patients.patient_record(session, users["practice1"], "943 476 5919")
        with pytest.raises(UserInputError):
            patients.patient_record(session, users["practice1"], "12345")


def test_writes_need_a_write_session(loaded_engine, users):
    with session_scope(loaded_engine) as session:
        with pytest.raises(RuntimeError, match="write=True"):
            careplans.save_care_plan(session, users["practice1"], _person_at(session, "P001"), 0, status="draft")


def test_sign_in_with_argon2_hashes(loaded_engine):
    with session_scope(loaded_engine, write=True) as session:
        user = authenticate(session, "practice1", "practice1-demo-pass")
        assert user is not None and user.role == "practice"
        assert authenticate(session, "practice1", "wrong password") is None
        assert authenticate(session, "nobody", "practice1-demo-pass") is None
        stored = session.execute(select(func.min(AuditEvent.id))).scalar()
        assert stored is not None


def test_production_refuses_demo_users(loaded_engine, users, monkeypatch):
    monkeypatch.setenv("PROACTIVE_CARE_MODE", "production")
    with session_scope(loaded_engine, write=True) as session:
        with pytest.raises(UnsafeToStart, match="demo user"):
            assert_safe_to_start(session)
        from app.services.users import list_users
        for row in list_users(session, users["admin"]):
            if row["is_demo"] and row["username"] != "admin":
                update_user(session, users["admin"], row["username"], active=False)
        update_user(session, users["admin"], "admin", password="a long new secret")
        assert_safe_to_start(session)  # no demo accounts left: starts
    monkeypatch.setenv("PROACTIVE_CARE_MODE", "demo")
    with session_scope(loaded_engine) as session:
        assert authenticate(session, "practice1", "practice1-demo-pass") is None  # deactivated


def test_cli_adds_a_real_user_who_can_sign_in(loaded_url, loaded_engine, monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("PROACTIVE_CARE_NEW_USER_PASSWORD", "correct horse battery")
    args = ["db", "add-user", "--username", "dr.rao", "--role", "practice", "--practices", "P003",
            "--database", loaded_url]
    assert main(args) == 0
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main(["db", "add-user", "--username", "x", "--role", "mdt", "--database", loaded_url]) == 2
    with session_scope(loaded_engine) as session:
        user = authenticate(session, "dr.rao", "correct horse battery")
    assert user is not None and user.practice_codes == {"P003"}


@pytest.mark.parametrize("role_user", ["commissioner", "admin"])
def test_aggregate_roles_refused_person_level_reads_are_audited(loaded_engine, users, role_user):
    from app.services import caseload, meetings

    user = users[role_user]
    with session_scope(loaded_engine) as session:
        someone = _person_at(session, "P001")
        before = _denials(session)
    refused_reads = [
        lambda s: patients.flagged_list(s, user),
        lambda s: patients.patient_record(s, user, someone),
        lambda s: caseload.my_caseload(s, user, "navigator1"),
        lambda s: caseload.flagged_without_plan(s, user),
        lambda s: meetings.list_meetings(s, user),
    ]
    for read in refused_reads:
        with pytest.raises(AccessDenied, match="cannot"):
            with session_scope(loaded_engine) as session:
                read(session)
    with session_scope(loaded_engine) as session:
        assert _denials(session) == before + len(refused_reads)
        denials = session.scalars(select(AuditEvent).where(AuditEvent.action == "access_denied")
                                  .order_by(AuditEvent.id.desc()).limit(len(refused_reads))).all()
        assert {(d.username, d.role) for d in denials} == {(role_user, role_user)}
        assert "flagged_list" in {d.entity for d in denials}


def test_the_apps_date_moves_only_in_demo_mode(monkeypatch):
    from datetime import date

    from app import settings
    from features.errors import UserInputError

    monkeypatch.setenv("PROACTIVE_CARE_TODAY", "2026-01-01")
    monkeypatch.setenv("PROACTIVE_CARE_MODE", "demo")
    assert settings.today() == date(2026, 1, 1)
    monkeypatch.setenv("PROACTIVE_CARE_TODAY", "1 Jan")
    with pytest.raises(UserInputError, match="YYYY-MM-DD"):
        settings.today()
    monkeypatch.setenv("PROACTIVE_CARE_TODAY", "2026-01-01")
    monkeypatch.setenv("PROACTIVE_CARE_MODE", "production")
    with pytest.raises(UserInputError, match="demo mode"):
        settings.today()
    monkeypatch.delenv("PROACTIVE_CARE_TODAY")
    assert settings.today() == date.today()
