"""The monthly refresh end to end: records -> features -> score + SHAP reasons for the top 5% ->
score file -> score run written to SQLite. Target at 1,000,000 people: under 3 minutes, under 6 GB.

    .venv/bin/python bench/bench_refresh.py [--sizes 1000000]

The store is a fresh migrated SQLite file (the loader also upserts the records' people).
"""

from __future__ import annotations

from common import (SCORE_DATE, build_parser, main, measure, model_dir, records_dir, scratch,
                    sqlite_url)

from app.load import load, upgrade_database
from features.build import build_features
from features.records import read_records
from model import persist
from model.scoring import score_batch

TARGET_SECONDS = 180
TARGET_GIB = 6


def run_size(people: int, args) -> list:
    folder, model_folder = records_dir(people, args.seed), model_dir(seed=args.seed)
    work = scratch("bench_refresh", people)
    url = sqlite_url(work / "store.db")
    upgrade_database(url)
    steps = []
    with measure("refresh total", people) as total:
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
            scores.to_parquet(work / "scores.parquet", index=False)
        steps.append(step)
        with measure("  write score run to SQLite", people) as step:
            load(folder, work / "scores.parquet", model_folder, database_url=url, progress=False)
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
    parser.set_defaults(sizes=[1_000_000])
    main("monthly refresh end to end", run_size, parser)
