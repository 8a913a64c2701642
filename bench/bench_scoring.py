"""Scoring alone: score_batch (probabilities, percentiles, flags, segments) without reasons.

    .venv/bin/python bench/bench_scoring.py [--sizes ...] [--threads N]

Features are built once and cached (bench/out/inputs); the model is the one trained on the
smallest default population (scoring cost does not depend on the training size). ``--threads``
sets PROACTIVE_CARE_THREADS for the compiled trees (default: the environment's, else 1).
"""

from __future__ import annotations

import os

import pandas as pd
from common import build_parser, features_file, main, measure, model_dir

from model import persist
from model.compiled_trees import thread_count
from model.scoring import predict_probability, score_batch


def run_size(people: int, args) -> list:
    if args.threads:
        os.environ["PROACTIVE_CARE_THREADS"] = str(args.threads)
    threads = f"{thread_count()} thread{'s' if thread_count() > 1 else ''}"
    features = pd.read_parquet(features_file(people, args.seed))
    model = persist.load(model_dir(seed=args.seed))
    predict_probability(model, features.iloc[:100])  # compiled trees loaded before the clock
    with measure("predict, scikit-learn", people, rows=len(features)) as sklearn_predict:
        model.predict_probability(features)
    with measure(f"predict, compiled trees, {threads}", people, rows=len(features)) as predict:
        predict_probability(model, features)
    with measure(f"score_batch, no reasons, {threads}", people, rows=len(features)) as scoring:
        score_batch(features, model, explain_flagged=False)
    return [sklearn_predict, predict, scoring]


if __name__ == "__main__":
    parser = build_parser("scoring")
    parser.add_argument("--threads", type=int, default=None, help="PROACTIVE_CARE_THREADS for this run")
    main("scoring", run_size, parser)
