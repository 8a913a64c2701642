"""Imports refuse damaged input whole, in sentences, before trusting its shape: Synthea CSV files cut
mid-row or with ragged rows, FHIR bundles that are too big, too deep or of the wrong JSON types."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.cli import main
from synthetic_cohort.importers import ImportProblems, import_fhir, import_synthea
from synthetic_cohort.importers import fhir

SMALL = Path(__file__).resolve().parent / "fixtures" / "synthea_small"


@pytest.fixture
def export(tmp_path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(SMALL, folder)
    return folder


def refused(importer, folder: Path, out: Path) -> list:
    with pytest.raises(ImportProblems) as caught:
        importer(folder, out)
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return caught.value.problems


# --- Synthea CSV -------------------------------------------------------------------------------

def test_a_file_cut_mid_row_is_refused(export, tmp_path):
    text = (export / "encounters.csv").read_bytes()
    (export / "encounters.csv").write_bytes(text[: len(text) - 40])  # the last row loses its end
    last_line = text.count(b"\n")  # the cut row's line (the header is line 1)
    problems = refused(import_synthea, export, tmp_path / "records")
    assert [(p.file, p.row) for p in problems] == [("encounters.csv", f"row {last_line}")], problems
    assert "fields but the header has" in problems[0].message or "does not end with a line break" in problems[0].message


def test_a_file_cut_inside_its_last_field_is_refused(export, tmp_path):
    text = (export / "patients.csv").read_bytes()
    (export / "patients.csv").write_bytes(text[:-3])  # "50000\n" -> "500": every field still there
    (problem,) = refused(import_synthea, export, tmp_path / "records")
    assert problem.file == "patients.csv" and "does not end with a line break" in problem.message


def test_ragged_rows_are_named_by_line(export, tmp_path):
    lines = (export / "conditions.csv").read_text().splitlines(keepends=True)
    lines[2] = lines[2].rstrip("\n") + ",extra,fields\n"  # line 3 (data row 2) has two fields too many
    lines[4] = ",".join(lines[4].split(",")[:3]) + "\n"  # line 5 is short
    (export / "conditions.csv").write_text("".join(lines))
    problems = refused(import_synthea, export, tmp_path / "records")
    assert [(p.file, p.row) for p in problems] == [("conditions.csv", "row 3"), ("conditions.csv", "row 5")]
    assert "this row has 8 fields but the header has 6" in problems[0].message
    assert "this row has 3 fields but the header has 6" in problems[1].message


def test_a_quote_left_open_is_refused(export, tmp_path):
    with (export / "encounters.csv").open("a") as handle:
        handle.write('e-9999,2020-01-01T00:00:00Z,2020-01-01T01:00:00Z,p-0001,o-1,"ambulatory\n')
    problems = refused(import_synthea, export, tmp_path / "records")
    assert problems and all(p.file == "encounters.csv" for p in problems)


def test_cli_says_so_in_sentences(export, tmp_path, capsys):
    text = (export / "encounters.csv").read_bytes()
    (export / "encounters.csv").write_bytes(text[: len(text) - 40])
    assert main(["import", "synthea", str(export), "--out", str(tmp_path / "records")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "encounters.csv" in err and "wrote nothing" in err


# --- FHIR bundles ------------------------------------------------------------------------------

def bundle_folder(tmp_path: Path, content) -> Path:
    folder = tmp_path / "bundles"
    folder.mkdir(exist_ok=True)
    (folder / "b.json").write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-01-01",
           "name": [{"family": "Lovelace", "given": ["Ada"]}]}
BAD_BUNDLES = {
    "nested 100,000 deep": ('{"resourceType": "Bundle", "entry": ' + "[" * 100_000 + "]" * 100_000 + "}",
                            "nests objects and lists more than 64 deep"),
    "a resource nested 500 deep": ({"resourceType": "Bundle", "entry": [{"resource": {
        **PATIENT, "extension": json.loads("[" * 500 + "]" * 500)}}]}, "nests objects and lists more than 64 deep"),
    "entry is text": ({"resourceType": "Bundle", "entry": "everyone"}, "is text, not a list of entries"),
    "an entry is a number": ({"resourceType": "Bundle", "entry": [7]}, "is a number, not an object"),
    "a resource is a list": ({"resourceType": "Bundle", "entry": [{"resource": [PATIENT]}]},
                             "is not a FHIR resource"),
    "a resourceType is a list": ({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": ["Patient"]}}]},
                                 "is not a FHIR resource"),
    "a patient's fields have the wrong types": ({"resourceType": "Bundle", "entry": [{"resource": {
        **PATIENT, "name": "Ada", "birthDate": 1950}}]}, "Patient.name"),
    "not a bundle": ([PATIENT], "is not a FHIR Bundle"),
    "not JSON": ("{'resourceType': 'Bundle'", "is not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(BAD_BUNDLES))
def test_bad_bundles_are_refused_in_sentences(tmp_path, capsys, name):
    content, words = BAD_BUNDLES[name]
    folder = bundle_folder(tmp_path, content)
    problems = refused(import_fhir, folder, tmp_path / "records")
    assert any(words in str(p) for p in problems), problems
    assert main(["import", "fhir", str(folder), "--out", str(tmp_path / "records")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and words in err


def test_a_bundle_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    folder = bundle_folder(tmp_path, {"resourceType": "Bundle", "entry": [{"resource": PATIENT}] * 200})
    monkeypatch.setattr(fhir, "MAX_BUNDLE_BYTES", 4096)
    read = []
    monkeypatch.setattr(fhir.json, "loads", lambda *a, **k: read.append(1))
    (problem,) = refused(import_fhir, folder, tmp_path / "records")
    assert "a bundle may be; export smaller bundles" in problem.message and not read


def test_death_certification_after_death_is_left_out_and_counted(export, tmp_path):
    """Synthea records a death certification encounter days after a death (the sample has ten): not a
    contact with the person, so it is left out of the records, which refuse events after death."""
    from features.records import read_records

    with (export / "encounters.csv").open("a") as handle:
        handle.write("e-99,2024-05-04T10:00:00Z,2024-05-04T10:15:00Z,p-0003,o-hospital,,,ambulatory,308646001,"
                     "Death Certification,100,100,0,,\n")  # p-0003 died on 2024-05-01
    report = import_synthea(export, tmp_path / "records")
    assert report["skipped"] == {"encounters dated after the patient's death (e.g. death certification)": 1}
    records = read_records(tmp_path / "records")
    died = records.patients["date_of_death"].notna()
    dead = records.patients.loc[died, "nhs_number"]
    assert (records.encounters.loc[records.encounters["nhs_number"].isin(dead), "date"] <= "2024-05-01").all()
