"""The one documented list of long-term conditions (LTCs) the whole tool uses.

Codes are stable identifiers that appear in `conditions.parquet`, in feature names
(`ltc_<code>`) and in the app. Definitions follow the QOF registers
(see ../docs/conditions.md and shared calibration targets): a person counts once per
condition from the date it was first diagnosed; conditions are not resolved.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class LongTermCondition:
    code: str
    label: str
    mental_health: bool = False


LONG_TERM_CONDITIONS: tuple[LongTermCondition, ...] = (
    LongTermCondition("hypertension", "Hypertension"),
    LongTermCondition("diabetes", "Diabetes"),
    LongTermCondition("asthma", "Asthma"),
    LongTermCondition("copd", "COPD"),
    LongTermCondition("chd", "Coronary heart disease"),
    LongTermCondition("heart_failure", "Heart failure"),
    LongTermCondition("atrial_fibrillation", "Atrial fibrillation"),
    LongTermCondition("stroke_tia", "Stroke or TIA"),
    LongTermCondition("ckd", "Chronic kidney disease"),
    LongTermCondition("dementia", "Dementia", mental_health=True),
    LongTermCondition("depression", "Depression", mental_health=True),
    LongTermCondition("smi", "Severe mental illness", mental_health=True),
    LongTermCondition("cancer", "Cancer"),
    LongTermCondition("epilepsy", "Epilepsy"),
    LongTermCondition("osteoporosis", "Osteoporosis"),
    LongTermCondition("rheumatoid_arthritis", "Rheumatoid arthritis"),
    LongTermCondition("learning_disability", "Learning disability", mental_health=True),
    LongTermCondition("pad", "Peripheral arterial disease"),
)

CONDITION_CODES: tuple[str, ...] = tuple(c.code for c in LONG_TERM_CONDITIONS)
CONDITION_LABELS: dict[str, str] = {c.code: c.label for c in LONG_TERM_CONDITIONS}

ENCOUNTER_KINDS: tuple[str, ...] = (
    "emergency_admission",
    "elective_admission",
    "ae_attendance",
    "outpatient",
    "gp_consultation",
)

# Point-in-time measurements a GP system records (observations.parquet).
OBSERVATION_CODES: tuple[str, ...] = (
    "efi",  # electronic Frailty Index, 0..1 (deficits present / 36)
    "repeat_medicines",  # number of repeat medicines on that date
)

SEXES: tuple[str, ...] = ("F", "M")
ETHNIC_GROUPS: tuple[str, ...] = ("Asian", "Black", "Mixed", "White", "Other")
