"""The practice high-risk list and commissioner coverage pages, server-side, with the population loaded.

    .venv/bin/python bench/bench_pages.py [--sizes ...]

For each size an SQLite store is loaded once (cached under bench/out/inputs). Then, timed: the
services the pages call (flagged_list for a practice user, coverage for the commissioner), and
each page rendered by Streamlit's AppTest, first with a cold cache and then a rerun (warm cache).
"""

from __future__ import annotations

import os
from pathlib import Path

from common import REPO, build_parser, loaded_database, main, measure

from contextlib import contextmanager


@contextmanager
def noting_failure(step_holder: list):
    """A step that raises is reported in the table (note FAILED ...) instead of ending the run."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - the bench reports any failure and goes on
        step_holder.append(f"FAILED {type(error).__name__}: {str(error)[:80]}")

APP = str(REPO / "streamlit_app.py")
PAGES = {"practice list": ("practice1", "app/pages/high_risk_list.py"),
         "coverage": ("commissioner", "app/pages/coverage.py")}


def run_size(people: int, args) -> list:
    os.environ["PROACTIVE_CARE_DATABASE_URL"] = url = loaded_database(people, args.seed)
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.db import get_engine, session_scope
    from app.services import coverage, patients
    from app.services.users import get_user

    engine = get_engine(url)
    results = []
    with session_scope(engine) as session:
        users = {name: get_user(session, name) for name, _ in PAGES.values()}
    with session_scope(engine, write=True) as session:
        failures: list[str] = []
        with measure("service: flagged_list (practice1)", people) as step, noting_failure(failures):
            step.rows = len(patients.flagged_list(session, users["practice1"]))
        step.note = failures.pop() if failures else "rows = people listed"
        results.append(step)
        with measure("service: coverage by practice (commissioner)", people) as step, noting_failure(failures):
            step.rows = len(coverage.coverage(session, users["commissioner"], level="practice"))
        step.note = failures.pop() if failures else "rows = table rows"
        results.append(step)
    engine.dispose()

    for label, (username, page) in PAGES.items():
        st.cache_data.clear()
        app = AppTest.from_file(APP, default_timeout=120)
        app.session_state["user"] = users[username]
        app.switch_page(page)
        with measure(f"page: {label}, cold cache", people, rows=1) as cold:
            app.run()
        with measure(f"page: {label}, rerun", people, rows=1) as warm:
            app.run()
        problems = [str(e.value) for e in app.exception] + [str(e.value) for e in app.error]
        cold.note = warm.note = (
            f"FAILED: {problems[0][:80]}" if problems else "rows = page renders; target < 1.5 s"
        )
        results += [cold, warm]
    return results


if __name__ == "__main__":
    main("pages server-side", run_size, build_parser("pages server-side"))
