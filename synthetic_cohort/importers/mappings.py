"""The importers' mapping tables: data files beside this module, documented in docs/importing.md.

- ``snomed_to_ltc.csv``: SNOMED CT code -> our long-term-condition code (or left out, with why).
- ``ethnicity_to_ons.csv``: Synthea race word / US Core OMB race code -> nearest ONS group.
- ``encounter_classes.csv``: Synthea encounter class -> our encounter kind (or left out).
- ``fhir_encounter_classes.csv``: FHIR Encounter.class (+ type code) -> Synthea encounter class.
- ``urgent_admission_codes.csv``: admission or reason codes that make an admission an emergency.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from features.conditions import CONDITION_CODES, ENCOUNTER_KINDS

TABLES_DIR = Path(__file__).resolve().parent
# The kind placeholder in encounter_classes.csv decided per admission (emergency or elective).
ADMISSION = "admission"


def read_mapping(name: str) -> pd.DataFrame:
    return pd.read_csv(TABLES_DIR / name, dtype=str, keep_default_na=False)


@dataclass(frozen=True)
class Mappings:
    snomed_to_ltc: dict[str, str]  # code -> ltc code ("" = listed but left out)
    snomed_notes: dict[str, str]
    race_to_ons: dict[str, str]
    omb_to_race: dict[str, str]
    class_to_kind: dict[str, str]  # synthea class -> kind ("" = left out, ADMISSION = rule)
    class_notes: dict[str, str]
    fhir_classes: dict[tuple[str, str], str]  # (FHIR class, type code or "") -> synthea class
    urgent_codes: frozenset[str]


@cache
def load_mappings() -> Mappings:
    snomed = read_mapping("snomed_to_ltc.csv")
    unknown_ltc = set(snomed["ltc_code"]) - set(CONDITION_CODES) - {""}
    if unknown_ltc or snomed["code"].duplicated().any():
        raise ValueError(f"snomed_to_ltc.csv is inconsistent: unknown {unknown_ltc} or duplicate codes")
    ethnicity = read_mapping("ethnicity_to_ons.csv")
    classes = read_mapping("encounter_classes.csv")
    unknown_kinds = set(classes["kind"]) - set(ENCOUNTER_KINDS) - {"", ADMISSION}
    if unknown_kinds:
        raise ValueError(f"encounter_classes.csv names unknown kinds {unknown_kinds}")
    fhir = read_mapping("fhir_encounter_classes.csv")
    urgent = read_mapping("urgent_admission_codes.csv")
    return Mappings(
        snomed_to_ltc=dict(zip(snomed["code"], snomed["ltc_code"])),
        snomed_notes=dict(zip(snomed["code"], snomed["note"])),
        race_to_ons=dict(zip(ethnicity["race"], ethnicity["ons_group"])),
        omb_to_race=dict(zip(ethnicity["omb_code"], ethnicity["race"])),
        class_to_kind=dict(zip(classes["synthea_class"], classes["kind"])),
        class_notes=dict(zip(classes["synthea_class"], classes["note"])),
        fhir_classes={
            (row.fhir_class, row.type_code): row.synthea_class for row in fhir.itertuples()
        },
        urgent_codes=frozenset(urgent["code"]),
    )


SEMANTIC_TAG_REASONS = {
    "finding": "a finding (social circumstance, symptom or result), not a long-term condition",
    "situation": "a situation, not a long-term condition diagnosis",
    "procedure": "a procedure, not a diagnosis",
    "person": "a social category, not a diagnosis",
    "morphologic abnormality": "an injury or morphology, not a long-term condition",
}


def left_out_reason(code: str, description: str, mappings: Mappings) -> str:
    """Why a SNOMED code seen in the input is not one of our long-term conditions."""
    if code in mappings.snomed_notes:
        return mappings.snomed_notes[code]
    description = description or ""
    if description.endswith(")") and "(" in description:
        tag = description.rsplit("(", 1)[1].rstrip(")")
        if tag in SEMANTIC_TAG_REASONS:
            return SEMANTIC_TAG_REASONS[tag]
    return "not on our long-term condition list (acute illness, injury or other disorder)"
