"""What a score file says about itself, in its Arrow schema metadata: one encoder for the writer
(``model.scoring.write_scores``, local and Dask) and one decoder for every reader
(``model.scoring.read_score_metadata``, the loader). Light imports only, so the app can use it
without importing scikit-learn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date

from features.errors import UserInputError
from features.flags import DEFAULT_TOP_CUTOFFS, RISK_FLAGS, cutoff_percent

SCORE_METADATA_KEYS = {
    "index_date": "proactive_care.index_date",  # YYYY-MM-DD
    "model_sha256": "proactive_care.model_sha256",  # the manifest's sha256 of the model file
    "top_cutoffs": "proactive_care.top_cutoffs",  # JSON {"top_2pct": 0.02, "top_5pct": 0.05}
}
# Files written before `proactive-care score` prefixed its keys; the prefixed key wins.
UNPREFIXED_KEYS = {"index_date": "index_date", "model_sha256": "model_sha256"}


def check_cutoffs(top_cutoffs: Mapping[str, float]) -> dict[str, float]:
    for name, cutoff in top_cutoffs.items():
        if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not 0 < cutoff < 1:
            raise UserInputError(
                f"The {name} cut-off {cutoff} must be a fraction between 0 and 1, e.g. 0.02 for 2%."
            )
    # The risk flags keep their order: a flag whose default is narrower may not be set wider.
    given = [f for f in sorted(RISK_FLAGS, key=lambda f: f.default_cutoff) if f.name in top_cutoffs]
    for narrow, wide in zip(given, given[1:]):
        if top_cutoffs[narrow.name] > top_cutoffs[wide.name]:
            raise UserInputError(
                f"The {narrow.name} cut-off {top_cutoffs[narrow.name]} is wider than the {wide.name} cut-off "
                f"{top_cutoffs[wide.name]}; the narrower flag must be the smaller fraction "
                f"(raise --{wide.name.replace('_', '-')}-cutoff too)."
            )
    return dict(top_cutoffs)


def cutoffs_in_force(recorded: Mapping[str, float | None] | None) -> dict[str, float]:
    """The cut-offs a score file or score run used: what it recorded, else (older ones) the defaults."""
    recorded = recorded or {}
    return {
        name: default if recorded.get(name) is None else recorded[name]
        for name, default in DEFAULT_TOP_CUTOFFS.items()
    }


def encode_score_metadata(
    index_date: str | None, model_sha256: str | None, top_cutoffs: Mapping[str, float] | None
) -> dict[bytes, bytes]:
    """Schema metadata entries for a score file; an unknown value is left out."""
    values = {
        "index_date": index_date,
        "model_sha256": model_sha256,
        "top_cutoffs": json.dumps(check_cutoffs(top_cutoffs)) if top_cutoffs else None,
    }
    return {SCORE_METADATA_KEYS[name].encode(): value.encode() for name, value in values.items() if value}


def decode_score_metadata(raw: Mapping[bytes, bytes]) -> dict:
    """``index_date`` and ``model_sha256`` (text) and ``top_cutoffs`` (``{"top_2pct": 0.02,
    "top_5pct": 0.05}``) from a score file's schema metadata; None where the file does not say.
    Cut-offs that are not such an object raise ``UserInputError``."""
    text = {key.decode(errors="replace"): value.decode(errors="replace") for key, value in raw.items()}
    meta = {}
    for name, key in SCORE_METADATA_KEYS.items():
        older = UNPREFIXED_KEYS.get(name)
        meta[name] = text.get(key) or (text.get(older) if older else None) or None
    if meta["top_cutoffs"] is not None:
        meta["top_cutoffs"] = _parse_cutoffs(meta["top_cutoffs"])
    return meta


def _parse_cutoffs(value: str) -> dict[str, float]:
    try:
        cutoffs = json.loads(value)
    except ValueError:
        cutoffs = None
    if not isinstance(cutoffs, dict) or set(cutoffs) != set(DEFAULT_TOP_CUTOFFS):
        raise UserInputError(
            f"The score file's {SCORE_METADATA_KEYS['top_cutoffs']} is {value!r}, not an object like "
            f"{json.dumps(DEFAULT_TOP_CUTOFFS)}."
        )
    check_cutoffs(cutoffs)
    return {name: float(cutoffs[name]) for name in DEFAULT_TOP_CUTOFFS}


PROVENANCE_WORDS = {"index_date": "index date", "model_sha256": "model's sha256", "top_cutoffs": "top cut-offs"}


def provenance_problem(meta: Mapping) -> str | None:
    """Why a score file's decoded metadata cannot say where its scores came from, or None.

    A score file must name its index date (YYYY-MM-DD), the sha256 of the model that made it and
    its top cut-offs, as `proactive-care score` writes them: without them a run could be shown
    with the wrong date or flags, or scores from an unregistered model could pass as another's.
    """
    missing = [words for name, words in PROVENANCE_WORDS.items() if not meta.get(name)]
    if missing:
        return (f"the file does not record its {', '.join(missing)} (schema metadata "
                f"{', '.join(SCORE_METADATA_KEYS[n] for n, w in PROVENANCE_WORDS.items() if w in missing)}); "
                "write it with `proactive-care score`")
    try:
        date.fromisoformat(str(meta["index_date"]))
    except ValueError:
        return f"its index date {str(meta['index_date'])[:40]!r} is not a date (YYYY-MM-DD)"
    if not re.fullmatch(r"[0-9a-f]{64}", str(meta["model_sha256"])):
        return f"its model sha256 {str(meta['model_sha256'])[:70]!r} is not 64 hexadecimal digits"
    return None
