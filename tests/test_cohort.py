"""The synthetic population generator: shape, validity, determinism and bad input."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from nhs_number import is_valid

from features.conditions import CONDITION_CODES
from features.errors import UserInputError
from features.records import SCHEMAS, read_records, validate_records
from synthetic_cohort.generate import BLOCK_SIZE, generate_population, write_population
from synthetic_cohort.identifiers import nhs_numbers

N = 3_000


@pytest.fixture(scope="module")
def population():
    return generate_population(N, seed=7, profile="leicester")


def test_every_table_matches_the_records_schema(population):
    for table, schema in SCHEMAS.items():
        frame = getattr(population, table)
        assert set(schema.columns) <= set(frame.columns), table
        schema.validate(frame, lazy=True)
    assert validate_records(population) == []


def test_nhs_numbers_are_valid_distinct_and_synthetic():
    numbers = nhs_numbers(np.arange(0, 1_200_000, 7)).to_pylist()
    assert len(set(numbers)) == len(numbers)
    assert all(n.startswith("99") and len(n) == 10 and is_valid(n) for n in numbers[::50])


def test_population_has_the_documented_shape(population):
    patients = population.patients
    assert patients["nhs_number"].map(is_valid).all()
    start = pd.Timestamp("2022-01-01")
    on_list_at_start = (patients["registered_from"] <= start) & (patients["registered_to"].isna() | (patients["registered_to"] > start))
    assert on_list_at_start.sum() >= N
    assert set(population.conditions["condition"]) <= set(CONDITION_CODES)
    assert population.encounters["date"].between("2022-01-01", "2025-12-31").all()
    assert population.practices["pcn_code"].nunique() >= 1
    assert sorted(population.truth["year"].unique()) == [2022, 2023, 2024, 2025]
    observed = population.observations
    assert observed["date"].dt.strftime("%m-%d").eq("01-01").all()
    efi = observed.loc[observed["code"] == "efi", "value"]
    assert efi.between(0, 1).all() and efi.max() > 0.24


def _file_hashes(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.parquet"))}


def test_same_seed_gives_identical_files_whatever_the_workers(tmp_path):
    n = 2 * BLOCK_SIZE + 500  # three blocks
    write_population(tmp_path / "one", n, seed=3, profile="england", workers=1)
    write_population(tmp_path / "two", n, seed=3, profile="england", workers=2)
    assert _file_hashes(tmp_path / "one") == _file_hashes(tmp_path / "two")
    again = read_records(tmp_path / "one")
    other = generate_population(n, seed=4, profile="england")
    assert not again.patients["date_of_birth"].equals(other.patients["date_of_birth"])


@pytest.mark.parametrize("kwargs, words", [
    ({"n_patients": 0}, "number of patients"),
    ({"n_patients": -5}, "number of patients"),
    ({"profile": "york"}, "Unknown profile"),
    ({"start_year": 2025, "end_year": 2022}, "years"),
])
def test_bad_input_is_one_clear_sentence(kwargs, words):
    arguments = {"n_patients": 10, "seed": 1, "profile": "leicester"} | kwargs
    with pytest.raises(UserInputError, match=words) as error:
        generate_population(**arguments)
    message = str(error.value)
    assert message.endswith(".") and "\n" not in message


def test_cli_rejects_zero_patients_without_a_traceback(tmp_path, capsys):
    from app.cli import main

    assert main(["cohort", "--patients", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "number of patients" in err and "Traceback" not in err
    assert main(["cohort", "--patients", "5", "--profile", "york", "--out", str(tmp_path / "x")]) == 2
    assert "Unknown profile" in capsys.readouterr().err


@pytest.fixture(scope="module")
def england():
    return generate_population(4_000, seed=11, profile="england")


def _truth_with_people(records, year):
    truth = records.truth[records.truth["year"] == year].set_index("nhs_number")["probability"]
    people = records.patients.set_index("nhs_number").loc[truth.index]
    age = (pd.Timestamp(year, 1, 1) - people["date_of_birth"]).dt.days / 365.25
    diagnosed = records.conditions[records.conditions["diagnosed_on"] < pd.Timestamp(year, 1, 1)]
    n_conditions = diagnosed.groupby("nhs_number").size().reindex(truth.index, fill_value=0)
    admissions = records.encounters[(records.encounters["kind"] == "emergency_admission")
                                    & (records.encounters["date"].dt.year == year - 1)]
    prior = admissions.groupby("nhs_number").size().reindex(truth.index, fill_value=0)
    return pd.DataFrame({"p": truth, "age": age, "imd": people["imd_decile"], "n_ltc": n_conditions, "prior": prior})


def test_risk_depends_on_age_conditions_deprivation_and_past_use(england):
    frame = _truth_with_people(england, 2024)
    young, old = frame[frame["age"].between(20, 40)], frame[frame["age"] >= 80]
    assert old["p"].mean() > 2 * young["p"].mean()
    middle = frame[frame["age"].between(50, 80)]
    assert middle.loc[middle["n_ltc"] >= 2, "p"].mean() > 1.3 * middle.loc[middle["n_ltc"] == 0, "p"].mean()
    adults = frame[frame["age"].between(18, 65)]
    assert adults.loc[adults["imd"] <= 2, "p"].mean() > 1.2 * adults.loc[adults["imd"] >= 9, "p"].mean()
    assert frame.loc[frame["prior"] >= 1, "p"].mean() > 2 * frame.loc[frame["prior"] == 0, "p"].mean()


def test_truth_never_reaches_the_features(england):
    build = pytest.importorskip("features.build")
    with_truth = build.build_features(england, pd.Timestamp("2024-01-01"))
    without = build.build_features(replace(england, truth=None), pd.Timestamp("2024-01-01"))
    assert not any("probability" in column or "truth" in column for column in with_truth.columns)
    pd.testing.assert_frame_equal(with_truth, without)


def test_validate_writes_table_json_and_html_with_plots(tmp_path, capsys):
    import json

    from app.cli import main
    from synthetic_cohort.validate import Check

    write_population(tmp_path, 3_000, seed=2, profile="leicester", workers=1)
    assert main(["cohort", "validate", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "prevalence % diabetes (17+)" in table and "targets pass" in table
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["profile"] == "leicester" and report["measured"] == len(report["checks"]) > 40
    assert report["passed"] == sum(check["passed"] for check in report["checks"])
    diabetes = next(c for c in report["checks"] if c["name"].startswith("prevalence % diabetes"))
    assert 0 < diabetes["value"] < 100
    assert (tmp_path / "validation.html").read_text().count("data:image/png;base64,") == 5
    assert not Check("x", target=1.0, value=2.0, tolerance=0.5, source="").passed
    assert Check("x", target=1.0, value=1.4, tolerance=0.5, source="").passed


def test_validate_rejects_a_folder_without_records(tmp_path, capsys):
    from app.cli import main

    assert main(["cohort", "validate", str(tmp_path / "missing")]) == 2
    assert "no patients.parquet" in capsys.readouterr().err


def test_truth_is_the_probability_over_the_states_change_during_the_year():
    """The truth integrates the latent state's change on each person's own day; drawing the year's
    admissions spell by spell, as the simulation does, gives the same probability."""
    from synthetic_cohort.simulate import calibrated_story

    story = calibrated_story("england")
    rho = story.profile["latent"]["persistence"]
    before_latent = np.array([-3.0, -1.5, -1.0, 0.5])
    z = np.array([-1.0, 0.5, 2.0, 0.0])
    share_before_change = np.array([0.2, 0.5, 0.9, 1.0])
    truth = story.year_admission_probability(before_latent, z, share_before_change)

    rng = np.random.default_rng(3)
    draws = 400_000
    rate_now = np.exp(story.capped_admission_log_rate(before_latent, z))
    z_later = rho * z + np.sqrt(1 - rho**2) * rng.standard_normal((draws, 1))
    rate_later = np.exp(story.capped_admission_log_rate(before_latent, z_later))
    admitted = (rng.poisson(rate_now * share_before_change, (draws, 4))
                + rng.poisson(rate_later * (1 - share_before_change))) > 0
    simulated = admitted.mean(axis=0)
    standard_error = np.sqrt(simulated * (1 - simulated) / draws)
    assert np.all(np.abs(truth - simulated) < 4 * standard_error)
    # no change left in the year: the plain Poisson probability of the current state
    assert truth[3] == pytest.approx(-np.expm1(-rate_now[3]))
    # the later state is unknown on 1 January, so it lowers a high current risk
    assert truth[2] < -np.expm1(-rate_now[2])
