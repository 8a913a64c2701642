"""Versioned records (care plans, lead professionals, clinical-judgement decisions): one current
row per person whose ``version`` rises with each save, plus a history row per version.

Every save names the version the user started from; the write is a conditional
``UPDATE ... WHERE version = n`` (or the primary key, for the first version), so two writers can
never both succeed from the same version, across processes, on SQLite and PostgreSQL alike. A save
from an old version raises ``StaleEditError`` with the saved values and what changed since.
"""

from __future__ import annotations

from app.settings import today as app_today
from datetime import date, datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


class StaleEditError(Exception):
    """Someone saved a newer version since the user opened the form."""

    def __init__(self, what: str, expected_version: int, current: dict, changed_fields: list[str]):
        self.expected_version = expected_version
        self.current = current
        self.changed_fields = changed_fields
        changed = ", ".join(changed_fields) or "nothing visible"
        who = current.get("updated_by") or "someone"
        super().__init__(
            f"The {what} was changed by {who} (now version {current.get('version')}, you started from "
            f"version {expected_version}; changed: {changed}); reload or merge before saving."
        )


def moment(at: datetime | None = None) -> datetime:
    """When a change happened: ``at`` (a service told of an event at an earlier time, e.g. a
    programme history being loaded) or now, always time-zone aware (UTC)."""
    if at is None:
        return datetime.now(timezone.utc)
    if isinstance(at, date) and not isinstance(at, datetime):
        at = datetime(at.year, at.month, at.day, 12, tzinfo=timezone.utc)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def day_of(today: date | None = None, at: datetime | None = None) -> date:
    """The day rules are judged on: ``today`` if given, else the day of ``at``, else today."""
    if today is not None:
        return today
    return moment(at).date() if at is not None else app_today()


def current_row(session: Session, model, nhs_number: str):
    return session.execute(
        select(model).where(model.nhs_number == nhs_number).execution_options(populate_existing=True)
    ).scalar_one_or_none()


def versioned_write(session: Session, model, nhs_number: str, expected_version: int, values: dict) -> bool:
    """Write ``values`` as version expected+1 only if the row is still at ``expected_version``."""
    stamp = {"version": expected_version + 1, **values}
    if expected_version == 0:
        try:
            with session.begin_nested():
                session.add(model(nhs_number=nhs_number, **stamp))
                session.flush()
        except IntegrityError:
            return False
        return True
    result = session.execute(
        update(model)
        .where(model.nhs_number == nhs_number, model.version == expected_version)
        .values(**stamp)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def changed_fields(old: dict, new: dict, fields: tuple[str, ...]) -> list[str]:
    return [f for f in fields if old.get(f) != new.get(f)]
