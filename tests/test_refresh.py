"""Monthly refresh: a new run becomes current atomically; a killed load changes nothing; plans survive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db import session_scope
from app.load import KEEP_PREVIOUS_RUNS, load
from app.services import careplans, patients
from app.store import ScoreRun
from conftest import make_records, make_scores, write_score_file
from features.flags import FLAG_NAMES
from features.records import write_records
from test_load import table_counts

REPO = Path(__file__).resolve().parent.parent

KILLABLE_LOAD = """
import sys, time
from pathlib import Path
from app.load import load

marker = Path(sys.argv[5])

def hold(written):  # every row is written but not committed: wait here to be killed
    marker.write_text(str(written))
    time.sleep(300)

load(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], progress=False, on_chunk=hold)
"""


@pytest.fixture
def bigger_inputs(tmp_path, tiny_inputs):
    """A refresh with more people (so partial writes would show) and different scores."""
    records = make_records(people_per_practice=30, seed=8)
    write_records(records, tmp_path / "records")
    write_score_file(make_scores(records, seed=12), tmp_path / "scores.parquet", tiny_inputs["model"])
    return {"records": tmp_path / "records", "scores": tmp_path / "scores.parquet", "model": tiny_inputs["model"]}


def _current_run_id(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(ScoreRun.id).where(ScoreRun.is_current))


def test_sigkill_mid_load_leaves_previous_run_served(loaded_url, loaded_engine, bigger_inputs, tmp_path):
    before_counts = table_counts(loaded_url)
    before_run = _current_run_id(loaded_engine)
    marker = tmp_path / "written"
    script = tmp_path / "killable_load.py"
    script.write_text(KILLABLE_LOAD)
    process = subprocess.Popen(
        [sys.executable, str(script), str(bigger_inputs["records"]), str(bigger_inputs["scores"]),
         str(bigger_inputs["model"]), loaded_url, str(marker)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the load never reached its score rows"
            time.sleep(0.1)
        assert int(marker.read_text()) == 120  # all the new rows were written, uncommitted
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    time.sleep(0.5)  # PostgreSQL notices the dropped connection and rolls back
    assert _current_run_id(loaded_engine) == before_run
    assert table_counts(loaded_url) == before_counts
    # And the next load goes through normally.
    summary = load(bigger_inputs["records"], bigger_inputs["scores"], bigger_inputs["model"], loaded_url, progress=False)
    assert _current_run_id(loaded_engine) == summary.run_id and summary.people_scored == 120


def test_plans_survive_refreshes_and_leaving_the_cohort(loaded_url, loaded_engine, users, tiny_inputs, tmp_path):
    gp = users["practice1"]
    review = date.today() + timedelta(days=60)
    with session_scope(loaded_engine, write=True) as session:
        person = patients.flagged_list(session, gp).iloc[0]["nhs_number"]
        careplans.save_care_plan(session, gp, person, 0, status="agreed", next_review=review, goals=["Stay well"])
        careplans.assign_lead_professional(session, gp, person, "Dr Asha Rao", "GP", 0)
    records_dir = tiny_inputs["records"]
    scores = make_scores(make_records(), seed=11)
    scores.loc[scores["nhs_number"] == person, list(FLAG_NAMES)] = False  # no longer flagged
    write_score_file(scores, tmp_path / "unflagged.parquet", tiny_inputs["model"])
    runs = []
    for _ in range(KEEP_PREVIOUS_RUNS + 2):
        runs.append(load(records_dir, tmp_path / "unflagged.parquet", tiny_inputs["model"], loaded_url,
                         progress=False).run_id)
    with session_scope(loaded_engine) as session:
        assert person not in set(patients.flagged_list(session, gp)["nhs_number"])
        record = patients.patient_record(session, gp, person)
        assert record["care_plan"]["status"] == "agreed" and record["care_plan"]["goals"] == ["Stay well"]
        assert record["lead_professional"]["name"] == "Dr Asha Rao"
        assert record["score"]["run_id"] == runs[-1] and not record["score"]["flagged"]
        kept = list(session.scalars(select(ScoreRun.id).order_by(ScoreRun.id)))
    assert kept == runs[-(KEEP_PREVIOUS_RUNS + 1):]  # older runs pruned after the switch
