"""Round trip: import the Synthea sample, build features, score with a model trained on a small
generated population, load into a temporary SQLite store and find the people in the app's list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.db import get_engine, session_scope
from app.load import load, upgrade_database
from app.services import patients as patient_services
from app.services.access import CurrentUser, Role
from features.build import build_features
from features.flags import FLAG_NAMES
from features.records import read_records
from model import persist
from model.score_file import DEFAULT_TOP_CUTOFFS
from model.scoring import score_batch, write_scores
from model.training import train
from synthetic_cohort.generate import write_population
from synthetic_cohort.importers import ImportOptions, import_synthea

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea" / "unmc_ne111"
INDEX_DATE = "2023-10-01"  # the sample's records end in mid-October 2023
MAIN_INDEX_DATE = "2026-01-01"
GENERATED_PEOPLE = 2000
FLAGS = list(FLAG_NAMES)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SAMPLE / "patients.csv").exists(),
                       reason=f"the Synthea sample export is not beside the repository at {SAMPLE}"),
]


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    work = tmp_path_factory.mktemp("roundtrip")
    write_population(work / "generated", GENERATED_PEOPLE, seed=5, profile="leicester")
    generated = read_records(work / "generated")
    persist.save(train(generated, "2024-01-01"), work / "model")
    avoid = frozenset(generated.patients["nhs_number"].astype(str))
    report = import_synthea(SAMPLE, work / "imported", ImportOptions(avoid_nhs_numbers=avoid))
    imported = read_records(work / "imported")
    features = build_features(imported, INDEX_DATE, with_label=False)
    # Reasons for everyone (not only the top 2%/5%): 100 people explain in well under a second.
    scores = score_batch(features, persist.load(work / "model"), explain_top=1.0)
    write_scores(scores, work / "scores.parquet", INDEX_DATE, persist.model_sha256(work / "model"),
                 DEFAULT_TOP_CUTOFFS)
    # The generated population is the store's main run; the import joins it as its own practice.
    main_scores = score_batch(build_features(generated, MAIN_INDEX_DATE, with_label=False),
                              persist.load(work / "model"))
    write_scores(main_scores, work / "main_scores.parquet", MAIN_INDEX_DATE,
                 persist.model_sha256(work / "model"), DEFAULT_TOP_CUTOFFS)
    url = f"sqlite:///{work / 'store.db'}"
    upgrade_database(url)
    load(work / "generated", work / "main_scores.parquet", work / "model", url, progress=False)
    summary = load(work / "imported", work / "scores.parquet", work / "model", url, add_to_current=True,
                   progress=False)
    return {"report": report, "imported": imported, "features": features, "scores": scores,
            "summary": summary, "url": url, "generated": generated, "main_scores": main_scores}


def test_imported_people_are_scored_and_say_which_predictors_they_lack(round_trip):
    imported, scores = round_trip["imported"], round_trip["scores"]
    alive = imported.patients.loc[imported.patients["date_of_death"].isna()
                                  | (imported.patients["date_of_death"] > INDEX_DATE)]
    assert set(scores["nhs_number"]) == set(alive["nhs_number"])
    assert scores["probability"].between(0, 1).all()
    missing = scores["missing_predictors"].map(json.loads)
    assert missing.map(lambda names: "imd_decile" in names).all()  # IMD is never invented
    assert not missing.map(lambda names: "ethnicity" in names).any()  # every race in the table
    assert not missing.map(lambda names: "repeat_medicines" in names).any()  # from medications.csv
    assert not set(scores["nhs_number"]) & set(round_trip["generated"].patients["nhs_number"])


def test_imported_features_carry_the_mapped_history(round_trip):
    features = round_trip["features"]
    assert features["imd_decile"].isna().all()
    assert features["ltc_count"].sum() > 0
    assert features["gp_consultations_12m"].sum() > 0 and features["outpatient_12m"].sum() > 0


def test_the_imported_practice_appears_in_the_app_with_scores_and_reasons(round_trip):
    summary, scores = round_trip["summary"], round_trip["scores"]
    assert summary.people_scored == len(scores)
    gp = CurrentUser("imported-gp", "Imported GP", Role.PRACTICE, practice_codes=frozenset({"IMP001"}))
    engine = get_engine(round_trip["url"])
    try:
        with session_scope(engine, write=True) as session:
            listed = patient_services.flagged_list(session, gp, practice_code="IMP001")
            flagged = scores.loc[scores[FLAGS].any(axis=1), "nhs_number"]
            assert len(listed) > 0 and set(listed["nhs_number"]) == set(flagged)
            assert (listed["practice_code"] == "IMP001").all()
            assert listed["reasons"].str.len().gt(0).all()
            record = patient_services.patient_record(session, gp, listed.iloc[0]["nhs_number"])
            assert record["reasons"] and "imd_decile" in record["missing_predictors"]
    finally:
        engine.dispose()


def test_the_main_practices_keep_their_people_beside_the_import(round_trip):
    main_scores = round_trip["main_scores"]
    practice = sorted(main_scores["practice_code"].unique())[0]
    gp = CurrentUser("main-gp", "Main GP", Role.PRACTICE, practice_codes=frozenset({practice}))
    engine = get_engine(round_trip["url"])
    try:
        with session_scope(engine) as session:
            listed = patient_services.flagged_list(session, gp)
    finally:
        engine.dispose()
    own = main_scores[(main_scores["practice_code"] == practice) & main_scores[FLAGS].any(axis=1)]
    assert len(listed) > 0 and set(listed["nhs_number"]) == set(own["nhs_number"])
    assert not set(listed["nhs_number"]) & set(round_trip["scores"]["nhs_number"])
