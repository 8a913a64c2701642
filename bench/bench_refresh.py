"""The monthly refresh end to end: records split by person -> features partition by partition ->
score + SHAP reasons for the top 5% -> score file -> score run written to SQLite. Target at
1,000,000 people: under 3 minutes, under 6 GB.

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
from features.partitioned import build_features_partitioned, read_features, split_records
from model import persist
from model.distributed import dask_client, score_with_dask
from model.score_file import DEFAULT_TOP_CUTOFFS
from model.scoring import read_score_metadata, score_batch, write_scores

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
            # Features partition by partition: only one partition's records are ever in memory.
            with measure("  split records into 8", people) as step:
                split_records(folder, work / "split", 8, progress=False)
            steps.append(step)
            with measure("  build features by partition", people) as step:
                build_features_partitioned(work / "split", SCORE_DATE, work / "features", progress=False)
                features = read_features(work / "features")
            steps.append(step)
            with measure(f"  score + SHAP top {args.explain_top:.0%}", people) as step:
                scores = score_batch(
                    features, persist.load(model_folder), explain_top=args.explain_top, explain_flagged=False
                )
            steps.append(step)
            del features
            with measure("  write score file", people) as step:
                write_scores(scores, score_file, SCORE_DATE, persist.model_sha256(model_folder), DEFAULT_TOP_CUTOFFS)
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
                write_scores(scores, score_file, **read_score_metadata(work / "parts"))
            steps.append(step)
        rows = len(scores)
        del scores  # the loader reads the score file
        with measure("  write score run to SQLite", people) as step:
            load(folder, score_file, model_folder, database_url=url, progress=False)
        steps.append(step)
    for step in [total, *steps]:
        step.rows = rows
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
