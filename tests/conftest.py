"""Shared fixtures: a tiny hand-made population, its score file, and migrated stores.

Store tests take ``store_url`` (empty, migrated) or ``loaded_url`` (tiny population loaded, demo
users seeded). Both are parametrised over SQLite (always) and PostgreSQL (when
``PROACTIVE_CARE_TEST_POSTGRES_URL`` is set). Each PostgreSQL test gets its own database, copied
from a per-session template, and drops it afterwards; the templates are dropped at session end.
With ``PROACTIVE_CARE_REQUIRE_POSTGRES=1`` the run fails if no PostgreSQL store test ran.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nhs_number import calculate_checksum
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from features.conditions import CONDITION_CODES, ENCOUNTER_KINDS
from features.flags import DEFAULT_TOP_CUTOFFS, FLAG_NAMES, efi_category, risk_flags, rule_flags
from features.records import Records, write_records

# The app's default mode is production; these tests use the demo users, so they choose demo (a
# test of the default removes it).
os.environ["PROACTIVE_CARE_MODE"] = "demo"
POSTGRES_URL = os.environ.get("PROACTIVE_CARE_TEST_POSTGRES_URL", "").strip()
REQUIRE_POSTGRES = os.environ.get("PROACTIVE_CARE_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgres"]
_postgres_tests_run = {"count": 0}

TINY_PRACTICES = (("P001", "Alpha Surgery", "N01", "North PCN"), ("P002", "Beta Health Centre", "N01", "North PCN"),
                  ("P003", "Gamma Medical", "N02", "South PCN"), ("P004", "Delta Practice", "N02", "South PCN"))
INDEX_DATE = pd.Timestamp("2026-01-01")
# The model's reason shape: plain words plus what the chart needs.
TINY_REASONS = [
    {"feature": "emergency_admissions_12m", "text": "2 emergency admissions in the last 12 months",
     "direction": "raises", "strength": "a lot", "contribution": 0.9},
    {"feature": "ltc_heart_failure", "text": "Heart failure", "direction": "raises",
     "strength": "moderately", "contribution": 0.4},
]


def synthetic_nhs_numbers(count: int, start: int = 0) -> list[str]:
    """Valid Modulus 11 numbers in the 999 range reserved for test data."""
    found, candidate = [], start
    while len(found) < count:
        stem = f"999{candidate:06d}"
        check = calculate_checksum(stem)
        if check is not None and check != 10:
            found.append(f"{stem}{check}")
        candidate += 1
    return found


def make_records(people_per_practice: int = 25, seed: int = 7) -> Records:
    rng = np.random.default_rng(seed)
    practices = pd.DataFrame(TINY_PRACTICES, columns=["practice_code", "practice_name", "pcn_code", "pcn_name"])
    n = people_per_practice * len(practices)
    numbers = synthetic_nhs_numbers(n)
    practice_index = np.repeat(np.arange(len(practices)), people_per_practice)
    ages = rng.integers(20, 95, n)
    births = INDEX_DATE - pd.to_timedelta(ages * 365 + rng.integers(0, 364, n), unit="D")
    patients = pd.DataFrame({
        "nhs_number": numbers,
        "given_name": [f"Given{i}" for i in range(n)],
        "family_name": [f"Family{i}" for i in range(n)],
        "date_of_birth": births.normalize(),
        "sex": rng.choice(["F", "M"], n),
        "ethnicity": rng.choice(["Asian", "Black", "Mixed", "White", "Other"], n),
        "imd_decile": pd.array(rng.integers(1, 11, n), dtype="Int64"),
        "practice_code": practices["practice_code"].to_numpy()[practice_index],
        "pcn_code": practices["pcn_code"].to_numpy()[practice_index],
        "registered_from": (births + pd.Timedelta(days=30)).normalize(),
        "registered_to": pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]"),
        "date_of_death": pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]"),
        "care_home": rng.random(n) < 0.05,
    })
    owners = rng.integers(0, n, n * 2)
    conditions = pd.DataFrame({
        "nhs_number": [numbers[i] for i in owners],
        "condition": rng.choice(CONDITION_CODES, len(owners)),
        "diagnosed_on": pd.Timestamp("2023-06-01") - pd.to_timedelta(rng.integers(0, 900, len(owners)), unit="D"),
    }).drop_duplicates(["nhs_number", "condition"]).reset_index(drop=True)
    visitors = rng.integers(0, n, n * 3)
    encounters = pd.DataFrame({
        "nhs_number": [numbers[i] for i in visitors],
        "date": pd.Timestamp("2025-12-31") - pd.to_timedelta(rng.integers(0, 1000, len(visitors)), unit="D"),
        "kind": rng.choice(ENCOUNTER_KINDS, len(visitors)),
    })
    return Records(patients=patients, practices=practices, conditions=conditions, encounters=encounters)


def make_scores(records: Records, seed: int = 11) -> pd.DataFrame:
    """A score file with the model's column contract; flags follow the stated rules."""
    rng = np.random.default_rng(seed)
    patients = records.patients
    probability = rng.beta(1, 8, len(patients))
    percentile = pd.Series(probability).rank(pct=True).to_numpy() * 100
    ages = ((INDEX_DATE - patients["date_of_birth"]).dt.days // 365).to_numpy()
    counts = records.conditions.groupby("nhs_number").size().reindex(patients["nhs_number"]).fillna(0).to_numpy()
    dementia = patients["nhs_number"].isin(
        records.conditions.loc[records.conditions["condition"] == "dementia", "nhs_number"]).to_numpy()
    # Every flag in the registry, by its own rule (a new flag reaches these inputs without an edit here).
    features = pd.DataFrame({"age": ages, "ltc_count": counts, "ltc_dementia": dementia,
                             "efi": np.where(ages >= 65, rng.beta(2, 8, len(patients)), np.nan),
                             "care_home": patients["care_home"].to_numpy()})
    flags = pd.concat([risk_flags(probability, DEFAULT_TOP_CUTOFFS), rule_flags(features)], axis=1)
    return pd.DataFrame({
        "nhs_number": patients["nhs_number"],
        "practice_code": patients["practice_code"],
        "probability": probability,
        "percentile": percentile,
        "practice_percentile": pd.Series(probability).groupby(patients["practice_code"]).rank(pct=True).to_numpy() * 100,
        **{name: flags[name].to_numpy() for name in FLAG_NAMES},
        "efi_category": efi_category(features).array,
        # As the model does: reasons for the top 5% only.
        "reasons": [json.dumps(TINY_REASONS) if p > 95 else None for p in percentile],
        "missing_predictors": ["[]"] * len(patients),
    })


def write_score_file(scores: pd.DataFrame, path: Path, model_dir: Path, index_date: str = f"{INDEX_DATE:%Y-%m-%d}",
                     top_cutoffs: dict[str, float] | None = None) -> Path:
    """Write a score file with the provenance `proactive-care score` records (index date, the model's
    sha256, the top cut-offs) in its schema metadata; the loader refuses one without it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from model.persist import model_sha256
    from model.score_file import DEFAULT_TOP_CUTOFFS, encode_score_metadata

    table = pa.Table.from_pandas(scores, preserve_index=False)
    stamp = encode_score_metadata(index_date, model_sha256(model_dir), top_cutoffs or DEFAULT_TOP_CUTOFFS)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **stamp}), path)
    return path


def make_model_dir(directory: Path, content: bytes = b"a stand-in for a fitted model") -> Path:
    """A model folder the loader can register (model file + manifest with its sha256)."""
    from model.persist import MODEL_FILE, file_sha256

    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(content)
    (directory / "manifest.json").write_text(json.dumps({"model_file": MODEL_FILE,
                                                         "sha256": file_sha256(directory / MODEL_FILE)}))
    return directory


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory) -> dict:
    """Paths of a tiny records folder, its score file and a registrable model folder."""
    base = tmp_path_factory.mktemp("tiny")
    records = make_records()
    write_records(records, base / "records")
    make_model_dir(base / "model")
    write_score_file(make_scores(records), base / "scores.parquet", base / "model")
    return {"records": base / "records", "scores": base / "scores.parquet", "model": base / "model"}


# --- databases ---------------------------------------------------------------------------------

def _admin_engine():
    return create_engine(make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"),
                         isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False)


def _drop_pg(name: str) -> None:
    engine = _admin_engine()
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


class _Templates:
    """Migrated (and loaded) stores built once per session per backend, copied per test."""

    def __init__(self, base: Path):
        self.base = base
        self.built: dict[tuple[str, str], str] = {}
        self.pg_names: list[str] = []

    def get(self, backend: str, kind: str, tiny_inputs: dict) -> str:
        key = (backend, kind)
        if key not in self.built:
            from app.load import load
            from app.migrations import upgrade

            if backend == "sqlite":
                url = f"sqlite:///{self.base / f'template_{kind}.db'}"
            else:
                name = f"pc_tpl_{kind}_{uuid.uuid4().hex[:10]}"
                engine = _admin_engine()
                with engine.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
                engine.dispose()
                self.pg_names.append(name)
                url = _pg_url(name)
            upgrade(url)
            if kind == "loaded":
                load(tiny_inputs["records"], tiny_inputs["scores"], tiny_inputs["model"], url, progress=False)
            self.built[key] = url
        return self.built[key]

    def copy(self, backend: str, kind: str, tiny_inputs: dict, target: Path):
        template = self.get(backend, kind, tiny_inputs)
        if backend == "sqlite":
            path = target / "store.db"
            shutil.copyfile(make_url(template).database, path)
            return f"sqlite:///{path}", None
        name = f"pc_test_{uuid.uuid4().hex[:12]}"
        engine = _admin_engine()
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template).database}"'))
        engine.dispose()
        return _pg_url(name), name

    def drop_all(self):
        for name in self.pg_names:
            _drop_pg(name)


@pytest.fixture(scope="session")
def _templates(tmp_path_factory):
    templates = _Templates(tmp_path_factory.mktemp("templates"))
    yield templates
    if POSTGRES_URL:
        templates.drop_all()


def _store(request, kind: str, tiny_inputs, templates, tmp_path):
    backend = request.param
    if backend == "postgres" and not POSTGRES_URL:
        pytest.skip("PROACTIVE_CARE_TEST_POSTGRES_URL is not set")
    url, pg_name = templates.copy(backend, kind, tiny_inputs, tmp_path)
    if backend == "postgres":
        _postgres_tests_run["count"] += 1
    yield url
    if pg_name:
        _drop_pg(pg_name)


@pytest.fixture(params=BACKENDS)
def store_url(request, tiny_inputs, _templates, tmp_path):
    """URL of a fresh, migrated, empty store."""
    yield from _store(request, "empty", tiny_inputs, _templates, tmp_path)


@pytest.fixture(params=BACKENDS)
def loaded_url(request, tiny_inputs, _templates, tmp_path):
    """URL of a fresh store with the tiny population, its score run and the demo users."""
    yield from _store(request, "loaded", tiny_inputs, _templates, tmp_path)


@pytest.fixture
def loaded_engine(loaded_url):
    from app.db import get_engine

    engine = get_engine(loaded_url)
    yield engine
    engine.dispose()


@pytest.fixture
def users(loaded_engine):
    """The demo users as CurrentUser objects, by username."""
    from app.db import session_scope
    from app.store import User
    from app.services.users import current_user_from

    with session_scope(loaded_engine) as session:
        return {row.username: current_user_from(row) for row in session.query(User)}


def pytest_sessionfinish(session, exitstatus):
    if REQUIRE_POSTGRES and session.testscollected and _postgres_tests_run["count"] == 0:
        print("\nPROACTIVE_CARE_REQUIRE_POSTGRES=1 but no PostgreSQL store test ran: failing the run.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
