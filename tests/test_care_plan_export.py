"""A plan that travels: FHIR R4 Bundles (validated with the fhir.resources models and R4's required
codes) naming the person by NHS number, the printable plan written for the person (record text
escaped), the command that exports every plan in a store, and the audit row of each export."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from app import careplan_fhir
from app.cli import main
from app.db import session_scope
from app.services import careplans, documents
from app.services.access import AccessDenied
from app.store import AuditEvent, CarePlan, CarePlanHistory, Patient
from features.errors import UserInputError

TODAY = date.today()
REVIEW = TODAY + timedelta(days=120)
PLAN = dict(
    status="agreed", what_matters="Staying at home <script>alert('x')</script> & seeing family",
    goals=["Fewer falls", "<b>Walk</b> to the shop"],
    actions=[{"action": "Medication review", "owner": "Sam Patel, practice pharmacist", "due": TODAY + timedelta(days=10)},
             {"action": "Grab rails fitted", "owner": "Occupational therapist", "due": TODAY - timedelta(days=5),
              "done_on": TODAY - timedelta(days=1)}],
    contingency={"day_name": "Community nursing team", "day_phone": "0116 225 6000", "night_name": "NHS 111",
                 "night_phone": "111", "what_to_do": "If more breathless, call the nursing team the same day."},
    contacts=[{"name": "Priya Shah", "relationship": "Daughter", "phone": "07700 900123", "carer": True},
              {"name": "Age UK befriender", "relationship": None, "phone": None, "carer": False}],
    follow_ups=[{"due": TODAY + timedelta(days=30), "what": "Phone call", "who": "Care navigator"}],
    consent_to_share=True, next_review=REVIEW,
)


@pytest.fixture
def planned(loaded_engine, users):
    """Four people at practice1's practices with plans in every state, one of them from before
    migration 0005 (no contingency, contacts or follow-ups stored: NULL)."""
    gp = users["practice1"]
    with session_scope(loaded_engine, write=True) as session:
        people = list(session.scalars(select(Patient.nhs_number).where(Patient.practice_code.in_(["P001", "P002"]))
                                      .order_by(Patient.nhs_number).limit(4)))
        full, draft, closed, legacy = people
        careplans.save_care_plan(session, gp, full, 0, **PLAN)
        careplans.assign_lead_professional(session, gp, full, "Dr Asha Rao", "GP", 0)
        careplans.save_care_plan(session, gp, draft, 0, status="draft", goals=["Get to know the person"])
        careplans.save_care_plan(session, gp, closed, 0, status="agreed", next_review=REVIEW)
        careplans.save_care_plan(session, gp, closed, 1, status="closed", close_reason="declined")
        careplans.save_care_plan(session, gp, legacy, 0, status="agreed", next_review=REVIEW,
                                 actions=[{"action": "Call", "owner": "GP", "due": REVIEW}])
        for model in (CarePlan, CarePlanHistory):  # as a plan saved before 0005 reads
            session.execute(update(model).where(model.nhs_number == legacy)
                            .values(contingency=None, contacts=None, follow_ups=None, what_matters=None))
    return {"full": full, "draft": draft, "closed": closed, "legacy": legacy}


def _entries(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_the_fhir_bundle_names_the_person_by_nhs_number_with_plan_team_and_follow_ups(loaded_engine, users, planned):
    person = planned["full"]
    with session_scope(loaded_engine) as session:
        document = documents.care_plan_document(session, users["mdt1"], person, "fhir")
    bundle = json.loads(document.content)
    careplan_fhir.validate(bundle)
    assert document.filename == f"care_plan_{person}.json" and bundle["type"] == "collection"
    (plan,), (team,), (patient,) = (_entries(bundle, k) for k in ("CarePlan", "CareTeam", "Patient"))
    nhs_identifier = {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": person}
    assert plan["subject"]["identifier"] == nhs_identifier and patient["identifier"] == [nhs_identifier]
    assert plan["subject"]["reference"] == f"urn:uuid:{patient['id']}"
    assert (plan["status"], plan["intent"], plan["period"]["start"]) == ("active", "plan", TODAY.isoformat())
    assert plan["description"].startswith("What matters to me: Staying at home")
    details = [a["detail"] for a in plan["activity"]]
    assert [(d["code"]["text"], d["status"]) for d in details] == [
        ("Agreed action", "not-started"), ("Agreed action", "completed"), ("Follow-up", "scheduled"),
        ("Care plan review", "scheduled")]
    assert details[0]["performer"] == [{"display": "Sam Patel, practice pharmacist"}]
    assert details[0]["scheduledPeriod"] == {"end": (TODAY + timedelta(days=10)).isoformat()}
    assert details[2]["scheduledPeriod"] == {"start": (TODAY + timedelta(days=30)).isoformat()}
    assert details[3]["performer"] == [{"display": "Dr Asha Rao (GP)"}]
    assert team["participant"][0] == {"role": [{"text": "Lead professional"}, {"text": "GP"}],
                                      "member": {"display": "Dr Asha Rao"}}
    carers = [p for p in team["participant"] if p["role"] == [{"text": "Carer"}]]
    assert carers[0]["member"]["display"] == "Priya Shah"
    assert plan["careTeam"][0]["reference"] == f"urn:uuid:{team['id']}"
    assert len(_entries(bundle, "Goal")) == 2 and len(_entries(bundle, "RelatedPerson")) == 2
    notes = " ".join(n["text"] for n in plan["note"])
    assert "At night and at weekends, call NHS 111 on 111." in notes and "Consent to share" in notes
    with session_scope(loaded_engine) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "care_plan_export")).one()
    assert (event.username, event.entity_id, event.detail) == ("mdt1", person, "fhir, version 1")


def test_validation_catches_what_the_models_alone_would_let_through():
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:9b1f5f1e-0000-4000-8000-000000000001",
              "resource": {"resourceType": "CarePlan", "status": "agreed", "intent": "plan",
                           "subject": {"display": "Someone"}}}]}
    with pytest.raises(careplan_fhir.InvalidFhir, match="status 'agreed' is not one of R4's codes"):
        careplan_fhir.validate(bundle)
    bundle["entry"][0]["resource"].update(status="active", period={"start": "next week"})
    with pytest.raises(careplan_fhir.InvalidFhir, match="period.start"):
        careplan_fhir.validate(bundle)


def test_the_printable_plan_is_plain_english_with_record_text_escaped(loaded_engine, users, planned):
    with session_scope(loaded_engine) as session:
        page = documents.care_plan_document(session, users["practice1"], planned["full"], "html").content.decode()
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; seeing family" in page
    assert "&lt;b&gt;Walk&lt;/b&gt; to the shop" in page
    assert "<strong>At night and at weekends</strong>, call NHS 111 on <strong>111</strong>." in page
    assert "Call them instead of 999" in page and "Dr Asha Rao (GP) coordinates your care" in page
    assert f"NHS number {planned['full'][:3]} {planned['full'][3:6]} {planned['full'][6:]}" in page
    assert "Done on " in page and "You agreed that this plan can be shared" in page
    with session_scope(loaded_engine) as session:
        legacy = documents.care_plan_document(session, users["practice1"], planned["legacy"], "html").content.decode()
    assert "You do not have a plan yet for who to call" in legacy


def test_exports_are_scoped_and_need_a_plan(loaded_engine, users, planned):
    with session_scope(loaded_engine) as session:
        person_without_plan = session.scalar(select(Patient.nhs_number).where(
            Patient.practice_code == "P001", Patient.nhs_number.not_in(list(planned.values()))))
    for user, nhs, error in ((users["practice2"], planned["full"], AccessDenied),
                             (users["commissioner"], planned["full"], AccessDenied),
                             (users["practice1"], person_without_plan, UserInputError)):
        with pytest.raises(error):
            with session_scope(loaded_engine) as session:
                documents.care_plan_document(session, user, nhs, "fhir")
    with pytest.raises(UserInputError, match="must be one of fhir, html"):
        with session_scope(loaded_engine) as session:
            documents.care_plan_document(session, users["practice1"], planned["full"], "pdf")
    with session_scope(loaded_engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "care_plan_export")) == 0


def test_the_command_exports_every_plan_in_the_store_as_valid_fhir(loaded_url, loaded_engine, planned, tmp_path, capsys):
    out = tmp_path / "fhir"
    assert main(["careplans", "export", "--format", "fhir", "--out", str(out), "--database", loaded_url]) == 0
    assert "Exported 4 care plans as fhir" in capsys.readouterr().out
    with session_scope(loaded_engine) as session:
        in_store = set(session.scalars(select(CarePlan.nhs_number)))
        exported = session.scalars(select(AuditEvent).where(AuditEvent.action == "care_plan_export")).all()
    files = sorted(out.glob("*.json"))
    assert len(files) == len(in_store) == 4
    statuses = {}
    for path in files:
        bundle = json.loads(path.read_text())
        careplan_fhir.validate(bundle)  # every resource against the R4(B) models and R4's required codes
        (plan,) = _entries(bundle, "CarePlan")
        statuses[plan["subject"]["identifier"]["value"]] = plan["status"]
        assert plan["subject"]["identifier"]["system"] == "https://fhir.nhs.uk/Id/nhs-number"
    assert set(statuses) == in_store
    assert statuses[planned["draft"]] == "draft" and statuses[planned["closed"]] == "revoked"
    assert {e.entity_id for e in exported} == in_store and {e.username for e in exported} == {"system:careplan-export"}


def test_the_command_exports_printable_plans_for_one_practice_and_refuses_bad_input(loaded_url, planned, tmp_path, capsys):
    out = tmp_path / "html"
    assert main(["careplans", "export", "--format", "html", "--out", str(out), "--practice", "P001",
                 "--database", loaded_url]) == 0
    assert all(path.read_text().startswith("<!doctype html>") for path in out.glob("*.html"))
    assert main(["careplans", "export", "--format", "html", "--out", str(out), "--practice", "ZZZ",
                 "--database", loaded_url]) == 2
    assert "no practice with code ZZZ" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("x")
    assert main(["careplans", "export", "--format", "fhir", "--out", str(tmp_path / "a_file"),
                 "--database", loaded_url]) == 2
    assert main(["careplans", "export", "--format", "fhir", "--out", str(out), "--user", "practice2",
                 "--database", loaded_url]) == 0
    assert "Exported 0 care plans" in capsys.readouterr().out  # practice2 sees none of these people
