"""SHAP reasons in words for the flagged (top 5%) people.

    .venv/bin/python bench/bench_explain.py [--sizes ...]
"""

from __future__ import annotations

import pandas as pd
from common import build_parser, features_file, main, measure, model_dir

from model import persist
from model.explain import explain
from model.scoring import rank_against, top_flags


def run_size(people: int, args) -> list:
    features = pd.read_parquet(features_file(people, args.seed))
    model = persist.load(model_dir(seed=args.seed))
    probability = pd.Series(model.predict_probability(features), index=features.index)
    ranks = rank_against(probability, features["practice_code"])
    flagged = features.loc[top_flags(ranks["percentile"], {"top": args.top})["top"].to_numpy()]
    with measure(f"SHAP reasons, top {args.top:.0%}", people, rows=len(flagged)) as step:
        explain(model, flagged)
    return [step]


if __name__ == "__main__":
    parser = build_parser("SHAP reasons for the flagged")
    parser.add_argument("--top", type=float, default=0.05, help="fraction explained (default 0.05)")
    main("SHAP reasons for the flagged", run_size, parser)
