"""The monthly refresh end to end: records -> features -> score + SHAP reasons for the top 5% ->
score file -> score run written to SQLite. Target at 1,000,000 people: under 3 minutes, under 6 GB.

    .venv/bin/python bench/bench_refresh.py [--sizes 1000000] [--engine local|dask]

The store is a fresh migrated SQLite file (the loader also upserts the records' people).
``--engine dask`` builds features and scores on a LocalCluster of two worker processes (started
before the clock) and gathers the partitions into the one score file the loader reads.
"""

from __future__ import annotations

import pandas as pd
from common import (SCORE_DATE, build_parser, main, measure, model_dir, records_dir, scratch,
                    sqlite_url)

from app.load import load, upgrade_database
from features.build import build_features
from features.records import read_records
from model import persist
from model.distributed import dask_client, score_with_dask
from model.scoring import score_batch

TARGET_SECONDS = 180
TARGET_GIB = 6


def run_size(people: int, args) -> list:
    if args.engine == "dask":
        with dask_client(workers=2, processes=True) as client:
            client.run(lambda: None)  # workers up before the clock starts
            return _refresh(people, args, client)
    return _refresh(people, args, None)


def _refresh(people: int, args, client) -> list:
    folder, model_folder = records_dir(people, args.seed), model_dir(seed=args.seed)
    work = scratch("bench_refresh", people)
    url = sqlite_url(work / "store.db")
    upgrade_database(url)
    score_file = work / "scores.parquet"
    steps = []
    with measure(f"refresh total ({args.engine})", people) as total:
        if client is None:
            with measure("  read records", people) as step:
                records = read_records(folder)
            steps.append(step)
            with measure("  build features", people) as step:
                features = build_features(records, SCORE_DATE, with_label=False)
            steps.append(step)
            del records
            with measure(f"  score + SHAP top {args.explain_top:.0%}", people) as step:
                scores = score_batch(
                    features, persist.load(model_folder), explain_top=args.explain_top, explain_flagged=False
                )
            steps.append(step)
            del features
            with measure("  write score file", people) as step:
                scores.to_parquet(score_file, index=False)
            steps.append(step)
        else:
            with measure(f"  split, features, score + SHAP top {args.explain_top:.0%} on Dask", people) as step:
                score_with_dask(
                    records_dir=folder, model_dir=model_folder, out=work / "parts", index_date=SCORE_DATE,
                    client=client, partitions=8, explain_top=args.explain_top, progress=False,
                )
            steps.append(step)
            with measure("  gather partitions into one score file", people) as step:
                scores = pd.read_parquet(work / "parts")
                scores.to_parquet(score_file, index=False)
            steps.append(step)
        with measure("  write score run to SQLite", people) as step:
            load(folder, score_file, model_folder, database_url=url, progress=False)
        steps.append(step)
    for step in [total, *steps]:
        step.rows = len(scores)
    total.note = (
        f"target < {TARGET_SECONDS} s and < {TARGET_GIB} GiB: "
        + ("met" if total.seconds < TARGET_SECONDS and total.peak_rss_bytes < TARGET_GIB * 1024**3 else "MISSED")
    )
    return [total, *steps]


if __name__ == "__main__":
    parser = build_parser("monthly refresh end to end")
    parser.add_argument("--explain-top", type=float, default=0.05)
    parser.add_argument("--engine", choices=("local", "dask"), default="local")
    parser.set_defaults(sizes=[1_000_000])
    main("monthly refresh end to end", run_size, parser)
