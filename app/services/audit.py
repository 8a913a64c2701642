"""The append-only audit trail: every view and change of a person's data, and every refusal.

There is deliberately no update or delete here; the database also refuses both (migration 0001),
and on PostgreSQL the application's role may only insert and read the table (migration 0004).

The rows are hash-chained: each row stores the hash of the previous row (``previous_hash``) and the
sha256 of that hash plus its own content (``row_hash``), so a changed, removed or reordered row
breaks the chain at that row (``verify_chain``, ``proactive-care audit verify``). Rows are appended
in order under one lock: a transaction's events are written when it commits (``before_commit``),
after taking a PostgreSQL advisory lock held until the commit, so two writers can never chain to
the same previous row; SQLite writers already hold the database's one write lock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

import pandas as pd
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from app.exports import csv_text
from app.store import AuditEvent
from app.services.access import CurrentUser, require
from app.services.permissions import Permission

AUDIT_COLUMNS = ("id", "at", "username", "role", "action", "entity", "entity_id", "before", "after", "detail")
CHAINED_FIELDS = AUDIT_COLUMNS[1:]  # what a row's hash covers (the id only orders the chain)
GENESIS_HASH = "0" * 64  # the "previous hash" of the first row
CHAIN_LOCK_KEY = 0x7063_6175_6469  # pg_advisory_xact_lock key that orders appends ("pcaudi")
_PENDING = "audit_pending"


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
        before=_stored_json(before),
        after=_stored_json(after),
        detail=detail,
    )
    deferred = session.info.get("after_close")
    if deferred is not None and (independent or not session.info.get("write")):
        deferred.append(lambda follow_up: _queue(follow_up, fields))
        return
    _queue(session, fields)


def _stored_json(value: dict | None):
    """A snapshot as the JSON column gives it back (so its hash is the same before and after storing)."""
    return None if value is None else json.loads(json.dumps(jsonable(value), default=str))


def _queue(session: Session, fields: dict) -> None:
    session.info.setdefault(_PENDING, []).append(fields)


@event.listens_for(Session, "before_commit")
def _append_queued(session: Session) -> None:
    """Write the transaction's queued events at the end of the chain, just before it commits."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    if session.get_bind().dialect.name == "postgresql":
        # Held until this transaction ends: the next writer reads this one's last row.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    previous = session.scalar(select(AuditEvent.row_hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS_HASH
    for fields in pending:
        digest = row_hash(previous, fields)
        session.add(AuditEvent(**fields, previous_hash=previous, row_hash=digest))
        previous = digest


@event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _utc_text(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite gives UTC, naive
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def row_hash(previous_hash: str, fields: dict) -> str:
    """sha256 of the previous row's hash and this row's content (canonical JSON)."""
    content = {name: fields.get(name) for name in CHAINED_FIELDS}
    content["at"] = _utc_text(content["at"])
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{previous_hash}\n{canonical}".encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    rows: int
    last_hash: str
    broken_id: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_id is None


def verify_chain(session: Session, batch: int = 5000) -> ChainCheck:
    """Walk the trail in id order, recomputing each row's hash; stops at the first broken row."""
    previous, rows = GENESIS_HASH, 0
    query = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=batch)
    for row in session.scalars(query):
        fields = {name: getattr(row, name) for name in CHAINED_FIELDS}
        problem = None
        if row.previous_hash != previous:
            problem = ("it does not follow the row before it (a row before it was removed, added or "
                       "reordered)" if row.previous_hash else "it has no hash (written outside the application)")
        elif row.row_hash != row_hash(previous, fields):
            problem = "its content no longer matches its hash (it was changed after it was written)"
        if problem:
            return ChainCheck(rows, previous, row.id, f"row {row.id} ({row.action} by {row.username} at "
                                                      f"{_utc_text(row.at)[:19]}Z): {problem}")
        previous, rows = row.row_hash, rows + 1
    return ChainCheck(rows, previous)


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
    return csv_text(frame)  # usernames, details and snapshots are neutralised like every export
