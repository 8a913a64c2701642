"""The cohort flags: one registry that everything else reads (scoring, the score file, the store, the
loader, the list, coverage, exports and the docs' table).

A flag is either *risk-based* (the top fraction of the population by predicted risk; the fraction is
a setting recorded with each score run) or a *rule* over one person's feature row. Adding a flag is
one ``Flag`` in ``FLAGS`` plus its tests; its position in ``FLAGS`` is its bit in the store, and
each score run records the order it used, so appending is always safe.

The top-N% rule lives in ``in_top_fraction`` alone, with one tie rule: a person is in the top
fraction f of N people when fewer than f x N people have a strictly higher score, so everyone tied
at the cut-off is included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.errors import UserInputError

# ------------------------------------------------------------------ frailty (Clegg et al. 2016)
# The eFI's categories and their upper bounds (deficits present / 36); validated from age 65.
EFI_CATEGORIES: tuple[str, ...] = ("fit", "mild", "moderate", "severe")
EFI_UPPER_BOUNDS: tuple[float, ...] = (0.12, 0.24, 0.36)
EFI_CATEGORY_LABELS = {"fit": "Fit", "mild": "Mild frailty", "moderate": "Moderate frailty",
                       "severe": "Severe frailty"}
EFI_MIN_AGE = 65


def efi_category(features: pd.DataFrame) -> pd.Series:
    """Each person's eFI category (fit, mild, moderate, severe); missing under 65 or with no eFI."""
    efi = pd.to_numeric(features["efi"], errors="coerce").to_numpy(dtype=float)
    codes = np.searchsorted(np.asarray(EFI_UPPER_BOUNDS), efi, side="left")  # 0.12 is still fit
    known = ~np.isnan(efi) & (features["age"].to_numpy() >= EFI_MIN_AGE)
    categories = np.where(known, np.asarray(EFI_CATEGORIES, dtype=object)[np.minimum(codes, 3)], None)
    return pd.Series(pd.array(categories, dtype="string"), index=features.index, name="efi_category")


# ------------------------------------------------------------------ the registry
@dataclass(frozen=True)
class Flag:
    """One cohort flag.

    ``label`` is what lists, filters and charts show; ``definition`` says in plain words who is in
    it. A risk-based flag has a ``default_cutoff`` (the share of the population it holds) and a
    ``{percent}`` placeholder in its label and definition; a rule flag has ``rule`` over the feature
    table and ``needs`` (the feature columns the rule reads).
    """

    name: str
    label: str
    definition: str
    rule: Callable[[pd.DataFrame], pd.Series] | None = None
    needs: tuple[str, ...] = ()
    default_cutoff: float | None = None

    @property
    def risk_based(self) -> bool:
        return self.default_cutoff is not None

    def label_for(self, cutoff: float | None = None) -> str:
        return self.label.format(percent=cutoff_percent(self._cutoff(cutoff))) if self.risk_based else self.label

    def definition_for(self, cutoff: float | None = None) -> str:
        if not self.risk_based:
            return self.definition
        return self.definition.format(percent=cutoff_percent(self._cutoff(cutoff)))

    def _cutoff(self, cutoff: float | None) -> float:
        return self.default_cutoff if cutoff is None else cutoff


def _age(features: pd.DataFrame) -> pd.Series:
    return features["age"]


FLAGS: tuple[Flag, ...] = (
    Flag("top_2pct", "Top {percent} risk",
         "Among the {percent} of registered people with the highest predicted chance of an emergency "
         "admission in the next 12 months.", default_cutoff=0.02),
    Flag("top_5pct", "Top {percent} risk",
         "Among the {percent} of registered people with the highest predicted chance of an emergency "
         "admission in the next 12 months.", default_cutoff=0.05),
    Flag("age_60_plus", "Aged 60 and over", "Everyone aged 60 or over (the seed plans' cohort).",
         rule=lambda f: _age(f) >= 60, needs=("age",)),
    Flag("age_18_59_3plus_ltc", "Aged 18 to 59 with 3 or more long-term conditions",
         "Adults aged 18 to 59 with three or more of the long-term conditions on our list.",
         rule=lambda f: _age(f).between(18, 59) & (f["ltc_count"] >= 3), needs=("age", "ltc_count")),
    Flag("dementia", "Dementia", "People on the dementia register.",
         rule=lambda f: f["ltc_dementia"].astype(bool), needs=("ltc_dementia",)),
    Flag("frailty_moderate_severe", "Moderate or severe frailty",
         "People aged 65 or over whose electronic Frailty Index is above 0.24 (moderate or severe "
         "frailty): NHS England's proactive-care cohort when they live at home.",
         rule=lambda f: efi_category(f).isin(["moderate", "severe"]).fillna(False).astype(bool),
         needs=("age", "efi")),
    Flag("care_home", "Lives in a care home", "People living in a care home (residential or nursing).",
         rule=lambda f: f["care_home"].astype(bool), needs=("care_home",)),
)

FLAG_NAMES: tuple[str, ...] = tuple(flag.name for flag in FLAGS)
RISK_FLAGS: tuple[Flag, ...] = tuple(flag for flag in FLAGS if flag.risk_based)
RULE_FLAGS: tuple[Flag, ...] = tuple(flag for flag in FLAGS if not flag.risk_based)
DEFAULT_TOP_CUTOFFS: dict[str, float] = {flag.name: flag.default_cutoff for flag in RISK_FLAGS}
# The seed plans' rule-based cohort (seed 002): everyone 60+ plus 18-59 with three or more LTCs.
RULE_BASED_COHORT: tuple[str, ...] = ("age_60_plus", "age_18_59_3plus_ltc")
RULE_FEATURES: tuple[str, ...] = tuple(dict.fromkeys(c for flag in RULE_FLAGS for c in flag.needs))


def flag(name: str) -> Flag:
    for candidate in FLAGS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def cutoff_percent(fraction: float) -> str:
    """A cut-off as people read it: 0.02 -> "2%", 0.013 -> "1.3%", 0.0138 -> "1.38%"."""
    return f"{fraction * 100:.3g}%"


def flag_labels(top_cutoffs: Mapping[str, float] | None = None) -> dict[str, str]:
    """Every flag's label in registry order; risk flags say the cut-offs in force."""
    top_cutoffs = top_cutoffs or {}
    return {f.name: f.label_for(top_cutoffs.get(f.name)) for f in FLAGS}


def flag_definitions(top_cutoffs: Mapping[str, float] | None = None) -> dict[str, str]:
    top_cutoffs = top_cutoffs or {}
    return {f.name: f.definition_for(top_cutoffs.get(f.name)) for f in FLAGS}


# ------------------------------------------------------------------ the rules
def in_top_fraction(score, fraction: float, population=None) -> np.ndarray:
    """True for people in the top ``fraction`` by ``score``: fewer than ``fraction`` x N people of the
    population score strictly higher (everyone tied at the cut-off is in). ``population``: the whole
    population's scores when ``score`` is part of it (a partition); default ``score`` itself."""
    values = np.asarray(score, dtype=np.float64)
    reference = np.sort(values if population is None else np.asarray(population, dtype=np.float64))
    strictly_higher = len(reference) - np.searchsorted(reference, values, side="right")
    # rounded so that 0.05 x 100,000 is 5,000 and not 5,000.000000000001
    return strictly_higher < round(fraction * len(reference), 9)


def rule_flags(features: pd.DataFrame) -> pd.DataFrame:
    """Every rule flag for each person in a feature table (same index), as booleans."""
    return pd.DataFrame(
        {f.name: np.asarray(f.rule(features), dtype=bool) for f in RULE_FLAGS}, index=features.index
    )


def risk_flags(probability, top_cutoffs: Mapping[str, float], population=None, index=None) -> pd.DataFrame:
    """Every risk flag for each person, at the given cut-offs (``in_top_fraction``)."""
    return pd.DataFrame(
        {name: in_top_fraction(probability, cutoff, population) for name, cutoff in top_cutoffs.items()},
        index=index,
    )


def rule_based_cohort(features: pd.DataFrame) -> pd.Series:
    """The seed plans' proactive-care cohort: everyone 60+ plus 18-59 with three or more LTCs."""
    flags = rule_flags(features)
    return flags[list(RULE_BASED_COHORT)].any(axis=1).rename("rule_based_cohort")


# ------------------------------------------------------------------ the store's bitmask
def flag_bits(flags: pd.DataFrame, names: Iterable[str] = FLAG_NAMES) -> np.ndarray:
    """One integer per person: bit i set when flag ``names[i]`` is."""
    bits = np.zeros(len(flags), dtype=np.int64)
    for position, name in enumerate(names):
        bits |= flags[name].to_numpy(dtype=bool).astype(np.int64) << position
    return bits


def bit_of(name: str, names: Iterable[str] = FLAG_NAMES) -> int:
    """The bit for flag ``name`` in a score run that recorded ``names`` (KeyError if it did not)."""
    names = list(names)
    if name not in names:
        raise KeyError(name)
    return 1 << names.index(name)


def flags_from_bits(bits: int, names: Iterable[str] = FLAG_NAMES) -> list[str]:
    return [name for position, name in enumerate(names) if bits >> position & 1]


# ------------------------------------------------------------------ the docs' table
def markdown_table() -> str:
    """The flags as the table in docs/model.md (a test keeps the two the same)."""
    lines = ["| flag | label | who is in it | kind |", "|---|---|---|---|"]
    for f in FLAGS:
        kind = f"risk (default {cutoff_percent(f.default_cutoff)})" if f.risk_based else "rule"
        lines.append(f"| `{f.name}` | {f.label_for()} | {f.definition_for()} | {kind} |")
    return "\n".join(lines)


def check_known(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(FLAG_NAMES))
    if unknown:
        raise UserInputError(f"Unknown flag(s) {', '.join(unknown)}; use {', '.join(FLAG_NAMES)}.")

