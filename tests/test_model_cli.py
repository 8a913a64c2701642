"""The train / evaluate / score commands end to end on a toy population, and their bad-input sentences."""

import json

import pandas as pd
import pytest
from test_model import toy_records

from app.cli import main
from features.records import write_records


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    write_records(toy_records(2500, seed=11), folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(records_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    assert main(["train", "--records", str(records_dir), "--index-date", "2023-01-01", "--out", str(folder)]) == 0
    return folder


def test_train_writes_model_manifest_and_card(model_dir):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["training_index_date"] == "2023-01-01"
    assert len(manifest["sha256"]) == 64
    assert "Not evaluated yet" in (model_dir / "model_card.md").read_text()


def test_evaluate_writes_report_and_updates_card(records_dir, model_dir, capsys):
    from model.evaluate import score_option

    assert main(["evaluate", "--records", str(records_dir), "--model", str(model_dir), "--capacity", "100"]) == 0
    printed = capsys.readouterr().out
    assert "Our model" in printed and "Rule-based cohort" in printed and "Oracle" in printed
    report = json.loads((model_dir / "evaluation.json").read_text())
    assert report["evaluation_index_date"] == "2024-01-01"
    assert set(report["methods"]) == {"model", "baseline", "past_admissions", "rule_based", "oracle"}
    top = report["methods"]["model"]["top"]
    assert top["1%"]["flagged"] < top["2%"]["flagged"] < top["5%"]["flagged"] < top["10%"]["flagged"]
    assert 0 < top["5%"]["share_of_admissions"] <= 1
    assert report["capacity"]["people_reviewable"] == 100
    advice = f"to flag these people, score with {score_option(report['capacity']['cutoff_fraction'])}"
    assert advice in printed and advice in (model_dir / "evaluation.html").read_text()
    assert set(report["fairness"]) == {"sex", "age_band", "ethnicity", "imd_quintile"}
    assert any("Not recorded" == g["group"] for g in report["fairness"]["ethnicity"]["groups"])
    for image in report["images"].values():
        assert (model_dir / image).stat().st_size > 1000
    assert "Temporal validation" in (model_dir / "evaluation.html").read_text()
    assert "## Fairness" in (model_dir / "model_card.md").read_text()
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["evaluation_index_date"] == "2024-01-01"
    assert manifest["metrics"]["auroc"] == report["methods"]["model"]["auroc"]


def test_score_writes_the_score_file(records_dir, model_dir, tmp_path, capsys):
    from model.scoring import read_score_metadata

    out = tmp_path / "scores.parquet"
    assert main(["score", "--records", str(records_dir), "--model", str(model_dir),
                 "--index-date", "2026-01-01", "--out", str(out), "--top-2pct-cutoff", "0.03"]) == 0
    scores = pd.read_parquet(out)
    assert scores["nhs_number"].is_unique
    assert scores["top_2pct"].mean() == pytest.approx(0.03, abs=0.01)
    assert read_score_metadata(out)["top_cutoffs"] == {"top_2pct": 0.03, "top_5pct": 0.05}
    printed = capsys.readouterr().out
    assert (f"{scores['top_2pct'].sum():,} in the top 3%, {scores['top_5pct'].sum():,} in the top 5%"
            in printed)
    assert scores.loc[scores["top_5pct"], "reasons"].notna().all()


@pytest.mark.parametrize(
    "argv, sentence",
    [
        (["train", "--records", "{records}", "--index-date", "2023-02-30", "--out", "{tmp}/m"], "not a date in the form YYYY-MM-DD"),
        (["train", "--records", "{tmp}/missing", "--index-date", "2023-01-01", "--out", "{tmp}/m"], "does not exist"),
        (["train", "--records", "{records}", "--index-date", "1990-01-01", "--out", "{tmp}/m"], "No one"),
        (["train", "--records", "{records}", "--index-date", "2025-06-01", "--out", "{tmp}/m"], "do not cover the 12 months"),
        (["score", "--records", "{records}", "--model", "{tmp}/nomodel", "--index-date", "2026-01-01", "--out", "{tmp}/s.parquet"], "does not exist"),
        (["score", "--records", "{records}", "--model", "{model}", "--index-date", "1990-01-01", "--out", "{tmp}/s.parquet"], "No one"),
        (["evaluate", "--records", "{records}", "--model", "{model}", "--eval-date", "2023-06-01"], "overlap the training year"),
    ],
)
def test_bad_input_is_one_sentence(argv, sentence, records_dir, model_dir, tmp_path, capsys):
    argv = [a.format(records=records_dir, model=model_dir, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    message = error.replace("\r", "\n").strip().splitlines()[-1]  # after any progress bar
    assert message.startswith("proactive-care ") and sentence in message
