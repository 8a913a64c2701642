"""The shape of generated use: tail measures, plausible maxima that fail loudly, centiles."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthetic_cohort.distributions import (
    _most_in_any_window,
    frequent_attendance,
    mantel_haenszel_odds_ratio,
    onset_years_earlier,
    top_share,
)
from synthetic_cohort.generate import write_population
from synthetic_cohort.validate import AT_MOST, PLAUSIBLE_MAXIMUM, Check, validate_population


def test_top_share_counts_the_heaviest_users():
    counts = np.array([0] * 90 + [1] * 9 + [91])  # 100 people, 100 events, one person with 91
    assert top_share(counts, 0.01) == pytest.approx(91.0)
    assert top_share(counts, 0.10) == pytest.approx(100.0)
    assert top_share(np.ones(100), 0.10) == pytest.approx(10.0)


def test_frequent_attendance_is_among_attenders_only():
    counts = np.array([0] * 1000 + [1] * 70 + [2] * 20 + [3] * 6 + [6] * 3 + [12])
    shares = frequent_attendance(counts)
    assert shares["attending_once_percent"] == pytest.approx(70.0)
    assert shares["3_plus_percent"] == pytest.approx(10.0)
    assert shares["6_plus_percent"] == pytest.approx(4.0)
    assert shares["10_plus_percent"] == pytest.approx(1.0)
    total = 70 + 40 + 18 + 18 + 12
    assert shares["attendances_by_6_plus_percent"] == pytest.approx(100 * 30 / total)


def test_mantel_haenszel_recovers_a_common_odds_ratio_across_strata():
    rng = np.random.default_rng(1)
    n = 400_000
    stratum = rng.integers(0, 4, n)
    exposed = rng.random(n) < 0.2 + 0.1 * stratum
    base_odds = np.array([0.02, 0.05, 0.1, 0.3])[stratum]
    odds = base_odds * np.where(exposed, 5.0, 1.0)
    outcome = rng.random(n) < odds / (1 + odds)
    assert mantel_haenszel_odds_ratio(exposed, outcome, stratum) == pytest.approx(5.0, rel=0.05)


def test_onset_years_earlier_finds_a_ten_year_shift():
    rng = np.random.default_rng(2)
    age = pd.Series(rng.uniform(20, 95, 200_000))
    deprived = pd.Series(rng.random(age.size) < 0.5)
    # the share with 2+ conditions rises with age; the deprived group is ten years "older"
    effective = age + np.where(deprived, 10.0, 0.0)
    multimorbid = pd.Series(rng.random(age.size) < 1 / (1 + np.exp(-(effective - 65) / 8)))
    assert onset_years_earlier(age, multimorbid, deprived, ~deprived) == pytest.approx(10.0, abs=1.0)


def test_most_in_any_window_looks_at_every_365_days():
    keys = np.array([1] * 5 + [2] * 4)
    days = np.array([0, 100, 364, 365, 700] + [10, 11, 12, 400])
    assert _most_in_any_window(keys, days) == (3, 1)  # days 0, 100, 364 (365 is outside [0, 365))
    assert _most_in_any_window(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == (0, -1)


def test_a_ceiling_check_fails_above_it_and_says_so():
    ceiling = Check("most in any 12 months gp consultation", target=150, value=151, tolerance=0, source="s",
                    comparison=AT_MOST)
    assert not ceiling.passed and ceiling.allowed == "at most"
    assert Check("x", target=150, value=150, tolerance=0, source="s", comparison=AT_MOST).passed
    assert not Check("x", target=150, value=float("nan"), tolerance=0, source="s", comparison=AT_MOST).passed


@pytest.fixture(scope="module")
def small_population(tmp_path_factory):
    directory = tmp_path_factory.mktemp("records")
    write_population(directory, 4_000, seed=3, profile="leicester", workers=1)
    return directory


def test_generated_counts_stay_below_every_plausible_maximum(small_population):
    report = validate_population(small_population, with_plots=False)
    ceilings = [c for c in report.checks if c.comparison == PLAUSIBLE_MAXIMUM]
    assert len(ceilings) == 6
    assert all(c.passed for c in ceilings), [(c.name, c.value) for c in ceilings if not c.passed]
    centiles = report.centiles
    assert set(centiles) >= {"gp_consultation", "ae_attendance", "outpatient", "emergency_admission",
                             "elective_admission", "repeat_medicines", "conditions"}
    for values in centiles.values():
        assert values["median"] <= values["99th"] <= values["99.9th"] <= values["maximum"]


def test_an_implausible_count_fails_validation_loudly(small_population, tmp_path, capsys):
    """300 GP appointments in a year for one person: the ceiling check fails and the CLI says so."""
    from app.cli import main

    for table in small_population.glob("*"):
        (tmp_path / table.name).write_bytes(table.read_bytes())
    encounters = pd.read_parquet(tmp_path / "encounters.parquet")
    person = encounters["nhs_number"].iloc[0]
    extra = pd.DataFrame({"nhs_number": person, "kind": "gp_consultation",
                          "date": pd.Timestamp("2024-03-01") + pd.to_timedelta(np.arange(300) % 300, unit="D")})
    pd.concat([encounters, extra], ignore_index=True).to_parquet(tmp_path / "encounters.parquet", index=False)

    assert main(["cohort", "validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    out = captured.out
    assert f"NHS number {person} has" in captured.err and "gp consultations in one 12-month window" in captured.err
    line = next(row for row in out.splitlines() if row.startswith("most in any 12 months gp consultation"))
    assert line.split()[-1] == "FAIL" and "at most" in line
    assert "99.9th" in out and "maximum" in out  # the centile table
    report = json.loads((tmp_path / "validation.json").read_text())
    check = next(c for c in report["checks"] if c["name"] == "most in any 12 months gp consultation")
    assert check["value"] >= 300 and not check["passed"]
    assert report["centiles"]["counts"]["gp_consultation"]["maximum"] < 300  # 2025 is the centile year
    assert report["implausible"] and not validate_population(small_population, with_plots=False).implausible_people


def test_readmissions_are_admissions_within_30_days_of_the_previous_one():
    from synthetic_cohort.distributions import _readmission_percent

    keys = np.array([1, 1, 1, 2, 2, 3])
    days = np.array([100, 110, 200, 5, 50, 120])  # person 1: day 110 is a readmission; person 2: 45 days apart
    assert _readmission_percent(keys, days, first_day=0) == pytest.approx(100 / 6)
    assert _readmission_percent(keys, days, first_day=105) == pytest.approx(100 / 3)  # 110 of (110, 120, 200)
