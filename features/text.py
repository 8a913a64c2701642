"""Text in records: the longest value each text column may hold, and the characters none may hold.

The lengths are the store's column widths (``app/store.py`` reads them from here), so a value the
record schemas accept always fits: PostgreSQL would refuse a longer one mid-load and SQLite would
keep it whole. Control characters (a NUL byte, a line break, C1 controls) and the invisible marks
that reverse the direction of text are refused in every text column: PostgreSQL cannot store a NUL,
and the others make a name display as something other than what it holds.

Light on purpose (pyarrow only, imported when a check runs): the store imports it.
"""

from __future__ import annotations

# Longest value, in characters, per column name (the same column name means the same width
# wherever it appears).
MAX_LENGTHS: dict[str, int] = {
    "given_name": 100,
    "family_name": 100,
    "practice_code": 32,
    "pcn_code": 32,
    "practice_name": 200,
    "pcn_name": 200,
}
# C0 and C1 control characters (NUL, tab, line breaks, ...), DEL, and the bidirectional overrides
# and isolates (U+202A-U+202E, U+2066-U+2069). RE2 syntax: Arrow runs it.
FORBIDDEN_CHARACTERS = r"[\x00-\x1f\x7f-\x9f\x{202a}-\x{202e}\x{2066}-\x{2069}]"
CONTROL_MESSAGE = "holds a control character (such as a NUL byte or a line break), which no name or code may hold"
LENGTH_MESSAGE = "is longer than {limit} characters, the most the store holds"
SHOWN_CHARACTERS = 40  # a refused value is quoted this far in a problem report


def is_text_problem(check: str) -> bool:
    """Whether a failed check's text is one of these checks' (so a report reads "value ... holds ...")."""
    before, _, after = LENGTH_MESSAGE.partition("{limit}")
    return check == CONTROL_MESSAGE or (check.startswith(before) and check.endswith(after))


def shown(value) -> str:
    """A value as a report quotes it: at most SHOWN_CHARACTERS, with its length when cut."""
    if isinstance(value, str) and len(value) > SHOWN_CHARACTERS:
        return f"{value[:SHOWN_CHARACTERS]!r}... ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= 2 * SHOWN_CHARACTERS else text[:2 * SHOWN_CHARACTERS] + "..."


def _arrow_text(values):
    import pyarrow

    array = pyarrow.array(values.astype(object).where(values.notna(), None), from_pandas=True)
    return array if array.type == pyarrow.string() else array.cast(pyarrow.string())


def within_length(values, limit: int):
    """True where a value (text, or missing) has at most ``limit`` characters."""
    import pandas as pd
    import pyarrow.compute as pc

    lengths = pc.utf8_length(_arrow_text(values)).to_numpy(zero_copy_only=False)
    return pd.Series(~(lengths > limit), index=values.index)


def without_control_characters(values):
    """True where a value (text, or missing) holds none of ``FORBIDDEN_CHARACTERS``."""
    import pandas as pd
    import pyarrow.compute as pc

    found = pc.fill_null(pc.match_substring_regex(_arrow_text(values), FORBIDDEN_CHARACTERS), False)
    return pd.Series(~found.to_numpy(zero_copy_only=False), index=values.index)


def text_checks(column: str) -> list:
    """The pandera checks for a text column: no control characters and, if it has one, its width."""
    import pandera.pandas as pa

    checks = [pa.Check(without_control_characters, name="control_characters", error=CONTROL_MESSAGE)]
    if column in MAX_LENGTHS:
        limit = MAX_LENGTHS[column]
        checks.append(pa.Check(lambda values: within_length(values, limit), name="max_length",
                               error=LENGTH_MESSAGE.format(limit=limit)))
    return checks
