"""FHIR R4 bundles: made here from Synthea CSV people, they import to the same records as the CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from features.records import read_records
from synthetic_cohort.importers import ImportProblems, import_fhir, read_import
from synthetic_cohort.importers.fhir import read_fhir
from synthetic_cohort.importers.synthea import read_synthea

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea" / "unmc_ne111"
SMALL = Path(__file__).resolve().parent / "fixtures" / "synthea_small"

# How Synthea's own R4 exporter writes these (EncounterType codes; US Core OMB race codes).
FHIR_CLASS = {
    "wellness": "AMB", "ambulatory": "AMB", "outpatient": "AMB", "urgentcare": "AMB",
    "inpatient": "IMP", "snf": "IMP", "emergency": "EMER", "hospice": "HH", "home": "HH",
    "virtual": "VR",
}
OMB_RACE = {
    "white": ("2106-3", "White"), "black": ("2054-5", "Black or African American"),
    "asian": ("2028-9", "Asian"), "native": ("1002-5", "American Indian or Alaska Native"),
    "hawaiian": ("2076-8", "Native Hawaiian or Other Pacific Islander"), "other": ("2131-1", "Other"),
}
SNOMED = "http://snomed.info/sct"
SYNTHEA_IDS = "https://github.com/synthetichealth/synthea"


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def patient_resource(person: dict) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": person["Id"],
        "name": [{"use": "official", "family": person["LAST"], "given": [person["FIRST"]]}],
        "gender": {"F": "female", "M": "male"}[person["GENDER"]],
        "birthDate": person["BIRTHDATE"],
    }
    if person["DEATHDATE"]:
        resource["deceasedDateTime"] = person["DEATHDATE"]
    if person["RACE"] in OMB_RACE:
        code, display = OMB_RACE[person["RACE"]]
        resource["extension"] = [{
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
            "extension": [
                {"url": "ombCategory", "valueCoding": {
                    "system": "urn:oid:2.16.840.1.113883.6.238", "code": code, "display": display}},
                {"url": "text", "valueString": display},
            ],
        }]
    return resource


def condition_resource(row: dict) -> dict:
    return {
        "resourceType": "Condition",
        "subject": {"reference": f"urn:uuid:{row['PATIENT']}"},
        "code": {"coding": [{"system": SNOMED, "code": row["CODE"], "display": row["DESCRIPTION"]}],
                 "text": row["DESCRIPTION"]},
        "onsetDateTime": row["START"],
    }


def encounter_resource(row: dict) -> dict:
    resource = {
        "resourceType": "Encounter",
        "id": row["Id"],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                  "code": FHIR_CLASS[row["ENCOUNTERCLASS"]]},
        "type": [{"coding": [{"system": SNOMED, "code": row["CODE"], "display": row["DESCRIPTION"]}]}],
        "subject": {"reference": f"urn:uuid:{row['PATIENT']}"},
        "period": {"start": row["START"], "end": row["STOP"]},
    }
    if row.get("ORGANIZATION"):
        resource["serviceProvider"] = {
            "reference": f"Organization?identifier={SYNTHEA_IDS}|{row['ORGANIZATION']}"}
    if row["REASONCODE"]:
        resource["reasonCode"] = [{"coding": [{"system": SNOMED, "code": row["REASONCODE"]}]}]
    return resource


def organization_resource(row: dict) -> dict:
    return {"resourceType": "Organization", "id": row["Id"], "name": row["NAME"],
            "identifier": [{"system": SYNTHEA_IDS, "value": row["Id"]}]}


def synthea_csv_to_fhir(export: Path, out: Path) -> None:
    """One transaction Bundle per person, and organisations in their own bundle, as Synthea's
    R4 exporter lays them out."""
    out.mkdir(parents=True)
    if (export / "organizations.csv").exists():
        organisations = [organization_resource(r) for r in rows(export / "organizations.csv")]
        bundle = {"resourceType": "Bundle", "type": "batch",
                  "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in organisations]}
        (out / "hospitalInformation.json").write_text(json.dumps(bundle))
    conditions, encounters = rows(export / "conditions.csv"), rows(export / "encounters.csv")
    for person in rows(export / "patients.csv"):
        resources = [patient_resource(person)]
        resources += [encounter_resource(r) for r in encounters if r["PATIENT"] == person["Id"]]
        resources += [condition_resource(r) for r in conditions if r["PATIENT"] == person["Id"]]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"fullUrl": f"urn:uuid:{r.get('id', '')}", "resource": r} for r in resources],
        }
        (out / f"{person['FIRST']}_{person['LAST']}_{person['Id']}.json").write_text(json.dumps(bundle))


def assert_same_records(csv_records, fhir_records) -> None:
    for table in ("patients", "practices", "conditions", "encounters"):
        pd.testing.assert_frame_equal(getattr(fhir_records, table), getattr(csv_records, table))


def test_fhir_bundles_of_the_sample_import_to_the_same_records_as_its_csv(tmp_path):
    if not (SAMPLE / "patients.csv").exists():
        pytest.skip(f"the Synthea sample export is not beside the repository at {SAMPLE}")
    synthea_csv_to_fhir(SAMPLE, tmp_path / "bundles")
    csv_records, csv_report = read_import(read_synthea, SAMPLE)
    fhir_records, fhir_report = read_import(read_fhir, tmp_path / "bundles")
    assert len(fhir_records.patients) == 111
    assert_same_records(csv_records, fhir_records)
    assert fhir_report["conditions"] == csv_report["conditions"]
    assert fhir_records.observations is None  # medicines are not part of the FHIR route


def test_fhir_route_keeps_the_rules_and_the_practices_of_the_csv_route(tmp_path):
    synthea_csv_to_fhir(SMALL, tmp_path / "bundles")
    import_fhir(tmp_path / "bundles", tmp_path / "records")
    csv_records, _ = read_import(read_synthea, SMALL)
    fhir_records = read_records(tmp_path / "records")
    # Admissions after A&E or for an urgent reason, SNF (IMP + type) left out, urgent care (AMB +
    # type) as A&E, and practices from Organization resources and Encounter.serviceProvider.
    assert len(fhir_records.practices) == 3
    assert_same_records(csv_records, fhir_records)


def test_void_resources_are_skipped_and_counted(tmp_path):
    synthea_csv_to_fhir(SMALL, tmp_path / "bundles")
    bundle_path = next(p for p in (tmp_path / "bundles").glob("Ada101_*.json"))
    bundle = json.loads(bundle_path.read_text())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource.get("id") == "e-04":  # the elective admission
            resource["status"] = "entered-in-error"
        if resource["resourceType"] == "Condition" and resource["code"]["coding"][0]["code"] == "59621000":
            resource["verificationStatus"] = {"coding": [{"code": "refuted"}]}
    bundle_path.write_text(json.dumps(bundle))
    records, report = read_import(read_fhir, tmp_path / "bundles")
    ada = records.patients.set_index("given_name").loc["Ada101", "nhs_number"]
    ada_kinds = records.encounters.loc[records.encounters["nhs_number"] == ada, "kind"]
    assert "elective_admission" not in set(ada_kinds)
    assert "hypertension" not in set(records.conditions.loc[records.conditions["nhs_number"] == ada, "condition"])
    assert sum(report["skipped"].values()) == 2


def write_bundle(folder: Path, name: str, resources: list[dict]) -> None:
    folder.mkdir(exist_ok=True)
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": resource} for resource in resources]}
    (folder / name).write_text(json.dumps(bundle))


def test_bad_bundles_are_reported_with_file_entry_and_path(tmp_path):
    folder = tmp_path / "bundles"
    person = patient_resource({"Id": "p-1", "FIRST": "A", "LAST": "B", "GENDER": "F",
                               "BIRTHDATE": "1960-01-01", "DEATHDATE": "", "RACE": "white"})
    strange = encounter_resource({"Id": "e-1", "PATIENT": "p-1", "ENCOUNTERCLASS": "wellness",
                                  "CODE": "162673000", "DESCRIPTION": "General examination",
                                  "START": "2023-01-01T10:00:00Z", "STOP": "", "REASONCODE": ""})
    strange["class"]["code"] = "XYZ"
    del strange["period"]["end"]
    orphan = condition_resource({"PATIENT": "p-unknown", "CODE": "59621000",
                                 "DESCRIPTION": "Essential hypertension", "START": "2020-01-01"})
    write_bundle(folder, "good.json", [person, strange, orphan])
    with pytest.raises(ImportProblems) as caught:
        read_import(read_fhir, folder)
    found = {(p.file, p.row, p.column) for p in caught.value.problems}
    assert found == {("good.json", "entry 1", "Encounter.class"),
                     ("good.json", "entry 2", "Condition.subject")}

    broken = dict(person, birthDate="1st of May")
    write_bundle(folder, "broken.json", [broken])
    (folder / "not_json.json").write_text("{ nope")
    with pytest.raises(ImportProblems) as caught:
        import_fhir(folder, tmp_path / "records")
    found = {(p.file, p.row, p.column) for p in caught.value.problems}
    assert ("broken.json", "entry 0", "Patient.birthDate") in found
    assert ("not_json.json", "", "") in found
    assert not (tmp_path / "records").exists()
