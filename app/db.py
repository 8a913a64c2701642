"""Engines and sessions.

SQLite (the embedded default) runs in WAL mode with a busy timeout so readers never wait for a
writer. A session that writes must be opened with ``session_scope(engine, write=True)``: on SQLite it
takes the write lock at BEGIN (``BEGIN IMMEDIATE``), so two writers queue instead of failing when one
read a snapshot the other then changed. PostgreSQL (``postgresql+psycopg://...``) needs nothing
special: the services make their changes with conditional updates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import settings

SQLITE_BUSY_TIMEOUT_SECONDS = 60
_WRITE_OPTION = "proactive_care_write"


def _normalise(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def get_engine(url: str | None = None) -> Engine:
    url = _normalise(url or settings.database_url())
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def is_sqlite(engine_or_session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "sqlite"


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session committed on success and rolled back on error.

    ``write=True`` is required by every service that changes data (they check ``session.info``).
    Work queued in ``session.info["after_close"]`` (callables taking a session) runs afterwards in
    its own short write transaction, whether this one committed or rolled back: the audit trail
    uses it for views in read sessions and for refusals, which must be kept even when the
    caller's transaction is rolled back.
    """
    bind = engine.execution_options(**{_WRITE_OPTION: True}) if write else engine
    session = Session(bind=bind, expire_on_commit=False, info={"write": write, "after_close": []})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        pending = session.info["after_close"]
        session.close()
        if pending:
            with session_scope(engine, write=True) as follow_up:
                for work in pending:
                    work(follow_up)


def require_write_session(session: Session) -> None:
    if not session.info.get("write"):
        raise RuntimeError(
            "This service changes data: open the session with session_scope(engine, write=True)."
        )
