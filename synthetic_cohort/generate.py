"""Generate a synthetic GP-registered population: ``generate_population`` (in memory) and
``write_population`` (streamed to Parquet, bounded memory, blocks spread over processes).

Blocks hold a fixed number of the people on the list at the start; each block draws only from
SeedSequence([seed, block]), and blocks are written in order with NHS numbers numbered in that order,
so the output is the same whatever the number of workers.
"""

from __future__ import annotations

import json
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from features.conditions import CONDITION_CODES, ENCOUNTER_KINDS, ETHNIC_GROUPS, OBSERVATION_CODES, SEXES
from features.errors import UserInputError
from features.records import Records
from synthetic_cohort.identifiers import nhs_numbers
from synthetic_cohort.practices import make_practices
from synthetic_cohort.profile import load_profile
from synthetic_cohort.simulate import EPOCH, BlockResult, NEVER, calibrated_story, simulate_block

BLOCK_SIZE = 5_000
MAX_PATIENTS = 5_000_000
TABLES = ("patients", "practices", "conditions", "encounters", "observations", "truth")
PRACTICE_COLUMNS = ["practice_code", "practice_name", "pcn_code", "pcn_name"]
GENERATION_FILE = "generation.json"


def check_arguments(n_patients, seed, profile: str, start_year: int, end_year: int) -> None:
    if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) or not 0 < n_patients <= MAX_PATIENTS:
        raise UserInputError(f"The number of patients must be a whole number from 1 to {MAX_PATIENTS:,}; got {n_patients}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserInputError(f"The seed must be a non-negative whole number; got {seed}.")
    load_profile(profile)  # raises for an unknown profile
    if not (1900 < start_year <= end_year < 2200):
        raise UserInputError(f"The years must satisfy start year <= end year (got {start_year} to {end_year}).")


def _dates(days: np.ndarray) -> pa.Array:
    days = np.asarray(days, dtype=np.int64)
    values = (days.astype("datetime64[D]")).astype("datetime64[ns]")
    return pa.array(values, type=pa.timestamp("ns"), mask=days == NEVER)


def _block_tables(result: BlockResult, offset: int, practices: pd.DataFrame) -> dict[str, pa.Table]:
    p = result.people
    n = p["dob"].size
    ids = nhs_numbers(offset + np.arange(n))
    codes = practices["practice_code"].to_numpy()
    pcns = practices["pcn_code"].to_numpy()
    patients = pa.table({
        "nhs_number": ids,
        "given_name": pa.array(p["given_name"], type=pa.string()),
        "family_name": pa.array(p["family_name"], type=pa.string()),
        "date_of_birth": _dates(p["dob"]),
        "sex": pa.array(np.array(SEXES)[np.where(p["female"], 0, 1)]),
        "ethnicity": pa.array(np.array(ETHNIC_GROUPS)[p["eth"]]),
        "imd_decile": pa.array(p["imd"].astype(np.int64)),
        "practice_code": pa.array(codes[p["practice"]]),
        "pcn_code": pa.array(pcns[p["practice"]]),
        "registered_from": _dates(p["reg_from"]),
        "registered_to": _dates(p["reg_to"]),
        "date_of_death": _dates(p["death"]),
        "care_home": pa.array(p["care_home"].astype(bool)),
    })
    holder, condition, onset = result.conditions
    order = np.lexsort((onset, holder))
    conditions = pa.table({
        "nhs_number": ids.take(pa.array(holder[order])),
        "condition": pa.array(np.array(CONDITION_CODES)[condition[order]]),
        "diagnosed_on": _dates(onset[order]),
    })
    who, day, kind = result.encounters
    order = np.lexsort((kind, day, who))
    encounters = pa.table({
        "nhs_number": ids.take(pa.array(who[order])),
        "date": _dates(day[order]),
        "kind": pa.array(list(ENCOUNTER_KINDS)).take(pa.array(kind[order].astype(np.int32))),
    })
    who, day, code, value = result.observations
    order = np.lexsort((code, day, who))
    observations = pa.table({
        "nhs_number": ids.take(pa.array(who[order])),
        "date": _dates(day[order]),
        "code": pa.array(list(OBSERVATION_CODES)).take(pa.array(code[order].astype(np.int32))),
        "value": pa.array(value[order].astype(np.float64)),
    })
    who, year, probability = result.truth
    order = np.lexsort((year, who))
    truth = pa.table({
        "nhs_number": ids.take(pa.array(who[order])),
        "year": pa.array(year[order].astype(np.int64)),
        "probability": pa.array(probability[order].astype(np.float64)),
    })
    return {"patients": patients, "conditions": conditions, "encounters": encounters,
            "observations": observations, "truth": truth}


_BLOCK_ARGS: tuple = ()


def _init_worker(args: tuple) -> None:
    """Each worker gets the calibrated story and practices once (not once per block)."""
    global _BLOCK_ARGS
    _BLOCK_ARGS = args


def _run_block(block: int) -> BlockResult:
    story, practices, n_patients, seed, start_year, end_year = _BLOCK_ARGS
    return simulate_block(story, practices, n_patients, seed, block, BLOCK_SIZE, start_year, end_year)


def iter_block_tables(n_patients: int, seed: int, profile: str = "leicester", start_year: int = 2022,
                      end_year: int = 2025, workers: int | None = None, progress: bool = False
                      ) -> Iterator[dict[str, pa.Table]]:
    """Arrow tables block by block, in block order (NHS numbers numbered across blocks in that order)."""
    check_arguments(n_patients, seed, profile, start_year, end_year)
    story = calibrated_story(profile)
    practice_setup = make_practices(story.profile, n_patients, seed)
    practices = practice_setup.table
    n_blocks = -(-n_patients // BLOCK_SIZE)
    workers = max(1, min(workers or os.cpu_count() or 1, n_blocks))
    args = (story, practice_setup, int(n_patients), int(seed), int(start_year), int(end_year))
    bar = tqdm(total=n_patients, unit="people", desc="cohort", disable=not progress, file=None)
    offset = 0
    if workers == 1:
        _init_worker(args)
        results = (_run_block(b) for b in range(n_blocks))
        for result in results:
            tables = _block_tables(result, offset, practices)
            offset += tables["patients"].num_rows
            bar.update(min(BLOCK_SIZE, n_patients - result.block * BLOCK_SIZE))
            yield tables
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(args,)) as pool:
            pending: deque = deque()
            next_block = 0
            while next_block < n_blocks or pending:
                while next_block < n_blocks and len(pending) < 2 * workers:  # bounded work in flight
                    pending.append(pool.submit(_run_block, next_block))
                    next_block += 1
                result = pending.popleft().result()
                tables = _block_tables(result, offset, practices)
                offset += tables["patients"].num_rows
                bar.update(min(BLOCK_SIZE, n_patients - result.block * BLOCK_SIZE))
                yield tables
    bar.close()


def generate_population(n_patients: int, seed: int, profile: str = "leicester", start_year: int = 2022,
                        end_year: int = 2025, workers: int | None = 1) -> Records:
    """The whole population in memory (use ``write_population`` for large N)."""
    parts: dict[str, list[pa.Table]] = {t: [] for t in TABLES if t != "practices"}
    for tables in iter_block_tables(n_patients, seed, profile, start_year, end_year, workers):
        for name, table in tables.items():
            parts[name].append(table)
    frames = {name: pa.concat_tables(tables).to_pandas() for name, tables in parts.items()}
    practices = make_practices(load_profile(profile), n_patients, seed).table[PRACTICE_COLUMNS]
    return Records(patients=frames["patients"], practices=practices, conditions=frames["conditions"],
                   encounters=frames["encounters"], observations=frames["observations"],
                   truth=frames["truth"], source=f"synthetic_cohort:{profile}:{seed}")


def write_population(out: str | Path, n_patients: int, seed: int, profile: str = "leicester",
                     start_year: int = 2022, end_year: int = 2025, workers: int | None = None,
                     progress: bool = False) -> dict[str, int]:
    """Write the population's tables as Parquet into ``out``; returns the row count of each table."""
    check_arguments(n_patients, seed, profile, start_year, end_year)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"The output path {out} exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    practices = make_practices(load_profile(profile), n_patients, seed).table
    pq.write_table(pa.Table.from_pandas(practices[PRACTICE_COLUMNS], preserve_index=False), out / "practices.parquet")
    writers: dict[str, pq.ParquetWriter] = {}
    rows = {"practices": len(practices)}
    try:
        for tables in iter_block_tables(n_patients, seed, profile, start_year, end_year, workers, progress):
            for name, table in tables.items():
                if name not in writers:
                    writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema)
                writers[name].write_table(table)
                rows[name] = rows.get(name, 0) + table.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    meta = {"profile": profile, "patients": n_patients, "seed": seed, "start_year": start_year,
            "end_year": end_year, "rows": rows,
            "practice_types": dict(zip(practices["practice_code"], practices["practice_type"]))}
    (out / GENERATION_FILE).write_text(json.dumps(meta, indent=2))
    return rows
