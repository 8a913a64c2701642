"""Safe by default, safe on the way out: production is the default mode; every CSV and Excel export
neutralises formulas in every cell; text from records shows as itself in Markdown."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from markdown_it import MarkdownIt
from openpyxl import load_workbook
from sqlalchemy import select, update

from app import settings
from app.db import get_engine, session_scope
from app.exports import FORMULA_STARTS, to_csv_bytes, to_excel_bytes
from app.load import load
from app.services import audit, careplans, coverage
from app.store import Patient, Practice, User
from app.text_safety import markdown_text

HOSTILE = ["=HYPERLINK(\"http://evil.example\",\"Open\")", "+SUM(1,1)", "-2+3", "@cmd", "\t=1+1", "\r=1+1",
           "\uff1d1+1", "=cmd|' /C calc'!A0"]


# --- production is the default ------------------------------------------------------------------

def test_production_is_the_default_mode(store_url, tiny_inputs, monkeypatch):
    monkeypatch.delenv("PROACTIVE_CARE_MODE", raising=False)
    assert settings.mode() == "production" and not settings.demo_mode()
    summary = load(tiny_inputs["records"], tiny_inputs["scores"], tiny_inputs["model"], store_url, progress=False)
    assert summary.demo_users_created == []
    engine = get_engine(store_url)
    with session_scope(engine) as session:
        assert session.scalars(select(User.username)).all() == []
    engine.dispose()
    monkeypatch.setenv("PROACTIVE_CARE_MODE", "demo")  # demo data only when chosen
    assert settings.demo_mode()


# --- exports ----------------------------------------------------------------------------------------

def formula_cells(cells) -> list:
    return [c for c in cells if isinstance(c, str) and c.startswith(FORMULA_STARTS)]


def csv_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")) for cell in row]


def test_list_exports_neutralise_every_column_whatever_its_type():
    frame = pd.DataFrame({
        "Name": pd.Series(HOSTILE, dtype="string"),
        "Practice": pd.Categorical(HOSTILE),
        "Reasons": [[value] for value in HOSTILE],
        "Note": pd.Series(HOSTILE, dtype=object),
        "Risk": [0.5] * len(HOSTILE),
        "=Header": ["x"] * len(HOSTILE),
    })
    cells = csv_cells(to_csv_bytes(frame).decode("utf-8-sig"))
    assert formula_cells(cells) == [] and "'=HYPERLINK(\"http://evil.example\",\"Open\")" in cells
    sheet = load_workbook(io.BytesIO(to_excel_bytes(frame, "=List"))).active
    values = [cell.value for row in sheet.iter_rows() for cell in row]
    assert formula_cells(values) == [] and all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    assert sheet.title == "'=List"


def test_coverage_csv_neutralises_names_from_the_records(loaded_engine, users):
    with session_scope(loaded_engine, write=True) as session:
        session.execute(update(Practice).where(Practice.practice_code == "P001").values(practice_name=HOSTILE[0]))
    with session_scope(loaded_engine) as session:
        table = coverage.coverage(session, users["commissioner"], level="practice")
        trend = coverage.coverage_trend(session, users["commissioner"], months=2, level="practice")
    for frame in (table, trend):
        cells = csv_cells(coverage.coverage_csv(frame))
        assert formula_cells(cells) == [], formula_cells(cells)
    assert f"'{HOSTILE[0]}" in csv_cells(coverage.coverage_csv(table))


def test_audit_csv_neutralises_what_users_typed(loaded_engine, users):
    with session_scope(loaded_engine, write=True) as session:
        person = session.scalar(select(Patient.nhs_number).where(Patient.practice_code == "P001"))
        careplans.assign_lead_professional(session, users["practice1"], person, "=1+1", "GP", 0)
        for value in HOSTILE:
            audit.record(session, users["practice1"], "view", "patient", value, detail=value)
    with session_scope(loaded_engine) as session:
        events = audit.search_audit(session, users["admin"])
    cells = csv_cells(audit.audit_csv(events))
    assert formula_cells(cells) == [], formula_cells(cells)
    assert "'@cmd" in cells


# --- Markdown ---------------------------------------------------------------------------------------

COMMONMARK_AND_GFM = MarkdownIt("gfm-like")  # tables, strikethrough, bare links as Streamlit shows them


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
       | st.sampled_from(["[Click here](https://evil.example)", "<script>x</script>", "www.evil.example",
                          "https://evil.example/a_b_c", "**Bold** _i_ ~~s~~", ":red[alert] :material/home:",
                          "$x^2$", "# Heading", "1. one", "- item", "> quote", "| a | b |", "&amp; &#35;",
                          "![img](http://x/y.png)", "line one\nline two", "    indented", "`code`"]))
def test_markdown_text_shows_exactly_the_text(text):
    rendered = COMMONMARK_AND_GFM.render(markdown_text(text))
    shown = re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", text).strip()  # a line break reads as a space
    if not shown:
        assert "<a" not in rendered
        return
    assert rendered.startswith("<p>") and rendered.endswith("</p>\n"), (text, rendered)
    inner = rendered[len("<p>"):-len("</p>\n")]
    assert "<" not in inner and html.unescape(inner) == shown, (text, rendered)


def test_patient_and_meeting_pages_show_names_as_text(tmp_path, monkeypatch):
    from test_pages import open_page, signed_in
    from test_pages_support import build_store, flagged_numbers

    import streamlit as st
    from app.services import meetings
    from app.services.users import get_user

    monkeypatch.setenv("PROACTIVE_CARE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    st.cache_data.clear()
    engine = build_store(tmp_path / "store.db")
    person = flagged_numbers("P001")[0]
    injected = "[Click here](https://evil.example)"
    with session_scope(engine, write=True) as session:
        session.execute(update(Patient).where(Patient.nhs_number == person).values(given_name=injected))
        gp = get_user(session, "practice1")
        careplans.assign_lead_professional(session, gp, person, "*Dr* [Evil](https://evil.example)", "GP", 0)
        meeting = meetings.create_meeting(session, gp, "P001", date.today() + timedelta(days=7), ["GP"])
        meetings.add_to_agenda(session, gp, meeting["meeting_id"], [person])
    at = open_page(signed_in("practice1"), "patient", nhs=person)
    heading = at.subheader[0].value
    assert "\\[Click here\\]\\(https\\:" in heading and "<a" not in MarkdownIt("gfm-like").render(heading)
    lead = [c.value for c in at.caption if str(c.value).startswith("Now:")][0]
    assert "<a" not in MarkdownIt("gfm-like").render(lead) and "\\*Dr\\*" in lead
    at = open_page(at, "meetings")
    labels = [e.label for e in at.expander if "Click here" in e.label]
    assert labels and all("<a" not in MarkdownIt("gfm-like").render(label) for label in labels)
    engine.dispose()
