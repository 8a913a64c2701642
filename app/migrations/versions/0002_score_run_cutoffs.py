"""score runs record their top cut-offs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 20:10:58.134691
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: SQLite adds them in place; existing runs keep NULL (= the default cut-offs).
    with op.batch_alter_table('score_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('top_2pct_cutoff', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('top_5pct_cutoff', sa.Float(), nullable=True))


def downgrade() -> None:
    # recreate="never": copying score_runs to a new table on SQLite would drop the old one, and
    # with foreign keys on that cascades to every score row; SQLite 3.35+ drops a column in place.
    with op.batch_alter_table('score_runs', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('top_5pct_cutoff')
        batch_op.drop_column('top_2pct_cutoff')
