"""Load records and a score run into the store: validate everything first, then write it all in one
transaction that makes the new run current at its end (a crash leaves the previous run served).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.engine import Engine
from tqdm import tqdm

from features.errors import UserInputError
from features.records import (
    REQUIRED_TABLES,
    OPTIONAL_TABLES,
    PATIENTS_SCHEMA,
    RecordProblem,
    Records,
    problems_report,
    read_table,
    table_path,
    validate_records,
    NHS_NUMBER_CHECK,
    schema_problems,
)
from features.flags import EFI_CATEGORIES, FLAG_NAMES, flag_bits
from features.text import text_checks
from model.score_file import cutoffs_in_force, decode_score_metadata, provenance_problem
from app import settings
from app.db import get_engine, session_scope
from app.services import audit
from app.services.access import CurrentUser
from app.services.permissions import Role
from app.services.users import seed_demo_users
from app.store import (
    CaseloadAssignment,
    Condition,
    EncounterSummary,
    Patient,
    RegisteredModel,
    Score,
    ScoreRun,
    User,
)

LOADER = CurrentUser(username="system:load", display_name="Loader", role=Role.ADMIN)
CHUNK_ROWS = 50_000
KEEP_PREVIOUS_RUNS = 1  # the run before the current one stays, for comparison
DEMO_CASELOAD_SIZE = 40
SQLITE_LOAD_CACHE_KIB = 256 * 1024
OLDER_METADATA_COLUMNS = ("model_sha256", "index_date")  # files before schema metadata: one value repeated
IN_CLAUSE_CHUNK = 5_000  # values per IN (...) list: well under SQLite's bound-parameter limit

SCORES_SCHEMA = pa.DataFrameSchema(
    {
        "nhs_number": pa.Column(str, NHS_NUMBER_CHECK, unique=True),
        "practice_code": pa.Column(str, text_checks("practice_code")),
        "probability": pa.Column(float, pa.Check.in_range(0.0, 1.0)),
        "percentile": pa.Column(float, pa.Check.in_range(0.0, 100.0)),
        "practice_percentile": pa.Column(float, pa.Check.in_range(0.0, 100.0), nullable=True, required=False),
        **{flag: pa.Column(bool) for flag in FLAG_NAMES},
        "efi_category": pa.Column(str, pa.Check.isin(EFI_CATEGORIES), nullable=True),
    },
    coerce=True,
    name="scores",
)


class LoadRefused(UserInputError):
    """Nothing was written: the inputs have problems (listed in the message)."""


@dataclass
class LoadSummary:
    run_id: int
    model_sha256: str
    people_scored: int
    flagged: int
    patients: int
    conditions: int
    encounter_summaries: int
    demo_users_created: list[str]
    seconds: float


def model_identity(model_dir: str | Path) -> tuple[str, dict]:
    """(sha256 of the model file, manifest) after checking the manifest's own hash matches the file."""
    from model.persist import verified_model_file  # heavy imports, only when used

    _, sha, manifest = verified_model_file(model_dir)
    return sha, manifest


def register_model(session, model_dir: str | Path) -> str:
    """Record the model's sha256 so score runs made with it may be loaded; returns the hash."""
    sha, manifest = model_identity(model_dir)
    if session.get(RegisteredModel, sha) is None:
        session.add(RegisteredModel(sha256=sha, name=str(Path(model_dir).resolve().name)[:200], manifest=manifest))
        session.flush()
        audit.record(session, LOADER, "model_register", "model", sha, after={"name": Path(model_dir).name})
    return sha


def read_records_checked(directory: str | Path) -> tuple[Records | None, list[RecordProblem]]:
    """Read a records folder, turning missing or unreadable files into problems (not exceptions)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserInputError(f"The records folder {directory} does not exist.")
    tables, problems = {"truth": None}, []
    for table in REQUIRED_TABLES + OPTIONAL_TABLES:
        if table == "truth":  # the generator's answers: never loaded, so not read
            continue
        path = table_path(directory, table)
        if path is None:
            if table in REQUIRED_TABLES:
                problems.append(RecordProblem(f"{table}.parquet", None, None, "file is missing"))
            tables[table] = None
            continue
        try:
            tables[table] = read_table(path)
        except Exception as error:  # any parser error is a problem with the file, reported with the rest
            problems.append(RecordProblem(path.name, None, None, f"cannot be read ({type(error).__name__}: {error})"))
            tables[table] = None
    if problems:
        return None, problems
    return Records(**tables, source=str(directory)), []


def _json_list(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return value
    return json.dumps([str(v) for v in list(value)])


def read_scores(path: str | Path, known_people: pd.Series) -> tuple[pd.DataFrame | None, dict, list[RecordProblem]]:
    """The score file, its metadata (``model.score_file.decode_score_metadata``: model_sha256,
    index_date, top_cutoffs; None where absent) and any problems."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"The score file {path} does not exist.")
    try:
        frame = pd.read_parquet(path)
        raw_meta = pq.read_schema(path).metadata or {}
    except Exception as error:
        return None, {}, [RecordProblem(path.name, None, None, f"cannot be read ({type(error).__name__}: {error})")]
    problems = []
    try:
        meta = decode_score_metadata(raw_meta)
    except UserInputError as error:
        meta, problems = {}, [RecordProblem(path.name, None, None, str(error))]
    for column in OLDER_METADATA_COLUMNS:
        if meta.get(column) is None and column in frame.columns and frame[column].nunique() == 1:
            meta[column] = str(frame[column].iloc[0])[:64]
    if not problems and (unsourced := provenance_problem(meta)):
        problems.append(RecordProblem(path.name, None, None, unsourced))
    if "nhs_number" not in frame.columns and frame.index.name == "nhs_number":
        frame = frame.reset_index()
    frame = frame.reset_index(drop=True)
    problems += [RecordProblem(path.name, p.row, p.column, p.message)
                 for p in schema_problems("scores", frame, SCORES_SCHEMA)]
    if "nhs_number" in frame.columns:
        unknown = ~frame["nhs_number"].astype(str).astype(object).isin(known_people)
        problems += [RecordProblem(path.name, int(i) + 1, "nhs_number", "no such person in the records' patients")
                     for i in unknown[unknown].index]
    return (None if problems else SCORES_SCHEMA.validate(frame)), meta, problems


# --- bulk writes -------------------------------------------------------------------------------

def _column_values(series: pd.Series, sqlite: bool) -> list:
    """One column as plain Python values the drivers take directly (dates as ISO text on SQLite)."""
    missing = series.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(series):
        days = series.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
        values = (np.datetime_as_string(days, unit="D") if sqlite else days).astype(object)
    elif pd.api.types.is_bool_dtype(series):
        return series.astype(bool).tolist()
    elif pd.api.types.is_integer_dtype(series):
        values = np.asarray(series.to_numpy(dtype="int64", na_value=0).tolist(), dtype=object)
    elif pd.api.types.is_float_dtype(series):
        values = np.asarray(series.to_numpy(dtype="float64", na_value=np.nan).tolist(), dtype=object)
    else:
        values = series.astype(object).to_numpy()
    if missing.any():
        values = values.copy()
        values[missing] = None
    return values.tolist()


def _python_rows(frame: pd.DataFrame, sqlite: bool) -> list[tuple]:
    return list(zip(*(_column_values(frame[name], sqlite) for name in frame.columns)))


def bulk_insert(connection: Connection, table: str, frame: pd.DataFrame,
                on_chunk: Callable[[int], None] | None = None, progress: tqdm | None = None) -> int:
    """COPY on PostgreSQL, executemany on SQLite, in chunks; inside the caller's transaction."""
    names = ", ".join(frame.columns)
    sqlite = connection.dialect.name == "sqlite"
    driver = connection.connection.driver_connection
    written = 0
    for start in range(0, len(frame), CHUNK_ROWS):
        rows = _python_rows(frame.iloc[start:start + CHUNK_ROWS], sqlite)
        if sqlite:
            marks = ", ".join("?" * len(frame.columns))
            driver.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        else:
            with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        written += len(rows)
        if progress is not None:
            progress.update(len(rows))
        if on_chunk is not None:
            on_chunk(written)
    return written


def _upsert(connection: Connection, table: str, frame: pd.DataFrame, key: str) -> None:
    """Insert or update by ``key``: bulk-load a temporary copy, then one INSERT ... ON CONFLICT."""
    columns = ", ".join(frame.columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in frame.columns if c != key)
    stage = f"stage_{table}"
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"CREATE TEMP TABLE {stage} AS SELECT {columns} FROM {table} LIMIT 0")
    else:
        connection.exec_driver_sql(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {columns} FROM {table} LIMIT 0")
    bulk_insert(connection, stage, frame)
    # "WHERE true" keeps SQLite's parser from reading ON CONFLICT as a join constraint.
    connection.exec_driver_sql(
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} WHERE true "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
    connection.exec_driver_sql(f"DROP TABLE {stage}")


SUMMARY_CHUNK_ROWS = 4_000_000  # encounters keyed at a time: bounds the loader's peak memory


def encounter_summaries(encounters: pd.DataFrame) -> pd.DataFrame:
    """Count and last date per person, kind and calendar year.

    Grouped on one int64 key (person, kind, year) by Arrow's hash aggregation, a chunk of rows at a
    time, then the chunks' partial counts and last dates combined: integers, not strings, and no
    copy of every row at once.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from features.conditions import ENCOUNTER_KINDS
    from features.records import nhs_number_keys, positions_in

    partial = []
    for start in range(0, len(encounters), SUMMARY_CHUNK_ROWS):
        chunk = encounters.iloc[start:start + SUMMARY_CHUNK_ROWS]
        people = nhs_number_keys(chunk["nhs_number"])
        kind = positions_in(chunk["kind"], ENCOUNTER_KINDS)
        dates = pd.to_datetime(chunk["date"]).to_numpy()
        years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
        key = people * 100_000 + kind.astype(np.int64) * 10_000 + years
        partial.append(pa.table({"key": key, "date": dates}).group_by("key")
                       .aggregate([("date", "count"), ("date", "max")]))
    if not partial:
        partial.append(pa.table({"key": pa.array([], pa.int64()), "date_count": pa.array([], pa.int64()),
                                 "date_max": pa.array([], pa.timestamp("ns"))}))
    # Sorted by person: rows then arrive in (nearly) primary-key order for the insert.
    grouped = (pa.concat_tables(partial).group_by("key")
               .aggregate([("date_count", "sum"), ("date_max", "max")]).sort_by("key"))
    keys = grouped["key"].to_numpy()
    numbers = pc.utf8_lpad(pc.cast(pa.array(keys // 100_000), pa.string()), 10, "0")
    return pd.DataFrame({
        "nhs_number": numbers.to_numpy(zero_copy_only=False),
        "kind": np.asarray(ENCOUNTER_KINDS, dtype=object)[(keys // 10_000) % 10],
        "year": (keys % 10_000).astype(np.int64),
        "count": grouped["date_count_sum"].to_numpy().astype(np.int64),
        "last_date": grouped["date_max_max"].to_numpy(),
    })


def _patients_frame(records: Records) -> pd.DataFrame:
    patients = PATIENTS_SCHEMA.validate(records.patients)
    columns = ["nhs_number", "given_name", "family_name", "date_of_birth", "sex", "ethnicity", "imd_decile",
               "practice_code", "pcn_code", "registered_from", "registered_to", "date_of_death", "care_home"]
    for column in ("given_name", "family_name", "ethnicity"):
        patients[column] = patients[column].astype(object).where(patients[column].notna(), None)
    return patients.loc[:, columns]


def _seed_demo_caseload(session, navigator: str) -> None:
    """Put the highest-risk flagged people at the navigator's practices on their caseload (demo)."""
    user = session.get(User, navigator)
    if user is None or session.scalar(select(func.count()).select_from(CaseloadAssignment)):
        return
    run_id = session.scalar(select(ScoreRun.id).where(ScoreRun.is_current))
    people = session.scalars(
        select(Score.nhs_number).where(Score.run_id == run_id, Score.flagged,
                                       Score.practice_code.in_(user.practice_codes))
        .order_by(Score.probability.desc()).limit(DEMO_CASELOAD_SIZE)
    ).all()
    session.add_all(CaseloadAssignment(nhs_number=n, navigator_username=navigator, assigned_by=LOADER.username)
                    for n in people)


def load(
    records_dir: str | Path,
    scores_path: str | Path,
    model_dir: str | Path | None = None,
    database_url: str | None = None,
    *,
    add_to_current: bool = False,
    engine: Engine | None = None,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
    today: date | None = None,
) -> LoadSummary:
    """Validate the records and scores, then write them and make the new score run current.

    With ``add_to_current`` the records' practices (e.g. an imported population) join the current
    run alongside the practices already in it instead of replacing it; refused if any of their
    practice codes or NHS numbers is already there, or if their scores used other top cut-offs.

    All-or-nothing: any problem raises ``LoadRefused`` listing every problem before anything is
    written; the writes share one transaction, so an interrupted load changes nothing.
    """
    started = time.perf_counter()
    records, problems = read_records_checked(records_dir)
    if records is not None:
        problems = validate_records(records, today=pd.Timestamp(today) if today else None)
    known_people = (records.patients["nhs_number"].astype(str).astype(object)
                    if records is not None and "nhs_number" in records.patients.columns else pd.Series([], dtype=object))
    scores, meta, score_problems = read_scores(scores_path, known_people)
    problems += score_problems
    if problems:
        raise LoadRefused(
            f"Nothing was loaded: {len(problems)} problem(s) in {records_dir} and {scores_path}:\n"
            + problems_report(problems)
        )
    owns_engine = engine is None
    engine = engine or get_engine(database_url)
    try:
        return _write(engine, records, scores, meta, model_dir, str(scores_path), progress, on_chunk, started,
                      add_to_current)
    finally:
        if owns_engine:
            engine.dispose()


def _checked_model(session, meta: dict, model_dir) -> str:
    """The sha256 of the model that made the scores, which must be registered (``--model`` registers it)."""
    declared = meta.get("model_sha256")
    sha = register_model(session, model_dir) if model_dir is not None else declared
    if model_dir is not None and declared and declared != sha:
        raise LoadRefused(
            f"The score file was made by model {declared[:12]}… but --model is {sha[:12]}…; nothing was loaded."
        )
    if not sha:
        raise LoadRefused(
            "The score file does not say which model made it; pass --model MODEL_DIR. Nothing was loaded."
        )
    if session.get(RegisteredModel, sha) is None:
        raise LoadRefused(
            f"The model {sha[:12]}… that made these scores is not registered; register it with "
            "--model MODEL_DIR. Nothing was loaded."
        )
    return sha


def _chunks(values: list) -> list[list]:
    return [values[i:i + IN_CLAUSE_CHUNK] for i in range(0, len(values), IN_CLAUSE_CHUNK)]


def _found(session, column, values: list, *where) -> list:
    """The ``values`` present in ``column`` (rows matching ``where``), asked in chunks."""
    found = set()
    for chunk in _chunks(values):
        found.update(session.scalars(select(column).where(column.in_(chunk), *where)))
    return sorted(found)


def _cutoffs_text(top_cutoffs: dict[str, float]) -> str:
    return ", ".join(f"{name} {cutoff:g}" for name, cutoff in top_cutoffs.items())


def _run_to_add_to(session, sha: str, top_cutoffs: dict[str, float], practice_codes: list[str],
                   people: list[str]) -> ScoreRun:
    """The current run, if these practices and people (scored with ``top_cutoffs``) may join it;
    otherwise ``LoadRefused`` (audited)."""
    run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
    problem = None
    if run is None:
        problem = "there is no current score run to add to; load a population without --add-to-current first"
    elif run.model_sha256 != sha:
        problem = (f"the current run was scored by model {run.model_sha256[:12]}… and these scores by "
                   f"{sha[:12]}…; one run holds one model's scores")
    elif list(run.flag_names) != list(FLAG_NAMES):  # else one bit would mean two flags within the run
        problem = ("the current run was scored with other flags than this version knows; load a full "
                   "refresh without --add-to-current first")
    elif run.top_cutoffs != top_cutoffs:  # else one flag would mean two things within the run
        problem = (f"these scores use the cut-offs {_cutoffs_text(top_cutoffs)} but the current run "
                   f"{_cutoffs_text(run.top_cutoffs)}; score them with the current run's cut-offs")
    elif clash := _found(session, Score.practice_code, practice_codes, Score.run_id == run.id):
        problem = f"practice code(s) {', '.join(clash[:5])} are already in the current run"
    elif clash := (_found(session, Score.nhs_number, people, Score.run_id == run.id)
                   or _found(session, Patient.nhs_number, people, Patient.practice_code.not_in(practice_codes))):
        problem = (f"{len(clash):,} NHS number(s) (e.g. {clash[0]}) already belong to people in the current run "
                   "or at another practice")
    if problem:
        audit.record(session, LOADER, "score_run_add_refused", "score_run", str(run.id) if run else None,
                     detail=problem, independent=True)
        raise LoadRefused(f"Nothing was added: {problem}.")
    return run


def _write(engine, records, scores, meta, model_dir, source, progress, on_chunk, started,
           add_to_current=False) -> LoadSummary:
    patients = _patients_frame(records).sort_values("nhs_number", ignore_index=True)
    practices = records.practices.astype(str)
    conditions = records.conditions.loc[:, ["nhs_number", "condition", "diagnosed_on"]].assign(
        diagnosed_on=lambda f: pd.to_datetime(f["diagnosed_on"]))
    summaries = encounter_summaries(records.encounters)
    # Rows in primary-key order append to the B-tree instead of splitting pages all over it.
    score_rows = scores.sort_values("nhs_number", ignore_index=True)
    score_rows["flags"] = flag_bits(score_rows, FLAG_NAMES)
    score_rows["flagged"] = score_rows["flags"] != 0
    if "practice_percentile" not in score_rows.columns:
        score_rows["practice_percentile"] = float("nan")
    for column in ("reasons", "missing_predictors"):
        score_rows[column] = [_json_list(v) for v in score_rows[column]] if column in score_rows.columns else None
    index_date = pd.to_datetime(meta.get("index_date"), errors="coerce") if meta.get("index_date") else None
    index_date = index_date.date() if index_date is not None and not pd.isna(index_date) else None
    with session_scope(engine, write=True) as session:
        sha = _checked_model(session, meta, model_dir)
        people = patients["nhs_number"].tolist()
        if add_to_current:
            run = _run_to_add_to(session, sha, cutoffs_in_force(meta.get("top_cutoffs")),
                                 sorted(practices["practice_code"].unique()), people)
        connection = session.connection()
        if connection.dialect.name == "sqlite":
            # A big page cache for this connection: index pages stay in memory during bulk inserts.
            connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_LOAD_CACHE_KIB}")
        _upsert(connection, "pcns", practices[["pcn_code", "pcn_name"]].drop_duplicates("pcn_code"), "pcn_code")
        _upsert(connection, "practices", practices[["practice_code", "practice_name", "pcn_code"]], "practice_code")
        _upsert(connection, "patients", patients, "nhs_number")
        if add_to_current:  # these people only (they may be there from an earlier add)
            for chunk in _chunks(people):
                connection.execute(delete(Condition).where(Condition.nhs_number.in_(chunk)))
                connection.execute(delete(EncounterSummary).where(EncounterSummary.nhs_number.in_(chunk)))
        else:
            connection.execute(delete(Condition))
            connection.execute(delete(EncounterSummary))
        bulk_insert(connection, "conditions", conditions)
        bulk_insert(connection, "encounter_summaries", summaries)
        if not add_to_current:
            run = ScoreRun(model_sha256=sha, index_date=index_date, source=source[-500:], people=0, is_current=False,
                           cutoffs=dict(meta.get("top_cutoffs") or {}), flag_names=list(FLAG_NAMES))
            session.add(run)
            session.flush()
        columns = ["nhs_number", "practice_code", "probability", "percentile", "practice_percentile",
                   "flags", "flagged", "efi_category", "reasons", "missing_predictors"]
        frame = score_rows.loc[:, columns]
        frame.insert(0, "run_id", run.id)
        with tqdm(total=len(frame), desc="scores", unit="row", disable=not progress, leave=False) as bar:
            bulk_insert(connection, "scores", frame, on_chunk=on_chunk, progress=bar)
        connection.execute(update(ScoreRun).where(ScoreRun.id == run.id)
                           .values(people=ScoreRun.people + len(score_rows)))
        after = {"people": len(score_rows), "model_sha256": sha, "patients": len(patients)}
        demo_created = []
        if add_to_current:
            audit.record(session, LOADER, "score_run_add", "score_run", str(run.id), after={
                **after, "practices": sorted(practices["practice_code"].unique()), "index_date": index_date,
                "source": source[-200:]})
        else:
            # The switch: in the same transaction as every row above, so readers see all or nothing.
            connection.execute(update(ScoreRun).values(is_current=ScoreRun.id == run.id))
            if settings.demo_mode():
                pairs = list(zip(practices["practice_code"], practices["pcn_code"]))
                demo_created = [u.username for u in seed_demo_users(session, pairs)]
                _seed_demo_caseload(session, "navigator1")
            audit.record(session, LOADER, "score_run_load", "score_run", str(run.id), after=after)
        run_id = run.id
    if not add_to_current:
        _prune_old_runs(engine, run_id)
    return LoadSummary(
        run_id=run_id, model_sha256=sha, people_scored=len(score_rows), flagged=int(score_rows["flagged"].sum()),
        patients=len(patients), conditions=len(conditions), encounter_summaries=len(summaries),
        demo_users_created=demo_created, seconds=time.perf_counter() - started,
    )


def _prune_old_runs(engine: Engine, current_run_id: int) -> None:
    with session_scope(engine, write=True) as session:
        older = session.scalars(select(ScoreRun.id).where(ScoreRun.id < current_run_id)
                                .order_by(ScoreRun.id.desc()).offset(KEEP_PREVIOUS_RUNS)).all()
        if older:
            session.execute(delete(Score).where(Score.run_id.in_(older)))
            session.execute(delete(ScoreRun).where(ScoreRun.id.in_(older)))


def upgrade_database(database_url: str | None = None) -> str:
    from app.migrations import upgrade
    url = database_url or settings.migration_database_url()
    upgrade(url)
    return url
