"""SHAP reasons in words for the flagged (top 5%, or the --count highest-risk) people.

    .venv/bin/python bench/bench_explain.py [--sizes ...] [--top 0.05 | --count 20000]
"""

from __future__ import annotations

import pandas as pd
from common import build_parser, features_file, main, measure, model_dir

from model import persist
from model.explain import explain
from features.flags import in_top_fraction


def run_size(people: int, args) -> list:
    features = pd.read_parquet(features_file(people, args.seed))
    model = persist.load(model_dir(seed=args.seed))
    probability = pd.Series(model.predict_probability(features), index=features.index)
    if args.count:
        flagged, label = features.loc[probability.nlargest(args.count).index], f"{args.count:,} highest-risk"
    else:
        flagged, label = features.loc[in_top_fraction(probability, args.top)], f"top {args.top:.0%}"
    with measure(f"SHAP reasons, {label}", people, rows=len(flagged)) as step:
        explain(model, flagged)
    return [step]


if __name__ == "__main__":
    parser = build_parser("SHAP reasons for the flagged")
    parser.add_argument("--top", type=float, default=0.05, help="fraction explained (default 0.05)")
    parser.add_argument("--count", type=int, default=None, help="explain this many highest-risk people instead")
    main("SHAP reasons for the flagged", run_size, parser)
