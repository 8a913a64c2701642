"""Text from records and users, made safe for where it is shown: Markdown on a page.

A name, a practice name, a reason or a lead professional comes from an import or a form. Put into
``st.markdown``, a caption, a heading or an expander label as it is, "[Click here](https://...)"
becomes a link, "*" and "_" change the type, ":red[...]" and "$...$" are Streamlit directives, and
a line break starts a new block. ``markdown_text`` escapes every ASCII punctuation character
(CommonMark lets any of them be escaped, and then shows it as itself) and turns line breaks and
other control characters into spaces (leading and trailing space dropped, as Markdown would, and
four leading spaces would otherwise make a code block), so the reader sees the text as recorded.

Plain Python, no Streamlit: the pages call it; CSV and Excel exports have their own rule
(``app/exports.py``).
"""

from __future__ import annotations

import re
import string

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def markdown_text(value) -> str:
    """``value`` as Markdown that displays as exactly its text (None shows as nothing)."""
    if value is None:
        return ""
    return _PUNCTUATION.sub(r"\\\1", _CONTROL.sub(" ", str(value)).strip())
