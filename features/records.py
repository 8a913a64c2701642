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

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from nhs_number import is_valid as is_valid_nhs_number

from features.conditions import (
    CONDITION_CODES,
    ENCOUNTER_KINDS,
    ETHNIC_GROUPS,
    OBSERVATION_CODES,
    SEXES,
)
from features.errors import UserInputError

REQUIRED_TABLES = ("patients", "practices", "conditions", "encounters")
OPTIONAL_TABLES = ("observations", "truth")

_nhs_number_check = pa.Check(
    lambda s: s.map(lambda v: isinstance(v, str) and is_valid_nhs_number(v)).astype(bool),
    error="not a valid NHS number (10 digits with a Modulus 11 check digit)",
)

PATIENTS_SCHEMA = pa.DataFrameSchema(
    {
        "nhs_number": pa.Column(str, _nhs_number_check, unique=True),
        "given_name": pa.Column(str, nullable=True),
        "family_name": pa.Column(str, nullable=True),
        "date_of_birth": pa.Column("datetime64[ns]"),
        "sex": pa.Column(str, pa.Check.isin(SEXES)),
        "ethnicity": pa.Column(str, pa.Check.isin(ETHNIC_GROUPS), nullable=True),
        "imd_decile": pa.Column("Int64", pa.Check.in_range(1, 10), nullable=True),
        "practice_code": pa.Column(str),
        "pcn_code": pa.Column(str),
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
        "practice_code": pa.Column(str, unique=True),
        "practice_name": pa.Column(str),
        "pcn_code": pa.Column(str),
        "pcn_name": pa.Column(str),
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
