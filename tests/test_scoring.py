"""The fast scoring path gives scikit-learn's numbers exactly; percentiles, missing predictors,
who gets reasons, and the score file's metadata."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_model import toy_records

from features.build import build_features
from features.flags import FLAG_NAMES, rule_flags
from features.errors import UserInputError
from model import compiled_trees, persist
from model.compiled_trees import CompiledTrees
from features.flags import cutoff_percent
from model.scoring import (
    MAY_BE_MISSING,
    missing_predictors,
    predict_probability,
    rank_against,
    read_score_metadata,
    score_batch,
    write_scores,
)
from model.training import design_matrix, train


@pytest.fixture(scope="module")
def fitted():
    return train(toy_records(2000, seed=3), "2024-01-01")


@pytest.fixture(scope="module")
def features():
    return build_features(toy_records(2000, seed=3), "2025-01-01", with_label=False)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_compiled_margin_and_probability_equal_scikit_learn_bit_for_bit(fitted, features, monkeypatch, threads):
    monkeypatch.setenv("PROACTIVE_CARE_THREADS", threads)
    monkeypatch.setattr(compiled_trees, "CHUNK_ROWS", 300)  # several chunks, uneven last one
    design = design_matrix(features[list(fitted.predictors)])
    assert np.isnan(design.to_numpy()).any(), "missing values must take the trees' missing branch"
    trees = CompiledTrees.from_boosting(fitted.boosting)
    margin = trees.margin(len(design), lambda start, stop: design.iloc[start:stop].to_numpy())
    np.testing.assert_array_equal(margin, fitted.boosting.decision_function(design))
    np.testing.assert_array_equal(predict_probability(fitted, features), fitted.predict_probability(features))


def test_rank_against_ties_absent_and_unknown_practices():
    probability = pd.Series([0.1, 0.2, 0.2, 0.4, 0.3, 0.5], index=list("abcdef"))
    practice = pd.Series(["X", "X", "X", "Y", "Z", None], index=list("abcdef"), dtype="str")
    ranks = rank_against(probability, practice)
    assert ranks["percentile"].tolist() == pytest.approx([100 / 6, 50, 50, 500 / 6, 400 / 6, 100])
    assert ranks["practice_percentile"].tolist()[:5] == pytest.approx([100 / 3, 100, 100, 100, 100])
    assert np.isnan(ranks["practice_percentile"].iloc[5])  # no practice, no practice percentile
    population = pd.DataFrame(
        {"probability": [0.1, 0.3, 0.3, 0.35], "practice_code": pd.array(["X", "X", "Y", "W"], dtype="str")}
    )
    against = rank_against(probability, practice, population)
    assert against["percentile"].tolist() == pytest.approx([25, 25, 25, 100, 75, 100])
    assert against["practice_percentile"].tolist()[:4] == pytest.approx([50, 50, 50, 100])
    assert against["practice_percentile"].iloc[4:].isna().all()  # practice Z is not in the population


def test_missing_predictors_lists_every_unknown_predictor():
    frame = pd.DataFrame(
        {"ethnicity": [None, "White", None], "imd_decile": [3, np.nan, np.nan], "efi": [0.1, 0.2, np.nan]}
    )  # repeat_medicines absent: unknown for everyone
    texts = missing_predictors(frame).map(json.loads).tolist()
    assert texts == [
        ["ethnicity", "repeat_medicines"],
        ["imd_decile", "repeat_medicines"],
        ["ethnicity", "imd_decile", "efi", "repeat_medicines"],
    ]
    assert set(texts[2]) == set(MAY_BE_MISSING)


def test_everyone_flagged_by_any_flag_gets_reasons_by_default(fitted, features):
    scores = score_batch(features, fitted)
    flagged = scores[list(FLAG_NAMES)].any(axis=1)
    assert (flagged.to_numpy() >= rule_flags(features).any(axis=1).to_numpy()).all()
    assert flagged.sum() > scores["top_5pct"].sum()  # rule flags add people beyond the top 5%
    assert scores.loc[flagged, "reasons"].notna().all()
    assert scores.loc[~flagged, "reasons"].isna().all()
    top_only = score_batch(features, fitted, explain_flagged=False, explain_top=0.05)
    assert top_only["reasons"].notna().sum() == top_only["top_5pct"].sum()


def test_score_file_metadata_round_trip(fitted, features, tmp_path):
    cutoffs = {"top_2pct": 0.013, "top_5pct": 0.04}
    scores = score_batch(features.iloc[:50], fitted, top_cutoffs=cutoffs)
    write_scores(scores, tmp_path / "scores.parquet", "2025-01-01", "ab" * 32, cutoffs)
    assert read_score_metadata(tmp_path / "scores.parquet") == {
        "index_date": "2025-01-01", "model_sha256": "ab" * 32, "top_cutoffs": cutoffs,
    }
    scores.to_parquet(tmp_path / "plain.parquet", index=False)  # the same table as pandas writes it
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "scores.parquet"), pd.read_parquet(tmp_path / "plain.parquet"))
    (tmp_path / "parts").mkdir()
    write_scores(scores, tmp_path / "parts" / "part-00000.parquet", None, "cd" * 32, None)
    assert read_score_metadata(tmp_path / "parts") == {"index_date": None, "model_sha256": "cd" * 32,
                                                        "top_cutoffs": None}  # as in an older file
    with pytest.raises(UserInputError, match="does not exist"):
        read_score_metadata(tmp_path / "none.parquet")


@pytest.mark.parametrize("written", [b"0.02", b"{\"top_2pct\": 0.02}", b"{\"top_2pct\": 1.5, \"top_5pct\": 0.05}"])
def test_score_file_with_unreadable_cutoffs_is_one_sentence(tmp_path, written):
    table = pa.table({"nhs_number": ["9990000018"]})
    pq.write_table(table.replace_schema_metadata({b"proactive_care.top_cutoffs": written}), tmp_path / "s.parquet")
    with pytest.raises(UserInputError, match="top_cutoffs|cut-off 1.5 must be a fraction"):
        read_score_metadata(tmp_path / "s.parquet")


def test_cutoffs_read_as_percentages():
    assert [cutoff_percent(f) for f in (0.02, 0.05, 0.013, 0.0138, 0.07)] == ["2%", "5%", "1.3%", "1.38%", "7%"]


def test_persist_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = "import sys, model.persist; print(any(m in sys.modules for m in ('sklearn', 'joblib', 'skops')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_score_command_writes_metadata_and_explains_every_flagged_person(fitted, tmp_path):
    from app.cli import main
    from features.records import write_records

    write_records(toy_records(600, seed=5), tmp_path / "records")
    manifest = persist.save(fitted, tmp_path / "model")
    out = tmp_path / "scores.parquet"
    assert main(["score", "--records", str(tmp_path / "records"), "--model", str(tmp_path / "model"),
                 "--index-date", "2025-01-01", "--out", str(out)]) == 0
    assert read_score_metadata(out) == {"index_date": "2025-01-01", "model_sha256": manifest["sha256"],
                                        "top_cutoffs": {"top_2pct": 0.02, "top_5pct": 0.05}}
    scores = pd.read_parquet(out)
    flagged = scores[list(FLAG_NAMES)].any(axis=1)
    assert scores["reasons"].notna().tolist() == flagged.tolist()
