"""Partitioned features and Dask scoring give exactly the in-process results.

A small generated population (a few thousand people) is split into several partitions; on a
LocalCluster the scores must equal ``score_batch`` on the whole table: probabilities bit for bit,
global (not per-partition) percentiles, flags and reasons.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.build import build_features
from features.errors import UserInputError
from features.partitioned import (
    build_features_partitioned,
    partition_dirs,
    read_features,
    split_records,
)
from features.records import read_records, write_records
from model import persist
from model.distributed import dask_client, score_with_dask, split_features
from model.scoring import read_score_metadata, score_batch
from model.training import train

PEOPLE = 3000
PARTITIONS = 4
TRAIN_DATE = "2024-01-01"
SCORE_DATE = "2026-01-01"


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    from synthetic_cohort.generate import generate_population

    folder = tmp_path_factory.mktemp("records")
    write_records(generate_population(PEOPLE, seed=11), folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(population, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    persist.save(train(read_records(population), TRAIN_DATE), folder)
    return folder


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, processes=False) as client:
        yield client


@pytest.fixture(scope="module")
def split(population, tmp_path_factory):
    folder = tmp_path_factory.mktemp("split")
    split_records(population, folder, PARTITIONS, progress=False)
    return folder


def in_process_scores(population, model_dir, tmp_path, **options) -> pd.DataFrame:
    """What the local engine writes, read back the same way as the Dask output."""
    features = build_features(read_records(population), SCORE_DATE, with_label=False)
    scores = score_batch(features, persist.load(model_dir), **options)
    scores.to_parquet(tmp_path / "local.parquet", index=False)
    return by_person(pd.read_parquet(tmp_path / "local.parquet"))


def by_person(scores: pd.DataFrame) -> pd.DataFrame:
    return scores.sort_values("nhs_number").reset_index(drop=True)


def test_split_keeps_every_row_once(population, split):
    whole = read_records(population)
    parts = [read_records(folder) for folder in partition_dirs(split)]
    assert len(parts) == PARTITIONS
    for table in ("patients", "conditions", "encounters", "observations"):
        pieces = pd.concat([getattr(part, table) for part in parts])
        assert len(pieces) == len(getattr(whole, table)), table
    people = [set(part.patients["nhs_number"]) for part in parts]
    assert all(p for p in people), "every partition holds someone"
    assert sum(len(p) for p in people) == len(set().union(*people))  # no one in two partitions
    for part, members in zip(parts, people):  # a person's events live with the person
        assert set(part.encounters["nhs_number"]) <= members


@pytest.mark.parametrize("index_date", [TRAIN_DATE, SCORE_DATE])
def test_partitioned_features_equal_whole_build(population, split, tmp_path, index_date, client):
    whole = build_features(read_records(population), index_date)
    sequential = read_features(
        build_features_partitioned(split, index_date, tmp_path / "seq", progress=False)[0].parent
    )
    on_dask = read_features(
        build_features_partitioned(split, index_date, tmp_path / "dask", client=client, progress=False)[0].parent
    )
    # The training date has its label year in the records; the scoring date does not.
    assert ("label_emergency_admission_12m" in whole.columns) == (index_date == TRAIN_DATE)
    pd.testing.assert_frame_equal(sequential.sort_index(), whole.sort_index())
    pd.testing.assert_frame_equal(on_dask.sort_index(), whole.sort_index())


def test_dask_scores_equal_in_process_scores(population, model_dir, tmp_path, client, capsys):
    cutoffs = {"top_2pct": 0.013, "top_5pct": 0.05}
    expected = in_process_scores(population, model_dir, tmp_path, top_cutoffs=cutoffs)
    score_with_dask(
        records_dir=population, model_dir=model_dir, out=tmp_path / "scores.parquet",
        index_date=SCORE_DATE, client=client, partitions=PARTITIONS, progress=False, top_cutoffs=cutoffs,
    )
    assert f"{expected['top_2pct'].sum():,} in the top 1.3%" in capsys.readouterr().out
    files = sorted((tmp_path / "scores.parquet").glob("part-*.parquet"))
    assert len(files) == PARTITIONS
    for file in files:  # every partition says what was scored when, by which model file, with which cut-offs
        assert read_score_metadata(file) == {
            "index_date": SCORE_DATE, "model_sha256": persist.model_sha256(model_dir), "top_cutoffs": cutoffs,
        }
    got = by_person(pd.read_parquet(tmp_path / "scores.parquet"))
    assert expected["top_5pct"].sum() > 0 and expected["reasons"].notna().sum() > 0
    pd.testing.assert_frame_equal(got, expected)


def test_percentiles_are_ranked_across_the_whole_population(population, model_dir):
    """Guard for the equality test: ranking one partition on its own gives other percentiles."""
    model = persist.load(model_dir)
    features = build_features(read_records(population), SCORE_DATE, with_label=False)
    first = split_features(features, PARTITIONS)[0]
    alone = score_batch(first, model, explain_flagged=False).set_index("nhs_number")
    whole = score_batch(features, model, explain_flagged=False).set_index("nhs_number")
    assert not alone["percentile"].equals(whole.loc[alone.index, "percentile"])


def test_feature_table_on_worker_processes_with_top_fraction_explained(
    population, model_dir, tmp_path
):
    """Model and population cross process boundaries (pickled to two worker processes)."""
    features = build_features(read_records(population), SCORE_DATE, with_label=False)
    expected = in_process_scores(
        population, model_dir, tmp_path, explain_top=0.01, explain_flagged=False
    )
    score_with_dask(
        model_dir=model_dir, out=tmp_path / "scores", features=features, partitions=3,
        explain_top=0.01, workers=2, processes=True, progress=False,
    )
    got = by_person(pd.read_parquet(tmp_path / "scores"))
    assert 0 < got["reasons"].notna().sum() < got["top_2pct"].sum()
    pd.testing.assert_frame_equal(got, expected)


def test_bad_inputs_are_one_sentence(population, model_dir, tmp_path, client):
    with pytest.raises(UserInputError, match="exactly one"):
        score_with_dask(model_dir=model_dir, out=tmp_path / "x", client=client)
    with pytest.raises(UserInputError, match="index date"):
        score_with_dask(records_dir=population, model_dir=model_dir, out=tmp_path / "x", client=client)
    with pytest.raises(UserInputError, match="neither a records folder"):
        score_with_dask(
            records_dir=tmp_path, model_dir=model_dir, out=tmp_path / "x",
            index_date=SCORE_DATE, client=client,
        )
    with pytest.raises(UserInputError, match="at least 1"):
        split_records(population, tmp_path / "none", 0, progress=False)
    assert not (tmp_path / "x").exists()
