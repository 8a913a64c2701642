"""A list as CSV or Excel for the MDT meeting (plain pandas + openpyxl, no Streamlit).

Text cells that a spreadsheet would run as a formula (starting with = + - @, tab or return) get a
leading apostrophe, so an exported name or reason can never execute in Excel.
"""

from __future__ import annotations

import io
import json

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(value):
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with formula-like text neutralised and list/dict cells as JSON text."""
    result = frame.copy()
    for column in result.columns:
        if result[column].dtype == object or pd.api.types.is_string_dtype(result[column]):
            result[column] = result[column].map(_safe_cell)
    return result


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    # utf-8-sig so Excel opens names with accents correctly when the CSV is double-clicked
    return safe_frame(frame).to_csv(index=False).encode("utf-8-sig")


def to_excel_bytes(frame: pd.DataFrame, sheet_name: str = "List") -> bytes:
    buffer = io.BytesIO()
    table = safe_frame(frame)
    for column in table.columns:  # Excel cannot store time-zone-aware datetimes
        if isinstance(table[column].dtype, pd.DatetimeTZDtype):
            table[column] = table[column].dt.tz_localize(None)
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        table.to_excel(writer, sheet_name=sheet_name[:31], index=False)
        sheet = writer.sheets[sheet_name[:31]]
        sheet.freeze_panes = "A2"
        for cells in sheet.columns:
            width = max((len(str(c.value)) for c in cells if c.value is not None), default=8)
            sheet.column_dimensions[cells[0].column_letter].width = min(60, max(10, width + 2))
    return buffer.getvalue()
