"""Records: the interface between the outside world and the tool.

Anything that produces records (our generator, the Synthea and FHIR importers, a real
extract one day) writes these tables into one folder, as Parquet (or CSV with the same
columns). Features, the loader and the app read nothing else.

Tables (file name without suffix -> columns):

- ``patients``: nhs_number (10-digit string, valid Modulus 11), given_name, family_name,
  date_of_birth, sex (F/M), ethnicity (ONS five groups or null if unknown),
  imd_decile (1 = most deprived, 1..10, null if unknown), practice_code, pcn_code,
  registered_from, registered_to (null while registered), date_of_death (null if alive),
  care_home (bool).
- ``practices``: practice_code, practice_name, pcn_code, pcn_name.
- ``conditions``: nhs_number, condition (a code from ``features.conditions``), diagnosed_on.
- ``encounters``: nhs_number, date, kind (one of ``ENCOUNTER_KINDS``).
- ``observations`` (optional): nhs_number, date, code (one of ``OBSERVATION_CODES``), value.
- ``truth`` (our generator only, never a model input): nhs_number, year, probability.

Dates are ``datetime64`` at day precision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from nhs_number import REGION_SCOTLAND

from features.conditions import (
    CONDITION_CODES,
    ENCOUNTER_KINDS,
    ETHNIC_GROUPS,
    OBSERVATION_CODES,
    SEXES,
)
from features.errors import UserInputError
from features.text import is_text_problem, shown, text_checks

REQUIRED_TABLES = ("patients", "practices", "conditions", "encounters")
OPTIONAL_TABLES = ("observations", "truth")

_MODULUS_11_WEIGHTS = np.arange(10, 1, -1)
_SCOTTISH_CHI = REGION_SCOTLAND.ranges[0]  # CHI numbers start with a real DDMMYY birth date


def valid_nhs_numbers(values: pd.Series) -> pd.Series:
    """True where a value is a 10-digit string with a correct Modulus 11 check digit.

    Vectorised (the ``nhs-number`` package checks one value at a time, too slow for a million
    rows), with the package's own rules: Modulus 11, and a real DDMMYY date at the start of a
    Scottish CHI number. ``tests/test_load.py`` checks it agrees with ``nhs_number.is_valid``.
    """
    text = values.astype(object).where(values.map(lambda v: isinstance(v, str)), "")
    shaped = text.astype(str).str.fullmatch(r"\d{10}").fillna(False).to_numpy(dtype=bool)
    result = np.zeros(len(values), dtype=bool)
    if shaped.any():
        digits = (np.frombuffer("".join(text[shaped]).encode("ascii"), dtype=np.uint8) - 48).reshape(-1, 10)
        check = 11 - (digits[:, :9].astype(np.int64) @ _MODULUS_11_WEIGHTS) % 11
        check[check == 11] = 0
        valid = (check != 10) & (check == digits[:, 9])
        numbers = text[shaped].astype("int64").to_numpy()
        chi = (numbers >= _SCOTTISH_CHI.start) & (numbers <= _SCOTTISH_CHI.end)
        if chi.any():
            born = pd.to_datetime(text[shaped][chi].str[:6], format="%d%m%y", errors="coerce")
            valid[chi] &= born.notna().to_numpy()
        result[shaped] = valid
    return pd.Series(result, index=values.index)


NHS_NUMBER_CHECK = pa.Check(
    valid_nhs_numbers,
    error="not a valid NHS number (10 digits with a Modulus 11 check digit)",
)

PATIENTS_SCHEMA = pa.DataFrameSchema(
    {
        "nhs_number": pa.Column(str, NHS_NUMBER_CHECK, unique=True),
        "given_name": pa.Column(str, text_checks("given_name"), nullable=True),
        "family_name": pa.Column(str, text_checks("family_name"), nullable=True),
        "date_of_birth": pa.Column("datetime64[ns]"),
        "sex": pa.Column(str, pa.Check.isin(SEXES)),
        "ethnicity": pa.Column(str, pa.Check.isin(ETHNIC_GROUPS), nullable=True),
        "imd_decile": pa.Column("Int64", pa.Check.in_range(1, 10), nullable=True),
        "practice_code": pa.Column(str, text_checks("practice_code")),
        "pcn_code": pa.Column(str, text_checks("pcn_code")),
        "registered_from": pa.Column("datetime64[ns]"),
        "registered_to": pa.Column("datetime64[ns]", nullable=True),
        "date_of_death": pa.Column("datetime64[ns]", nullable=True),
        "care_home": pa.Column(bool),
    },
    coerce=True,
    strict=False,
    name="patients",
)

PRACTICES_SCHEMA = pa.DataFrameSchema(
    {
        "practice_code": pa.Column(str, text_checks("practice_code"), unique=True),
        "practice_name": pa.Column(str, text_checks("practice_name")),
        "pcn_code": pa.Column(str, text_checks("pcn_code")),
        "pcn_name": pa.Column(str, text_checks("pcn_name")),
    },
    coerce=True,
    name="practices",
)

CONDITIONS_SCHEMA = pa.DataFrameSchema(
    {
        "nhs_number": pa.Column(str),
        "condition": pa.Column(str, pa.Check.isin(CONDITION_CODES)),
        "diagnosed_on": pa.Column("datetime64[ns]"),
    },
    coerce=True,
    name="conditions",
)

ENCOUNTERS_SCHEMA = pa.DataFrameSchema(
    {
        "nhs_number": pa.Column(str),
        "date": pa.Column("datetime64[ns]"),
        "kind": pa.Column(str, pa.Check.isin(ENCOUNTER_KINDS)),
    },
    coerce=True,
    name="encounters",
)

OBSERVATIONS_SCHEMA = pa.DataFrameSchema(
    {
        "nhs_number": pa.Column(str),
        "date": pa.Column("datetime64[ns]"),
        "code": pa.Column(str, pa.Check.isin(OBSERVATION_CODES)),
        "value": pa.Column(float),
    },
    coerce=True,
    name="observations",
)

TRUTH_SCHEMA = pa.DataFrameSchema(
    {
        "nhs_number": pa.Column(str),
        "year": pa.Column(int),
        "probability": pa.Column(float, pa.Check.in_range(0.0, 1.0)),
    },
    coerce=True,
    name="truth",
)

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "patients": PATIENTS_SCHEMA,
    "practices": PRACTICES_SCHEMA,
    "conditions": CONDITIONS_SCHEMA,
    "encounters": ENCOUNTERS_SCHEMA,
    "observations": OBSERVATIONS_SCHEMA,
    "truth": TRUTH_SCHEMA,
}


@dataclass
class Records:
    """One population's records, one DataFrame per table."""

    patients: pd.DataFrame
    practices: pd.DataFrame
    conditions: pd.DataFrame
    encounters: pd.DataFrame
    observations: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None
    source: str = field(default="")


def table_path(directory: Path, table: str) -> Path | None:
    """The Parquet or CSV file for ``table`` in ``directory``, or None if neither exists."""
    for suffix in (".parquet", ".csv"):
        candidate = directory / f"{table}{suffix}"
        if candidate.exists():
            return candidate
    return None


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"nhs_number": str})


def read_records(directory: str | Path) -> Records:
    """Read a records folder as written by the generator or an importer (no validation)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserInputError(f"The records folder {directory} does not exist.")
    tables: dict[str, pd.DataFrame | None] = {}
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        path = table_path(directory, table)
        if path is None:
            if table in REQUIRED_TABLES:
                raise UserInputError(
                    f"The records folder {directory} has no {table}.parquet or {table}.csv."
                )
            tables[table] = None
            continue
        tables[table] = read_table(path)
    return Records(**tables, source=str(directory))


def write_records(records: Records, directory: str | Path) -> None:
    """Write every present table as Parquet into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        frame = getattr(records, table)
        if frame is not None:
            frame.to_parquet(directory / f"{table}.parquet", index=False)


# --- Validation: every problem in one report, before anything is written anywhere. ---

DATE_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("date_of_birth", "registered_from", "registered_to", "date_of_death"),
    "conditions": ("diagnosed_on",),
    "encounters": ("date",),
    "observations": ("date",),
}
# Tables whose dates must not precede the person's date of birth.
PERSON_EVENT_DATES: dict[str, str] = {"conditions": "diagnosed_on", "encounters": "date", "observations": "date"}
REPORT_LIMIT_PER_KIND = 20


@dataclass(frozen=True)
class RecordProblem:
    """One problem: the file, the 1-based data row (header not counted) and the column."""

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


def _file_name(records: Records, table: str) -> str:
    if records.source:
        path = table_path(Path(records.source), table)
        if path is not None:
            return path.name
    return table


def schema_problems(file: str, frame: pd.DataFrame, schema: pa.DataFrameSchema) -> list[RecordProblem]:
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        problems = []
        for case in errors.failure_cases.to_dict("records"):
            check = str(case.get("check") or "")
            column = case.get("column")
            index = case.get("index")
            row = None if index is None or pd.isna(index) else int(index) + 1
            if check == "column_in_dataframe":
                problems.append(RecordProblem(file, None, str(case.get("failure_case")), "missing column"))
                continue
            value = shown(case.get("failure_case"))
            if check.startswith("coerce_dtype") or check.startswith("dtype"):
                message = f"value {value} has the wrong type ({check})"
            elif check == "not_nullable":
                message = "empty value where one is required"
            elif check == "field_uniqueness":
                message = f"duplicate value {value}"
            elif is_text_problem(check):
                message = f"value {value} {check}"
            else:
                message = f"value {value} fails {check}"
            problems.append(RecordProblem(file, row, None if pd.isna(column) else str(column), message))
        return problems
    except pa.errors.SchemaError as error:  # a non-lazy failure (e.g. unparseable frame)
        return [RecordProblem(file, None, None, str(error).splitlines()[0])]
    return []


def _dates(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    return pd.to_datetime(frame[column], errors="coerce", format="ISO8601")


def arrow_strings(values: pd.Series):
    """A column as one Arrow string array: no Python object per value at tens of millions of rows."""
    import pyarrow

    array = pyarrow.array(values, from_pandas=True)
    if isinstance(array, pyarrow.ChunkedArray):
        array = array.combine_chunks()
    return array if array.type == pyarrow.string() else array.cast(pyarrow.string())


def positions_in(values: pd.Series, known) -> np.ndarray:
    """Position of each value in ``known`` (an Arrow string array or a sequence of strings; its
    first match), -1 if absent: an Arrow hash look-up, no Python object per value."""
    import pyarrow
    import pyarrow.compute as pc

    known = known if isinstance(known, pyarrow.Array) else pyarrow.array(list(known), pyarrow.string())
    return pc.fill_null(pc.index_in(arrow_strings(values), value_set=known), -1).to_numpy(zero_copy_only=False)


def nhs_number_keys(nhs_numbers: pd.Series) -> np.ndarray:
    """NHS numbers as int64 (Arrow cast): hashing integers is far faster than strings at 10M+ rows."""
    import pyarrow
    import pyarrow.compute as pc

    try:
        return pc.cast(arrow_strings(nhs_numbers), pyarrow.int64()).to_numpy(zero_copy_only=False)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError):
        raise UserInputError(
            "The records hold an NHS number that is not 10 digits; run `proactive-care cohort "
            "validate` on the records folder to find it."
        ) from None


def _rows(file: str, mask: pd.Series, column: str, message: str) -> list[RecordProblem]:
    return [RecordProblem(file, int(i) + 1, column, message) for i in mask[mask].index]


def validate_records(records: Records, today: pd.Timestamp | None = None) -> list[RecordProblem]:
    """Every problem in ``records``: pandera schemas (missing columns, wrong types, invalid NHS
    numbers, duplicate people, unknown codes) plus cross-table checks (dates in the future or before
    birth, rows pointing at unknown patients or practices). Empty when the records can be loaded.
    """
    today = pd.Timestamp(today if today is not None else pd.Timestamp.today()).normalize()
    problems: list[RecordProblem] = []
    # Positional index, so a problem's row is its place in the file.
    present = {t: getattr(records, t).reset_index(drop=True)
               for t in REQUIRED_TABLES + OPTIONAL_TABLES if getattr(records, t) is not None}
    files = {t: _file_name(records, t) for t in present}
    for table, frame in present.items():
        problems += schema_problems(files[table], frame, SCHEMAS[table])
    patients = present["patients"]
    has_people = "nhs_number" in patients.columns
    known_people = arrow_strings(patients["nhs_number"] if has_people else pd.Series([], dtype=str))
    births = _dates(patients, "date_of_birth").to_numpy()
    deaths = _dates(patients, "date_of_death").to_numpy()
    for table, columns in DATE_COLUMNS.items():
        frame = present.get(table)
        if frame is None:
            continue
        for column in columns:
            problems += _rows(files[table], _dates(frame, column) > today, column,
                              f"date is in the future (after {today.date().isoformat()})")
    if "date_of_birth" in patients.columns:
        born = _dates(patients, "date_of_birth")
        for column in ("registered_from", "date_of_death"):
            problems += _rows(files["patients"], _dates(patients, column) < born, column, "date is before birth")
        problems += _rows(files["patients"], _dates(patients, "registered_to") < _dates(patients, "registered_from"),
                          "registered_to", "date is before registered_from")
    practices = present["practices"]
    if "practice_code" in patients.columns and "practice_code" in practices.columns:
        known_practices = practices["practice_code"].astype(str).astype(object)
        problems += _rows(files["patients"], ~patients["practice_code"].astype(str).astype(object).isin(known_practices),
                          "practice_code", "practice is not in the practices table")
    for table in ("conditions", "encounters", "observations", "truth"):
        frame = present.get(table)
        if frame is None or "nhs_number" not in frame.columns:
            continue
        position = positions_in(frame["nhs_number"], known_people)
        problems += _rows(files[table], pd.Series(position < 0, index=frame.index), "nhs_number",
                          "no such person in patients")
        date_column = PERSON_EVENT_DATES.get(table)
        if date_column and has_people and len(births):
            dates = _dates(frame, date_column)
            problems += _dates_out_of_order(files[table], date_column, dates, "<", _each_persons(births, position),
                                            "is before the person's birth on")
            problems += _dates_out_of_order(files[table], date_column, dates, ">", _each_persons(deaths, position),
                                            "is after the person's death on")
    return problems


def _each_persons(dates: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Each row's person's date (NaT for a row whose person is unknown)."""
    return np.where(position >= 0, dates[np.maximum(position, 0)], np.datetime64("NaT"))


def _dates_out_of_order(file: str, column: str, dates: pd.Series, order: str, limits: np.ndarray,
                        words: str) -> list[RecordProblem]:
    """A problem for each row whose date is before (``order`` "<") or after (">") its person's limit
    date, naming both dates: "date 2025-03-01 is after the person's death on 2024-12-01"."""
    limits = pd.Series(limits, index=dates.index)
    wrong = (dates < limits) if order == "<" else (dates > limits)
    rows = wrong[wrong].index
    return [RecordProblem(file, int(i) + 1, column, f"date {dates[i]:%Y-%m-%d} {words} {limits[i]:%Y-%m-%d}")
            for i in rows]


def problems_report(problems: list[RecordProblem], limit_per_kind: int = REPORT_LIMIT_PER_KIND) -> str:
    """One line per problem, at most ``limit_per_kind`` per file/column/message, then a count."""
    lines, seen = [], {}
    for problem in problems:
        kind = (problem.file, problem.column, _kind_of(problem.message) if problem.row else problem.message)
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= limit_per_kind:
            lines.append(f"  - {problem}")
    for kind, count in seen.items():
        if count > limit_per_kind:
            lines.append(f"  - {kind[0]}, column {kind[1]}: {count - limit_per_kind:,} more like these "
                         f"({count:,} in all)")
    return "\n".join(lines)


_VALUES = re.compile(r"'(?:[^'\\]|\\.)*'(?:\.\.\. \([\d,]+ characters\))?|\"(?:[^\"\\]|\\.)*\"|\d{4}-\d{2}-\d{2}|-?\d+(?:\.\d+)?")


def _kind_of(message: str) -> str:
    """A problem's message with its values left out, so problems alike are counted together."""
    return _VALUES.sub("...", message)
