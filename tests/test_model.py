"""Training, scoring, explanations and persistence on a small toy population."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from nhs_number import generate as generate_nhs_numbers

from features.build import LABEL, build_features
from features.conditions import CONDITION_CODES, ETHNIC_GROUPS
from features.errors import UserInputError
from features.flags import FLAG_NAMES
from features.records import Records
from model import persist
from model.explain import FEATURE_WORDS, contributions, reason_text
from model.scoring import SCORE_COLUMNS, rank_against, score_batch
from model.training import records_until, train

TRAIN_DATE = "2024-01-01"


def toy_records(n: int = 3000, seed: int = 7) -> Records:
    """Four years (2022-2025) in which risk depends on age, conditions, deprivation and frailty."""
    rng = np.random.default_rng(seed)
    numbers = generate_nhs_numbers(quantity=n * 2)
    nhs = pd.unique(pd.Series(numbers))[:n]
    age = rng.integers(0, 95, n)
    birth = pd.Timestamp("2022-01-01") - pd.to_timedelta(age * 365.25 + rng.integers(0, 365, n), unit="D")
    ethnicity = rng.choice(list(ETHNIC_GROUPS), n).astype(object)
    ethnicity[rng.random(n) < 0.1] = None
    imd = pd.array(rng.integers(1, 11, n), dtype="Int64")
    imd[rng.random(n) < 0.1] = pd.NA
    practice = rng.choice(["P1", "P2", "P3", "P4"], n)
    patients = pd.DataFrame(
        {
            "nhs_number": nhs, "given_name": "A", "family_name": "B", "date_of_birth": birth,
            "sex": rng.choice(["F", "M"], n), "ethnicity": ethnicity, "imd_decile": imd,
            "practice_code": practice, "pcn_code": np.where(np.isin(practice, ["P1", "P2"]), "N1", "N2"),
            "registered_from": pd.Timestamp("2015-01-01"), "registered_to": pd.NaT,
            "date_of_death": pd.NaT, "care_home": rng.random(n) < 0.01 * (age > 75),
        }
    )
    practices = pd.DataFrame(
        {"practice_code": ["P1", "P2", "P3", "P4"], "practice_name": list("ABCD"),
         "pcn_code": ["N1", "N1", "N2", "N2"], "pcn_name": ["One", "One", "Two", "Two"]}
    )
    has = rng.random((n, len(CONDITION_CODES))) < (0.002 + 0.0015 * age)[:, None]
    person, condition = np.nonzero(has)
    conditions = pd.DataFrame(
        {"nhs_number": nhs[person], "condition": np.asarray(CONDITION_CODES)[condition],
         "diagnosed_on": pd.Timestamp("2020-01-01") - pd.to_timedelta(rng.integers(0, 3000, len(person)), unit="D")}
    )
    frailty = rng.gamma(1.0, 1.0, n)
    deprivation = np.where(pd.isna(imd), 5, imd.to_numpy(dtype=float, na_value=5))
    log_rate = -5.0 + 0.035 * age + 0.3 * has.sum(1) + 0.06 * (10 - deprivation) + 0.5 * frailty
    frames = []
    for year in range(2022, 2026):
        counts = rng.poisson(np.exp(log_rate + rng.normal(0, 0.3, n)))
        who = np.repeat(np.arange(n), counts)
        frames.append(pd.DataFrame({"nhs_number": nhs[who], "kind": "emergency_admission",
                                    "date": pd.Timestamp(f"{year}-01-01") + pd.to_timedelta(rng.integers(0, 365, len(who)), unit="D")}))
        gp = rng.poisson(2 + 2 * frailty)
        who = np.repeat(np.arange(n), gp)
        frames.append(pd.DataFrame({"nhs_number": nhs[who], "kind": "gp_consultation",
                                    "date": pd.Timestamp(f"{year}-01-01") + pd.to_timedelta(rng.integers(0, 365, len(who)), unit="D")}))
    # One encounter on the last day so every year is visibly covered.
    frames.append(pd.DataFrame({"nhs_number": nhs[:1], "kind": "outpatient", "date": pd.Timestamp("2025-12-31")}))
    encounters = pd.concat(frames, ignore_index=True)
    old = np.nonzero(age >= 65)[0]
    observations = pd.DataFrame(
        {"nhs_number": nhs[old], "date": pd.Timestamp("2023-06-01"), "code": "efi",
         "value": np.clip(frailty[old] / 10, 0, 1)}
    )
    # The year noise above is unknowable, so the oracle is the probability without it (a close bound).
    truth = pd.concat(
        [pd.DataFrame({"nhs_number": nhs, "year": year, "probability": 1 - np.exp(-np.exp(log_rate))}) for year in range(2022, 2026)]
    )
    return Records(patients, practices, conditions, encounters, observations, truth, source="toy")


@pytest.fixture(scope="module")
def records():
    return toy_records()


@pytest.fixture(scope="module")
def fitted(records):
    return train(records, TRAIN_DATE)


@pytest.fixture(scope="module")
def scoring_features(records):
    return build_features(records, "2025-01-01")


def test_model_learns_the_risk(fitted, scoring_features):
    from sklearn.metrics import roc_auc_score

    probability = fitted.predict_probability(scoring_features)
    assert roc_auc_score(scoring_features[LABEL], probability) > 0.7
    assert 0 < probability.min() and probability.max() < 1


def test_no_evaluation_year_data_reaches_training(records, fitted, scoring_features):
    """Scrambling everything from 2025 on (outcomes, deaths, truth) leaves the model unchanged."""
    cutoff = pd.Timestamp("2025-01-01")
    scrambled = records_until(records, cutoff)
    rng = np.random.default_rng(1)
    later = pd.DataFrame(
        {"nhs_number": rng.choice(records.patients["nhs_number"], 5000), "kind": "emergency_admission",
         "date": cutoff + pd.to_timedelta(rng.integers(0, 365, 5000), unit="D")}
    )
    scrambled.encounters = pd.concat([scrambled.encounters, later], ignore_index=True)
    scrambled.patients = scrambled.patients.assign(
        date_of_death=np.where(rng.random(len(scrambled.patients)) < 0.2, pd.Timestamp("2025-06-01"), pd.NaT)
    )
    scrambled.truth = records.truth.assign(probability=rng.random(len(records.truth)))
    again = train(scrambled, TRAIN_DATE)
    np.testing.assert_allclose(
        fitted.predict_probability(scoring_features), again.predict_probability(scoring_features)
    )
    # And the cut really removes the evaluation year.
    assert pd.to_datetime(records_until(records, cutoff).encounters["date"]).max() < cutoff
    assert records_until(records, cutoff).truth is None


def test_score_batch_columns_flags_and_reasons(fitted, scoring_features):
    scores = score_batch(scoring_features, fitted)
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert len(scores) == len(scoring_features)
    n = len(scores)
    assert scores["top_2pct"].sum() == pytest.approx(0.02 * n, abs=0.01 * n)
    assert (scores.loc[scores["top_2pct"], "probability"].min() >= scores.loc[~scores["top_5pct"], "probability"].max())
    assert scores["percentile"].between(0, 100).all()
    flagged = scores.loc[scores["top_5pct"]]
    assert flagged["reasons"].notna().all()
    any_flag = scores[list(FLAG_NAMES)].any(axis=1)
    assert scores.loc[~any_flag, "reasons"].isna().all()  # reasons for everyone flagged, no one else
    reasons = json.loads(flagged["reasons"].iloc[0])
    assert 1 <= len(reasons) <= 3
    assert set(reasons[0]) == {"feature", "text", "direction", "strength", "contribution"}
    assert reasons[0]["direction"] in {"raises", "lowers"}
    assert abs(reasons[0]["contribution"]) >= abs(reasons[-1]["contribution"])
    unknown_ethnicity = scoring_features["ethnicity"].isna().to_numpy()
    assert all("ethnicity" in json.loads(text) for text in scores.loc[unknown_ethnicity, "missing_predictors"])


def test_explain_top_fraction_option(fitted, scoring_features):
    scores = score_batch(scoring_features, fitted, explain_flagged=False, explain_top=0.01)
    assert scores["reasons"].notna().sum() == pytest.approx(0.01 * len(scores), abs=0.01 * len(scores))
    assert score_batch(scoring_features, fitted, explain_flagged=False)["reasons"].isna().all()


def test_contributions_add_up_to_the_calibrated_log_odds(fitted, scoring_features):
    sample = scoring_features.iloc[:200]
    contribution, base = contributions(fitted, sample)
    probability = fitted.predict_probability(sample)
    np.testing.assert_allclose(base + contribution.sum(axis=1), np.log(probability / (1 - probability)), atol=1e-6)


def test_partition_ranked_against_the_whole_population(fitted, scoring_features):
    whole = score_batch(scoring_features, fitted, explain_flagged=False)
    population = whole[["probability", "practice_code"]]
    half = scoring_features.iloc[: len(scoring_features) // 2]
    part = score_batch(half, fitted, population=population, explain_flagged=False)
    pd.testing.assert_frame_equal(part, whole.iloc[: len(half)].reset_index(drop=True))


def test_rank_against_percentiles():
    probability = pd.Series([0.1, 0.2, 0.3, 0.4], index=list("abcd"))
    practice = pd.Series(["X", "X", "Y", "Y"], index=list("abcd"))
    ranks = rank_against(probability, practice)
    assert ranks["percentile"].tolist() == [25.0, 50.0, 75.0, 100.0]
    assert ranks["practice_percentile"].tolist() == [50.0, 100.0, 50.0, 100.0]


def test_reason_words():
    assert reason_text("emergency_admissions_12m", 2, 0.9) == (
        "2 emergency admissions in the last 12 months — raises risk a lot"
    )
    assert reason_text("age", 47, -0.1) == "aged 47 — lowers risk a little"
    assert FEATURE_WORDS["ethnicity"](None) == "ethnicity not recorded"


def test_bad_cutoff_is_one_sentence(fitted, scoring_features):
    with pytest.raises(UserInputError, match="between 0 and 1"):
        score_batch(scoring_features.iloc[:10], fitted, top_cutoffs={"top_2pct": 2})
    with pytest.raises(UserInputError, match="top_2pct cut-off 0.1 is wider than the top_5pct cut-off 0.05"):
        score_batch(scoring_features.iloc[:10], fitted, top_cutoffs={"top_2pct": 0.1, "top_5pct": 0.05})


def test_persist_round_trip_and_refusals(fitted, scoring_features, tmp_path):
    manifest = persist.save(fitted, tmp_path / "m")
    assert persist.model_sha256(tmp_path / "m") == manifest["sha256"]
    loaded = persist.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_probability(scoring_features), fitted.predict_probability(scoring_features))

    assert manifest["model_file"] == "model.skops" and not (tmp_path / "m" / "model.joblib").exists()
    model_file = tmp_path / "m" / "model.skops"
    original = model_file.read_bytes()
    model_file.write_bytes(original + b"tampered")
    with pytest.raises(UserInputError, match="model.skops.*does not match"):
        persist.load(tmp_path / "m")
    model_file.write_bytes(original)

    manifest["libraries"]["scikit-learn"] = "0.24.2"
    persist.write_manifest(tmp_path / "m", manifest)
    with pytest.raises(UserInputError, match="scikit-learn 0.24.2"):
        persist.load(tmp_path / "m")
    with pytest.raises(UserInputError, match="does not exist"):
        persist.load(tmp_path / "nowhere")


def test_training_date_without_people_is_one_sentence(records):
    with pytest.raises(UserInputError, match="No one"):
        train(records, "1990-01-01")


def test_too_few_admissions_to_train_is_one_sentence(records):
    encounters = records.encounters
    in_label_year = (encounters["kind"] == "emergency_admission") & encounters["date"].between("2024-01-01", "2024-12-31")
    three_people = encounters[in_label_year].drop_duplicates("nhs_number").index[:3]
    few = replace(records, encounters=encounters[~in_label_year | encounters.index.isin(three_people)])
    with pytest.raises(UserInputError, match=r"Only 3 of the 3,000 people .* had an emergency admission .* at least 10"):
        train(few, TRAIN_DATE)
