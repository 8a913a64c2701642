"""Shared Streamlit helpers for the pages: the engine, the signed-in user, sessions, errors, caching.

Pages stay thin: they read inputs, call a service through ``read``/``write`` here, and draw.
Every service error a person can cause (``UserInputError``, ``AccessDenied``) becomes one sentence
on screen via ``show_errors``; nothing reaches the browser as a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import func, select

from features.errors import UserInputError
from app.db import get_engine, session_scope
from app.services import patients
from app.services.access import AccessDenied, CurrentUser
from app.services.careplans import PLAN_STATUS_LABELS
from app.settings import REPO_ROOT, database_url, today as app_today
from app.store import CaseloadAssignment, CarePlanHistory, CohortDecisionHistory, LeadProfessionalHistory, ScoreRun

USER_KEY = "user"
PAGES_DIR = Path(__file__).resolve().parent / "pages"
CACHE_TTL_SECONDS = 120  # other app servers' writes show up within this time


def engine():
    """One engine (connection pool) per server process and ``PROACTIVE_CARE_DATABASE_URL``."""
    return _engine(database_url())


@st.cache_resource(show_spinner=False)
def _engine(url: str):
    return get_engine(url)


def current_user() -> CurrentUser | None:
    return st.session_state.get(USER_KEY)


def require_user() -> CurrentUser:
    user = current_user()
    if user is None:
        st.info("Please sign in.")
        st.stop()
    return user


def read(service: Callable, *args, **kwargs) -> Any:
    """Call ``service(session, user, ...)`` for the signed-in user in a read session (its audit
    rows are written in their own short transaction when the session closes)."""
    with session_scope(engine()) as session:
        return service(session, require_user(), *args, **kwargs)


def write(service: Callable, *args, **kwargs) -> Any:
    """Call a changing service in a write session, then drop cached reads so pages show the change."""
    try:
        with session_scope(engine(), write=True) as session:
            return service(session, require_user(), *args, **kwargs)
    finally:
        st.cache_data.clear()


@contextmanager
def show_errors() -> Iterator[None]:
    """Show a person's mistake or a refusal as one sentence instead of a traceback."""
    try:
        yield
    except (UserInputError, AccessDenied) as error:
        st.error(str(error))


def data_version() -> tuple:
    """Changes whenever a plan, lead professional, caseload or score run changes (a cache key)."""
    with session_scope(engine()) as session:
        return (
            session.scalar(select(func.max(ScoreRun.id)).where(ScoreRun.is_current)),
            session.scalar(select(func.count()).select_from(CarePlanHistory)),
            session.scalar(select(func.count()).select_from(LeadProfessionalHistory)),
            session.scalar(select(func.coalesce(func.sum(CaseloadAssignment.version), 0))),
            session.scalar(select(func.count()).select_from(CohortDecisionHistory)),
        )


def cached_read(service: Callable, *args, **kwargs) -> Any:
    """``read`` cached per user, arguments, day and data version (for the expensive lists)."""
    return _cached(service.__module__, service.__name__, require_user(), database_url(), data_version(),
                   app_today(), args, tuple(sorted(kwargs.items())))


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=256)
def _cached(module: str, name: str, user: CurrentUser, url: str, version: tuple, today: date,
            args: tuple, kwargs: tuple) -> Any:
    import importlib

    service = getattr(importlib.import_module(module), name)
    with session_scope(engine()) as session:
        return service(session, user, *args, **dict(kwargs))


def flag_labels() -> dict[str, str]:
    """Each flag's label in the current score run (the top flags say its cut-offs)."""
    with session_scope(engine()) as session:
        return patients.list_groups(patients.current_run(session))


def query_param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def plan_label(status: str | None) -> str:
    return PLAN_STATUS_LABELS.get(status or "none", str(status))


def percent(value: float | None) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.0%}"


NHS_BLUE, NHS_RED, NHS_GREY = "#005EB8", "#DA291C", "#768692"


def contribution_chart(labels: list[str], contributions: list[float]):
    """Horizontal bars, largest first: red raises the risk, blue lowers it (a static image)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 0.45 * len(labels) + 0.6), layout="constrained")
    axes = figure.subplots()
    rows = list(range(len(labels)))[::-1]
    axes.barh(rows, contributions, color=[NHS_RED if c > 0 else NHS_BLUE for c in contributions])
    axes.set_yticks(rows, labels)
    axes.axvline(0, color=NHS_GREY, linewidth=0.8)
    axes.set_xlabel("contribution to the risk (log-odds)")
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def spc_chart(months: list, values: list[float], limits: dict[str, float], title: str):
    """A Making Data Count style XmR chart: the series, its mean and process limits."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3), layout="constrained")
    axes = figure.subplots()
    axes.plot(months, values, marker="o", color=NHS_BLUE)
    outside = [(m, v) for m, v in zip(months, values) if v > limits["upper"] or v < limits["lower"]]
    if outside:  # special-cause points
        axes.scatter(*zip(*outside), color="#ED8B00", zorder=3, s=60)
    axes.axhline(limits["mean"], color=NHS_GREY)
    for name in ("upper", "lower"):
        axes.axhline(limits[name], color=NHS_GREY, linestyle="--", linewidth=0.8)
    axes.set_ylabel("% covered")
    axes.set_title(title, loc="left", fontsize=10)
    axes.spines[["top", "right"]].set_visible(False)
    figure.autofmt_xdate()
    return figure


def xmr_limits(values: pd.Series) -> dict[str, float]:
    """Mean and process limits of an XmR (individuals) chart: mean +/- 2.66 x mean moving range."""
    mean = float(values.mean())
    spread = 2.66 * float(values.diff().abs().mean()) if len(values) > 1 else 0.0
    return {"mean": mean, "upper": min(100.0, mean + spread), "lower": max(0.0, mean - spread)}


def page_header(title: str, caption: str | None = None) -> CurrentUser:
    user = require_user()
    st.title(title)
    if caption:
        st.caption(caption)
    return user


def person_level_page(title: str, caption: str | None = None,
                      refusal: str = "see aggregates only, not people") -> CurrentUser:
    """``page_header`` for a page that shows people: other roles get one sentence and nothing more
    (the services refuse them too; this only spares them an error per widget)."""
    user = page_header(title, caption)
    if not user.sees_people:
        st.error(f"{user.role_label} users {refusal}.")
        st.stop()
    return user


def model_folder() -> Path:
    return Path(os.environ.get("PROACTIVE_CARE_MODEL_DIR", "") or REPO_ROOT / "data" / "model")


def open_patient(nhs_number: str) -> None:
    """Go to the patient page for one person (within this browser session, so sign-in is kept)."""
    st.switch_page(str(PAGES_DIR / "patient.py"), query_params={"nhs": nhs_number})
