"""Synthea CSV import: the shared sample export and a hand-made three-person export."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from nhs_number import is_valid

from features.conditions import CONDITION_CODES, ENCOUNTER_KINDS, ETHNIC_GROUPS
from features.records import SCHEMAS, read_records
from synthetic_cohort.importers import REPORT_FILE, ImportOptions, import_synthea, read_import
from synthetic_cohort.importers.mappings import load_mappings, read_mapping
from synthetic_cohort.importers.nhs_numbers import assign_nhs_numbers
from synthetic_cohort.importers.synthea import read_synthea

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea" / "unmc_ne111"
SMALL = Path(__file__).resolve().parent / "fixtures" / "synthea_small"
needs_sample = pytest.mark.skipif(
    not (SAMPLE / "patients.csv").exists(),
    reason=f"the Synthea sample export is not beside the repository at {SAMPLE}",
)


def csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sample_import(tmp_path_factory):
    if not (SAMPLE / "patients.csv").exists():
        pytest.skip(f"the Synthea sample export is not beside the repository at {SAMPLE}")
    out = tmp_path_factory.mktemp("sample") / "records"
    report = import_synthea(SAMPLE, out)
    return out, report


@needs_sample
def test_sample_writes_valid_records_for_everyone(sample_import):
    out, report = sample_import
    records = read_records(out)
    for table in ("patients", "practices", "conditions", "encounters", "observations"):
        SCHEMAS[table].validate(getattr(records, table))
    people = csv_rows(SAMPLE / "patients.csv")
    patients = records.patients
    assert len(patients) == len(people) == report["people"]
    assert patients["nhs_number"].is_unique
    assert patients["nhs_number"].map(is_valid).all()
    assert patients["nhs_number"].str.startswith("999").all()
    assert patients["imd_decile"].isna().all()  # never invented
    assert set(patients["ethnicity"].dropna()) <= set(ETHNIC_GROUPS)
    assert set(patients["practice_code"]) == set(records.practices["practice_code"])
    deaths = sum(1 for person in people if person["DEATHDATE"])
    assert patients["date_of_death"].notna().sum() == deaths
    assert json.loads((out / REPORT_FILE).read_text())["people"] == len(people)


@needs_sample
def test_report_lists_every_snomed_code_seen_with_its_fate(sample_import):
    _, report = sample_import
    rows = csv_rows(SAMPLE / "conditions.csv")
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["CODE"]] = seen.get(row["CODE"], 0) + 1
    listed = {entry["code"]: entry for entry in report["conditions"]}
    assert set(listed) == set(seen)
    assert {code: entry["rows"] for code, entry in listed.items()} == seen
    assert report["condition_rows_mapped"] + report["condition_rows_left_out"] == len(rows)
    for entry in listed.values():
        assert entry["fate"] in {"mapped", "left out"}
        assert (entry["ltc_code"] in CONDITION_CODES) == (entry["fate"] == "mapped")
        assert entry["reason"] or entry["fate"] == "mapped"
    mapping = load_mappings().snomed_to_ltc
    assert all(mapping.get(code) == entry["ltc_code"] for code, entry in listed.items()
               if entry["fate"] == "mapped")
    # Social findings and acute illness are not long-term conditions.
    for code in ("160903007", "73595000", "10509002", "195662009"):
        assert listed[code]["fate"] == "left out"


@needs_sample
def test_conditions_count_people_once_from_first_diagnosis(sample_import):
    out, _ = sample_import
    records = read_records(out)
    assert not records.conditions.duplicated(["nhs_number", "condition"]).any()
    mapping = load_mappings().snomed_to_ltc
    people_with_hypertension = {
        row["PATIENT"] for row in csv_rows(SAMPLE / "conditions.csv")
        if mapping.get(row["CODE"]) == "hypertension"
    }
    assert (records.conditions["condition"] == "hypertension").sum() == len(people_with_hypertension)


@needs_sample
def test_sample_encounter_classes_map_by_the_documented_rules(sample_import):
    out, report = sample_import
    encounters = read_records(out).encounters
    raw = pd.Series([row["ENCOUNTERCLASS"] for row in csv_rows(SAMPLE / "encounters.csv")])
    classes = raw.value_counts()
    kinds = encounters["kind"].value_counts()
    assert set(kinds.index) <= set(ENCOUNTER_KINDS)
    # Synthea's death certifications, dated after the death, are left out (the records refuse them).
    deaths = {row["Id"]: row["DEATHDATE"][:10] for row in csv_rows(SAMPLE / "patients.csv") if row["DEATHDATE"]}
    after_death = sum(1 for row in csv_rows(SAMPLE / "encounters.csv")
                      if row["ENCOUNTERCLASS"] in ("wellness", "virtual") and row["PATIENT"] in deaths
                      and row["START"][:10] > deaths[row["PATIENT"]])
    assert after_death == sum(report["skipped"].values()) == 10
    assert kinds["gp_consultation"] == classes.get("wellness", 0) + classes.get("virtual", 0) - after_death
    assert kinds["outpatient"] == classes.get("ambulatory", 0) + classes.get("outpatient", 0)
    assert kinds["ae_attendance"] == classes.get("emergency", 0) + classes.get("urgentcare", 0)
    assert kinds["emergency_admission"] + kinds["elective_admission"] == classes["inpatient"]
    assert kinds["emergency_admission"] > 0 and kinds["elective_admission"] > 0
    left_out = {entry["class"] for entry in report["encounter_classes"] if entry["fate"] == "left out"}
    assert left_out == {"hospice", "snf"} & set(classes.index)
    assert len(encounters) == len(raw) - classes.get("hospice", 0) - classes.get("snf", 0) - after_death


@needs_sample
def test_older_layout_without_fips_and_income_imports_the_same(sample_import, tmp_path):
    out, _ = sample_import
    old = tmp_path / "old"
    shutil.copytree(SAMPLE, old)
    patients = pd.read_csv(old / "patients.csv", dtype=str, keep_default_na=False)
    patients = patients.drop(columns=["FIPS", "INCOME"]).rename(columns={"Id": "ID"})
    patients.to_csv(old / "patients.csv", index=False)
    import_synthea(old, tmp_path / "records")
    new_records, old_records = read_records(out), read_records(tmp_path / "records")
    for table in ("patients", "conditions", "encounters", "observations"):
        pd.testing.assert_frame_equal(getattr(old_records, table), getattr(new_records, table))


@needs_sample
def test_nhs_numbers_do_not_depend_on_row_order(sample_import, tmp_path):
    out, _ = sample_import
    shuffled = tmp_path / "shuffled"
    shutil.copytree(SAMPLE, shuffled)
    patients = pd.read_csv(shuffled / "patients.csv", dtype=str, keep_default_na=False)
    patients.sample(frac=1, random_state=3).to_csv(shuffled / "patients.csv", index=False)
    records, _ = read_import(read_synthea, shuffled)
    first = read_records(out).patients.set_index("given_name")["nhs_number"]
    again = records.patients.set_index("given_name")["nhs_number"]
    pd.testing.assert_series_equal(first.sort_index(), again.sort_index(), check_dtype=False)


def test_nhs_numbers_stay_unique_and_valid_when_hashes_collide():
    ids = [f"person-{number}" for number in range(20_000)]
    numbers = assign_nhs_numbers(ids)
    assert len(set(numbers.values())) == len(ids)  # ~200 birthday collisions in a 10^6 range
    assert all(is_valid(number) and number.startswith("999") for number in numbers.values())
    assert assign_nhs_numbers(reversed(ids)) == numbers


def test_mapping_tables_cover_our_conditions_and_name_only_our_codes():
    snomed = read_mapping("snomed_to_ltc.csv")
    mapped = set(snomed["ltc_code"]) - {""}
    assert mapped == set(CONDITION_CODES)
    assert snomed["code"].str.fullmatch(r"\d{6,18}").all()
    assert (snomed.loc[snomed["ltc_code"] == "", "note"] != "").all()
    ethnicity = read_mapping("ethnicity_to_ons.csv")
    assert set(ethnicity["ons_group"]) <= set(ETHNIC_GROUPS)


@pytest.fixture(scope="module")
def small():
    records, report = read_import(read_synthea, SMALL)
    names = records.patients.set_index("given_name")["nhs_number"]
    return records, report, names


def kinds_of(records, nhs_number) -> list[tuple[str, str]]:
    rows = records.encounters.loc[records.encounters["nhs_number"] == nhs_number]
    return [(f"{date:%Y-%m-%d}", kind) for date, kind in zip(rows["date"], rows["kind"])]


def test_admission_after_ae_or_for_an_urgent_reason_is_an_emergency(small):
    records, _, names = small
    ada = kinds_of(records, names["Ada101"])
    assert ("2023-02-01", "ae_attendance") in ada
    assert ("2023-02-02", "emergency_admission") in ada  # A&E the previous day
    assert ("2023-06-01", "elective_admission") in ada
    assert ("2023-03-01", "emergency_admission") in kinds_of(records, names["Raj303"])  # appendicitis
    eve = kinds_of(records, names["Eve505"])
    assert ("2023-01-06", "ae_attendance") in eve  # urgent care counts as A&E (type 3)
    assert ("2023-01-08", "elective_admission") in eve  # two days after: not an emergency
    assert not any(date == "2023-01-05" for date, _ in eve)  # the SNF stay is left out


def test_repeat_medicines_count_running_courses_once(small):
    records, _, names = small
    observations = records.observations
    ada = observations.loc[observations["nhs_number"] == names["Ada101"]]
    # Lisinopril 2010-01-01 to 2012-01-01 (two overlapping courses), metformin from 2015-05-01
    # still running, amoxicillin for a week (acute, not a repeat).
    assert list(zip(ada["date"].dt.strftime("%Y-%m-%d"), ada["value"])) == [
        ("1950-03-01", 0.0), ("2010-01-01", 1.0), ("2012-01-01", 0.0), ("2015-05-01", 1.0)
    ]
    raj = observations.loc[observations["nhs_number"] == names["Raj303"], "value"]
    assert list(raj) == [0.0]  # known to take none


def test_practice_follows_the_organisation_of_most_primary_care(small):
    records, report, names = small
    practice_names = records.practices.set_index("practice_code")["practice_name"]
    practice_of = records.patients.set_index("given_name")["practice_code"].map(practice_names)
    assert practice_of["Ada101"] == "Riverside Surgery"
    assert practice_of["Raj303"] == "Hilltop Medical Centre"  # two visits there, one elsewhere
    assert practice_of["Eve505"] == "Imported practice"  # no primary care encounters
    assert "County Hospital" not in set(practice_names)
    assert len(set(records.practices["pcn_code"])) == 1


def test_unknown_race_leaves_ethnicity_unknown(small):
    records, report, _ = small
    ethnicity = records.patients.set_index("given_name")["ethnicity"]
    assert ethnicity["Raj303"] == "Asian"
    assert pd.isna(ethnicity["Eve505"])
    assert report["people_with_unknown_ethnicity"] == 1


def test_cli_imports_and_prints_the_mapping_table(tmp_path, capsys):
    from app.cli import main

    assert main(["import", "synthea", str(SMALL), "--out", str(tmp_path / "records")]) == 0
    printed = capsys.readouterr().out
    assert "59621000" in printed and "mapped to hypertension" in printed
    assert "160903007" in printed and "left out" in printed
    first = read_records(tmp_path / "records").patients["nhs_number"]
    assert len(first) == 3
    assert main(["import", "synthea", str(SMALL), "--out", str(tmp_path / "second"),
                 "--avoid-numbers-in", str(tmp_path / "records")]) == 0
    second = read_records(tmp_path / "second").patients["nhs_number"]
    assert not set(first) & set(second)


def test_numbers_held_by_another_population_are_not_reused(small):
    records, _, names = small
    taken = frozenset({names["Ada101"]})
    again, _ = read_import(read_synthea, SMALL, ImportOptions(avoid_nhs_numbers=taken))
    renumbered = again.patients.set_index("given_name")["nhs_number"]
    assert renumbered["Ada101"] != names["Ada101"] and is_valid(renumbered["Ada101"])
    assert renumbered["Raj303"] == names["Raj303"]  # others keep theirs


def test_codes_from_another_code_system_are_left_out_with_that_reason(tmp_path):
    export = tmp_path / "export"
    shutil.copytree(SMALL, export)
    conditions = pd.read_csv(export / "conditions.csv", dtype=str, keep_default_na=False)
    conditions.insert(4, "SYSTEM", "http://snomed.info/sct")
    conditions.loc[0, "SYSTEM"] = "http://hl7.org/fhir/sid/icd-10-cm"  # Ada's hypertension row
    conditions.to_csv(export / "conditions.csv", index=False)
    records, report = read_import(read_synthea, export)
    (entry,) = [e for e in report["conditions"] if e["code"] == "59621000"]
    assert entry["fate"] == "left out" and "not a SNOMED CT code" in entry["reason"]
    assert "hypertension" not in set(records.conditions["condition"])
    assert "diabetes" in set(records.conditions["condition"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=200, unique=True))
def test_any_ids_get_distinct_valid_test_range_numbers(ids):
    numbers = assign_nhs_numbers(ids)
    assert set(numbers) == set(ids)
    assert len(set(numbers.values())) == len(ids)
    assert all(is_valid(n) and n.startswith("999") for n in numbers.values())
