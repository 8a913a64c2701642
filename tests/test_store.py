"""The store itself: migrations, engines, sessions, settings."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text

from app import settings
from app.cli import main
from app.db import get_engine, session_scope
from app.store import Base, Pcn, Score
from features.errors import UserInputError

OLD_FLAGS = ("top_2pct", "top_5pct", "age_60_plus", "age_18_59_3plus_ltc", "dementia")  # before 0003


def test_migrations_create_every_table_and_are_repeatable(store_url, capsys):
    engine = get_engine(store_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()
    assert main(["db", "upgrade", "--database", store_url]) == 0  # already at head: a no-op
    assert "latest schema" in capsys.readouterr().out


def test_migrations_match_the_models(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = get_engine(store_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_migration_0003_keeps_each_persons_flags_and_the_run_cutoffs(loaded_url):
    """Back to 0002 (five boolean flag columns, two cut-off columns) and forward again: every person
    keeps the flags they had, now as bits in the order the run records."""
    from alembic import command

    from app.migrations import alembic_config, upgrade
    from app.services.patients import current_run

    engine = get_engine(loaded_url)
    with session_scope(engine) as session:
        run = current_run(session)
        before = {n: set(run.flags_of(b)) & set(OLD_FLAGS)
                  for n, b in session.execute(select(Score.nhs_number, Score.flags))}
    engine.dispose()
    assert any(before.values())
    command.downgrade(alembic_config(loaded_url), "0002")
    engine = get_engine(loaded_url)
    assert set(OLD_FLAGS) <= {c["name"] for c in inspect(engine).get_columns("scores")}
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE score_runs SET top_2pct_cutoff = 0.013")
    engine.dispose()
    upgrade(loaded_url)
    engine = get_engine(loaded_url)
    with session_scope(engine) as session:
        run = current_run(session)
        # the loaded run recorded both cut-offs (score files must); the edited one comes back changed
        assert run.flag_names == list(OLD_FLAGS) and run.cutoffs == {"top_2pct": 0.013, "top_5pct": 0.05}
        assert run.top_cutoffs == {"top_2pct": 0.013, "top_5pct": 0.05}
        after = {n: set(run.flags_of(b)) for n, b in session.execute(select(Score.nhs_number, Score.flags))}
    engine.dispose()
    assert after == before


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
