"""Fuzzing: generated corrupt inputs for the loader and both importers never raise a traceback and
never leave anything half-written.

Each example starts from a good input (the tiny population and its score file; the small Synthea
export; FHIR bundles made from it) and corrupts it: cells set to hostile values (NUL bytes, control
characters, 5,000-character text, wrong types, far dates), columns dropped, rows duplicated, bytes
flipped, files cut short, JSON subtrees replaced, metadata stripped. The outcome must be either a
complete result or a refusal in sentences (``UserInputError``, exit status 2) with nothing written.

Example counts: ``FUZZ_EXAMPLES`` below (at least 500 in all), times ``PROACTIVE_CARE_FUZZ_SCALE``
(e.g. 10 for a deeper run before a release; 0.2 for a quick look).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from app.cli import main
from features.errors import UserInputError
from synthetic_cohort.importers import import_fhir, import_synthea
from test_import_fhir import synthea_csv_to_fhir
from test_load import table_counts

SCALE = float(os.environ.get("PROACTIVE_CARE_FUZZ_SCALE", "1"))
FUZZ_EXAMPLES = {"loader": 40, "synthea": 140, "fhir": 280}  # the loader's run on each database
FIGURES = {name: {"tried": 0, "refused": 0, "accepted": 0} for name in FUZZ_EXAMPLES}
SMALL = Path(__file__).resolve().parent / "fixtures" / "synthea_small"


def fuzz_settings(name: str):
    return settings(max_examples=max(1, round(FUZZ_EXAMPLES[name] * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "Mur\x00phy", "a\nb", "\r", "\t=cmd|' /C calc'!A0", "\u202eevil", "'; DROP TABLE x;--",
                     "x" * 5_000, "1e309", "NaN", "None", "null", "-1", "2099-01-01", "1800-01-01", "0000-00-00",
                     "９９９", "🙂" * 60, '"', ",", "\\", "../../etc/passwd"]),
)
HOSTILE_VALUE = st.one_of(
    HOSTILE_TEXT, st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-10"), pd.Timestamp("2099-12-31"),
                     pd.Timestamp("1900-01-01")]),
)


def _damage_bytes(data: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["cut", "flip", "insert", "replace"]))
    if not data or how == "replace":
        return draw(st.binary(max_size=200))
    at = draw(st.integers(min_value=0, max_value=len(data) - 1))
    if how == "cut":
        return data[:at]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    return data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]


# --- the loader ----------------------------------------------------------------------------------

LOADER_FILES = ("patients", "practices", "conditions", "encounters", "scores")


@st.composite
def loader_corruption(draw):
    return [(draw(st.sampled_from(LOADER_FILES)),
             draw(st.sampled_from(["cell", "cell", "cell", "drop column", "duplicate row", "bytes", "metadata"])),
             draw(st.integers(min_value=0, max_value=10_000)), draw(HOSTILE_VALUE), draw(st.randoms()))
            for _ in range(draw(st.integers(min_value=1, max_value=3)))]


def _corrupt_table(path: Path, how: str, row: int, value, rng, draw_bytes) -> None:
    stored = pq.read_table(path)
    metadata = stored.schema.metadata or {}
    frame = stored.to_pandas()
    if how == "bytes":
        path.write_bytes(draw_bytes(path.read_bytes()))
        return
    if how == "metadata":
        keys = [k for k in metadata if k.startswith(b"proactive_care.")] or [b"proactive_care.index_date"]
        key = rng.choice(keys)
        metadata = {k: v for k, v in metadata.items() if k != key}
        if value is not None:
            metadata[key] = str(value).encode("utf-8", "surrogatepass")
    elif how == "drop column":
        frame = frame.drop(columns=[rng.choice(list(frame.columns))])
    elif how == "duplicate row" and len(frame):
        frame = pd.concat([frame, frame.iloc[[row % len(frame)]]], ignore_index=True)
    elif how == "cell" and len(frame):
        column = rng.choice(list(frame.columns))
        frame[column] = frame[column].astype(object)
        frame.loc[row % len(frame), column] = value
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # a mixed column: store it as text
        table = pa.Table.from_pandas(frame.astype({c: str for c in frame.columns if frame[c].dtype == object}),
                                     preserve_index=False)
    pq.write_table(table.replace_schema_metadata({**metadata, **(table.schema.metadata or {})}), path)


@fuzz_settings("loader")
@given(corruptions=loader_corruption(), data=st.data())
def test_fuzzed_loads_refuse_in_sentences_and_write_nothing(loaded_url, tiny_inputs, tmp_path_factory, capsys,
                                                            corruptions, data):
    work = tmp_path_factory.mktemp("fuzz_load")
    shutil.copytree(tiny_inputs["records"], work / "records")
    shutil.copy(tiny_inputs["scores"], work / "scores.parquet")
    for file, how, row, value, rng in corruptions:
        path = work / "scores.parquet" if file == "scores" else work / "records" / f"{file}.parquet"
        if path.exists():
            try:
                _corrupt_table(path, how, row, value, rng, lambda b: _damage_bytes(b, data.draw))
            except (pa.ArrowInvalid, OSError):  # already damaged by an earlier corruption: damage it more
                path.write_bytes(_damage_bytes(path.read_bytes(), data.draw))
    before = table_counts(loaded_url)
    capsys.readouterr()
    status = main(["load", "--records", str(work / "records"), "--scores", str(work / "scores.parquet"),
                   "--model", str(tiny_inputs["model"]), "--database", loaded_url])
    err = capsys.readouterr().err
    FIGURES["loader"]["tried"] += 1
    assert status in (0, 2) and "Traceback" not in err, err
    if status == 2:
        FIGURES["loader"]["refused"] += 1
        assert err.startswith("proactive-care load: ") and err.strip(), err
        after = table_counts(loaded_url)
        assert {t: n for t, n in after.items() if t != "audit_events"} == {
            t: n for t, n in before.items() if t != "audit_events"}, f"half-written: {corruptions}"
    else:
        FIGURES["loader"]["accepted"] += 1
        scores = pq.read_table(work / "scores.parquet").num_rows
        from sqlalchemy import text

        from app.db import get_engine
        engine = get_engine(loaded_url)
        with engine.connect() as connection:
            people = connection.execute(text("SELECT people FROM score_runs WHERE is_current")).scalar()
            rows = connection.execute(text("SELECT COUNT(*) FROM scores s JOIN score_runs r ON s.run_id = r.id "
                                           "WHERE r.is_current")).scalar()
        engine.dispose()
        assert people == rows == scores


# --- the importers -------------------------------------------------------------------------------

def _check_import(importer, folder: Path, out: Path, name: str) -> None:
    FIGURES[name]["tried"] += 1
    try:
        importer(folder, out)
    except UserInputError as refusal:
        FIGURES[name]["refused"] += 1
        assert str(refusal).strip()
        assert not out.exists(), "a refused import wrote its records folder"
    else:
        FIGURES[name]["accepted"] += 1
        assert (out / "patients.parquet").exists() and (out / "import_report.json").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "staging left behind"


SYNTHEA_FILES = ("patients.csv", "conditions.csv", "encounters.csv", "medications.csv", "organizations.csv")


@st.composite
def synthea_corruption(draw):
    return [(draw(st.sampled_from(SYNTHEA_FILES)),
             draw(st.sampled_from(["cell", "cell", "cell", "bytes", "line", "header", "delete"])),
             draw(st.integers(min_value=0, max_value=1000)), draw(HOSTILE_TEXT))
            for _ in range(draw(st.integers(min_value=1, max_value=3)))]


def _corrupt_csv(path: Path, how: str, at: int, value: str, draw) -> None:
    if how == "delete":
        path.unlink()
        return
    if how == "bytes":
        path.write_bytes(_damage_bytes(path.read_bytes(), draw))
        return
    lines = path.read_bytes().decode("utf-8", "replace").splitlines(keepends=True)
    if how == "line" and lines:
        lines[at % len(lines)] = value + "\n"
    elif how == "header" and lines:
        names = lines[0].rstrip("\n").split(",")
        names[at % len(names)] = value.replace("\n", " ")
        lines[0] = ",".join(names) + "\n"
    elif len(lines) > 1:  # one field of a data row, written as a CSV writer would (quoted when needed)
        row = 1 + at % (len(lines) - 1)
        fields = lines[row].rstrip("\n").split(",")
        quoted = '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value
        fields[at % len(fields)] = quoted
        lines[row] = ",".join(fields) + "\n"
    path.write_text("".join(lines), encoding="utf-8", errors="surrogatepass")


@fuzz_settings("synthea")
@given(corruptions=synthea_corruption(), data=st.data())
def test_fuzzed_synthea_exports_refuse_in_sentences_and_write_nothing(tmp_path_factory, corruptions, data):
    work = tmp_path_factory.mktemp("fuzz_synthea")
    shutil.copytree(SMALL, work / "export")
    for file, how, at, value in corruptions:
        if (work / "export" / file).exists():
            _corrupt_csv(work / "export" / file, how, at, value, data.draw)
    _check_import(import_synthea, work / "export", work / "records", "synthea")


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), HOSTILE_TEXT),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["resourceType", "id", "resource", "entry", "name",
                                                                "given", "family", "birthDate", "gender",
                                                                "subject", "reference", "code", "coding",
                                                                "class", "period", "start", "extension"])
                                               | st.text(max_size=8), children, max_size=4)),
    max_leaves=12,
)


def _paths(value, prefix=()):
    """Every place in a JSON value: (path, value) pairs."""
    yield prefix, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, prefix + (key,))


def _replace(document, path, new):
    if not path:
        return new
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return document


@pytest.fixture(scope="module")
def fhir_bundles(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fhir_source") / "bundles"
    synthea_csv_to_fhir(SMALL, folder)
    return folder


@fuzz_settings("fhir")
@given(data=st.data())
def test_fuzzed_fhir_bundles_refuse_in_sentences_and_write_nothing(fhir_bundles, tmp_path_factory, data):
    work = tmp_path_factory.mktemp("fuzz_fhir")
    shutil.copytree(fhir_bundles, work / "bundles")
    files = sorted((work / "bundles").glob("*.json"))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(files))
        how = data.draw(st.sampled_from(["replace", "replace", "delete key", "nest", "bytes"]))
        if how == "bytes":
            path.write_bytes(_damage_bytes(path.read_bytes(), data.draw))
            continue
        try:
            document = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
        places = list(_paths(document))
        where, value = data.draw(st.sampled_from(places))
        if how == "replace":
            document = _replace(document, where, data.draw(JSON_VALUES))
        elif how == "delete key" and where:
            parent = document
            for key in where[:-1]:
                parent = parent[key]
            del parent[where[-1]]
        elif how == "nest":  # written as text: too deep for json.loads here, as for the importer
            depth = data.draw(st.sampled_from([3, 70, 5_000]))
            text = json.dumps(_replace(document, where, "\ufffcnest"))
            path.write_text(text.replace('"\\ufffcnest"', "[" * depth + json.dumps(value) + "]" * depth))
            continue
        path.write_text(json.dumps(document))
    _check_import(import_fhir, work / "bundles", work / "records", "fhir")


def test_fuzz_figures(capsys):
    """Runs after the fuzzers (file order): prints how many corrupt inputs each saw."""
    tried = sum(figures["tried"] for figures in FIGURES.values())
    if tried:
        with capsys.disabled():
            print(f"\nfuzzing: {json.dumps(FIGURES)}; {tried} generated inputs, no traceback, nothing half-written")
    if all(figures["tried"] for figures in FIGURES.values()) and SCALE >= 1:
        assert tried >= 500
