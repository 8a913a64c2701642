"""Training: features with the label at the training date, then the calibrated model.

    .venv/bin/python bench/bench_training.py [--sizes 100000,360000,1000000]
"""

from __future__ import annotations

from common import TRAIN_DATE, build_parser, main, measure, records_dir

from features.records import read_records
from model.training import fit, training_features


def run_size(people: int, args) -> list:
    records = read_records(records_dir(people, args.seed))
    with measure("training features", people) as features_step:
        features = training_features(records, TRAIN_DATE)
    del records
    with measure("fit (search + calibration)", people, rows=len(features)) as fit_step:
        model = fit(features, TRAIN_DATE)
    features_step.rows = len(features)
    fit_step.note = f"{model.training_summary.get('boosting_iterations', '?')} boosting iterations"
    return [features_step, fit_step]


if __name__ == "__main__":
    main("training", run_size, build_parser("training"))
