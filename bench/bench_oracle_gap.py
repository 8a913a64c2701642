"""Where the gap between the model and the oracle comes from, on one generated records folder.

    .venv/bin/python bench/bench_oracle_gap.py RECORDS [--train-date 2024-01-01]

Fits the model's boosting step (first candidate setting, the whole training year, no calibration:
the AUROC does not depend on it) on the records' features, then again with the generator's true
log rate for the year before the index date and for the index date's own year added as a
predictor, and prints each one's AUROC on the year after beside the oracle's. Given this year's
true risk the model should match the oracle (the learning is not what limits it); given last
year's it shows what no record before the index date can carry. Needs the records' truth table.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from features.build import LABEL, parse_index_date
from features.records import read_records
from model.evaluate import oracle_probability
from model.training import CANDIDATE_SETTINGS, design_matrix, make_pipeline, model_threads, training_features


def true_log_rate(truth: pd.DataFrame, people: pd.Index, year: int) -> np.ndarray:
    """log(-log(1 - p)) of the generator's probability for ``year`` (NaN for people without one)."""
    of_year = truth.loc[truth["year"].astype(int) == year]
    probability = of_year.set_index(of_year["nhs_number"].astype(str))["probability"].reindex(people)
    return np.log(-np.log1p(-probability.to_numpy(dtype=float)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", help="a records folder written by `proactive-care cohort`")
    parser.add_argument("--train-date", default="2024-01-01", help="training index date (1 January)")
    args = parser.parse_args()
    records = read_records(args.records)
    if records.truth is None:
        parser.error(f"{args.records} has no truth table: only generated records do")
    train_date = parse_index_date(args.train_date)
    eval_date = train_date + pd.DateOffset(months=12)
    train, later = training_features(records, train_date), training_features(records, eval_date)
    oracle = roc_auc_score(later[LABEL], oracle_probability(records, later, eval_date))
    boosting = make_pipeline(CANDIDATE_SETTINGS[0]).named_steps["boosting"]
    print(f"{'predictors':45s}  AUROC   oracle  gap")
    for name, years_back in (("records", None), ("records + last year's true risk", 1),
                             ("records + this year's true risk", 0)):
        X_train, X_later = design_matrix(train), design_matrix(later)
        if years_back is not None:
            X_train["true_log_rate"] = true_log_rate(records.truth, train.index, train_date.year - years_back)
            X_later["true_log_rate"] = true_log_rate(records.truth, later.index, eval_date.year - years_back)
        with model_threads():
            fitted = clone(boosting).fit(X_train, train[LABEL])
            auroc = roc_auc_score(later[LABEL], fitted.predict_proba(X_later)[:, 1])
        print(f"{name:45s}  {auroc:.4f}  {oracle:.4f}  {oracle - auroc:.4f}", flush=True)


if __name__ == "__main__":
    main()
