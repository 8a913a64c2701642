"""Scoring alone: score_batch (probabilities, percentiles, flags, segments) without reasons.

    .venv/bin/python bench/bench_scoring.py [--sizes ...]

Features are built once and cached (bench/out/inputs); the model is the one trained on the
smallest default population (scoring cost does not depend on the training size).
"""

from __future__ import annotations

import pandas as pd
from common import build_parser, features_file, main, measure, model_dir

from model import persist
from model.scoring import score_batch


def run_size(people: int, args) -> list:
    features = pd.read_parquet(features_file(people, args.seed))
    model = persist.load(model_dir(seed=args.seed))
    with measure("predict probability only", people, rows=len(features)) as predict:
        model.predict_probability(features)
    with measure("score_batch, no reasons", people, rows=len(features)) as scoring:
        score_batch(features, model, explain_flagged=False)
    return [predict, scoring]


if __name__ == "__main__":
    main("scoring", run_size, build_parser("scoring"))
