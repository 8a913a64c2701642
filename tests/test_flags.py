"""The flag registry: the one top-N% rule, the frailty categories, the bitmask, the docs' table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import flags as registry
from features.errors import UserInputError
from features.flags import (
    FLAG_NAMES,
    bit_of,
    efi_category,
    flag_bits,
    flags_from_bits,
    in_top_fraction,
    markdown_table,
    rule_flags,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_top_fraction_counts_and_ties():
    score = np.arange(100, dtype=float)
    assert in_top_fraction(score, 0.05).sum() == 5
    assert set(np.flatnonzero(in_top_fraction(score, 0.05))) == {95, 96, 97, 98, 99}
    # 2.5% of 100 people: fewer than 2.5 score higher, so 3 people (ceil), never 2
    assert in_top_fraction(score, 0.025).sum() == 3
    tied = np.array([1.0] * 10 + [0.5] * 90)
    assert in_top_fraction(tied, 0.05).sum() == 10  # everyone tied at the cut-off is in
    assert in_top_fraction(np.arange(100_000, dtype=float), 0.05).sum() == 5_000  # no float drift


def test_top_fraction_of_a_partition_ranks_against_the_population():
    population = np.linspace(0, 1, 1000)
    part = population[::7]
    assert (in_top_fraction(part, 0.02, population) == in_top_fraction(population, 0.02)[::7]).all()


def test_efi_categories_follow_clegg_cut_offs_from_age_65():
    features = pd.DataFrame({"efi": [0.0, 0.12, 0.13, 0.24, 0.25, 0.36, 0.37, 0.5, np.nan],
                             "age": [70, 70, 70, 70, 70, 70, 70, 64, 80]})
    assert efi_category(features).tolist() == [
        "fit", "fit", "mild", "mild", "moderate", "moderate", "severe", pd.NA, pd.NA]
    frail = rule_flags(features.assign(ltc_count=0, ltc_dementia=0, care_home=0))["frailty_moderate_severe"]
    assert frail.tolist() == [False, False, False, False, True, True, True, False, False]


def test_bitmask_round_trip_and_recorded_order():
    frame = pd.DataFrame({name: [i % 2 == 0, True] for i, name in enumerate(FLAG_NAMES)})
    bits = flag_bits(frame)
    assert flags_from_bits(int(bits[1])) == list(FLAG_NAMES)
    assert flags_from_bits(int(bits[0])) == [n for i, n in enumerate(FLAG_NAMES) if i % 2 == 0]
    older = ["top_2pct", "top_5pct", "dementia"]  # a run that knew fewer flags, in its own order
    assert bit_of("dementia", older) == 4
    with pytest.raises(KeyError):
        bit_of("care_home", older)


def test_every_flag_has_words_and_a_rule_or_a_cutoff():
    assert len(set(FLAG_NAMES)) == len(FLAG_NAMES)
    for flag in registry.FLAGS:
        assert flag.label and flag.definition.endswith(".")
        assert flag.risk_based == (flag.rule is None)
        if flag.risk_based:
            assert "{percent}" in flag.label and 0 < flag.default_cutoff < 1
        else:
            assert flag.needs


def test_unknown_flag_is_one_sentence():
    with pytest.raises(UserInputError, match="Unknown flag.*no_such_flag"):
        registry.check_known(["top_2pct", "no_such_flag"])


def test_docs_table_is_the_registry():
    """docs/model.md shows the flags as ``markdown_table()`` writes them."""
    assert markdown_table() in (DOCS / "model.md").read_text()


def test_docs_permission_table_is_the_registry():
    from app.services.permissions import markdown_table as permission_table

    assert permission_table() in (DOCS / "data.md").read_text()
