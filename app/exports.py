"""Lists as CSV or Excel (plain pandas + openpyxl, no Streamlit), safe to open in a spreadsheet.

Every export of the app goes through ``safe_frame``: any cell a spreadsheet could run as a formula
(text starting with = + - @, a tab or a carriage return, or their full-width forms, per OWASP's
CSV-injection advice) gets a leading apostrophe, in every column whatever its type (text,
categories, lists) and in the column names, so an exported name, reason or practice name can
never execute. ``csv_text`` is the one CSV writer (fields with commas, quotes or line breaks
in quotes).
"""

from __future__ import annotations

import csv
import io
import json

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise(value):
    """One cell as a spreadsheet may show it: formula-like text with a leading apostrophe, a list
    or dict as JSON text; numbers, dates and empty cells unchanged."""
    if isinstance(value, (list, tuple, dict)):
        value = json.dumps(value, default=str)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text-holding column (and every column name) neutralised."""
    result = frame.copy()
    for column in result.columns:
        values = result[column]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)
                or pd.api.types.is_bool_dtype(values)) or isinstance(values.dtype, pd.CategoricalDtype):
            result[column] = values.astype(object).map(neutralise)
    result.columns = [neutralise(str(name)) for name in result.columns]
    return result


def csv_text(frame: pd.DataFrame) -> str:
    """The frame as CSV text, neutralised, every text field in quotes (a line break inside a name
    stays inside its cell instead of starting a row whose first cell a spreadsheet would run)."""
    buffer = io.StringIO()
    safe_frame(frame).to_csv(buffer, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return buffer.getvalue()


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    # utf-8-sig so Excel opens names with accents correctly when the CSV is double-clicked
    return csv_text(frame).encode("utf-8-sig")


def to_excel_bytes(frame: pd.DataFrame, sheet_name: str = "List") -> bytes:
    buffer = io.BytesIO()
    table = safe_frame(frame)
    for column in table.columns:  # Excel cannot store time-zone-aware datetimes
        if isinstance(table[column].dtype, pd.DatetimeTZDtype):
            table[column] = table[column].dt.tz_localize(None)
    sheet_name = str(neutralise(sheet_name))[:31]
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        table.to_excel(writer, sheet_name=sheet_name, index=False)
        sheet = writer.sheets[sheet_name]
        sheet.freeze_panes = "A2"
        for cells in sheet.columns:
            for cell in cells:
                if cell.data_type == "f":  # never a formula, whatever a value looked like
                    cell.data_type = "s"
            width = max((len(str(c.value)) for c in cells if c.value is not None), default=8)
            sheet.column_dimensions[cells[0].column_letter].width = min(60, max(10, width + 2))
    return buffer.getvalue()
