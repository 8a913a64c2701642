"""Loading records and scores: validation first, one report, all-or-nothing, registered models only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select, text

from app.cli import main
from app.db import get_engine, session_scope
from app.load import LoadRefused, encounter_summaries, load
from app.store import Base, RegisteredModel, ScoreRun
from conftest import make_model_dir, make_records, synthetic_nhs_numbers, write_score_file
from features.errors import UserInputError
from features.records import read_records, valid_nhs_numbers, write_records
from nhs_number import is_valid

STRANGER = synthetic_nhs_numbers(1, start=900_000)[0]  # valid, but not in the population


def table_counts(url: str) -> dict[str, int]:
    engine = get_engine(url)
    with engine.connect() as connection:
        counts = {t: connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in Base.metadata.tables}
    engine.dispose()
    return counts


def _copy_inputs(tiny_inputs: dict, target: Path) -> dict:
    shutil.copytree(tiny_inputs["records"], target / "records")
    shutil.copy(tiny_inputs["scores"], target / "scores.parquet")
    return {"records": target / "records", "scores": target / "scores.parquet", "model": tiny_inputs["model"]}


# Each corruption: (table, mutate(frame, row) -> frame, column the report must name).
def _set(column, value):
    def mutate(frame, row):
        frame = frame.copy()
        if pd.api.types.is_datetime64_any_dtype(frame[column]) and isinstance(value, str) and not value[:4].isdigit():
            frame[column] = frame[column].dt.strftime("%Y-%m-%d")
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame
    return mutate


def _duplicate(frame, row):
    return pd.concat([frame, frame.iloc[[row]]], ignore_index=True)


def _drop(column):
    return lambda frame, row: frame.drop(columns=[column])


CORRUPTIONS = {
    "invalid NHS number": ("patients", _set("nhs_number", "1234567890"), "nhs_number"),
    "duplicate person": ("patients", _duplicate, "nhs_number"),
    "future date": ("encounters", _set("date", pd.Timestamp("2099-01-01")), "date"),
    "before birth": ("conditions", _set("diagnosed_on", pd.Timestamp("1801-01-01")), "diagnosed_on"),
    "unknown condition": ("conditions", _set("condition", "dragon_pox"), "condition"),
    "unknown encounter kind": ("encounters", _set("kind", "teleport"), "kind"),
    "missing column": ("patients", _drop("sex"), "sex"),
    "wrong type": ("patients", _set("date_of_birth", "last Tuesday"), "date_of_birth"),
    "unknown patient": ("encounters", _set("nhs_number", STRANGER), "nhs_number"),
    "unknown practice": ("patients", _set("practice_code", "P999"), "practice_code"),
    "bad probability": ("scores", _set("probability", 1.5), "probability"),
    "unscored stranger": ("scores", _set("nhs_number", STRANGER), "nhs_number"),
    "NUL in a name": ("patients", _set("family_name", "Smi\x00th"), "family_name"),
    "name longer than the store's column": ("patients", _set("given_name", "G" * 101), "given_name"),
    "practice name longer than the store's column": ("practices", _set("practice_name", "P" * 201), "practice_name"),
    "line break in a code": ("patients", _set("pcn_code", "N01\nN02"), "pcn_code"),
}


def corrupt(inputs: dict, name: str, row: int) -> str:
    """Apply one corruption; returns the file name the report must mention."""
    table, mutate, _ = CORRUPTIONS[name]
    path = inputs["scores"] if table == "scores" else inputs["records"] / f"{table}.parquet"
    stored = pq.read_table(path)
    frame = stored.to_pandas()
    changed = pa.Table.from_pandas(mutate(frame, row % len(frame)), preserve_index=False)
    # Keep the score file's provenance: the corruption is the only thing wrong with it.
    pq.write_table(changed.replace_schema_metadata({**(stored.schema.metadata or {}),
                                                    **(changed.schema.metadata or {})}), path)
    return path.name


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_problem_is_reported_and_nothing_written(loaded_url, tiny_inputs, tmp_path, name):
    inputs = _copy_inputs(tiny_inputs, tmp_path)
    file_name = corrupt(inputs, name, row=4)
    before = table_counts(loaded_url)
    with pytest.raises(LoadRefused) as refused:
        load(inputs["records"], inputs["scores"], inputs["model"], loaded_url, progress=False)
    message = str(refused.value)
    column = CORRUPTIONS[name][2]
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert any(file_name.split(".")[0] in line and f"column {column}" in line for line in lines), message
    if name not in ("missing column",):
        assert any("row " in line for line in lines), message
    assert table_counts(loaded_url) == before


def test_all_problems_in_one_report(store_url, tiny_inputs, tmp_path):
    inputs = _copy_inputs(tiny_inputs, tmp_path)
    for name in ("invalid NHS number", "future date", "unknown condition"):
        corrupt(inputs, name, row=2)
    with pytest.raises(LoadRefused) as refused:
        load(inputs["records"], inputs["scores"], inputs["model"], store_url, progress=False)
    message = str(refused.value)
    assert "patients.parquet row 3, column nhs_number" in message
    assert "encounters.parquet row 3, column date" in message
    assert "conditions.parquet row 3, column condition" in message
    assert table_counts(store_url)["patients"] == 0


def test_csv_records_report_rows_too(store_url, tiny_inputs, tmp_path):
    records = read_records(tiny_inputs["records"])
    folder = tmp_path / "csv"
    folder.mkdir()
    for table in ("patients", "practices", "conditions", "encounters"):
        getattr(records, table).to_csv(folder / f"{table}.csv", index=False)
    text_ = (folder / "conditions.csv").read_text().splitlines()
    text_[5] = text_[5].rsplit(",", 1)[0] + ",not-a-date"
    (folder / "conditions.csv").write_text("\n".join(text_) + "\n")
    with pytest.raises(LoadRefused, match=r"conditions.csv row 5, column diagnosed_on"):
        load(folder, tiny_inputs["scores"], tiny_inputs["model"], store_url, progress=False)


def test_cli_prints_the_report_without_traceback(store_url, tiny_inputs, tmp_path, capsys):
    inputs = _copy_inputs(tiny_inputs, tmp_path)
    corrupt(inputs, "unknown encounter kind", row=0)
    status = main(["load", "--records", str(inputs["records"]), "--scores", str(inputs["scores"]),
                   "--model", str(inputs["model"]), "--database", store_url])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "encounters.parquet row 1, column kind" in err
    assert main(["load", "--records", str(tmp_path / "nowhere"), "--scores", str(inputs["scores"]),
                 "--database", store_url]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_scores_need_a_registered_model(store_url, tiny_inputs, tmp_path):
    stamped = _stamp(tiny_inputs["scores"], tmp_path / "stamped.parquet", {b"proactive_care.model_sha256": b"f" * 64})
    with pytest.raises(LoadRefused, match="is not registered"):
        load(tiny_inputs["records"], stamped, None, store_url, progress=False)
    with pytest.raises(LoadRefused, match="was made by model"):
        load(tiny_inputs["records"], stamped, tiny_inputs["model"], store_url, progress=False)
    assert table_counts(store_url)["scores"] == 0
    with pytest.raises(LoadRefused, match="is not registered"):  # the tiny model, not registered yet
        load(tiny_inputs["records"], tiny_inputs["scores"], None, store_url, progress=False)
    # Once the model is registered (first load with --model), its stamped score files load alone.
    summary = load(tiny_inputs["records"], tiny_inputs["scores"], tiny_inputs["model"], store_url, progress=False)
    second = load(tiny_inputs["records"], tiny_inputs["scores"], None, store_url, progress=False)
    assert second.model_sha256 == summary.model_sha256 and second.run_id == summary.run_id + 1


def test_tampered_model_file_is_refused(store_url, tiny_inputs, tmp_path):
    model = make_model_dir(tmp_path / "model")
    (model / "model.skops").write_bytes(b"swapped for something else")
    with pytest.raises(UserInputError, match="does not match its manifest"):
        load(tiny_inputs["records"], tiny_inputs["scores"], model, store_url, progress=False)
    engine = get_engine(store_url)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(RegisteredModel)) == 0
    engine.dispose()


HALF_IMPORT_FIGURES = {"tried": 0, "refused": 0, "loaded": 0, "half_imports": 0}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(sorted(CORRUPTIONS)), max_size=3, unique=True),
       row=st.integers(min_value=0, max_value=10_000))
def test_corrupted_inputs_are_never_half_imported(loaded_url, tiny_inputs, tmp_path_factory, names, row):
    inputs = _copy_inputs(tiny_inputs, tmp_path_factory.mktemp("corrupt"))
    for name in names:
        corrupt(inputs, name, row)
    before = table_counts(loaded_url)
    HALF_IMPORT_FIGURES["tried"] += 1
    try:
        summary = load(inputs["records"], inputs["scores"], inputs["model"], loaded_url, progress=False)
    except LoadRefused:
        HALF_IMPORT_FIGURES["refused"] += 1
        after = table_counts(loaded_url)
        HALF_IMPORT_FIGURES["half_imports"] += after != before
        assert after == before, names
        return
    HALF_IMPORT_FIGURES["loaded"] += 1
    assert not names, f"{names} should have been refused"
    engine = get_engine(loaded_url)
    with session_scope(engine) as session:
        current = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
        assert current.id == summary.run_id and current.people == len(pd.read_parquet(inputs["scores"]))
        assert session.scalar(text("SELECT COUNT(*) FROM scores WHERE run_id = :r"), {"r": current.id}) == current.people
    engine.dispose()


def test_half_import_figures(capsys):
    """Runs after the property test (file order) and prints its figures for the record."""
    if HALF_IMPORT_FIGURES["tried"]:
        with capsys.disabled():
            print(f"\ncorrupted-input property test: {json.dumps(HALF_IMPORT_FIGURES)}")
    assert HALF_IMPORT_FIGURES["half_imports"] == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.from_regex(r"\A[0-9]{10}\Z"), st.text(max_size=12), st.none(), st.integers()),
                max_size=20))
def test_vectorised_nhs_number_check_agrees_with_the_library(values):
    expected = [isinstance(v, str) and len(v) == 10 and v.isascii() and v.isdigit() and is_valid(v) for v in values]
    assert valid_nhs_numbers(pd.Series(values, dtype=object)).tolist() == expected


def test_encounter_summaries_match_a_plain_groupby():
    encounters = make_records().encounters
    fast = encounter_summaries(encounters).sort_values(["nhs_number", "kind", "year"]).reset_index(drop=True)
    plain = (encounters.assign(year=encounters["date"].dt.year)
             .groupby(["nhs_number", "kind", "year"], as_index=False)
             .agg(count=("date", "size"), last_date=("date", "max")))
    assert len(fast) == len(plain) > 0
    assert (fast.astype(str).to_numpy() == plain.astype(str).to_numpy()).all()


def _stamp(scores: Path, target: Path, metadata: dict[bytes, bytes]) -> Path:
    table = pq.read_table(scores)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata}), target)
    return target


def test_score_run_records_index_date_model_and_cutoffs_from_the_score_metadata(store_url, tiny_inputs, tmp_path):
    first = load(tiny_inputs["records"], tiny_inputs["scores"], tiny_inputs["model"], store_url, progress=False)
    stamped = _stamp(tiny_inputs["scores"], tmp_path / "stamped.parquet", {
        b"proactive_care.index_date": b"2025-07-01",
        b"proactive_care.model_sha256": first.model_sha256.encode(),
        b"proactive_care.top_cutoffs": b'{"top_2pct": 0.013, "top_5pct": 0.05}',
        b"index_date": b"1999-01-01",  # an older unprefixed key loses to the one `score` writes
    })
    second = load(tiny_inputs["records"], stamped, None, store_url, progress=False)  # no --model needed
    engine = get_engine(store_url)
    with session_scope(engine) as session:
        runs = {run.id: run for run in session.scalars(select(ScoreRun))}
    engine.dispose()
    assert second.model_sha256 == first.model_sha256
    assert runs[second.run_id].index_date == pd.Timestamp("2025-07-01").date()
    assert runs[second.run_id].cutoffs == {"top_2pct": 0.013, "top_5pct": 0.05}
    assert runs[first.run_id].index_date == pd.Timestamp("2026-01-01").date()
    assert runs[first.run_id].model_sha256 == first.model_sha256
    assert runs[first.run_id].cutoffs == {"top_2pct": 0.02, "top_5pct": 0.05}


def test_score_file_with_unreadable_cutoffs_is_refused(store_url, tiny_inputs, tmp_path):
    stamped = _stamp(tiny_inputs["scores"], tmp_path / "stamped.parquet",
                     {b"proactive_care.top_cutoffs": b'{"top_2pct": 2}'})
    with pytest.raises(LoadRefused, match="stamped.parquet: The score file's proactive_care.top_cutoffs"):
        load(tiny_inputs["records"], stamped, tiny_inputs["model"], store_url, progress=False)
    assert table_counts(store_url)["score_runs"] == 0


def test_reload_keeps_existing_demo_users_and_their_passwords(loaded_url, tiny_inputs):
    from app.services.users import authenticate
    from app.store import User

    engine = get_engine(loaded_url)
    with session_scope(engine) as session:
        hashes = dict(session.execute(select(User.username, User.password_hash)).all())
    summary = load(tiny_inputs["records"], tiny_inputs["scores"], tiny_inputs["model"], loaded_url, progress=False)
    with session_scope(engine) as session:
        assert dict(session.execute(select(User.username, User.password_hash)).all()) == hashes
        assert authenticate(session, "practice1", "practice1-demo-pass") is not None
        assert authenticate(session, "practice1", "practice2-demo-pass") is None
    engine.dispose()
    assert summary.demo_users_created == [] and "practice1" in hashes


# --- adding an imported population to the current run ------------------------------------------

IMPORTED_PRACTICE = "IMP001"


def _imported_inputs(target: Path, numbers: list[str] | None = None, *, model_dir: Path) -> dict:
    """A small population at one 'imported' practice, people numbered apart from the tiny one's,
    scored with reasons for everyone and IMD among the missing predictors (as an import is)."""
    from conftest import make_scores

    records = make_records(people_per_practice=3, seed=3)
    numbers = numbers or synthetic_nhs_numbers(len(records.patients), start=500_000)
    renumber = dict(zip(records.patients["nhs_number"], numbers))
    patients = records.patients.assign(nhs_number=numbers, practice_code=IMPORTED_PRACTICE, pcn_code="IMPPCN",
                                       imd_decile=pd.array([pd.NA] * len(numbers), dtype="Int64"))
    records = records.__class__(
        patients=patients,
        practices=pd.DataFrame([(IMPORTED_PRACTICE, "Imported practice", "IMPPCN", "Imported PCN")],
                               columns=["practice_code", "practice_name", "pcn_code", "pcn_name"]),
        conditions=records.conditions.assign(nhs_number=records.conditions["nhs_number"].map(renumber)),
        encounters=records.encounters.assign(nhs_number=records.encounters["nhs_number"].map(renumber)),
    )
    write_records(records, target / "records")
    scores = make_scores(records).assign(
        age_60_plus=True, reasons=json.dumps([{"text": "Aged 80 - raises risk a lot"}]),
        missing_predictors=json.dumps(["imd_decile"]))
    write_score_file(scores, target / "scores.parquet", model_dir)
    return {"records": target / "records", "scores": target / "scores.parquet", "numbers": numbers}


def test_an_import_joins_the_current_run_as_its_own_practice(loaded_url, tiny_inputs, tmp_path):
    from app.services import coverage, patients
    from app.services.access import CurrentUser, Role
    from app.services.users import get_user
    from app.store import AuditEvent

    imported = _imported_inputs(tmp_path, model_dir=tiny_inputs["model"])
    engine = get_engine(loaded_url)
    with session_scope(engine) as session:
        run_before = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
    summary = load(imported["records"], imported["scores"], tiny_inputs["model"], loaded_url,
                   add_to_current=True, progress=False)
    gp = CurrentUser("imported-gp", "Imported GP", Role.PRACTICE, practice_codes=frozenset({IMPORTED_PRACTICE}))
    with session_scope(engine) as session:
        run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
        assert summary.run_id == run.id == run_before.id
        assert run.people == run_before.people + len(imported["numbers"])
        listed = patients.flagged_list(session, gp)
        assert sorted(listed["nhs_number"]) == sorted(imported["numbers"])
        assert listed["reasons"].str.contains("Aged 80").all()
        record = patients.patient_record(session, gp, imported["numbers"][0])
        assert record["missing_predictors"] == ["imd_decile"] and record["conditions"] is not None
        practice1 = get_user(session, "practice1")
        own = patients.flagged_list(session, practice1)
        assert len(own) > 0 and not set(own["nhs_number"]) & set(imported["numbers"])
        table = coverage.coverage(session, get_user(session, "commissioner"), level="practice")
        assert {IMPORTED_PRACTICE, "P001", "P004"} <= set(table["code"])
        added = session.scalars(select(AuditEvent).where(AuditEvent.action == "score_run_add")).one()
        assert added.after["practices"] == [IMPORTED_PRACTICE] and added.after["people"] == len(imported["numbers"])
    engine.dispose()


def test_an_import_clashing_with_the_current_run_adds_nothing(loaded_url, tiny_inputs, tmp_path, capsys):
    imported = _imported_inputs(tmp_path / "first", model_dir=tiny_inputs["model"])
    load(imported["records"], imported["scores"], tiny_inputs["model"], loaded_url, add_to_current=True,
         progress=False)
    before = table_counts(loaded_url)
    with pytest.raises(LoadRefused, match=f"Nothing was added: practice code\\(s\\) {IMPORTED_PRACTICE} are already"):
        load(imported["records"], imported["scores"], tiny_inputs["model"], loaded_url, add_to_current=True,
             progress=False)
    main_people = pd.read_parquet(tiny_inputs["scores"])["nhs_number"].tolist()
    reusing = _imported_inputs(tmp_path / "second", numbers=main_people[:12], model_dir=tiny_inputs["model"])
    (reusing["records"] / "practices.parquet").unlink()
    pd.DataFrame([("IMP002", "Second import", "IMPPCN", "Imported PCN")],
                 columns=["practice_code", "practice_name", "pcn_code", "pcn_name"]).to_parquet(
        reusing["records"] / "practices.parquet", index=False)
    patients_file = reusing["records"] / "patients.parquet"
    pd.read_parquet(patients_file).assign(practice_code="IMP002").to_parquet(patients_file, index=False)
    write_score_file(pd.read_parquet(reusing["scores"]).assign(practice_code="IMP002"), reusing["scores"],
                     tiny_inputs["model"])
    args = ["load", "--records", str(reusing["records"]), "--scores", str(reusing["scores"]),
            "--model", str(tiny_inputs["model"]), "--database", loaded_url, "--add-to-current"]
    assert main(args) == 2
    assert "Nothing was added: 12 NHS number(s)" in capsys.readouterr().err
    assert len(_unchanged_but_refusals(loaded_url, before)) == 2


def _unchanged_but_refusals(url: str, before: dict[str, int]) -> list:
    """Asserts no table but the audit trail changed since ``before``; returns the audited add refusals."""
    from app.store import AuditEvent

    after = table_counts(url)
    assert {t: n for t, n in after.items() if t != "audit_events"} == {
        t: n for t, n in before.items() if t != "audit_events"}
    engine = get_engine(url)
    with session_scope(engine) as session:
        refusals = session.scalars(select(AuditEvent).where(AuditEvent.action == "score_run_add_refused")).all()
    engine.dispose()
    return refusals


def test_an_import_scored_with_other_cutoffs_adds_nothing(loaded_url, tiny_inputs, tmp_path):
    imported = _imported_inputs(tmp_path, model_dir=tiny_inputs["model"])
    other = _stamp(imported["scores"], tmp_path / "other.parquet",
                   {b"proactive_care.top_cutoffs": b'{"top_2pct": 0.013, "top_5pct": 0.05}'})
    before = table_counts(loaded_url)
    with pytest.raises(LoadRefused) as refused:
        load(imported["records"], other, tiny_inputs["model"], loaded_url, add_to_current=True, progress=False)
    assert str(refused.value) == (
        "Nothing was added: these scores use the cut-offs top_2pct 0.013, top_5pct 0.05 but the current run "
        "top_2pct 0.02, top_5pct 0.05; score them with the current run's cut-offs.")
    assert table_counts(loaded_url)["audit_events"] == before["audit_events"] + 1  # the refusal only
    [refusal] = _unchanged_but_refusals(loaded_url, before)
    assert "top_2pct 0.013" in refusal.detail
    # The current run's cut-offs are 0.02/0.05, so these join it.
    defaults = _stamp(imported["scores"], tmp_path / "defaults.parquet",
                      {b"proactive_care.top_cutoffs": b'{"top_2pct": 0.02, "top_5pct": 0.05}'})
    added = load(imported["records"], defaults, tiny_inputs["model"], loaded_url, add_to_current=True,
                 progress=False)
    assert added.people_scored == len(imported["numbers"])


def test_adding_needs_a_current_run(store_url, tiny_inputs, tmp_path):
    imported = _imported_inputs(tmp_path, model_dir=tiny_inputs["model"])
    with pytest.raises(LoadRefused, match="no current score run to add to"):
        load(imported["records"], imported["scores"], tiny_inputs["model"], store_url, add_to_current=True,
             progress=False)
    assert table_counts(store_url)["scores"] == 0
