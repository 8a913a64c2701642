"""audit rows hash-chained; on PostgreSQL an application role that may only insert and read them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:00:00

The audit rows already written are chained in id order (the append-only guard is lifted for that
one UPDATE inside this migration's transaction and put back). On PostgreSQL the role
``proactive_care_app`` is created (NOLOGIN; a deployment grants it to the login the app uses, see
docs/data.md): it may read and write the application's tables but only SELECT and INSERT on
``audit_events``, and it owns nothing, so it cannot drop or disable the append-only triggers.
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

APP_ROLE = "proactive_care_app"
APPEND_ONLY_MESSAGE = "audit_events is append-only: UPDATE and DELETE are refused"  # as in 0001


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('row_hash', sa.String(length=64), nullable=True))
    _chain_existing_rows()
    if op.get_bind().dialect.name == "postgresql":
        _create_app_role()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _drop_app_role_grants()
    # recreate="never": SQLite 3.35+ drops a column in place, keeping the append-only triggers.
    with op.batch_alter_table('audit_events', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('row_hash')
        batch_op.drop_column('previous_hash')


def _chain_existing_rows() -> None:
    from app.services.audit import CHAINED_FIELDS, GENESIS_HASH, row_hash

    bind = op.get_bind()
    events = sa.table('audit_events', sa.column('id', sa.Integer), sa.column('at', sa.DateTime(timezone=True)),
                      *[sa.column(name, sa.JSON if name in ("before", "after") else sa.String)
                        for name in CHAINED_FIELDS if name != "at"],
                      sa.column('previous_hash', sa.String), sa.column('row_hash', sa.String))
    rows = bind.execute(sa.select(events).order_by(events.c.id)).mappings().all()
    if not rows:
        return
    updates, previous = [], GENESIS_HASH
    for row in rows:
        digest = row_hash(previous, dict(row))
        updates.append({"row_id": row["id"], "previous_hash": previous, "row_hash": digest})
        previous = digest
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
    bind.execute(events.update().where(events.c.id == sa.bindparam("row_id"))
                 .values(previous_hash=sa.bindparam("previous_hash"), row_hash=sa.bindparam("row_hash")), updates)
    if postgres:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete")
    else:
        op.execute("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                   f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END")


def _create_app_role() -> None:
    # Roles belong to the whole PostgreSQL cluster: another database may have made it already.
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN;
            END IF;
        END $$;
    """)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM {APP_ROLE}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {APP_ROLE}")
    # Tables later migrations create (as the migrating role) are the app's to use too.
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")


def _drop_app_role_grants() -> None:
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
