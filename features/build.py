"""From records and an index date to one row per person: the model's inputs and the label.

Everything is computed with whole-table operations (index look-ups, ``np.bincount``), never a
Python loop over people, so a million-person population builds in seconds.

Time windows are half-open and end at the index date T: "prior 12 months" is [T-12m, T), "12-24
months" is [T-24m, T-12m), and the label window is [T, T+12m). Conditions count from the day they
are diagnosed if that is before T; observations (eFI, repeat medicines) are the latest recorded on
or before T (the generator records them on 1 January, so a 1 January index date sees that day's).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.conditions import CONDITION_CODES, ENCOUNTER_KINDS, OBSERVATION_CODES
from features.errors import UserInputError
from features.records import Records, nhs_number_keys, positions_in

LABEL = "label_emergency_admission_12m"
# Number of emergency admissions in the label window: evaluation counts events, not only people.
LABEL_COUNT = "label_emergency_admissions_count_12m"
LABEL_COLUMNS = (LABEL, LABEL_COUNT)

LTC_COLUMNS = tuple(f"ltc_{code}" for code in CONDITION_CODES)

# Encounter kind -> feature stem; each gets a `_12m` and a `_12_24m` column.
UTILISATION_STEMS = {
    "emergency_admission": "emergency_admissions",
    "elective_admission": "elective_admissions",
    "ae_attendance": "ae_attendances",
    "outpatient": "outpatient",
    "gp_consultation": "gp_consultations",
}
assert set(UTILISATION_STEMS) == set(ENCOUNTER_KINDS)
UTILISATION_COLUMNS = tuple(
    f"{stem}_{window}" for stem in UTILISATION_STEMS.values() for window in ("12m", "12_24m")
)
OBSERVATION_COLUMNS = tuple(OBSERVATION_CODES)  # efi, repeat_medicines

IDENTITY_COLUMNS = ("practice_code", "pcn_code")
DEMOGRAPHIC_COLUMNS = ("age", "sex", "ethnicity", "imd_decile")
# Every column a model may use (identity columns and labels are not predictors).
PREDICTOR_COLUMNS = (
    DEMOGRAPHIC_COLUMNS
    + LTC_COLUMNS
    + ("ltc_count",)
    + UTILISATION_COLUMNS
    + ("care_home",)
    + OBSERVATION_COLUMNS
)


def parse_index_date(value: str | pd.Timestamp, what: str = "index date") -> pd.Timestamp:
    """A day-precision timestamp, or a UserInputError naming the malformed value."""
    if isinstance(value, pd.Timestamp):
        return value.normalize()
    try:
        return pd.Timestamp(pd.to_datetime(value, format="%Y-%m-%d"))
    except (ValueError, TypeError):
        raise UserInputError(
            f"The {what} {value!r} is not a date in the form YYYY-MM-DD."
        ) from None


def _as_dates(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series).astype("datetime64[ns]")


def population_on(patients: pd.DataFrame, index_date: pd.Timestamp) -> pd.DataFrame:
    """Patients born, alive and registered on the index date."""
    born = _as_dates(patients["date_of_birth"]) <= index_date
    registered_from = _as_dates(patients["registered_from"]) <= index_date
    registered_to = _as_dates(patients["registered_to"])
    still_registered = registered_to.isna() | (registered_to > index_date)
    died = _as_dates(patients["date_of_death"])
    alive = died.isna() | (died > index_date)
    return patients.loc[born & registered_from & still_registered & alive]


def label_window_covered(records: Records, index_date: pd.Timestamp) -> bool:
    """Whether the records reach the end of the 12 months after the index date.

    Records carry no explicit end date, so the latest encounter stands in for it: the window is
    covered when some encounter falls in its final month (a population of any useful size has
    encounters every week).
    """
    if records.encounters.empty:
        return False
    latest = _as_dates(records.encounters["date"]).max()
    return latest >= index_date + pd.DateOffset(months=11)


def _person_positions(people: pd.Index, nhs_numbers: pd.Series) -> np.ndarray:
    """Row of each event's person in the feature table (-1 for people not in it)."""
    return people.get_indexer(nhs_number_keys(nhs_numbers))


def _count_in_window(
    n_people: int, positions: np.ndarray, dates: np.ndarray, start: pd.Timestamp, end: pd.Timestamp
) -> np.ndarray:
    """Events per person with start <= date < end."""
    inside = (dates >= start.to_datetime64()) & (dates < end.to_datetime64())
    return np.bincount(positions[inside], minlength=n_people).astype(np.int32)


def age_in_years(date_of_birth: pd.Series, on: pd.Timestamp) -> np.ndarray:
    """Completed years of age on a date."""
    born = pd.DatetimeIndex(_as_dates(date_of_birth))
    had_birthday = (born.month < on.month) | ((born.month == on.month) & (born.day <= on.day))
    return (on.year - born.year - np.where(had_birthday, 0, 1)).astype(np.int32)


def build_features(
    records: Records, index_date: str | pd.Timestamp, with_label: bool | None = None
) -> pd.DataFrame:
    """One row per person alive and registered on ``index_date``, indexed by nhs_number.

    ``with_label`` None adds the label columns when the 12 months after the index date are in the
    records; True insists on it (UserInputError if not covered); False never adds them. The
    ``truth`` table is never read.
    """
    index_date = parse_index_date(index_date)
    if with_label is None:
        with_label = label_window_covered(records, index_date)
    elif with_label and not label_window_covered(records, index_date):
        raise UserInputError(
            f"The records in {records.source or 'this population'} do not cover the 12 months "
            f"after {index_date:%Y-%m-%d}, so there is no outcome to learn from or evaluate."
        )

    patients = population_on(records.patients, index_date)
    people = pd.Index(patients["nhs_number"].astype(str), name="nhs_number")
    person_keys = pd.Index(nhs_number_keys(patients["nhs_number"]))
    features = pd.DataFrame(index=people)
    features["practice_code"] = patients["practice_code"].astype(str).to_numpy()
    features["pcn_code"] = patients["pcn_code"].astype(str).to_numpy()
    features["age"] = age_in_years(patients["date_of_birth"], index_date)
    features["sex"] = patients["sex"].astype(str).to_numpy()
    # Unknown stays missing (NaN / <NA>): the model sees "not recorded", never a guess.
    features["ethnicity"] = patients["ethnicity"].astype("string").to_numpy()
    features["imd_decile"] = pd.to_numeric(patients["imd_decile"]).astype("Float64").to_numpy()
    features["imd_decile"] = features["imd_decile"].astype(float)

    conditions = records.conditions
    diagnosed = _as_dates(conditions["diagnosed_on"]) < index_date
    positions = _person_positions(person_keys, conditions["nhs_number"])
    known = diagnosed.to_numpy() & (positions >= 0)
    condition_codes = positions_in(conditions["condition"], CONDITION_CODES)
    known &= condition_codes >= 0
    flags = np.zeros((len(people), len(CONDITION_CODES)), dtype=np.int8)
    flags[positions[known], condition_codes[known]] = 1  # a repeated diagnosis still counts once
    for column_number, column in enumerate(LTC_COLUMNS):
        features[column] = flags[:, column_number]
    features["ltc_count"] = flags.sum(axis=1).astype(np.int32)

    encounter_positions = _person_positions(person_keys, records.encounters["nhs_number"])
    known = encounter_positions >= 0
    encounter_positions = encounter_positions[known]
    encounter_dates = _as_dates(records.encounters["date"]).to_numpy()[known]
    encounter_kinds = positions_in(records.encounters["kind"], ENCOUNTER_KINDS)[known]
    year_ago = index_date - pd.DateOffset(months=12)
    two_years_ago = index_date - pd.DateOffset(months=24)

    def count(kind: str, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        of_kind = encounter_kinds == ENCOUNTER_KINDS.index(kind)
        return _count_in_window(
            len(people), encounter_positions[of_kind], encounter_dates[of_kind], start, end
        )

    for kind, stem in UTILISATION_STEMS.items():
        features[f"{stem}_12m"] = count(kind, year_ago, index_date)
        features[f"{stem}_12_24m"] = count(kind, two_years_ago, year_ago)

    features["care_home"] = patients["care_home"].astype(bool).to_numpy().astype(np.int8)

    for code in OBSERVATION_COLUMNS:
        features[code] = np.nan
    if records.observations is not None and not records.observations.empty:
        observations = records.observations
        observations = pd.DataFrame(
            {
                "position": _person_positions(person_keys, observations["nhs_number"]),
                "date": _as_dates(observations["date"]).to_numpy(),
                "code": observations["code"].astype(str).to_numpy(),
                "value": pd.to_numeric(observations["value"]).astype(float).to_numpy(),
            }
        )
        observations = observations.loc[
            (observations["position"] >= 0) & (observations["date"] <= index_date)
        ]
        # stable sort: of two observations on the same latest day, the later row in the table wins
        latest = observations.sort_values("date", kind="stable").groupby(["position", "code"]).tail(1)
        for code in OBSERVATION_COLUMNS:
            rows = latest.loc[latest["code"] == code]
            values = np.full(len(people), np.nan)
            values[rows["position"].to_numpy()] = rows["value"].to_numpy()
            features[code] = values

    if with_label:
        counts = count("emergency_admission", index_date, index_date + pd.DateOffset(months=12))
        features[LABEL_COUNT] = counts
        features[LABEL] = (counts > 0).astype(np.int8)
    return features
