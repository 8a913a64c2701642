"""How people, dates, numbers and risks read on every page and in every export (NHS digital service
manual style): "Michael Murphy", "2 Dec 2026", "94%", "about 9 in 100". One function per kind of
value; pages and exports call these and never format such values themselves. Plain Python.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from typing import Any

MISSING = "Not recorded"
USER_NAME_FALLBACK = "Unknown user"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT and pandas NA (which raises on bool: caught below)
    except (TypeError, ValueError):
        return True


def person_name(given_name: str | None, family_name: str | None) -> str:
    """ "Michael Murphy"; one part alone if that is all there is."""
    parts = [str(p).strip() for p in (given_name, family_name) if not _missing(p) and str(p).strip()]
    return " ".join(parts) or "Name not recorded"


def nhs_number(value: str | None) -> str:
    """ "943 476 5919", the way the NHS prints it."""
    if _missing(value):
        return MISSING
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}" if len(digits) == 10 else str(value)


def day(value: date | datetime | None, missing: str = MISSING) -> str:
    """ "2 Dec 2026" (short month, as NHS tables use)."""
    if _missing(value):
        return missing
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    return f"{value.day} {value:%b %Y}"


def moment(value: datetime | None, missing: str = MISSING) -> str:
    """ "2 Dec 2026, 3:05pm" in UTC (the store's time)."""
    if _missing(value):
        return missing
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    hour = value.hour % 12 or 12
    return f"{day(value)}, {hour}:{value:%M}{'am' if value.hour < 12 else 'pm'}"


def percent(fraction: float | None, missing: str = MISSING) -> str:
    """A share as a whole-number percentage: 0.9366 -> "94%"; never "0%" or "100%" for a share that
    is not exactly 0 or 1 ("less than 1%", "more than 99%")."""
    if _missing(fraction):
        return missing
    value = float(fraction) * 100
    if 0 < value < 0.5:
        return "less than 1%"
    if 99.5 <= value < 100:
        return "more than 99%"
    return f"{math.floor(value + 0.5):.0f}%"


def count(value: int | None, missing: str = MISSING) -> str:
    return missing if _missing(value) else f"{int(value):,}"


def risk_in_words(probability: float | None) -> str:
    """ "About 9 in 100 people like this have an emergency admission within a year"."""
    if _missing(probability):
        return "No risk score"
    per_hundred = float(probability) * 100
    if per_hundred < 1:
        return "Fewer than 1 in 100 people like this have an emergency admission within a year"
    return f"About {math.floor(per_hundred + 0.5):.0f} in 100 people like this have an emergency admission within a year"


def rank_in_words(percentile: float | None, among: str = "people registered") -> str:
    """Where a risk stands: "Higher than 93 in every 100 people registered" (never "100 in 100")."""
    if _missing(percentile):
        return MISSING
    higher_than = min(99, max(0, math.floor(float(percentile))))
    if higher_than == 0:
        return f"Among the lowest of {among}"
    return f"Higher than {higher_than} in every 100 {among}"


def yes_no(value: bool | None) -> str:
    return MISSING if _missing(value) else ("Yes" if value else "No")


def user_name(display_names: dict[str, str], username: str | None) -> str:
    """A colleague as people know them ("Sam Patel"), not their username; system actors in words."""
    if _missing(username):
        return USER_NAME_FALLBACK
    if str(username).startswith("system:"):
        return "Proactive Care (automatic)"
    return display_names.get(username, str(username))

