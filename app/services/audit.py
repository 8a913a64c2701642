"""The append-only audit trail: every view and change of a person's data, and every refusal.

There is deliberately no update or delete here; the database also refuses both (migration 0001).
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime, time, timezone
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store import AuditEvent
from app.services.access import CurrentUser, require
from app.services.permissions import Permission

AUDIT_COLUMNS = ("id", "at", "username", "role", "action", "entity", "entity_id", "before", "after", "detail")


def jsonable(value: Any) -> Any:
    """Dates and other values as JSON-friendly types, for before/after snapshots."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def record(
    session: Session,
    user: CurrentUser,
    action: str,
    entity: str,
    entity_id: str | None = None,
    *,
    before: dict | None = None,
    after: dict | None = None,
    detail: str | None = None,
    independent: bool = False,
) -> None:
    """Append one event.

    In a write session the event joins the caller's transaction (a change and its audit row
    commit together). Views in read sessions, and ``independent`` events (refusals), are written
    in their own transaction when the session closes, so they are kept even if the caller rolls back.
    """
    fields = dict(
        at=datetime.now(timezone.utc),
        username=user.username,
        role=str(user.role),
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        detail=detail,
    )
    deferred = session.info.get("after_close")
    if deferred is not None and (independent or not session.info.get("write")):
        deferred.append(lambda follow_up: follow_up.add(AuditEvent(**fields)))
        return
    session.add(AuditEvent(**fields))
    session.flush()


def search_audit(
    session: Session,
    user: CurrentUser,
    *,
    username: str | None = None,
    action: str | None = None,
    entity_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    limit: int = 5000,
) -> pd.DataFrame:
    """Audit events, newest first (admins only). ``until`` includes the whole day."""
    require(session, user, Permission.READ_AUDIT, entity="audit")
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if username:
        query = query.where(AuditEvent.username == username)
    if action:
        query = query.where(AuditEvent.action == action)
    if entity_id:
        query = query.where(AuditEvent.entity_id == entity_id)
    if since:
        query = query.where(AuditEvent.at >= datetime.combine(since, time.min, timezone.utc))
    if until:
        query = query.where(AuditEvent.at <= datetime.combine(until, time.max, timezone.utc))
    rows = [
        {column: getattr(event, column) for column in AUDIT_COLUMNS}
        for event in session.scalars(query)
    ]
    record(session, user, "audit_search", "audit", detail=f"{len(rows)} events")
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def audit_csv(events: pd.DataFrame) -> str:
    """CSV of a search result; before/after as JSON text."""
    frame = events.copy()
    for column in ("before", "after"):
        frame[column] = frame[column].map(lambda v: "" if v is None else json.dumps(v, sort_keys=True))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()
