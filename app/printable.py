"""Printable pages: the care plan written for the person, and the MDT meeting's agenda.

Rendered with Jinja2 with autoescaping on, so every piece of record text (names, goals, notes) is
HTML-escaped; names, dates, percentages and risks are shown through ``app/presentation.py``.
Plain Python: the services gather and audit, the pages offer the files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app import presentation

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters.update(
        day=presentation.day, moment=presentation.moment, percent=presentation.percent,
        nhs_number=presentation.nhs_number, count=presentation.count, risk_in_words=presentation.risk_in_words,
        yes_no=presentation.yes_no,
    )
    environment.globals.update(person_name=presentation.person_name)
    return environment


def render(template: str, **context) -> str:
    return _environment().get_template(template).render(**context)


def care_plan_html(**context) -> str:
    """The plan the person keeps: ``templates/care_plan.html.j2`` (see ``plan_export`` for the context)."""
    return render("care_plan.html.j2", **context)


def agenda_html(**context) -> str:
    """The MDT meeting's agenda to print: ``templates/agenda.html.j2``."""
    return render("agenda.html.j2", **context)
