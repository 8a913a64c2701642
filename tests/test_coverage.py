"""Coverage counts, the disclosure rule and the monthly trend."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
from features.flags import FLAG_NAMES
from hypothesis import given, strategies as st
from sqlalchemy import func, select

from app.db import session_scope
from app.services import careplans, coverage
from app.services.disclosure import disclose_count, disclosed_percentage, format_count
from app.store import Score, ScoreRun
from conftest import write_score_file
from features.errors import UserInputError

REVIEW = date.today() + timedelta(days=120)


@pytest.mark.parametrize("count, shown", [(0, 0), (1, None), (7, None), (8, 10), (12, 10), (13, 15),
                                          (17, 15), (18, 20), (1002, 1000), (1003, 1005)])
def test_disclosure_rule(count, shown):
    assert disclose_count(count) == shown


def test_percentages_come_from_rounded_counts():
    assert disclosed_percentage(8, 13) == pytest.approx(100 * 10 / 15, abs=0.05)
    assert disclosed_percentage(5, 40) is None  # numerator suppressed
    assert disclosed_percentage(0, 0) is None
    assert disclosed_percentage(0, 9) == 0.0
    assert format_count(None) == "*"


@given(st.integers(min_value=0, max_value=10_000_000))
def test_disclosed_counts_never_reveal_small_numbers(count):
    shown = disclose_count(count)
    if 1 <= count <= 7:
        assert shown is None
    else:
        assert shown % 5 == 0 and abs(shown - count) <= 2 and (shown == 0) == (count == 0)


def _flagged(session, practice: str, group: str) -> list[str]:
    run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
    return list(session.scalars(select(Score.nhs_number).where(
        Score.run_id == run.id, Score.practice_code == practice, run.has_flag(group))
        .order_by(Score.nhs_number)))


def _row(frame: pd.DataFrame, code: str, group: str) -> pd.Series:
    return frame[(frame["code"] == code) & (frame["group"] == group)].iloc[0]


def test_coverage_counts_agreed_in_date_plans_with_a_lead(loaded_engine, users):
    gp, commissioner = users["practice1"], users["commissioner"]
    with session_scope(loaded_engine, write=True) as session:
        people = _flagged(session, "P001", "age_60_plus")
        assert len(people) >= 10, "the tiny population should flag enough people aged 60+"
        for nhs in people[:10]:
            careplans.save_care_plan(session, gp, nhs, 0, status="agreed", next_review=REVIEW)
            careplans.assign_lead_professional(session, gp, nhs, "Dr Asha Rao", "GP", 0)
        # Not covered: an agreed plan without a lead, a lead without a plan, a draft plan with a lead.
        careplans.save_care_plan(session, gp, people[10], 0, status="agreed", next_review=REVIEW)
        careplans.assign_lead_professional(session, gp, people[11], "Jo Hill", "Social worker", 0)
        careplans.save_care_plan(session, gp, people[12], 0, status="draft")
        careplans.assign_lead_professional(session, gp, people[12], "Jo Hill", "Social worker", 0)
    with session_scope(loaded_engine) as session:
        table = coverage.coverage(session, commissioner, level="practice")
        row = _row(table, "P001", "age_60_plus")
        assert row["covered"] == 10 and row["flagged"] == disclose_count(len(people))
        assert row["percent"] == pytest.approx(round(100 * 10 / disclose_count(len(people)), 1))
        assert _row(table, "P003", "age_60_plus")["covered"] == 0
        # After the review date passes, the same plans no longer count.
        overdue = coverage.coverage(session, commissioner, level="practice", today=REVIEW + timedelta(days=1))
        assert _row(overdue, "P001", "age_60_plus")["covered"] == 0
        area = coverage.coverage(session, commissioner, level="area")
        assert set(area["code"]) == {coverage.AREA_CODE} and len(area) == len(FLAG_NAMES) + 1  # + clinical judgement
        pcn = coverage.coverage(session, commissioner, level="pcn")
        assert set(pcn["code"]) == {"N01", "N02"}
        with pytest.raises(UserInputError):
            coverage.coverage(session, commissioner, level="galaxy")


def test_small_counts_are_suppressed_everywhere(loaded_engine, users):
    with session_scope(loaded_engine, write=True) as session:
        people = _flagged(session, "P002", "age_60_plus")
        for nhs in people[:3]:
            careplans.save_care_plan(session, users["practice1"], nhs, 0, status="agreed", next_review=REVIEW)
            careplans.assign_lead_professional(session, users["practice1"], nhs, "Dr Asha Rao", "GP", 0)
    with session_scope(loaded_engine) as session:
        table = coverage.coverage(session, users["commissioner"], level="practice")
        row = _row(table, "P002", "age_60_plus")
        assert pd.isna(row["covered"]) and pd.isna(row["percent"])
        csv = pd.read_csv(io.StringIO(coverage.coverage_csv(table)), dtype=str)
        assert _row(csv, "P002", "age_60_plus")["covered"] == "*"
        shown = pd.concat([table["flagged"], table["covered"]]).dropna().astype(int)
        assert all(v == 0 or (v >= 10 and v % 5 == 0) for v in shown)


def test_monthly_trend_rebuilt_from_history(loaded_engine, users):
    with session_scope(loaded_engine, write=True) as session:
        people = _flagged(session, "P001", "age_60_plus")[:10]
        for nhs in people:
            careplans.save_care_plan(session, users["practice1"], nhs, 0, status="agreed", next_review=REVIEW)
            careplans.assign_lead_professional(session, users["practice1"], nhs, "Dr Asha Rao", "GP", 0)
    with session_scope(loaded_engine) as session:
        trend = coverage.coverage_trend(session, users["commissioner"], months=3, level="practice")
        months = sorted(trend["month"].unique())
        assert len(months) == 3 and months[-1] == date.today()
        series = trend[(trend["code"] == "P001") & (trend["group"] == "age_60_plus")].sort_values("month")
        assert list(series["covered"]) == [0, 0, 10]
        with pytest.raises(UserInputError):
            coverage.coverage_trend(session, users["commissioner"], months=0)


def test_trend_counts_each_month_against_the_run_current_then(loaded_url, loaded_engine, users, tiny_inputs, tmp_path):
    """Months before the latest refresh count the people the earlier run flagged; later ones the new run's."""
    from sqlalchemy import update

    from app.load import load

    today = date.today()
    months = coverage._month_ends(3, today)
    with session_scope(loaded_engine, write=True) as session:
        first_run = coverage.current_run(session)
        first_flagged = session.scalar(select(func.count()).select_from(Score).where(
            Score.run_id == first_run.id, first_run.has_flag("age_60_plus")))
        # the first run was loaded before the earliest month end shown
        session.execute(update(ScoreRun).where(ScoreRun.id == first_run.id)
                        .values(created_at=datetime.combine(months[0] - timedelta(days=1), datetime.min.time(),
                                                            timezone.utc)))
    refreshed = pd.read_parquet(tiny_inputs["scores"]).assign(**{name: False for name in FLAG_NAMES})
    refreshed["top_5pct"] = refreshed.index < 10
    write_score_file(refreshed, tmp_path / "refresh.parquet", tiny_inputs["model"], top_cutoffs={"top_2pct": 0.02, "top_5pct": 0.04})
    load(tiny_inputs["records"], tmp_path / "refresh.parquet", tiny_inputs["model"], loaded_url, progress=False)
    with session_scope(loaded_engine) as session:
        trend = coverage.coverage_trend(session, users["commissioner"], months=3, level="area", today=today)
    aged = trend[trend["group"] == "age_60_plus"].set_index("month")["flagged"]
    assert first_flagged > 7
    assert [aged[m] for m in months] == [disclose_count(first_flagged), disclose_count(first_flagged), 0]
    top5 = trend[trend["group"] == "top_5pct"].set_index("month")
    assert top5.at[months[-1], "flagged"] == 10
    # each month says what its run's flag meant
    assert [top5.at[m, "group_label"] for m in months] == ["Top 5% risk", "Top 5% risk", "Top 4% risk"]


def test_labels_give_the_current_runs_cutoffs(loaded_url, loaded_engine, users, tiny_inputs, tmp_path):
    from app.load import load
    from app.services import patients
    from app.services.access import CurrentUser, Role

    write_score_file(pd.read_parquet(tiny_inputs["scores"]), tmp_path / "scores.parquet", tiny_inputs["model"],
                     top_cutoffs={"top_2pct": 0.013, "top_5pct": 0.05})
    load(tiny_inputs["records"], tmp_path / "scores.parquet", tiny_inputs["model"], loaded_url, progress=False)
    with session_scope(loaded_engine) as session:
        area = coverage.coverage(session, users["commissioner"], level="area").set_index("group")
        run = coverage.current_run(session)
        top = session.scalars(select(Score).where(Score.run_id == run.id, run.has_flag("top_2pct"))).first()
        gp = CurrentUser("gp", "GP", Role.PRACTICE, practice_codes=frozenset({top.practice_code}))
        record = patients.patient_record(session, gp, top.nhs_number)
    assert area.at["top_2pct", "group_label"] == "Top 1.3% risk"
    assert area.at["top_5pct", "group_label"] == "Top 5% risk"
    assert record["score"]["flag_labels"][:2] == ["Top 1.3% risk", "Top 5% risk"]
    assert patients.flag_labels(None)["top_2pct"] == "Top 2% risk"  # no run yet: the defaults
