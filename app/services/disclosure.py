"""NHS Digital's small-number disclosure rule, in one function (and its percentage).

0 stays 0; 1-7 are suppressed; anything else is rounded to the nearest 5. Percentages are
computed from the rounded counts, so no small number can be recovered from totals.
"""

from __future__ import annotations

import math

SUPPRESSED_MARK = "*"
SMALLEST_SHOWN = 8


def disclose_count(count: int) -> int | None:
    """The publishable form of a count; None means suppressed."""
    count = int(count)
    if count < 0:
        raise ValueError(f"A count cannot be negative ({count}).")
    if count == 0:
        return 0
    if count < SMALLEST_SHOWN:
        return None
    return int(math.floor(count / 5 + 0.5) * 5)  # half up: 12.5 -> 15, not banker's rounding


def disclosed_percentage(numerator: int, denominator: int) -> float | None:
    """Percentage from the disclosed counts; None if either is suppressed or the base is 0."""
    top, bottom = disclose_count(numerator), disclose_count(denominator)
    if top is None or bottom is None or bottom == 0:
        return None
    return round(100.0 * top / bottom, 1)


def format_count(value: int | None) -> str:
    return SUPPRESSED_MARK if value is None else f"{value:,}"


def format_percentage(value: float | None) -> str:
    return SUPPRESSED_MARK if value is None else f"{value:.1f}%"
