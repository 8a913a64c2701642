"""Loading a score run (with its records) into the SQLite store with `app.load.load`.

    .venv/bin/python bench/bench_load.py [--sizes ...]

Each size loads into a fresh, migrated SQLite file under bench/out/scratch.
"""

from __future__ import annotations

import pandas as pd
from common import build_parser, main, measure, model_dir, records_dir, scores_file, scratch, sqlite_url

from app.load import load, upgrade_database


def run_size(people: int, args) -> list:
    records, scores, model = records_dir(people, args.seed), scores_file(people, args.seed), model_dir(seed=args.seed)
    url = sqlite_url(scratch("bench_load", people) / "store.db")
    upgrade_database(url)
    scored = len(pd.read_parquet(scores, columns=["nhs_number"]))
    with measure("load records + score run into SQLite", people, rows=scored) as step:
        summary = load(records, scores, model, database_url=url, progress=False)
    step.note = f"validate + write; {summary.patients:,} patients, {summary.encounter_summaries:,} encounter summaries"
    return [step]


if __name__ == "__main__":
    main("loading into the store", run_size, build_parser("loading into the store"))
