"""Read a folder of FHIR R4 Bundles (``*.json``): Patient, Condition and Encounter resources.

Each resource we use is checked against the FHIR model from ``fhir.resources`` (R4B, which is R4
for these three resources) before its fields are read, so a malformed resource is reported with
its bundle file, entry number and FHIR path. Other resource types are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError
from tqdm import tqdm

from synthetic_cohort.importers.assemble import FILE, ROW, SourceTables
from synthetic_cohort.importers.mappings import load_mappings
from synthetic_cohort.importers.problems import ProblemLog

MODELS = {"Patient": Patient, "Condition": Condition, "Encounter": Encounter,
          "Organization": Organization}
# Statuses that mean the resource does not describe something that happened.
VOID_ENCOUNTER_STATUSES = {"cancelled", "entered-in-error", "planned"}
VOID_VERIFICATION_STATUSES = {"refuted", "entered-in-error"}
SNOMED = "http://snomed.info/sct"
# A bundle file larger than this, or nesting deeper, is refused before its resources are parsed
# (Synthea writes one bundle per patient, a few MiB; FHIR resources nest about ten deep).
MAX_BUNDLE_BYTES = 256 * 2**20
MAX_JSON_DEPTH = 64
MAX_PROBLEMS_PER_RESOURCE = 10
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
SEXES = {"female": "F", "male": "M"}
COLUMNS = {
    "people": {"source_id": "Patient.id", "birth_date": "Patient.birthDate",
               "death_date": "Patient.deceasedDateTime", "sex": "Patient.gender"},
    "conditions": {"patient": "Condition.subject", "start": "Condition.onsetDateTime",
                   "code": "Condition.code"},
    "encounters": {"patient": "Encounter.subject", "date": "Encounter.period.start",
                   "encounter_class": "Encounter.class"},
}


def referenced_id(reference: dict | None) -> str | None:
    """The id in ``urn:uuid:ID``, ``Patient/ID`` or ``Organization?identifier=SYSTEM|ID`` references."""
    text = (reference or {}).get("reference") or ""
    if "?identifier=" in text:
        return text.rsplit("|", 1)[-1]
    for prefix in ("urn:uuid:", "Patient/", "Organization/"):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text or None


def first_coding(concept: dict | None, system: str | None = None) -> dict:
    codings = (concept or {}).get("coding") or []
    for coding in codings:
        if system is None or coding.get("system") == system:
            return coding
    return codings[0] if codings and system is None else {}


def _race(patient: dict, omb_to_race: dict[str, str]) -> str | None:
    for extension in patient.get("extension") or []:
        if extension.get("url") == US_CORE_RACE:
            for part in extension.get("extension") or []:
                if part.get("url") == "ombCategory":
                    code = (part.get("valueCoding") or {}).get("code")
                    return omb_to_race.get(code, code)
    return None


def _person(resource: dict, omb_to_race: dict[str, str]) -> dict:
    names = resource.get("name") or [{}]
    name = next((n for n in names if n.get("use") == "official"), names[0])
    gender = resource.get("gender")
    return {
        "source_id": resource.get("id"),
        "given_name": (name.get("given") or [None])[0],
        "family_name": name.get("family"),
        "birth_date": resource.get("birthDate"),
        "death_date": resource.get("deceasedDateTime"),
        "sex": SEXES.get(gender, gender),
        "race": _race(resource, omb_to_race),
    }


def _condition(resource: dict) -> dict:
    coding = first_coding(resource.get("code"), SNOMED) or first_coding(resource.get("code"))
    return {
        "patient": referenced_id(resource.get("subject")),
        "code": coding.get("code"),
        "description": coding.get("display") or (resource.get("code") or {}).get("text"),
        "system": coding.get("system"),
        "start": resource.get("onsetDateTime") or resource.get("recordedDate"),
    }


def _encounter(resource: dict, fhir_classes: dict[tuple[str, str], str]) -> dict:
    encounter_class = resource.get("class") or {}
    if isinstance(encounter_class, list):  # R5 shape: a list of CodeableConcepts
        encounter_class = first_coding(encounter_class[0] if encounter_class else {})
    class_code = encounter_class.get("code") or ""
    type_code = first_coding((resource.get("type") or [{}])[0], SNOMED).get("code") or ""
    synthea_class = fhir_classes.get((class_code, type_code)) or fhir_classes.get((class_code, ""))
    return {
        "source_id": resource.get("id"),
        "patient": referenced_id(resource.get("subject")),
        "date": (resource.get("period") or {}).get("start"),
        # An unmapped class stays as written so the problem report can name it.
        "encounter_class": synthea_class or f"FHIR {class_code or '(none)'}",
        "code": type_code or None,
        "reason_code": first_coding((resource.get("reasonCode") or [{}])[0]).get("code"),
        "organisation": referenced_id(resource.get("serviceProvider")),
    }


def _organisations(resource: dict) -> list[dict]:
    """One row per way encounters may refer to the organisation: its id and its identifiers."""
    keys = [resource.get("id")] + [i.get("value") for i in resource.get("identifier") or []]
    return [{"source_id": key, "name": resource.get("name")} for key in dict.fromkeys(keys) if key]


def _is_void(resource: dict) -> bool:
    if resource["resourceType"] == "Encounter":
        return resource.get("status") in VOID_ENCOUNTER_STATUSES
    if resource["resourceType"] == "Condition":
        return first_coding(resource.get("verificationStatus")).get("code") in VOID_VERIFICATION_STATUSES
    return False


def read_bundle(path: Path, log: ProblemLog) -> dict | None:
    """A bundle file as JSON, checked for size, depth and shape before any resource is parsed;
    None (with the problem logged) for anything else."""
    size = path.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        log.add(path.name, None, None, f"is {size / 2**20:,.3g} MiB, more than the {MAX_BUNDLE_BYTES / 2**20:,.3g} MiB "
                "a bundle may be; export smaller bundles (one per patient, as Synthea does)")
        return None
    try:
        bundle = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        log.add(path.name, None, None, f"is not valid JSON ({str(error)[:200]})")
        return None
    except RecursionError:
        bundle = None  # nested beyond Python's own limit: reported as too deep below
    if bundle is None or nested_deeper_than(bundle, MAX_JSON_DEPTH):
        log.add(path.name, None, None, f"nests objects and lists more than {MAX_JSON_DEPTH} deep, "
                "which no FHIR bundle does")
        return None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        log.add(path.name, None, "resourceType", "is not a FHIR Bundle")
        return None
    if not isinstance(bundle.get("entry") or [], list):
        log.add(path.name, None, "Bundle.entry", f"is {json_kind(bundle['entry'])}, not a list of entries")
        return None
    return bundle


def bundle_resource(entry, file: str, number: int, log: ProblemLog) -> dict | None:
    """An entry's resource if it is a JSON object with a resourceType; else None (problem logged)."""
    where = f"entry {number}"
    if not isinstance(entry, dict):
        log.add(file, where, "Bundle.entry", f"is {json_kind(entry)}, not an object")
        return None
    resource = entry.get("resource")
    if resource is None:
        return None  # an entry without a resource (e.g. a request): nothing to read
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        log.add(file, where, "Bundle.entry.resource", "is not a FHIR resource (an object with a resourceType)")
        return None
    return resource


def json_kind(value) -> str:
    """What a JSON value is, in words: "a list", "text", "a number", ..."""
    if isinstance(value, bool):
        return "true or false"
    kinds = {dict: "an object", list: "a list", str: "text", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def nested_deeper_than(value, limit: int) -> bool:
    """Whether lists and objects nest more than ``limit`` deep (checked without recursion)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _frame(rows: list[dict], fields: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*fields, FILE, ROW]).astype(object)
    return frame.where(frame.notna(), None)


def read_fhir(directory: str | Path, log: ProblemLog) -> SourceTables | None:
    directory = Path(directory)
    if not directory.is_dir():
        log.add(str(directory), None, None, "the FHIR bundle folder does not exist")
        return None
    files = sorted(directory.glob("*.json"))
    if not files:
        log.add(str(directory), None, None, "the folder holds no FHIR bundle .json files")
        return None
    mappings = load_mappings()
    rows: dict[str, list[dict]] = {"Patient": [], "Condition": [], "Encounter": [], "Organization": []}
    void: dict[str, int] = {}
    for path in tqdm(files, desc="reading FHIR bundles", unit="bundle", leave=False):
        bundle = read_bundle(path, log)
        if bundle is None:
            continue
        for number, entry in enumerate(bundle.get("entry") or []):
            resource = bundle_resource(entry, path.name, number, log)
            if resource is None or resource["resourceType"] not in MODELS:
                continue
            resource_type = resource["resourceType"]
            where = {FILE: path.name, ROW: f"entry {number}"}
            try:
                MODELS[resource_type].model_validate(resource)
            except ValidationError as error:
                for failure in error.errors()[:MAX_PROBLEMS_PER_RESOURCE]:
                    path_text = ".".join(str(part) for part in failure["loc"])
                    log.add(path.name, where[ROW], f"{resource_type}.{path_text}", failure["msg"][:200])
                continue
            except (ValueError, TypeError, RecursionError) as error:  # a validator that fails otherwise
                log.add(path.name, where[ROW], resource_type, f"is not a valid FHIR {resource_type} ({type(error).__name__})")
                continue
            try:
                if _is_void(resource):
                    void[resource_type] = void.get(resource_type, 0) + 1
                    continue
                if resource_type == "Patient":
                    rows["Patient"].append({**_person(resource, mappings.omb_to_race), **where})
                elif resource_type == "Condition":
                    rows["Condition"].append({**_condition(resource), **where})
                elif resource_type == "Encounter":
                    rows["Encounter"].append({**_encounter(resource, mappings.fhir_classes), **where})
                else:
                    rows["Organization"] += [{**row, **where} for row in _organisations(resource)]
            except (AttributeError, TypeError, KeyError, IndexError, ValueError) as error:
                # Valid FHIR in a shape these readers do not expect: reported, never a traceback.
                log.add(path.name, where[ROW], resource_type, f"has a shape this importer cannot read ({type(error).__name__})")
    if not rows["Patient"] and not log.problems:
        log.add(str(directory), None, None, "the bundles hold no Patient resources")
    if log.problems:
        return None
    return SourceTables(
        source_format="fhir-r4",
        people=_frame(rows["Patient"], ("source_id", "given_name", "family_name", "birth_date",
                                        "death_date", "sex", "race")),
        conditions=_frame(rows["Condition"], ("patient", "code", "description", "system", "start")),
        encounters=_frame(rows["Encounter"], ("source_id", "patient", "date", "encounter_class",
                                              "code", "reason_code", "organisation")),
        organisations=_frame(rows["Organization"], ("source_id", "name")) if rows["Organization"] else None,
        columns=COLUMNS,
        skipped={f"{kind} (cancelled, refuted or entered in error)": n for kind, n in void.items()},
    )
