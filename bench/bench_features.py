"""Feature building: in one piece, and partition by partition (sequential and on Dask).

    .venv/bin/python bench/bench_features.py [--sizes 100000,360000,1000000] [--partitions 8]
"""

from __future__ import annotations

from common import SCORE_DATE, build_parser, main, measure, records_dir, scratch

from features.build import build_features
from features.partitioned import build_features_partitioned, split_records
from features.records import read_records
from model.distributed import dask_client


def run_size(people: int, args) -> list:
    folder = records_dir(people, args.seed)
    work = scratch("bench_features", people)
    with measure("read records", people) as read:
        records = read_records(folder)
    with measure("build features", people) as build:
        features = build_features(records, SCORE_DATE, with_label=False)
    registered = len(features)
    read.rows = build.rows = registered
    del records, features
    with measure(f"split records into {args.partitions}", people, rows=registered) as split:
        split_records(folder, work / "split", args.partitions, progress=False)
    with measure("features by partition, in turn", people, rows=registered) as sequential:
        build_features_partitioned(work / "split", SCORE_DATE, work / "seq", with_label=False, progress=False)
    with dask_client(workers=args.workers, processes=True) as client:
        client.run(lambda: None)  # workers up: starting them is not part of the step
        with measure(f"features by partition, Dask {args.workers} workers", people, rows=registered) as on_dask:
            build_features_partitioned(
                work / "split", SCORE_DATE, work / "dask", with_label=False, client=client, progress=False
            )
    on_dask.note = "worker processes (LocalCluster) already started"
    return [read, build, split, sequential, on_dask]


if __name__ == "__main__":
    parser = build_parser("feature building")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    main("feature building", run_size, parser)
