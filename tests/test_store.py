"""The store itself: migrations, engines, sessions, settings."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from app import settings
from app.cli import main
from app.db import get_engine, session_scope
from app.store import Base, Pcn
from features.errors import UserInputError


def test_migrations_create_every_table_and_are_repeatable(store_url, capsys):
    engine = get_engine(store_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()
    assert main(["db", "upgrade", "--database", store_url]) == 0  # already at head: a no-op
    assert "latest schema" in capsys.readouterr().out


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'nested' / 'store.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    engine.dispose()


def test_session_scope_commits_or_rolls_back(store_url):
    engine = get_engine(store_url)
    with pytest.raises(ZeroDivisionError):
        with session_scope(engine, write=True) as session:
            session.add(Pcn(pcn_code="N9", pcn_name="Lost"))
            session.flush()
            1 / 0
    with session_scope(engine, write=True) as session:
        session.add(Pcn(pcn_code="N8", pcn_name="Kept"))
    with session_scope(engine) as session:
        assert [p.pcn_code for p in session.query(Pcn)] == ["N8"]
        assert session.execute(text("SELECT COUNT(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def test_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PROACTIVE_CARE_DATABASE_URL", raising=False)
    monkeypatch.setattr(settings, "SECRETS_FILE", tmp_path / "secrets.toml")
    assert settings.database_url().endswith("data/proactive_care.db")
    (tmp_path / "secrets.toml").write_text('[proactive_care]\ndatabase_url = "postgresql://pc:s3cret@db/pc"\n')
    assert settings.database_url() == "postgresql://pc:s3cret@db/pc"
    monkeypatch.setenv("PROACTIVE_CARE_DATABASE_URL", "postgresql://postgres@db/pc")
    assert settings.database_url() == "postgresql://postgres@db/pc"
    monkeypatch.setenv("PROACTIVE_CARE_MODE", "production")
    assert not settings.demo_mode()
    monkeypatch.setenv("PROACTIVE_CARE_MODE", "staging")
    with pytest.raises(UserInputError, match="PROACTIVE_CARE_MODE"):
        settings.demo_mode()
    monkeypatch.setenv("PROACTIVE_CARE_REVIEW_INTERVAL_DAYS", "soon")
    with pytest.raises(UserInputError, match="whole number"):
        settings.review_interval_days()
