"""Synthetic identifiers: NHS numbers in the never-issued 9xx range, and plausible names."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from synthetic_cohort.profile import load_names

NUMBERS_PER_GROUP = 9  # of the 10 possible last digits for an 8-digit prefix, 9 or 10 give a valid check digit
GROUPS_PER_RANGE = 100_000  # 8-digit prefixes 999xxxxx, then 998xxxxx, ... (all "not to be issued")
_SCRAMBLE = 7919  # prime, coprime to 100,000 and 900,000: spreads consecutive people over the range
_WEIGHTS = np.array([10, 9, 8, 7, 6, 5, 4, 3], dtype=np.int64)


def nhs_number_digits(person_ids: np.ndarray) -> np.ndarray:
    """Distinct valid NHS numbers for distinct non-negative ids, as an (n, 10) array of digits.

    The first 900,000 ids get numbers starting 999; larger populations continue into 998, 997, ...
    (still inside the 9000000000-9999999999 range reserved for test patients).
    """
    ids = np.asarray(person_ids, dtype=np.int64)
    per_range = NUMBERS_PER_GROUP * GROUPS_PER_RANGE
    ids = (ids % per_range * _SCRAMBLE + 4_321) % per_range + ids // per_range * per_range
    group, slot = np.divmod(ids, NUMBERS_PER_GROUP)
    block, within = np.divmod(group, GROUPS_PER_RANGE)
    if np.any(block >= 100):
        raise ValueError("too many people for the synthetic NHS number range")
    prefix = 99_900_000 - block * GROUPS_PER_RANGE + (within * _SCRAMBLE + 12_345 * (block + 1)) % GROUPS_PER_RANGE
    digits = np.empty((ids.size, 10), dtype=np.int64)
    for position in range(8):
        digits[:, 7 - position] = prefix % 10
        prefix //= 10
    partial = digits[:, :8] @ _WEIGHTS
    remainders = (partial[:, None] + 2 * np.arange(10)[None, :]) % 11
    valid = remainders != 1  # remainder 1 would need check digit 10, which is not allowed
    last = np.argmax(np.cumsum(valid, axis=1) == slot[:, None] + 1, axis=1)
    digits[:, 8] = last
    digits[:, 9] = (11 - remainders[np.arange(ids.size), last]) % 11
    return digits


def digits_to_arrow(digits: np.ndarray) -> pa.StringArray:
    """(n, 10) digits -> an Arrow string array, built straight from the bytes (fast at millions)."""
    data = (digits.astype(np.uint8) + ord("0")).tobytes()
    offsets = np.arange(0, 10 * (digits.shape[0] + 1), 10, dtype=np.int32)
    return pa.StringArray.from_buffers(digits.shape[0], pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def nhs_numbers(person_ids: np.ndarray) -> pa.StringArray:
    return digits_to_arrow(nhs_number_digits(person_ids))


def draw_names(rng: np.random.Generator, ethnicity: np.ndarray, female: np.ndarray,
               ethnic_groups: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Given and family names drawn from small lists that vary with ethnicity and sex."""
    names = load_names()
    given = np.empty(ethnicity.size, dtype=object)
    family = np.empty(ethnicity.size, dtype=object)
    u_given, u_family = rng.random(ethnicity.size), rng.random(ethnicity.size)
    for code, group in enumerate(ethnic_groups):
        lists = names[group]
        for is_female, key in ((True, "female"), (False, "male")):
            mask = (ethnicity == code) & (female == is_female)
            options = np.array(lists[key], dtype=object)
            given[mask] = options[(u_given[mask] * options.size).astype(int)]
        mask = ethnicity == code
        options = np.array(lists["family"], dtype=object)
        family[mask] = options[(u_family[mask] * options.size).astype(int)]
    return given, family
