"""The seed plans' rule-based segments, defined once (seed 002: 60+, and 18-59 with 3+ LTCs)."""

from __future__ import annotations

import pandas as pd

SEGMENTS = ("age_60_plus", "age_18_59_3plus_ltc", "dementia")
SEGMENT_LABELS = {
    "age_60_plus": "Aged 60 and over",
    "age_18_59_3plus_ltc": "Aged 18-59 with three or more long-term conditions",
    "dementia": "Dementia",
}


def segments(features: pd.DataFrame) -> pd.DataFrame:
    """Boolean segment flags for each person in a feature table (same index)."""
    age = features["age"]
    return pd.DataFrame(
        {
            "age_60_plus": age >= 60,
            "age_18_59_3plus_ltc": (age >= 18) & (age <= 59) & (features["ltc_count"] >= 3),
            "dementia": features["ltc_dementia"].astype(bool),
        },
        index=features.index,
    )


def rule_based_cohort(features: pd.DataFrame) -> pd.Series:
    """The seed plans' proactive-care cohort: everyone 60+ plus 18-59 with three or more LTCs."""
    flags = segments(features)
    return (flags["age_60_plus"] | flags["age_18_59_3plus_ltc"]).rename("rule_based_cohort")
