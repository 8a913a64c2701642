"""Why a person scored as they did: SHAP on the boosted margin, turned into plain words.

Contributions are on the calibrated log-odds scale (the boosted margin's SHAP values times the
sigmoid calibration slope), grouped back to the feature-table columns (one-hot ethnicity becomes
one "ethnicity" reason). ``FEATURE_WORDS`` is the one mapping from feature names to words.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import shap

from features.build import PREDICTOR_COLUMNS, UTILISATION_STEMS
from features.conditions import CONDITION_LABELS
from model.training import FittedModel, design_columns, design_matrix, source_feature

TOP_REASONS = 3
# |contribution| in log-odds -> how much it moves risk.
STRENGTHS = ((0.5, "a lot"), (0.2, "moderately"), (0.0, "a little"))


def _plural(count: float, singular: str, plural: str | None = None) -> str:
    count = int(count)
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def _utilisation_words(noun: str, when: str):
    return lambda value: f"{_plural(value, noun)} {when}"


def _frailty_words(value: float) -> str:
    if pd.isna(value):
        return "no electronic frailty index recorded"
    # eFI bands (Clegg et al. 2016): fit <= 0.12 < mild <= 0.24 < moderate <= 0.36 < severe.
    band = "fit" if value <= 0.12 else "mild" if value <= 0.24 else "moderate" if value <= 0.36 else "severe"
    return f"electronic frailty index {value:.2f} ({band} frailty)"


_UTILISATION_NOUNS = {
    "emergency_admissions": "emergency admission",
    "elective_admissions": "planned hospital admission",
    "ae_attendances": "A&E attendance",
    "outpatient": "outpatient appointment",
    "gp_consultations": "GP consultation",
}

FEATURE_WORDS = {
    "age": lambda value: f"aged {int(value)}",
    "sex": lambda value: "female" if value == "F" else "male",
    "ethnicity": lambda value: "ethnicity not recorded" if pd.isna(value) else f"ethnicity recorded as {value}",
    "imd_decile": lambda value: (
        "deprivation of home area not known" if pd.isna(value)
        else f"lives in deprivation decile {int(value)} of 10 (1 = most deprived)"
    ),
    "ltc_count": lambda value: _plural(value, "long-term condition"),
    "care_home": lambda value: "lives in a care home" if value else "does not live in a care home",
    "efi": _frailty_words,
    "repeat_medicines": lambda value: (
        "number of repeat medicines not recorded" if pd.isna(value) else _plural(value, "repeat medicine")
    ),
    **{
        f"ltc_{code}": (lambda label: lambda value: f"has {label.lower()}" if value else f"no {label.lower()} recorded")(label)
        for code, label in CONDITION_LABELS.items()
    },
    **{
        f"{stem}_12m": _utilisation_words(_UTILISATION_NOUNS[stem], "in the last 12 months")
        for stem in UTILISATION_STEMS.values()
    },
    **{
        f"{stem}_12_24m": _utilisation_words(_UTILISATION_NOUNS[stem], "12 to 24 months ago")
        for stem in UTILISATION_STEMS.values()
    },
}
assert set(FEATURE_WORDS) == set(PREDICTOR_COLUMNS), "every predictor needs words"

def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]  # keeps "A&E" and "GP" as written


# Short names for charts and reports.
FEATURE_TITLES = {
    "age": "Age", "sex": "Sex", "ethnicity": "Ethnicity", "imd_decile": "Deprivation (IMD decile)",
    "ltc_count": "Number of long-term conditions", "care_home": "Care home resident",
    "efi": "Electronic frailty index", "repeat_medicines": "Repeat medicines",
    **{f"ltc_{code}": label for code, label in CONDITION_LABELS.items()},
    **{f"{stem}_12m": f"{_sentence_case(_UTILISATION_NOUNS[stem])}s, last 12 months" for stem in UTILISATION_STEMS.values()},
    **{f"{stem}_12_24m": f"{_sentence_case(_UTILISATION_NOUNS[stem])}s, 12-24 months ago" for stem in UTILISATION_STEMS.values()},
}


def strength_word(contribution: float) -> str:
    size = abs(contribution)
    return next(word for threshold, word in STRENGTHS if size >= threshold)


def reason_text(feature: str, value, contribution: float) -> str:
    direction = "raises" if contribution > 0 else "lowers"
    return f"{FEATURE_WORDS[feature](value)} — {direction} risk {strength_word(contribution)}"


def contributions(model: FittedModel, features: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per person and feature, the SHAP contribution on the calibrated log-odds scale, and the
    base value on that scale (base + row sum = the person's calibrated log-odds)."""
    pipeline = model.pipeline
    X = design_matrix(features[list(model.predictors)])
    explainer = shap.TreeExplainer(pipeline.named_steps["boosting"])
    values = explainer.shap_values(X.to_numpy(), check_additivity=False)
    if isinstance(values, list):  # older shap returns one array per class
        values = values[-1]
    values = np.asarray(values)
    if values.ndim == 3:
        values = values[:, :, -1]
    slope = model.calibration_slope
    calibrator = model.calibrated.calibrated_classifiers_[0].calibrators[0]
    base = float(np.ravel(explainer.expected_value)[-1]) * slope - float(calibrator.b_)
    by_column = pd.DataFrame(values * slope, index=features.index, columns=design_columns(model.predictors))
    grouped = by_column.T.groupby(source_feature, sort=False).sum().T
    return grouped[list(model.predictors)], base


def reasons_json(features: pd.DataFrame, contribution: pd.DataFrame, top: int = TOP_REASONS) -> pd.Series:
    """The top reasons per person as a JSON list of {feature, text, direction, strength, contribution}."""
    values = contribution.to_numpy()
    order = np.argsort(-np.abs(values), axis=1)[:, :top]
    names = np.asarray(contribution.columns)
    feature_values = features.loc[contribution.index, list(names)].to_numpy(dtype=object)
    rows = []
    for row_number in range(len(contribution)):
        reasons = []
        for column in order[row_number]:
            amount = float(values[row_number, column])
            if amount == 0.0:
                continue
            feature = names[column]
            reasons.append(
                {
                    "feature": feature,
                    "text": reason_text(feature, feature_values[row_number, column], amount),
                    "direction": "raises" if amount > 0 else "lowers",
                    "strength": strength_word(amount),
                    "contribution": round(amount, 4),
                }
            )
        rows.append(json.dumps(reasons, ensure_ascii=False))
    return pd.Series(rows, index=contribution.index, name="reasons")


def explain(model: FittedModel, features: pd.DataFrame, top: int = TOP_REASONS) -> pd.Series:
    """JSON reasons for each person in ``features``."""
    if features.empty:
        return pd.Series([], index=features.index, name="reasons", dtype=object)
    contribution, _ = contributions(model, features)
    return reasons_json(features, contribution, top=top)


def global_importance(model: FittedModel, features: pd.DataFrame) -> pd.Series:
    """Mean |SHAP| per feature (calibrated log-odds), largest first."""
    contribution, _ = contributions(model, features)
    return contribution.abs().mean().sort_values(ascending=False)
