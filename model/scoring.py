"""Score people: `score_batch` is the one scoring function (CLI, Dask path and tests call it).

Percentiles need the whole population, so they come from `rank_against`, which takes the
population's probabilities (and practices) separately: a Dask partition passes the whole
population; a single in-memory run passes nothing and is its own population.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import UserInputError
from features.flags import DEFAULT_TOP_CUTOFFS, FLAG_NAMES, RULE_FEATURES, cutoff_percent, efi_category, \
    in_top_fraction, risk_flags, rule_flags
from model.compiled_trees import CompiledTrees
from model.explain import explain
from model.score_file import check_cutoffs, decode_score_metadata, encode_score_metadata
from model.training import FittedModel

SCORE_COLUMNS = (
    "nhs_number", "practice_code", "probability", "percentile", "practice_percentile",
    *FLAG_NAMES, "efi_category", "reasons", "missing_predictors",
)
# Predictors that can be unknown for a person (the rest are always derivable from records).
MAY_BE_MISSING = ("ethnicity", "imd_decile", "efi", "repeat_medicines")


def _percentile_of(values: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """100 x the share of the (sorted) population with a probability at or below each value."""
    return 100.0 * np.searchsorted(ordered, values, side="right") / max(len(ordered), 1)


def _by_practice(by_value: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Positions ordered by practice number, then probability, from the probability order: a
    stable sort of small integers (radix) keeps the probability order within a practice."""
    small = key.astype(np.int16) if len(key) and key.max() < np.iinfo(np.int16).max else key
    return by_value[np.argsort(small[by_value], kind="stable")]


def rank_against(
    probability: pd.Series, practice_code: pd.Series, population: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Overall and within-practice percentiles of ``probability`` within ``population``
    (columns probability, practice_code; default: these people themselves)."""
    # to_numpy, not np.asarray: numpy's probing of a Series' attributes hashes its whole index.
    values = pd.Series(probability).to_numpy(dtype=np.float64)
    # Practices numbered once; a population's practice with none of these people gets -1.
    key, practices = pd.Series(practice_code).factorize()
    order = np.argsort(values, kind="stable")
    by_key = _by_practice(order, key)
    if population is None:
        reference, reference_by_key, reference_key = values, by_key, key
        ordered_population = values[order]
    else:
        reference = population["probability"].to_numpy(dtype=np.float64)
        reference_key = practices.get_indexer(population["practice_code"])
        reference_order = np.argsort(reference, kind="stable")
        reference_by_key = _by_practice(reference_order, reference_key)
        ordered_population = reference[reference_order]
    # Queries in sorted order make the binary searches walk memory in order; same numbers.
    percentile = np.empty(len(values))
    percentile[order] = _percentile_of(values[order], ordered_population)

    practice_percentile = np.full(len(values), np.nan)
    groups = np.arange(len(practices) + 1)
    bounds = np.searchsorted(key[by_key], groups)
    reference_bounds = np.searchsorted(reference_key[reference_by_key], groups)
    ordered_reference = reference[reference_by_key]
    for number in range(len(practices)):
        members = by_key[bounds[number]:bounds[number + 1]]
        reference_slice = ordered_reference[reference_bounds[number]:reference_bounds[number + 1]]
        if len(reference_slice):  # a practice absent from the population has no percentile
            practice_percentile[members] = _percentile_of(values[members], reference_slice)
    return pd.DataFrame(
        {"percentile": percentile, "practice_percentile": practice_percentile}, index=probability.index
    )


# Every possible missing_predictors text, by a bit code (bit i: MAY_BE_MISSING[i] unknown).
_MISSING_TEXTS = np.array(
    [
        json.dumps([name for bit, name in enumerate(MAY_BE_MISSING) if code >> bit & 1])
        for code in range(1 << len(MAY_BE_MISSING))
    ],
    dtype=object,
)


def missing_predictors(features: pd.DataFrame) -> pd.Series:
    """JSON list of the predictors that were unknown for each person."""
    missing = features.reindex(columns=list(MAY_BE_MISSING)).isna().to_numpy()
    code = missing @ (1 << np.arange(len(MAY_BE_MISSING)))
    return pd.Series(_MISSING_TEXTS[code], index=features.index, name="missing_predictors")


def predict_probability(fitted_model: FittedModel, features: pd.DataFrame) -> np.ndarray:
    """The calibrated probability, equal to ``fitted_model.predict_probability`` bit for bit.

    The design matrix is built once as one float64 array, the boosted margin is summed once by
    the compiled trees (``model.compiled_trees``), and the fitted calibrator maps it to a
    probability, which is all ``CalibratedClassifierCV.predict_proba`` does for this model.
    Models of another shape go through scikit-learn unchanged.
    """
    calibrated = fitted_model.calibrated
    pipeline, boosting = fitted_model.pipeline, fitted_model.boosting
    trees = CompiledTrees.from_boosting(boosting)
    if trees is None or len(calibrated.calibrated_classifiers_) != 1 or len(calibrated.classes_) != 2:
        return fitted_model.predict_probability(features)
    predictors = features[list(fitted_model.predictors)]
    design_step = pipeline[:-1]
    columns = list(design_step.transform(predictors.iloc[:0]).columns)
    if columns != list(getattr(boosting, "feature_names_in_", columns)):
        return fitted_model.predict_probability(features)
    margin = trees.margin(
        len(predictors), lambda start, stop: design_step.transform(predictors.iloc[start:stop]).to_numpy()
    )
    return calibrated.calibrated_classifiers_[0].calibrators[0].predict(margin)


def score_batch(
    features: pd.DataFrame,
    fitted_model: FittedModel,
    top_cutoffs: dict[str, float] | None = None,
    population: pd.DataFrame | None = None,
    explain_top: float | None = None,
    explain_flagged: bool = True,
) -> pd.DataFrame:
    """Score a feature table. Columns: ``SCORE_COLUMNS``, one row per person.

    ``population``: the whole population's probability and practice_code (for a partition);
    None ranks these people among themselves. Reasons are given to everyone flagged by any flag
    (top fractions and segments: the practice list shows them all; ``explain_flagged``) and/or
    everyone above the top ``explain_top`` fraction; others get null.
    """
    top_cutoffs = check_cutoffs(top_cutoffs or DEFAULT_TOP_CUTOFFS)
    needed = list(fitted_model.predictors) + ["practice_code", *RULE_FEATURES]
    missing_columns = [column for column in dict.fromkeys(needed) if column not in features.columns]
    if missing_columns:
        raise UserInputError(
            f"The feature table lacks the model's predictors {', '.join(missing_columns)}."
        )
    probability = pd.Series(predict_probability(fitted_model, features), index=features.index)
    ranks = rank_against(probability, features["practice_code"], population)
    everyone = None if population is None else population["probability"]
    flags = pd.concat([risk_flags(probability, top_cutoffs, everyone, index=features.index), rule_flags(features)],
                      axis=1)
    to_explain = np.zeros(len(features), dtype=bool)
    if explain_flagged:
        to_explain |= flags.to_numpy().any(axis=1)
    if explain_top is not None:
        to_explain |= in_top_fraction(probability, explain_top, everyone)
    reasons = np.full(len(features), pd.NA, dtype=object)
    if to_explain.any():
        reasons[to_explain] = explain(fitted_model, features.loc[to_explain]).to_numpy()
    columns = {
        "nhs_number": features.index.array,
        "practice_code": features["practice_code"].array,
        "probability": probability.to_numpy(),
        **{name: column.to_numpy() for name, column in ranks.items()},
        **{name: flags[name].to_numpy() for name in FLAG_NAMES},
        "efi_category": efi_category(features).array,
        "reasons": reasons,
        "missing_predictors": missing_predictors(features).to_numpy(),
    }
    order = [c for c in SCORE_COLUMNS if c in columns] + [c for c in columns if c not in SCORE_COLUMNS]
    return pd.DataFrame({name: columns[name] for name in order})


def top_flags_in_words(counts: dict[str, int], top_cutoffs: dict[str, float]) -> str:
    """How many people each top flag holds, e.g. "12 in the top 1.3%, 30 in the top 5%"."""
    return ", ".join(
        f"{counts.get(name, 0):,} in the top {cutoff_percent(cutoff)}" for name, cutoff in top_cutoffs.items()
    )


def write_scores(
    scores: pd.DataFrame, path: str | Path, index_date: str | None, model_sha256: str | None,
    top_cutoffs: dict[str, float] | None,
) -> None:
    """Write a score file (or one partition of one) saying, in its Arrow schema metadata, what was
    scored when, by which model file, with which top cut-offs (``model.score_file``); an unknown
    value is left out."""
    table = pa.Table.from_pandas(scores, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), **encode_score_metadata(index_date, model_sha256, top_cutoffs)}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def read_score_metadata(path: str | Path) -> dict:
    """``{"index_date": "YYYY-MM-DD", "model_sha256": "...", "top_cutoffs": {"top_2pct": 0.02,
    "top_5pct": 0.05}}`` from a score file or a folder of ``part-*.parquet`` partitions (all
    written with the same values); None where absent (older files have no cut-offs)."""
    path = Path(path)
    if path.is_dir():
        parts = sorted(path.glob("part-*.parquet"))
        if not parts:
            raise UserInputError(f"The folder {path} holds no part-*.parquet score files.")
        path = parts[0]
    if not path.exists():
        raise UserInputError(f"The score file {path} does not exist.")
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        raise UserInputError(f"The score file {path} is not a Parquet file.") from None
    return decode_score_metadata(metadata)
