"""Read a Synthea CSV export (patients, conditions, encounters; medications, organizations if present).

Columns are matched by name, case-insensitively, so the older layout (no FIPS or INCOME, ``ID``
in early versions) and the newer one both read; columns we do not use are ignored.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
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


def read_csv_table(
    directory: Path, table: str, log: ProblemLog
) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """One Synthea file as text fields named by our field names, or None (problems logged)."""
    file_name, required, columns, optional = FILES[table]
    path = directory / file_name
    if not path.exists():
        if required:
            log.add(file_name, None, None, f"the file is missing from {directory}")
        return None, {}
    wanted = {**columns, **optional}
    try:
        header = pd.read_csv(path, dtype=str, nrows=0).columns
        by_lower = {name.strip().lower(): name for name in header}
        missing = [column for column in columns.values() if column.lower() not in by_lower]
        for column in missing:
            log.add(file_name, "header", column, "this required column is missing")
        if missing:
            return None, {}
        used = [by_lower[c.lower()] for c in wanted.values() if c.lower() in by_lower]
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], usecols=used)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        log.add(file_name, None, None, f"cannot be read as CSV ({error})")
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
