"""`proactive-care train | score | evaluate`: thin wrappers over model.training, scoring, evaluate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from features.errors import UserInputError
from features.flags import RISK_FLAGS


def _progress(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stderr, unit="step", leave=False)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number such as 0.02") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a fraction between 0 and 1, such as 0.02")
    return value


def train_command(args: argparse.Namespace) -> int:
    from features.build import parse_index_date
    from features.records import read_records
    from model import card, persist
    from model.training import CANDIDATE_SETTINGS, fit, training_features

    index_date = parse_index_date(args.index_date)
    with _progress(len(CANDIDATE_SETTINGS) + 3, "train") as progress:
        records = read_records(args.records)
        features = training_features(records, index_date)
        progress.update(1)
        model = fit(features, f"{index_date:%Y-%m-%d}", progress=progress)
        manifest = persist.save(model, args.out, records=str(Path(args.records).resolve()))
        card.write_card(args.out)
        progress.update(1)
    summary = manifest["training"]
    print(
        f"Trained on {summary['people']:,} people registered on {index_date:%Y-%m-%d} "
        f"({summary['event_rate']:.1%} had an emergency admission in the next 12 months); "
        f"AUROC {summary['held_out_auroc']:.3f} on the held-out training part. "
        f"Saved to {args.out} (sha256 {manifest['sha256'][:12]})."
    )
    return 0


def score_command(args: argparse.Namespace) -> int:
    top_cutoffs = {flag.name: getattr(args, f"{flag.name}_cutoff") for flag in RISK_FLAGS}
    if args.engine == "dask":
        try:
            from model.distributed import score_with_dask
        except ImportError:
            raise UserInputError(
                "The dask engine is not available in this version yet; use --engine local."
            ) from None
        return int(
            score_with_dask(
                records_dir=args.records, model_dir=args.model, index_date=args.index_date,
                out=args.out, top_cutoffs=top_cutoffs, scheduler=args.scheduler,
                explain_top=args.explain_top,
            )
            or 0
        )
    from features.build import build_features, parse_index_date
    from features.records import read_records
    from model import persist
    from model.scoring import score_batch, top_flags_in_words, write_scores
    from model.training import require_people

    index_date = parse_index_date(args.index_date)
    with _progress(4, "score") as progress:
        model = persist.load(args.model)
        records = read_records(args.records)
        require_people(records, index_date, "score")
        progress.update(1)
        features = build_features(records, index_date, with_label=False)
        progress.update(1)
        scores = score_batch(
            features, model, top_cutoffs=top_cutoffs, explain_top=args.explain_top,
            explain_flagged=args.explain_top is None,
        )
        progress.update(1)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_scores(scores, out, f"{index_date:%Y-%m-%d}", persist.model_sha256(args.model), top_cutoffs)
        progress.update(1)
    flagged = top_flags_in_words({name: int(scores[name].sum()) for name in top_cutoffs}, top_cutoffs)
    print(
        f"Scored {len(scores):,} people on {index_date:%Y-%m-%d}: {flagged}, "
        f"{int(scores['reasons'].notna().sum()):,} with reasons. Written to {out}."
    )
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from model.evaluate import evaluate_model_folder

    return evaluate_model_folder(
        args.records, args.model, eval_date=args.eval_date, capacity=args.capacity
    )


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train the risk model on one index date")
    train.add_argument("--records", required=True, help="records folder")
    train.add_argument("--index-date", required=True, help="training index date, YYYY-MM-DD")
    train.add_argument("--out", required=True, help="model folder to write")
    train.set_defaults(handler=train_command)

    score = subparsers.add_parser("score", help="score everyone registered on a date")
    score.add_argument("--records", required=True, help="records folder")
    score.add_argument("--model", required=True, help="model folder")
    score.add_argument("--index-date", required=True, help="scoring date, YYYY-MM-DD")
    score.add_argument("--out", required=True, help="score file to write (.parquet)")
    for flag in RISK_FLAGS:
        score.add_argument(f"--{flag.name.replace('_', '-')}-cutoff", type=_fraction, default=flag.default_cutoff,
                           help=f"fraction of the population flagged {flag.name}")
    score.add_argument(
        "--explain-top", type=_fraction, default=None,
        help="explain only the top fraction (e.g. 0.05) instead of everyone flagged by any flag",
    )
    score.add_argument("--engine", choices=("local", "dask"), default="local")
    score.add_argument("--scheduler", default=None, help="Dask scheduler address (engine dask)")
    score.set_defaults(handler=score_command)

    evaluate = subparsers.add_parser(
        "evaluate", help="temporal validation report into the model folder"
    )
    evaluate.add_argument("--records", required=True, help="records folder")
    evaluate.add_argument("--model", required=True, help="model folder")
    evaluate.add_argument(
        "--eval-date", default=None, help="evaluation index date (default: training date + 12 months)"
    )
    evaluate.add_argument(
        "--capacity", type=int, default=5000, help="how many people the MDTs can review"
    )
    evaluate.set_defaults(handler=evaluate_command)
