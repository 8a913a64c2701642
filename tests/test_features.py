"""Feature building on a small hand-built population whose expected values we can state."""

import numpy as np
import pandas as pd
import pytest

from features.build import LABEL, LABEL_COUNT, PREDICTOR_COLUMNS, build_features
from features.flags import rule_based_cohort, rule_flags
from features.errors import UserInputError
from features.records import Records

INDEX = "2024-01-01"
# Valid Modulus 11 NHS numbers.
ALICE, BOB, CAROL, DAVE, ERIN = "9434765919", "9434765870", "9434765889", "9434765897", "9434765900"


def _dates(*values):
    return pd.to_datetime(list(values))


@pytest.fixture
def records():
    patients = pd.DataFrame(
        {
            "nhs_number": [ALICE, BOB, CAROL, DAVE, ERIN],
            "given_name": ["A", "B", "C", "D", "E"],
            "family_name": ["X"] * 5,
            # Alice turns 70 on the index date; Bob is 47 the day before his birthday.
            "date_of_birth": _dates("1954-01-01", "1976-01-02", "1990-06-01", "1940-01-01", "2000-01-01"),
            "sex": ["F", "M", "F", "M", "F"],
            "ethnicity": ["Asian", None, "White", "Black", "Mixed"],
            "imd_decile": pd.array([1, 5, pd.NA, 10, 3], dtype="Int64"),
            "practice_code": ["P1", "P1", "P2", "P2", "P2"],
            "pcn_code": ["N1", "N1", "N2", "N2", "N2"],
            # Erin registers after the index date; Dave died before it.
            "registered_from": _dates("2000-01-01", "2000-01-01", "2010-01-01", "2000-01-01", "2024-03-01"),
            "registered_to": _dates(None, None, None, None, None),
            "date_of_death": _dates(None, None, "2024-06-01", "2023-12-31", None),
            "care_home": [True, False, False, False, False],
        }
    )
    practices = pd.DataFrame(
        {"practice_code": ["P1", "P2"], "practice_name": ["One", "Two"], "pcn_code": ["N1", "N2"], "pcn_name": ["A", "B"]}
    )
    conditions = pd.DataFrame(
        {
            "nhs_number": [ALICE, ALICE, ALICE, ALICE, BOB, CAROL],
            "condition": ["diabetes", "copd", "dementia", "diabetes", "asthma", "ckd"],
            # Carol's CKD is diagnosed on the index date itself: not yet known.
            "diagnosed_on": _dates("2010-01-01", "2015-01-01", "2023-06-01", "2012-01-01", "2001-01-01", "2024-01-01"),
        }
    )
    encounters = pd.DataFrame(
        {
            "nhs_number": [ALICE, ALICE, ALICE, ALICE, ALICE, BOB, BOB, CAROL, CAROL, DAVE, BOB],
            "date": _dates(
                "2023-01-01",  # exactly 12 months before: inside the prior-12-month window
                "2023-11-30",
                "2022-06-01",  # 12-24 months
                "2024-02-01",  # label window
                "2024-05-01",  # label window (second event)
                "2023-12-31",
                "2021-12-31",  # older than 24 months: ignored
                "2024-12-31",  # label window, last day
                "2025-01-01",  # after the label window
                "2023-05-01",  # Dave is not in the population
                "2023-07-01",
            ),
            "kind": [
                "emergency_admission", "emergency_admission", "emergency_admission",
                "emergency_admission", "emergency_admission", "ae_attendance",
                "ae_attendance", "emergency_admission", "emergency_admission",
                "emergency_admission", "gp_consultation",
            ],
        }
    )
    observations = pd.DataFrame(
        {
            "nhs_number": [ALICE, ALICE, ALICE],
            # The measurement on the index date itself is the state as at that date.
            "date": _dates("2022-01-01", "2024-01-01", "2024-02-01"),
            "code": ["efi", "efi", "efi"],
            "value": [0.1, 0.25, 0.4],
        }
    )
    truth = pd.DataFrame({"nhs_number": [ALICE, BOB], "year": [2024, 2024], "probability": [0.5, 0.1]})
    return Records(patients, practices, conditions, encounters, observations, truth)


def test_population_is_alive_and_registered_on_the_index_date(records):
    features = build_features(records, INDEX)
    assert list(features.index) == [ALICE, BOB, CAROL]
    assert features.index.name == "nhs_number"


def test_demographics_and_unknowns_stay_missing(records):
    features = build_features(records, INDEX)
    assert features.loc[ALICE, "age"] == 70
    assert features.loc[BOB, "age"] == 47
    assert pd.isna(features.loc[BOB, "ethnicity"])
    assert pd.isna(features.loc[CAROL, "imd_decile"])
    assert features.loc[ALICE, "imd_decile"] == 1
    assert features.loc[ALICE, "practice_code"] == "P1"
    assert features.loc[ALICE, "care_home"] == 1


def test_conditions_count_once_and_only_before_the_index_date(records):
    features = build_features(records, INDEX)
    assert features.loc[ALICE, "ltc_diabetes"] == 1
    assert features.loc[ALICE, "ltc_count"] == 3
    assert features.loc[BOB, "ltc_count"] == 1
    assert features.loc[CAROL, "ltc_ckd"] == 0
    assert features.loc[CAROL, "ltc_count"] == 0


def test_utilisation_windows(records):
    features = build_features(records, INDEX)
    assert features.loc[ALICE, "emergency_admissions_12m"] == 2
    assert features.loc[ALICE, "emergency_admissions_12_24m"] == 1
    assert features.loc[BOB, "ae_attendances_12m"] == 1
    assert features.loc[BOB, "ae_attendances_12_24m"] == 0
    assert features.loc[BOB, "gp_consultations_12m"] == 1
    assert features.loc[CAROL, "emergency_admissions_12m"] == 0


def test_latest_observation_on_or_before_the_index_date(records):
    features = build_features(records, INDEX)
    assert features.loc[ALICE, "efi"] == pytest.approx(0.25)
    assert np.isnan(features.loc[BOB, "efi"])
    assert features["repeat_medicines"].isna().all()


def test_label_counts_events_in_the_following_twelve_months(records):
    features = build_features(records, INDEX)
    assert features[LABEL].to_dict() == {ALICE: 1, BOB: 0, CAROL: 1}
    assert features.loc[ALICE, LABEL_COUNT] == 2
    assert features.loc[CAROL, LABEL_COUNT] == 1


def test_no_label_when_the_following_year_is_not_in_the_records(records):
    features = build_features(records, "2024-06-01")
    assert LABEL not in features.columns
    with pytest.raises(UserInputError, match="do not cover the 12 months"):
        build_features(records, "2024-06-01", with_label=True)


def test_truth_never_reaches_features(records):
    features = build_features(records, INDEX)
    assert not any("prob" in column or "truth" in column for column in features.columns)
    assert not any(column.startswith("label") for column in PREDICTOR_COLUMNS)
    records.truth = None
    pd.testing.assert_frame_equal(features, build_features(records, INDEX))


def test_malformed_index_date_is_one_sentence(records):
    with pytest.raises(UserInputError, match="not a date in the form YYYY-MM-DD"):
        build_features(records, "2024-13-45")


def test_rule_flags(records):
    features = build_features(records, INDEX)
    flags = rule_flags(features)
    assert flags.loc[ALICE, ["age_60_plus", "age_18_59_3plus_ltc", "dementia"]].to_dict() == {
        "age_60_plus": True, "age_18_59_3plus_ltc": False, "dementia": True}
    assert not flags.loc[BOB].any()
    features.loc[BOB, "ltc_count"] = 3
    assert rule_flags(features).loc[BOB, "age_18_59_3plus_ltc"]
    assert rule_based_cohort(features).to_dict() == {ALICE: True, BOB: True, CAROL: False}


def test_same_day_observations_keep_the_last_recorded_row(records):
    # Many rows on one day, interleaved with an older one: an unstable sort would pick any of them.
    count = 2_000
    older = np.random.default_rng(0).random(count) < 0.5
    older[-1] = False
    dates = np.where(older, np.datetime64("2023-01-01"), np.datetime64("2023-06-01"))
    records.observations = pd.DataFrame(
        {
            "nhs_number": [BOB] * count,
            "date": pd.to_datetime(dates),
            "code": ["repeat_medicines"] * count,
            "value": np.arange(count, dtype=float),
        }
    )
    features = build_features(records, INDEX)
    assert features.loc[BOB, "repeat_medicines"] == count - 1
