"""Bad input: every problem is listed with file, row and column, and nothing is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from synthetic_cohort.importers import ImportProblems, import_synthea

SMALL = Path(__file__).resolve().parent / "fixtures" / "synthea_small"


@pytest.fixture
def export(tmp_path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(SMALL, folder)
    return folder


def edit(folder: Path, file_name: str, change) -> None:
    frame = pd.read_csv(folder / file_name, dtype=str, keep_default_na=False)
    changed = change(frame)  # edits in place, or returns a new frame
    frame = frame if changed is None else changed
    frame.to_csv(folder / file_name, index=False)


def problems_of(folder: Path, out: Path) -> list:
    with pytest.raises(ImportProblems) as caught:
        import_synthea(folder, out)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return caught.value.problems


def test_a_missing_file_is_named(export, tmp_path):
    (export / "conditions.csv").unlink()
    (problem,) = problems_of(export, tmp_path / "records")
    assert problem.file == "conditions.csv" and "missing" in problem.message


def test_a_missing_column_is_named(export, tmp_path):
    edit(export, "encounters.csv", lambda f: f.drop(columns=["ENCOUNTERCLASS"]))
    (problem,) = problems_of(export, tmp_path / "records")
    assert (problem.file, problem.row, problem.column) == ("encounters.csv", "header", "ENCOUNTERCLASS")


def test_an_unparseable_date_names_file_row_and_column(export, tmp_path):
    def break_date(frame):
        frame.loc[1, "START"] = "01/05/2015"  # data row 2 is line 3 of the file
    edit(export, "conditions.csv", break_date)
    (problem,) = problems_of(export, tmp_path / "records")
    assert (problem.file, problem.row, problem.column) == ("conditions.csv", "row 3", "START")
    assert "01/05/2015" in problem.message


def test_an_unknown_encounter_class_is_reported(export, tmp_path):
    def strange_class(frame):
        frame.loc[4, "ENCOUNTERCLASS"] = "teleportation"
    edit(export, "encounters.csv", strange_class)
    (problem,) = problems_of(export, tmp_path / "records")
    assert (problem.file, problem.row, problem.column) == ("encounters.csv", "row 6", "ENCOUNTERCLASS")
    assert "teleportation" in problem.message


def test_a_condition_for_an_unknown_patient_is_reported(export, tmp_path):
    def stranger(frame):
        frame.loc[0, "PATIENT"] = "nobody"
    edit(export, "conditions.csv", stranger)
    (problem,) = problems_of(export, tmp_path / "records")
    assert (problem.file, problem.row, problem.column) == ("conditions.csv", "row 2", "PATIENT")
    assert "nobody" in problem.message


def test_all_problems_come_in_one_report_and_an_earlier_import_survives(export, tmp_path):
    out = tmp_path / "records"
    import_synthea(SMALL, out)
    before = sorted(p.name for p in out.iterdir())

    def no_code(frame):
        frame.loc[1, "CODE"] = ""
    edit(export, "conditions.csv", no_code)

    def several(frame):
        frame.loc[0, "START"] = "yesterday"
        frame.loc[2, "ENCOUNTERCLASS"] = "teleportation"
        frame.loc[3, "PATIENT"] = "nobody"
    edit(export, "encounters.csv", several)
    edit(export, "patients.csv", lambda f: f.__setitem__("GENDER", ["F", "X", "M"]))
    with pytest.raises(ImportProblems) as caught:
        import_synthea(export, out)
    found = {(p.file, p.row, p.column) for p in caught.value.problems}
    assert found == {
        ("encounters.csv", "row 2", "START"),
        ("encounters.csv", "row 4", "ENCOUNTERCLASS"),
        ("encounters.csv", "row 5", "PATIENT"),
        ("patients.csv", "row 3", "GENDER"),
        ("conditions.csv", "row 3", "CODE"),
    }
    assert sorted(p.name for p in out.iterdir()) == before
    message = str(caught.value)
    assert message.startswith(f"The import from {export} found 5 problems and wrote nothing")


def test_the_cli_prints_the_report_without_a_traceback(export, tmp_path, capsys):
    from app.cli import main

    (export / "patients.csv").unlink()
    assert main(["import", "synthea", str(export), "--out", str(tmp_path / "records")]) == 2
    error = capsys.readouterr().err
    assert "patients.csv" in error and "Traceback" not in error


def test_events_before_birth_are_refused_at_their_source_row(export, tmp_path):
    def before_birth(frame):
        frame.loc[0, "START"] = "1900-01-01"  # Ada was born in 1950
    edit(export, "conditions.csv", before_birth)
    (problem,) = problems_of(export, tmp_path / "records")
    assert (problem.file, problem.row, problem.column) == ("conditions.csv", "row 2", "START")
    assert "1900-01-01 is before the patient's birth (1950-03-01)" in problem.message


def test_an_empty_file_is_reported_not_raised(export, tmp_path):
    (export / "encounters.csv").write_text("")
    (problem,) = problems_of(export, tmp_path / "records")
    assert problem.file == "encounters.csv" and "cannot be read as CSV" in problem.message
