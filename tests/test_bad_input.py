"""Bad input gets one clear report and nothing written, on SQLite and PostgreSQL alike: text the store
cannot hold, events after death or before birth, score files that do not say where they came from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from app.cli import main
from app.load import LoadRefused, load
from conftest import make_records, make_scores, write_score_file
from features.records import write_records
from test_load import table_counts


def _inputs(tmp_path: Path, tiny_inputs: dict, change) -> dict:
    """The tiny population with ``change(records)`` applied, scored as `score` writes it."""
    records = make_records()
    change(records)
    write_records(records, tmp_path / "records")
    write_score_file(make_scores(make_records()), tmp_path / "scores.parquet", tiny_inputs["model"])
    return {"records": tmp_path / "records", "scores": tmp_path / "scores.parquet", "model": tiny_inputs["model"]}


def _refused(url: str, inputs: dict) -> str:
    before = table_counts(url)
    with pytest.raises(LoadRefused) as refused:
        load(inputs["records"], inputs["scores"], inputs["model"], url, progress=False)
    assert table_counts(url) == before, "something was written"
    return str(refused.value)


def _set(table: str, column: str, row: int, value):
    def change(records):
        frame = getattr(records, table)
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return change


TEXT_THE_STORE_CANNOT_HOLD = {
    "a NUL byte in a family name": (_set("patients", "family_name", 3, "Mur\x00phy"), "patients.parquet row 4, column family_name",
                                    "holds a control character"),
    "a 5 MB given name": (_set("patients", "given_name", 5, "x" * 5_000_000), "patients.parquet row 6, column given_name",
                          "(5,000,000 characters) is longer than 100 characters"),
    "a 201-character practice name": (_set("practices", "practice_name", 1, "P" * 201),
                                      "practices.parquet row 2, column practice_name", "is longer than 200 characters"),
    "a 33-character practice code": (_set("practices", "practice_code", 0, "C" * 33),
                                     "practices.parquet row 1, column practice_code", "is longer than 32 characters"),
    "a right-to-left override in a name": (_set("patients", "given_name", 0, "\u202eyrraH"),
                                           "patients.parquet row 1, column given_name", "holds a control character"),
}


@pytest.mark.parametrize("name", sorted(TEXT_THE_STORE_CANNOT_HOLD))
def test_text_the_store_cannot_hold_is_refused_whole(loaded_url, tiny_inputs, tmp_path, name):
    change, where, words = TEXT_THE_STORE_CANNOT_HOLD[name]
    message = _refused(loaded_url, _inputs(tmp_path, tiny_inputs, change))
    assert f"{where}: value " in message and words in message, message
    assert len(message) < 5_000, "the report quotes the whole value"


def _died(records, row: int, on: str) -> str:
    records.patients["date_of_death"] = records.patients["date_of_death"].astype("datetime64[ns]")
    records.patients.loc[row, "date_of_death"] = pd.Timestamp(on)
    return records.patients.loc[row, "nhs_number"]


def test_events_after_death_are_refused_with_counts_and_examples(loaded_url, tiny_inputs, tmp_path):
    people = {}

    def change(records):
        person = _died(records, 0, "2021-01-01")
        people["person"] = person
        people["encounters"] = int((records.encounters["nhs_number"] == person).sum())
        people["conditions"] = int((records.conditions["nhs_number"] == person).sum())
        # A second death, on the day of an encounter: that encounter is allowed.
        other = records.encounters[records.encounters["nhs_number"] != person].iloc[0]
        died = records.patients.index[records.patients["nhs_number"] == other["nhs_number"]][0]
        _died(records, died, f"{other['date']:%Y-%m-%d}")
        later = (records.encounters["nhs_number"] == other["nhs_number"]) & (records.encounters["date"] > other["date"])
        people["encounters"] += int(later.sum())
        people["conditions"] += int(((records.conditions["nhs_number"] == other["nhs_number"])
                                     & (records.conditions["diagnosed_on"] > other["date"])).sum())

    message = _refused(loaded_url, _inputs(tmp_path, tiny_inputs, change))
    after_death = [line for line in message.splitlines() if "after the person's death on" in line]
    assert people["encounters"] > 0 and people["conditions"] > 0
    assert any("encounters.parquet row" in line and "column date: date 20" in line
               and "is after the person's death on 2021-01-01" in line for line in after_death), message
    total = people["encounters"] + people["conditions"]
    listed = [line for line in after_death if " row " in line]
    summaries = [line for line in after_death if "more like these" in line]
    counted = len(listed) + sum(int(line.split(": ")[1].split(" more")[0].replace(",", "")) for line in summaries)
    assert counted == total, message
    assert all(f"({int(s.split('(')[-1].split(' in all')[0].replace(',', ''))} in all)" in s for s in summaries)


def test_diagnosis_before_birth_names_both_dates(loaded_url, tiny_inputs, tmp_path):
    message = _refused(loaded_url, _inputs(tmp_path, tiny_inputs,
                                           _set("conditions", "diagnosed_on", 2, pd.Timestamp("1850-05-01"))))
    assert "conditions.parquet row 3, column diagnosed_on: date 1850-05-01 is before the person's birth on 19" in message


# --- score files must say where they came from ---------------------------------------------------

def _restamp(source: Path, target: Path, drop: tuple[bytes, ...] = (), add: dict | None = None) -> Path:
    table = pq.read_table(source)
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k not in drop}
    pq.write_table(table.replace_schema_metadata({**metadata, **(add or {})}), target)
    return target


INDEX_DATE_KEY, SHA_KEY, CUTOFFS_KEY = (b"proactive_care.index_date", b"proactive_care.model_sha256",
                                        b"proactive_care.top_cutoffs")
UNSOURCED = {
    "every provenance key stripped": ({"drop": (INDEX_DATE_KEY, SHA_KEY, CUTOFFS_KEY)},
                                      "does not record its index date, model's sha256, top cut-offs"),
    "no index date": ({"drop": (INDEX_DATE_KEY,)}, "does not record its index date (schema metadata proactive_care.index_date)"),
    "no model sha256": ({"drop": (SHA_KEY,)}, "does not record its model's sha256"),
    "no cut-offs": ({"drop": (CUTOFFS_KEY,)}, "does not record its top cut-offs"),
    "an index date that is not a date": ({"add": {INDEX_DATE_KEY: b"next Tuesday"}}, "'next Tuesday' is not a date"),
    "a sha256 that is not one": ({"add": {SHA_KEY: b"../../etc"}}, "is not 64 hexadecimal digits"),
}


@pytest.mark.parametrize("name", sorted(UNSOURCED))
def test_score_file_without_provenance_is_refused(loaded_url, tiny_inputs, tmp_path, name):
    change, words = UNSOURCED[name]
    stripped = _restamp(tiny_inputs["scores"], tmp_path / "stripped.parquet", **change)
    message = _refused(loaded_url, {**tiny_inputs, "scores": stripped})
    assert "stripped.parquet: " in message and words in message, message


def test_cli_refuses_a_stripped_score_file_in_one_report(store_url, tiny_inputs, tmp_path, capsys):
    stripped = _restamp(tiny_inputs["scores"], tmp_path / "stripped.parquet", drop=(INDEX_DATE_KEY, SHA_KEY, CUTOFFS_KEY))
    shutil.copytree(tiny_inputs["records"], tmp_path / "records")
    status = main(["load", "--records", str(tmp_path / "records"), "--scores", str(stripped),
                   "--model", str(tiny_inputs["model"]), "--database", store_url])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "Nothing was loaded: 1 problem(s)" in err and "write it with `proactive-care score`" in err
    assert table_counts(store_url)["score_runs"] == 0
