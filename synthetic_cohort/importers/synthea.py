"""Read a Synthea CSV export (patients, conditions, encounters; medications, organizations if present).

Columns are matched by name, case-insensitively, so the older layout (no FIPS or INCOME, ``ID``
in early versions) and the newer one both read; columns we do not use are ignored.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from synthetic_cohort.importers.assemble import FILE, ROW, SourceTables
from synthetic_cohort.importers.problems import ProblemLog

# table -> (file name, required?, {field: column} required, {field: column} optional)
FILES: dict[str, tuple[str, bool, dict[str, str], dict[str, str]]] = {
    "people": (
        "patients.csv", True,
        {"source_id": "Id", "birth_date": "BIRTHDATE", "death_date": "DEATHDATE",
         "given_name": "FIRST", "family_name": "LAST", "race": "RACE", "sex": "GENDER"},
        {"us_ethnicity": "ETHNICITY"},
    ),
    "conditions": (
        "conditions.csv", True,
        {"start": "START", "patient": "PATIENT", "code": "CODE", "description": "DESCRIPTION"},
        {"system": "SYSTEM"},
    ),
    "encounters": (
        "encounters.csv", True,
        {"source_id": "Id", "date": "START", "patient": "PATIENT",
         "encounter_class": "ENCOUNTERCLASS"},
        {"code": "CODE", "reason_code": "REASONCODE", "organisation": "ORGANIZATION"},
    ),
    "medications": (
        "medications.csv", False,
        {"start": "START", "stop": "STOP", "patient": "PATIENT", "code": "CODE"},
        {},
    ),
    "organisations": ("organizations.csv", False, {"source_id": "Id", "name": "NAME"}, {}),
}


MAX_RAGGED_ROWS_LISTED = 20


def read_header(path: Path) -> list[str]:
    """The header row's column names (a UTF-8 byte-order mark is dropped)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def read_strict_csv(path: Path, used: list[str], log: ProblemLog) -> pd.DataFrame | None:
    """The ``used`` columns as text, or None with problems logged if any row has more or fewer
    fields than the header (a ragged or truncated file), or the file does not end with a line
    break (its last row may be cut short). Nothing of a refused file is kept."""
    ragged = []

    def on_ragged_row(row) -> str:
        ragged.append(row)
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=False),  # physical line numbers for the report
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_ragged_row),
        convert_options=pacsv.ConvertOptions(
            include_columns=used, column_types={name: pa.string() for name in used},
            strings_can_be_null=False, quoted_strings_can_be_null=False,
        ),
    )
    for row in ragged[:MAX_RAGGED_ROWS_LISTED]:
        log.add(path.name, row.number, None,
                f"this row has {row.actual_columns} fields but the header has {row.expected_columns} "
                f"(a cut or damaged row: {row.text[:60]!r})")
    if len(ragged) > MAX_RAGGED_ROWS_LISTED:
        log.add(path.name, None, None, f"{len(ragged) - MAX_RAGGED_ROWS_LISTED:,} more rows with the wrong "
                f"number of fields ({len(ragged):,} in all)")
    if ragged:
        return None
    with open(path, "rb") as handle:
        handle.seek(-1, 2)
        if handle.read(1) not in (b"\n", b"\r"):
            log.add(path.name, table.num_rows + 1, None,
                    "the file does not end with a line break, so its last row may be cut short")
            return None
    return table.to_pandas()


def read_csv_table(
    directory: Path, table: str, log: ProblemLog
) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """One Synthea file as text fields named by our field names, or None (problems logged)."""
    file_name, required, columns, optional = FILES[table]
    path = directory / file_name
    if not path.is_file():
        if required:
            log.add(file_name, None, None, f"the file is missing from {directory}")
        return None, {}
    wanted = {**columns, **optional}
    try:
        header = read_header(path)
        if not header:
            log.add(file_name, None, None, "cannot be read as CSV (the file is empty: it has no header row)")
            return None, {}
        by_lower = {name.strip().lower(): name for name in header}
        missing = [column for column in columns.values() if column.lower() not in by_lower]
        for column in missing:
            log.add(file_name, "header", column, "this required column is missing")
        if missing:
            return None, {}
        used = list(dict.fromkeys(by_lower[c.lower()] for c in wanted.values() if c.lower() in by_lower))
        raw = read_strict_csv(path, used, log)
    except (pa.ArrowInvalid, csv.Error, UnicodeDecodeError, OSError) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        log.add(file_name, None, None, f"cannot be read as CSV ({reason})")
        return None, {}
    if raw is None:
        return None, {}
    frame = pd.DataFrame(index=raw.index)
    for field_name, column in wanted.items():
        source_column = by_lower.get(column.lower())
        values = raw[source_column].str.strip() if source_column else pd.Series(None, index=raw.index)
        frame[field_name] = values.where(values != "", None).astype(object)
    frame[FILE] = file_name
    frame[ROW] = [f"row {number}" for number in range(2, len(raw) + 2)]  # row 1 is the header
    return frame, {field_name: by_lower.get(column.lower(), column) for field_name, column in wanted.items()}


def read_synthea(directory: str | Path, log: ProblemLog) -> SourceTables | None:
    directory = Path(directory)
    if not directory.is_dir():
        log.add(str(directory), None, None, "the Synthea export folder does not exist")
        return None
    frames: dict[str, pd.DataFrame | None] = {}
    columns: dict[str, dict[str, str]] = {}
    for table in tqdm(FILES, desc="reading Synthea CSV", unit="file", leave=False):
        frames[table], columns[table] = read_csv_table(directory, table, log)
    if any(frames[table] is None for table in ("people", "conditions", "encounters")):
        return None
    return SourceTables(source_format="synthea-csv", columns=columns, **frames)
