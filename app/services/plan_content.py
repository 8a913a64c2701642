"""What a personalised care and support plan holds besides its status and review date: what
matters to the person, actions (each with an owner and a due date), a contingency and escalation
plan (who to call, day and night, instead of 999), carers and key contacts, and the follow-up
schedule. Each field's shape and checks live here, and the one rule for what is overdue.

Dates inside these lists are ISO text ("2026-12-02"), as the store keeps them in JSON. A bad value
raises ``InvalidCarePlan``: one sentence saying what is wrong and where.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

from features.errors import UserInputError

CONTINGENCY_FIELDS = ("day_name", "day_phone", "night_name", "night_phone", "what_to_do")
CONTINGENCY_LABELS = {
    "day_name": "who to call in the day", "day_phone": "the day-time phone number",
    "night_name": "who to call at night and at weekends", "night_phone": "the night-time phone number",
    "what_to_do": "what to look out for and what to do",
}
NAME_LIMIT, PHONE_LIMIT, LINE_LIMIT, TEXT_LIMIT = 200, 30, 500, 4000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PHONE = re.compile(r"^[0-9 +()\-]+$")


class InvalidCarePlan(UserInputError):
    """A change that breaks the care plan's rules (one sentence saying which)."""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in ("", "NaT", "nan", "None")


def clean_text(value: Any, where: str, limit: int = LINE_LIMIT, multiline: bool = False) -> str | None:
    """Trimmed text or None; refuses control characters (and line breaks where one line is
    expected) and text longer than ``limit``."""
    if _missing(value):
        return None
    text = str(value).strip().replace("\r\n", "\n")
    if not text:
        return None
    if _CONTROL.search(text) or (not multiline and "\n" in text):
        raise InvalidCarePlan(f"{where.capitalize()} contains a line break or control character; use plain text.")
    if len(text) > limit:
        raise InvalidCarePlan(f"{where.capitalize()} is {len(text):,} characters long; the limit is {limit:,}.")
    return text


def iso_day(value: Any, where: str) -> str | None:
    """A date as ISO text, from a date, a datetime, pandas' Timestamp or 'YYYY-MM-DD' text."""
    if _missing(value):
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()[:10]).isoformat()
    except ValueError:
        raise InvalidCarePlan(f"{where.capitalize()} {value!r} is not a date (YYYY-MM-DD).") from None


def clean_phone(value: Any, where: str) -> str | None:
    phone = clean_text(value, where, PHONE_LIMIT)
    if phone is None:
        return None
    digits = sum(ch.isdigit() for ch in phone)
    if not _PHONE.match(phone) or not 3 <= digits <= 15:
        raise InvalidCarePlan(f"{where.capitalize()} {phone!r} is not a phone number (3 to 15 digits, e.g. 0116 225 6000 or 111).")
    return phone


def _rows(value: Any, what: str) -> list[dict]:
    if _missing(value):
        return []
    if isinstance(value, (str, bytes, dict)) or not all(isinstance(row, dict) for row in value):
        raise InvalidCarePlan(f"Care plan {what} must be a list of entries.")
    # rows a form left completely empty are not entries
    return [row for row in value if any(not _missing(v) and v is not False for v in row.values())]


def _done_on(value: Any, where: str, today: date) -> str | None:
    done = iso_day(value, where)
    if done is not None and date.fromisoformat(done) > today:
        raise InvalidCarePlan(f"{where.capitalize()} {done} is in the future.")
    return done


def clean_actions(value: Any, today: date) -> list[dict]:
    actions = []
    for number, row in enumerate(_rows(value, "actions"), start=1):
        where = f"care plan action {number}"
        action = clean_text(row.get("action"), f"{where}'s description")
        owner = clean_text(row.get("owner"), f"{where}'s owner", NAME_LIMIT)
        if action is None or owner is None:
            raise InvalidCarePlan(f"Care plan action {number} needs both an action and an owner.")
        due = iso_day(row.get("due"), f"{where}'s due date")
        if due is None:
            raise InvalidCarePlan(f"Care plan action {number} ({action}) needs a due date.")
        actions.append({"action": action, "owner": owner, "due": due,
                        "done_on": _done_on(row.get("done_on"), f"{where}'s date done", today)})
    return actions


def clean_follow_ups(value: Any, today: date) -> list[dict]:
    follow_ups = []
    for number, row in enumerate(_rows(value, "follow-ups"), start=1):
        where = f"follow-up {number}"
        what = clean_text(row.get("what"), f"{where}'s description")
        who = clean_text(row.get("who"), f"{where}'s 'who'", NAME_LIMIT)
        due = iso_day(row.get("due"), f"{where}'s date")
        if what is None or who is None or due is None:
            raise InvalidCarePlan(f"Follow-up {number} needs what will happen, who will do it and a date.")
        follow_ups.append({"due": due, "what": what, "who": who,
                           "done_on": _done_on(row.get("done_on"), f"{where}'s date done", today)})
    return sorted(follow_ups, key=lambda f: f["due"])


def clean_contacts(value: Any) -> list[dict]:
    contacts = []
    for number, row in enumerate(_rows(value, "contacts"), start=1):
        where = f"contact {number}"
        name = clean_text(row.get("name"), f"{where}'s name", NAME_LIMIT)
        if name is None:
            raise InvalidCarePlan(f"Contact {number} needs a name.")
        contacts.append({
            "name": name,
            "relationship": clean_text(row.get("relationship"), f"{where}'s relationship", NAME_LIMIT),
            "phone": clean_phone(row.get("phone"), f"{where}'s phone number"),
            "carer": bool(row.get("carer")) and not _missing(row.get("carer")),
        })
    return contacts


def clean_contingency(value: Any) -> dict:
    if _missing(value):
        return {}
    if not isinstance(value, dict):
        raise InvalidCarePlan("The contingency plan must give who to call in the day and at night, and what to do.")
    unknown = sorted(set(value) - set(CONTINGENCY_FIELDS))
    if unknown:
        raise InvalidCarePlan(f"The contingency plan has no field(s) {', '.join(unknown)}.")
    plan = {
        "day_name": clean_text(value.get("day_name"), "who to call in the day", NAME_LIMIT),
        "day_phone": clean_phone(value.get("day_phone"), "the day-time phone number"),
        "night_name": clean_text(value.get("night_name"), "who to call at night", NAME_LIMIT),
        "night_phone": clean_phone(value.get("night_phone"), "the night-time phone number"),
        "what_to_do": clean_text(value.get("what_to_do"), "what to look out for and what to do", TEXT_LIMIT,
                                 multiline=True),
    }
    for when, words in (("day", "in the day"), ("night", "at night and at weekends")):
        if (plan[f"{when}_name"] is None) != (plan[f"{when}_phone"] is None):
            raise InvalidCarePlan(f"The contingency plan needs both who to call {words} and their phone number.")
    return {k: v for k, v in plan.items() if v is not None}


def contingency_in_words(contingency: dict | None) -> str | None:
    """The contingency plan as one paragraph (the patient page, the FHIR note, the printed plan)."""
    contingency = contingency or {}
    parts = []
    if contingency.get("day_name"):
        parts.append(f"In the day, call {contingency['day_name']} on {contingency['day_phone']}.")
    if contingency.get("night_name"):
        parts.append(f"At night and at weekends, call {contingency['night_name']} on {contingency['night_phone']}.")
    if parts:
        parts.append("Call them instead of 999, unless it is a life-threatening emergency.")
    if contingency.get("what_to_do"):
        parts.append(f"What to look out for and what to do: {contingency['what_to_do']}")
    return " ".join(parts) or None


def has_contingency(contingency: dict | None) -> bool:
    """A contingency plan says whom to call both in the day and at night."""
    contingency = contingency or {}
    return bool(contingency.get("day_phone") and contingency.get("night_phone"))


ACTION_KEYS = ("action", "owner", "due", "done_on")
FOLLOW_UP_KEYS = ("due", "what", "who", "done_on")
CONTACT_KEYS = ("name", "relationship", "phone", "carer")


def complete(items: list | None, keys: tuple[str, ...]) -> list[dict]:
    """Entries with every key present (a plan saved before a field existed lacks some)."""
    return [{key: item.get(key) for key in keys} for item in items or [] if isinstance(item, dict)]


# ------------------------------------------------------------------ what is open and overdue
def is_overdue(item: dict, today: date) -> bool:
    """An action or follow-up not done by the day after its date (on the date itself it is due,
    not overdue: the same rule as a plan's review)."""
    due = item.get("due")
    return not item.get("done_on") and due is not None and date.fromisoformat(str(due)[:10]) < today


def open_items(items: list | None) -> list[dict]:
    return [item for item in items or [] if isinstance(item, dict) and not item.get("done_on")]


def overdue_items(items: list | None, today: date) -> list[dict]:
    return [item for item in open_items(items) if is_overdue(item, today)]
