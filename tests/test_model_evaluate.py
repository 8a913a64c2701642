"""The evaluation figures on data whose answers are known."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from model.evaluate import (
    calibration_intercept_slope,
    capacity,
    capacity_advice,
    fairness_findings,
    flag_figures,
    score_option,
    top_flag,
)


@pytest.fixture
def calibrated():
    rng = np.random.default_rng(3)
    probability = expit(rng.normal(-2.5, 1.0, 40000))
    return probability, (rng.random(len(probability)) < probability).astype(int)


def test_calibration_of_true_probabilities_is_perfect(calibrated):
    probability, y = calibrated
    intercept, slope = calibration_intercept_slope(y, probability)
    assert abs(intercept) < 0.05 and abs(slope - 1) < 0.05


def test_over_confident_and_biased_scores_are_detected(calibrated):
    probability, y = calibrated
    _, slope = calibration_intercept_slope(y, expit(2 * logit(probability)))
    assert slope == pytest.approx(0.5, abs=0.05)
    intercept, _ = calibration_intercept_slope(y, expit(logit(probability) + 0.5))
    assert intercept == pytest.approx(-0.5, abs=0.06)


def test_top_flag_takes_exactly_the_share_and_breaks_ties():
    score = pd.Series([3, 3, 3, 1, 0, 0, 0, 0, 0, 0], index=list("abcdefghij"), dtype=float)
    tie = pd.Series([0, 2, 1, 0, 0, 0, 0, 0, 0, 0], index=score.index)
    assert top_flag(score, 0.2, tie)[lambda s: s].index.tolist() == ["b", "c"]


def test_flag_figures_count_admissions_not_people():
    flag = pd.Series([True, True, False, False])
    y = pd.Series([1, 0, 1, 0])
    events = pd.Series([3, 0, 1, 0])
    figures = flag_figures(flag, y, events)
    assert figures["ppv"] == 0.5 and figures["sensitivity"] == 0.5
    assert figures["share_of_admissions"] == 0.75
    assert figures["admissions_per_person_flagged"] == 1.5


def test_capacity_cut_off():
    probability = pd.Series(np.linspace(0.01, 0.5, 100))
    y = pd.Series(np.zeros(100, dtype=int))
    result = capacity(probability, y, pd.Series(np.zeros(100)), 10)
    assert result["cutoff_percentile"] == 90.0
    assert result["expected_people_admitted"] == pytest.approx(probability.iloc[-10:].sum())
    assert capacity_advice(result) == "to flag these people, score with --top-2pct-cutoff 0.1 --top-5pct-cutoff 0.1"
    assert "no cut-off is needed" in capacity_advice(capacity(probability, y, pd.Series(np.zeros(100)), 500))


def test_score_option_rounds_down_so_no_more_than_capacity_is_flagged():
    assert score_option(5000 / 360_000) == "--top-2pct-cutoff 0.0138"  # 0.013888...
    assert score_option(0.013) == "--top-2pct-cutoff 0.013"
    assert score_option(1 / 3) == "--top-2pct-cutoff 0.333 --top-5pct-cutoff 0.333"  # wider than 5%
    assert score_option(1.0) is None


def test_fairness_findings_name_the_gap_and_miscalibration():
    table = pd.DataFrame({
        "group": ["Female", "Male"], "flag_rate": [0.08, 0.02], "ppv": [0.3, 0.2], "events": [100, 100],
        "observed_rate": [0.10, 0.05], "mean_predicted": [0.05, 0.05], "observed_to_expected": [2.0, 1.0],
    })
    findings = fairness_findings("sex", table)
    assert findings[0].startswith("Largest flag rate gap by sex: Female 8.0% vs Male 2.0%")
    assert any("Calibration is off for sex Female: the model under-predicts" in f for f in findings)
    assert not any("Male: the model" in f for f in findings)
