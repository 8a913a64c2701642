"""A person's care plan as FHIR R4 resources in a Bundle: how a plan travels between systems.

The Bundle (type ``collection``) holds the Patient (identified by NHS number, system
``https://fhir.nhs.uk/Id/nhs-number``, as NHS England's UK Core does), the CarePlan (status,
period, what matters, goals, activities with their performers: the agreed actions, the follow-ups
and the next review; the contingency plan and consent as notes), the CareTeam (the lead
professional first, then the people named in the plan, carers and key contacts), a Goal per goal
and a RelatedPerson per carer or key contact. Plain Python, no store: ``services/plan_export.py``
gathers the record and audits the export.

Validation: ``fhir.resources`` has no R4 (4.0.1) models after version 6.4, and 6.4 needs pydantic 1,
which cannot sit beside the rest of our stack (Streamlit, pandera and fhir.resources 7.1+ use
pydantic 2). Its ``R4B`` sub-package (4.3.0) is the R4 structure for every resource used here (HL7:
R4B changed only the medication-definition, evidence and subscription modules), so each resource is
validated with the R4B models. Those models check structure (required elements, types, no unknown
elements) but not the codes of required bindings, so ``REQUIRED_CODES`` checks those against R4's
value sets.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.relatedperson import RelatedPerson

from app import presentation
from app.services import plan_content

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/proactive-care")
MODELS = {"Bundle": Bundle, "Patient": Patient, "CarePlan": CarePlan, "CareTeam": CareTeam, "Goal": Goal,
          "RelatedPerson": RelatedPerson}
# R4 value sets of the required bindings we fill (the models accept any well-formed code).
REQUIRED_CODES = {
    ("Bundle", "type"): {"document", "message", "transaction", "transaction-response", "batch",
                         "batch-response", "history", "searchset", "collection"},
    ("CarePlan", "status"): {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"},
    ("CarePlan", "intent"): {"proposal", "plan", "order", "option"},
    ("CarePlan", "activity.detail.status"): {"not-started", "scheduled", "in-progress", "on-hold", "completed",
                                             "cancelled", "stopped", "unknown", "entered-in-error"},
    ("CarePlan", "activity.detail.kind"): {"Appointment", "CommunicationRequest", "DeviceRequest",
                                           "MedicationRequest", "NutritionOrder", "Task", "ServiceRequest",
                                           "VisionPrescription"},
    ("CareTeam", "status"): {"proposed", "active", "suspended", "inactive", "entered-in-error"},
    ("Goal", "lifecycleStatus"): {"proposed", "planned", "accepted", "active", "on-hold", "completed",
                                  "cancelled", "entered-in-error", "rejected"},
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("RelatedPerson", "telecom.system"): {"phone", "fax", "email", "pager", "url", "sms", "other"},
}
PLAN_STATUS = {"draft": "draft", "agreed": "active", "review_due": "active", "closed": "completed"}
GENDER = {"F": "female", "M": "male"}


class InvalidFhir(Exception):
    """A resource we built fails the FHIR models or a required binding (a bug, not user input)."""


def _id(*parts: Any) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def _drop_empty(value: Any) -> Any:
    """FHIR forbids empty elements: drop None, "" and empty lists or objects, recursively."""
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [v for v in (_drop_empty(v) for v in value) if v not in (None, "", [], {})]
    return value


def plan_status(plan: dict) -> str:
    """The FHIR CarePlan.status of a plan: a declined plan was revoked, other closed plans completed."""
    if plan["status"] == "closed" and plan.get("close_reason") == "declined":
        return "revoked"
    return PLAN_STATUS.get(plan["status"], "unknown")


def care_plan_bundle(person: dict, plan: dict, lead: dict, created: datetime | None,
                     exported_at: datetime) -> dict:
    """The Bundle for one person's plan, as a JSON-ready dict (validate it with ``validate``).

    ``person``: nhs_number, given_name, family_name, date_of_birth, sex, practice_code, practice_name;
    ``plan``: ``careplans.plan_of``; ``lead``: ``careplans.lead_of``; ``created``: the first version's time.
    """
    nhs = person["nhs_number"]
    name = presentation.person_name(person.get("given_name"), person.get("family_name"))
    refs = {kind: f"urn:uuid:{_id(kind, nhs)}" for kind in ("Patient", "CarePlan", "CareTeam")}
    subject = {"reference": refs["Patient"], "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs},
               "display": name}
    practice = {"identifier": {"system": ODS_SYSTEM, "value": person["practice_code"]},
                "display": person.get("practice_name") or person["practice_code"]}
    closed = plan["status"] == "closed"
    lead_display = f"{lead['name']} ({lead['role']})" if lead.get("name") else None

    patient = {
        "resourceType": "Patient", "id": _id("Patient", nhs),
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
        "name": [{"use": "official", "family": person.get("family_name"),
                  "given": [person["given_name"]] if person.get("given_name") else []}],
        "gender": GENDER.get(person.get("sex"), "unknown"), "birthDate": _iso(person.get("date_of_birth")),
        "generalPractitioner": [practice],
    }
    goals = [{"resourceType": "Goal", "id": _id("Goal", nhs, number),
              "lifecycleStatus": "completed" if closed else "active",
              "description": {"text": text}, "subject": subject}
             for number, text in enumerate(plan.get("goals") or [], start=1)]
    related = [{"resourceType": "RelatedPerson", "id": _id("RelatedPerson", nhs, number),
                "patient": subject, "name": [{"text": contact["name"]}],
                "relationship": [{"text": contact.get("relationship") or ("Carer" if contact.get("carer") else "Key contact")}],
                "telecom": [{"system": "phone", "value": contact["phone"]}] if contact.get("phone") else []}
               for number, contact in enumerate(plan.get("contacts") or [], start=1)]
    care_team = {
        "resourceType": "CareTeam", "id": _id("CareTeam", nhs), "status": "inactive" if closed else "active",
        "name": f"Care team for {name}", "subject": subject, "managingOrganization": [practice],
        "participant": _participants(plan, lead, related),
    }
    activities = [_activity("Agreed action", a["action"], a["owner"], "Task", end=a.get("due"), done=a.get("done_on"))
                  for a in plan.get("actions") or []]
    activities += [_activity("Follow-up", f["what"], f["who"], None, start=f.get("due"), done=f.get("done_on"))
                   for f in plan.get("follow_ups") or []]
    if plan.get("next_review") and not closed:
        activities.append(_activity("Care plan review", "Review of this care and support plan",
                                    lead_display, None, start=plan["next_review"], done=None))
    notes = [plan_content.contingency_in_words(plan.get("contingency")),
             "Consent to share this plan with the health and social-care team: "
             + ("given." if plan.get("consent_to_share") else "not given.")]
    care_plan = {
        "resourceType": "CarePlan", "id": _id("CarePlan", nhs),
        "meta": {"versionId": str(plan["version"]), "lastUpdated": _iso(plan.get("updated_at"))},
        "status": plan_status(plan), "intent": "plan",
        "category": [{"text": "Personalised care and support plan"}],
        "title": "Personalised care and support plan",
        "description": f"What matters to me: {plan['what_matters']}" if plan.get("what_matters") else None,
        "subject": subject,
        "period": {"start": _iso(plan.get("agreed_on") or created), "end": _iso(plan.get("closed_on"))},
        "created": _iso(created),
        "author": {"display": lead_display} if lead_display else None,
        "careTeam": [{"reference": refs["CareTeam"], "display": care_team["name"]}],
        "goal": [{"reference": f"urn:uuid:{g['id']}"} for g in goals],
        "activity": activities,
        "note": [{"text": text} for text in notes if text],
    }
    resources = [patient, care_plan, care_team, *goals, *related]
    return _drop_empty({
        "resourceType": "Bundle", "id": _id("Bundle", nhs, plan["version"]), "type": "collection",
        "timestamp": _iso(exported_at),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    })


def _participants(plan: dict, lead: dict, related: list[dict]) -> list[dict]:
    people = []
    if lead.get("name"):
        people.append({"role": [{"text": "Lead professional"}, {"text": lead["role"]}], "member": {"display": lead["name"]}})
    named = dict.fromkeys(item[key] for key, items in (("owner", plan.get("actions")), ("who", plan.get("follow_ups")))
                          for item in items or [])
    people += [{"role": [{"text": "Named in the plan"}], "member": {"display": who}}
               for who in named if who and who != lead.get("name")]
    for person, contact in zip(related, plan.get("contacts") or []):
        role = "Carer" if contact.get("carer") else "Key contact"
        people.append({"role": [{"text": role}], "member": {"reference": f"urn:uuid:{person['id']}",
                                                           "display": contact["name"]}})
    return people


def _activity(code: str, description: str, performer: str | None, kind: str | None, *, start=None, end=None,
              done=None) -> dict:
    return {"detail": {
        "kind": kind, "code": {"text": code}, "description": description,
        "status": "completed" if done else ("not-started" if kind == "Task" else "scheduled"),
        "scheduledPeriod": {"start": _iso(start), "end": _iso(end)},
        "performer": [{"display": performer}] if performer else [],
    }}


def validate(bundle: dict) -> Bundle:
    """Check the Bundle and each resource in it against the FHIR models and required bindings;
    raise ``InvalidFhir`` naming the resource and element."""
    for number, entry in enumerate(bundle.get("entry") or [], start=1):
        resource = entry.get("resource") or {}
        kind = resource.get("resourceType")
        if kind not in MODELS:
            raise InvalidFhir(f"entry {number}: unexpected resource type {kind!r}")
        try:
            MODELS[kind].model_validate(resource)
        except Exception as error:  # pydantic's ValidationError, with the element path
            raise InvalidFhir(f"entry {number} ({kind}): {error}") from error
        _check_codes(kind, resource, f"entry {number} ({kind})")
    _check_codes("Bundle", bundle, "the Bundle")
    try:
        return Bundle.model_validate(bundle)
    except Exception as error:
        raise InvalidFhir(f"the Bundle: {error}") from error


def _values(node: Any, path: list[str]) -> list:
    if not path:
        return node if isinstance(node, list) else [node]
    if isinstance(node, list):
        return [v for item in node for v in _values(item, path)]
    if isinstance(node, dict) and path[0] in node:
        return _values(node[path[0]], path[1:])
    return []


def _check_codes(kind: str, resource: dict, where: str) -> None:
    for (resource_type, path), allowed in REQUIRED_CODES.items():
        if resource_type != kind:
            continue
        for value in _values(resource, path.split(".")):
            if value not in allowed:
                raise InvalidFhir(f"{where}: {path} {value!r} is not one of R4's codes")


def to_json(bundle: dict) -> bytes:
    return json.dumps(bundle, indent=2, ensure_ascii=False).encode("utf-8")
