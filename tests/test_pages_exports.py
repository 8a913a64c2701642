"""CSV and Excel exports of a list: round trip, and formula-like text neutralised."""

import csv
import io
from datetime import date

import pandas as pd
from openpyxl import load_workbook

from app.exports import to_csv_bytes, to_excel_bytes

LIST = pd.DataFrame({
    "NHS number": ["9990000018", "9990000026"],
    "Name": ["O'BRIEN, Siobhán", "=HYPERLINK(\"http://x\")"],
    "Risk (%)": [61.2, 12.5],
    "Review due": [date(2026, 5, 1), None],
    "Top reasons": ["-2 points", "aged 83"],
})


def test_csv_round_trips_and_neutralises_formulas():
    data = to_csv_bytes(LIST)
    assert data.startswith(b"\xef\xbb\xbf")  # BOM so Excel reads the accent
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype={"NHS number": str})
    assert list(back["NHS number"]) == list(LIST["NHS number"])
    assert back["Name"].iloc[0] == "O'BRIEN, Siobhán"
    assert back["Name"].iloc[1].startswith("'=")
    assert back["Top reasons"].iloc[0] == "'-2 points"
    assert back["Risk (%)"].tolist() == [61.2, 12.5]


def test_excel_has_one_sheet_with_every_row_and_no_formula():
    sheet = load_workbook(io.BytesIO(to_excel_bytes(LIST, "High-risk list"))).active
    assert sheet.title == "High-risk list"
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == tuple(LIST.columns)
    assert len(rows) == len(LIST) + 1
    assert rows[2][1].startswith("'=")
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_empty_list_exports_headers_only():
    empty = LIST.iloc[0:0]
    assert next(csv.reader(io.StringIO(to_csv_bytes(empty).decode("utf-8-sig")))) == list(LIST.columns)
    sheet = load_workbook(io.BytesIO(to_excel_bytes(empty))).active
    assert list(sheet.iter_rows(values_only=True)) == [tuple(LIST.columns)]
