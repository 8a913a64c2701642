"""Scoring on Dask: a LocalCluster scores feature partitions with global percentiles.

    .venv/bin/python bench/bench_dask.py [--sizes ...] [--partitions 8] [--workers 2]

Prints the whole run and the per-partition throughput the England-scale plan is built on.
"""

from __future__ import annotations

import time

import pandas as pd
from common import build_parser, features_file, main, measure, model_dir, scratch

from model.distributed import dask_client, score_with_dask, split_features


def run_size(people: int, args) -> list:
    features = pd.read_parquet(features_file(people, args.seed))
    work = scratch("bench_dask", people)
    parts = split_features(features, args.partitions)
    for number, part in enumerate(parts):
        part.to_parquet(work / f"part-{number:05d}.parquet")
    rows = len(features)
    del features, parts
    with dask_client(workers=args.workers, processes=True) as client:
        started = time.perf_counter()
        client.run(lambda: None)  # workers up
        with measure(
            f"Dask score, {args.partitions} parts, {args.workers} workers, reasons top 5%",
            people, rows=rows,
        ) as step:
            score_with_dask(
                features_dir=work, model_dir=model_dir(seed=args.seed), out=work / "scores",
                client=client, explain_top=0.05, progress=False,
            )
        step.extra["cluster_seconds"] = time.perf_counter() - started - step.seconds
    per_partition = rows / args.partitions
    # Each worker handles partitions one at a time: per-partition seconds on one worker.
    step.extra["seconds_per_partition_per_worker"] = step.seconds * args.workers / args.partitions
    step.note = (
        f"{per_partition:,.0f} people/partition, "
        f"{step.extra['seconds_per_partition_per_worker']:.2f} s per partition per worker"
    )
    written = pd.read_parquet(work / "scores", columns=["probability"])
    assert len(written) == rows, "every person scored once"
    return [step]


if __name__ == "__main__":
    parser = build_parser("Dask scoring")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    main("Dask scoring", run_size, parser)
