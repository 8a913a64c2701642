"""Synthetic NHS numbers for imported people: deterministic from their source Id, in the 999 range.

999 000 0000 - 999 999 9999 is the range NHS England sets aside for test data, so an imported
person can never carry a real person's number. Nine digits (999 + six from a SHA-256 of the
source Id) get a Modulus 11 check digit; a hash whose check digit would be 10 (invalid) or that
another person already holds moves on to the next attempt, so every number is valid and unique.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from nhs_number import calculate_checksum

TEST_RANGE_PREFIX = "999"
_FREE_DIGITS = 9 - len(TEST_RANGE_PREFIX)


def candidate_number(source_id: str, attempt: int) -> str | None:
    """The attempt-th candidate number for a source Id, or None if its check digit is invalid."""
    digest = hashlib.sha256(f"{source_id}\x00{attempt}".encode()).digest()
    body = TEST_RANGE_PREFIX + f"{int.from_bytes(digest[:8], 'big') % 10**_FREE_DIGITS:0{_FREE_DIGITS}d}"
    check = calculate_checksum(body)
    return None if check == 10 else body + str(check)


def assign_nhs_numbers(source_ids: Iterable[str], avoid: Iterable[str] = ()) -> dict[str, str]:
    """A unique, valid synthetic NHS number per distinct source Id, none of them in ``avoid``.

    Ids are taken in sorted order, so the result does not depend on the order of the input.
    ``avoid`` holds numbers already used by another population loaded into the same store (our
    generator also draws from the 999 range).
    """
    assigned: dict[str, str] = {}
    taken: set[str] = set(avoid)
    for source_id in sorted(set(source_ids)):
        attempt = 0
        while (number := candidate_number(source_id, attempt)) is None or number in taken:
            attempt += 1
        assigned[source_id] = number
        taken.add(number)
    return assigned
