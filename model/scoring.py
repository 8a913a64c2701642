"""Score people: `score_batch` is the one scoring function (CLI, Dask path and tests call it).

Percentiles need the whole population, so they come from `rank_against`, which takes the
population's probabilities (and practices) separately: a Dask partition passes the whole
population; a single in-memory run passes nothing and is its own population.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from features.cohorts import SEGMENTS, segments
from features.errors import UserInputError
from model.explain import explain
from model.training import FittedModel

DEFAULT_TOP_CUTOFFS = {"top_2pct": 0.02, "top_5pct": 0.05}
SCORE_COLUMNS = (
    "nhs_number", "practice_code", "probability", "percentile", "practice_percentile",
    *DEFAULT_TOP_CUTOFFS, *SEGMENTS, "reasons", "missing_predictors",
)
# Predictors that can be unknown for a person (the rest are always derivable from records).
MAY_BE_MISSING = ("ethnicity", "imd_decile", "efi", "repeat_medicines")


def check_cutoffs(top_cutoffs: dict[str, float]) -> dict[str, float]:
    for name, cutoff in top_cutoffs.items():
        if not 0 < cutoff < 1:
            raise UserInputError(
                f"The {name} cut-off {cutoff} must be a fraction between 0 and 1, e.g. 0.02 for 2%."
            )
    return dict(top_cutoffs)


def _percentile_of(values: np.ndarray, population: np.ndarray) -> np.ndarray:
    """100 x the share of the population with a probability at or below each value."""
    ordered = np.sort(population)
    return 100.0 * np.searchsorted(ordered, values, side="right") / max(len(ordered), 1)


def rank_against(
    probability: pd.Series, practice_code: pd.Series, population: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Overall and within-practice percentiles of ``probability`` within ``population``
    (columns probability, practice_code; default: these people themselves)."""
    if population is None:
        population = pd.DataFrame({"probability": probability, "practice_code": practice_code})
    ranks = pd.DataFrame(index=probability.index)
    ranks["percentile"] = _percentile_of(probability.to_numpy(), population["probability"].to_numpy())
    ranks["practice_percentile"] = np.nan
    groups = population.groupby("practice_code", sort=False)["probability"]
    for practice, members in pd.Series(practice_code).groupby(practice_code, sort=False).groups.items():
        if practice in groups.groups:
            reference = groups.get_group(practice).to_numpy()
            ranks.loc[members, "practice_percentile"] = _percentile_of(
                probability.loc[members].to_numpy(), reference
            )
    return ranks


def top_flags(percentile: pd.Series, top_cutoffs: dict[str, float]) -> pd.DataFrame:
    """True for people in the top fraction of the population (ties at the cut-off all included)."""
    return pd.DataFrame(
        {name: percentile > 100.0 * (1.0 - cutoff) for name, cutoff in top_cutoffs.items()},
        index=percentile.index,
    )


def missing_predictors(features: pd.DataFrame) -> pd.Series:
    """JSON list of the predictors that were unknown for each person."""
    missing = features.reindex(columns=list(MAY_BE_MISSING)).isna()
    names = np.asarray(MAY_BE_MISSING)
    texts = [json.dumps(names[row].tolist()) for row in missing.to_numpy()]
    return pd.Series(texts, index=features.index, name="missing_predictors")


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
    None ranks these people among themselves. Reasons are given to every flagged person
    (``explain_flagged``) and/or everyone above the top ``explain_top`` fraction; others get null.
    """
    top_cutoffs = check_cutoffs(top_cutoffs or DEFAULT_TOP_CUTOFFS)
    needed = list(fitted_model.predictors) + ["practice_code", "age", "ltc_count", "ltc_dementia"]
    missing_columns = [column for column in dict.fromkeys(needed) if column not in features.columns]
    if missing_columns:
        raise UserInputError(
            f"The feature table lacks the model's predictors {', '.join(missing_columns)}."
        )
    probability = pd.Series(
        fitted_model.predict_probability(features), index=features.index, name="probability"
    )
    ranks = rank_against(probability, features["practice_code"], population)
    flags = top_flags(ranks["percentile"], top_cutoffs)
    scores = pd.concat(
        [features[["practice_code"]], probability, ranks, flags, segments(features)], axis=1
    )
    to_explain = pd.Series(False, index=features.index)
    if explain_flagged:
        to_explain |= flags.any(axis=1)
    if explain_top is not None:
        to_explain |= top_flags(ranks["percentile"], {"explain": explain_top})["explain"]
    scores["reasons"] = pd.Series(pd.NA, index=features.index, dtype=object)
    chosen = features.loc[to_explain.to_numpy()]
    if len(chosen):
        scores.loc[chosen.index, "reasons"] = explain(fitted_model, chosen)
    scores["missing_predictors"] = missing_predictors(features)
    scores = scores.rename_axis("nhs_number").reset_index()
    return scores[[c for c in SCORE_COLUMNS if c in scores.columns] + [
        c for c in scores.columns if c not in SCORE_COLUMNS
    ]]
