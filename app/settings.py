"""Settings from the environment (never from the repository).

- ``PROACTIVE_CARE_DATABASE_URL``: any SQLAlchemy URL; else ``database_url`` under
  ``[proactive_care]`` in ``.streamlit/secrets.toml`` (git-ignored, for a password); default an
  SQLite file ``data/proactive_care.db`` under the repository.
- ``PROACTIVE_CARE_MODE``: ``production`` (the default: no demo users; the app refuses to start while
  any exist) or ``demo`` (an explicit choice: demo users with published passwords are seeded;
  `make run`, `.ci/run` and the tests choose it).
- ``PROACTIVE_CARE_MIGRATION_DATABASE_URL``: where `db upgrade` connects, if not the app's URL (on
  PostgreSQL, the role that owns the tables; the app's own URL uses a member of proactive_care_app).
- ``PROACTIVE_CARE_REVIEW_INTERVAL_DAYS``: default gap between care-plan reviews (182 days).
- ``PROACTIVE_CARE_TODAY``: the app's date (YYYY-MM-DD), in demo mode only, so that a synthetic
  programme ending at its records' index date is shown as current (due and overdue reviews mean
  something); production always uses the real date.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from pathlib import Path

from features.errors import UserInputError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_PATH = REPO_ROOT / "data" / "proactive_care.db"
SECRETS_FILE = REPO_ROOT / ".streamlit" / "secrets.toml"
MODES = ("demo", "production")
DEFAULT_MODE = "production"  # a deployment that forgets the setting gets no published passwords
DEFAULT_REVIEW_INTERVAL_DAYS = 182


def _secret(name: str) -> str:
    if not SECRETS_FILE.is_file():
        return ""
    try:
        secrets = tomllib.loads(SECRETS_FILE.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserInputError(f"{SECRETS_FILE} is not valid TOML ({error}).") from None
    return str(secrets.get("proactive_care", {}).get(name, "")).strip()


def database_url() -> str:
    url = os.environ.get("PROACTIVE_CARE_DATABASE_URL", "").strip() or _secret("database_url")
    return url or f"sqlite:///{DEFAULT_DATABASE_PATH}"


def migration_database_url() -> str:
    """Where `db upgrade` connects: ``PROACTIVE_CARE_MIGRATION_DATABASE_URL`` (the role that owns the
    tables, on PostgreSQL), else the application's own URL."""
    return os.environ.get("PROACTIVE_CARE_MIGRATION_DATABASE_URL", "").strip() or database_url()


def mode() -> str:
    value = os.environ.get("PROACTIVE_CARE_MODE", DEFAULT_MODE).strip().lower() or DEFAULT_MODE
    if value not in MODES:
        raise UserInputError(
            f"PROACTIVE_CARE_MODE is {value!r}; it must be one of {', '.join(MODES)}."
        )
    return value


def demo_mode() -> bool:
    return mode() == "demo"


def review_interval_days() -> int:
    raw = os.environ.get("PROACTIVE_CARE_REVIEW_INTERVAL_DAYS", "").strip()
    if not raw:
        return DEFAULT_REVIEW_INTERVAL_DAYS
    if not raw.isdigit() or int(raw) == 0:
        raise UserInputError(
            f"PROACTIVE_CARE_REVIEW_INTERVAL_DAYS is {raw!r}; it must be a whole number of days above 0."
        )
    return int(raw)


def today() -> date:
    """The app's date: the one owner every service and page reads instead of ``date.today()``."""
    raw = os.environ.get("PROACTIVE_CARE_TODAY", "").strip()
    if not raw:
        return date.today()
    if not demo_mode():
        raise UserInputError(
            "PROACTIVE_CARE_TODAY is set but the mode is production; the app's date can only be moved in demo mode."
        )
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise UserInputError(f"PROACTIVE_CARE_TODAY is {raw!r}; it must be a date written YYYY-MM-DD.") from None
