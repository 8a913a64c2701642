"""Alembic environment: runs migrations on the engine app.db would use for the configured URL."""

from alembic import context

from app.db import get_engine
from app.store import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = get_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
