"""Stress: 8 writers (4 threads, 4 processes) edit the same people's care plans at once.

Each writer reads a plan (one request), pauses, then saves from the version it read (another
request), as a person at a form would. Every accepted write must be in the history and the audit
trail exactly once; every refusal must be a reported StaleEditError; nothing may be lost.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import select

from app.db import get_engine, session_scope
from app.services import careplans
from app.services.careplans import StaleEditError
from app.services.users import get_user
from app.store import AuditEvent, CarePlan, CarePlanHistory, Patient

THREADS, PROCESSES, ATTEMPTS, PEOPLE = 4, 4, 6, 3
USERNAMES = ("practice1", "mdt1")


def writer(url: str, writer_id: int, people: list[str], sync_dir: str) -> list[dict]:
    """One writer's attempts; returns an outcome per attempt (accepted, stale or error)."""
    engine = get_engine(url)
    rng = random.Random(writer_id)
    with session_scope(engine) as session:
        user = get_user(session, USERNAMES[writer_id % 2])
    sync = Path(sync_dir)
    (sync / f"ready_{writer_id}").touch()
    while not (sync / "go").exists():
        time.sleep(0.01)
    outcomes = []
    for attempt in range(ATTEMPTS):
        person = people[(writer_id + attempt) % len(people)]
        goal = f"writer {writer_id} attempt {attempt}"
        with session_scope(engine) as session:
            version = careplans.get_care_plan(session, user, person)["version"]
        time.sleep(rng.uniform(0, 0.05))
        try:
            with session_scope(engine, write=True) as session:
                saved = careplans.save_care_plan(session, user, person, version, status="draft", goals=[goal])
            outcomes.append({"result": "accepted", "person": person, "version": saved["version"], "goal": goal})
        except StaleEditError as error:
            outcomes.append({"result": "stale", "person": person, "goal": goal,
                             "current_version": error.current["version"]})
        except Exception as error:  # anything else is a failure the test reports
            outcomes.append({"result": "error", "person": person, "goal": goal, "error": repr(error)})
    engine.dispose()
    return outcomes


def test_concurrent_writers_lose_nothing(loaded_url, loaded_engine, tmp_path, capsys):
    with session_scope(loaded_engine) as session:
        people = list(session.scalars(select(Patient.nhs_number).where(Patient.practice_code == "P001")
                                      .order_by(Patient.nhs_number).limit(PEOPLE)))
    results: list[dict] = []
    lock = threading.Lock()

    def run_thread(writer_id: int) -> None:
        outcome = writer(loaded_url, writer_id, people, str(tmp_path))
        with lock:
            results.extend(outcome)

    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(writer, loaded_url, THREADS + i, people, str(tmp_path)) for i in range(PROCESSES)]
        threads = [threading.Thread(target=run_thread, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 180
        while len(list(tmp_path.glob("ready_*"))) < THREADS + PROCESSES:
            assert time.monotonic() < deadline, "writers did not start"
            time.sleep(0.05)
        (tmp_path / "go").touch()
        for thread in threads:
            thread.join()
        for future in futures:
            results.extend(future.result())

    accepted = [r for r in results if r["result"] == "accepted"]
    refused = [r for r in results if r["result"] == "stale"]
    errors = [r for r in results if r["result"] == "error"]
    with session_scope(loaded_engine) as session:
        history = {(h.nhs_number, h.version): h.goals for h in session.scalars(
            select(CarePlanHistory).where(CarePlanHistory.nhs_number.in_(people)))}
        finals = {p.nhs_number: p.version for p in session.scalars(select(CarePlan).where(CarePlan.nhs_number.in_(people)))}
        audits = [(a.entity_id, a.after["version"], a.after["goals"]) for a in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "care_plan_save"))]
    lost = [r for r in accepted if history.get((r["person"], r["version"])) != [r["goal"]]]
    figures = {
        "database": loaded_engine.dialect.name, "writers": THREADS + PROCESSES,
        "attempted": len(results), "accepted": len(accepted), "refused": len(refused),
        "errors": len(errors), "lost": len(lost), "audit_rows": len(audits), "history_rows": len(history),
    }
    with capsys.disabled():
        print(f"\nconcurrency: {json.dumps(figures)}")
    assert not errors, errors[:3]
    assert len(results) == (THREADS + PROCESSES) * ATTEMPTS
    assert accepted and not lost
    assert len(history) == len(accepted) == len(audits)
    assert sorted(audits) == sorted((r["person"], r["version"], [r["goal"]]) for r in accepted)
    for person in people:  # versions run 1..N with no gaps, ending at the stored plan's version
        versions = sorted(v for p, v in history if p == person)
        assert versions == list(range(1, len(versions) + 1)) and finals.get(person, 0) == len(versions)
    for refusal in refused:
        assert refusal["current_version"] >= 1
