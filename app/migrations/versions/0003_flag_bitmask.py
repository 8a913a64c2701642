"""score flags as one bitmask (the flag registry), eFI category, cut-offs and flag order per run

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 15:30:00
"""

import json

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# The five flags before the registry, in the order that became their bits.
OLD_FLAGS = ('top_2pct', 'top_5pct', 'age_60_plus', 'age_18_59_3plus_ltc', 'dementia')


def upgrade() -> None:
    with op.batch_alter_table('score_runs', recreate='never') as batch_op:
        batch_op.add_column(sa.Column('cutoffs', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('flag_names', sa.JSON(), nullable=True))
    with op.batch_alter_table('scores', recreate='never') as batch_op:
        batch_op.add_column(sa.Column('flags', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('efi_category', sa.String(length=10), nullable=True))

    connection = op.get_bind()
    runs = connection.execute(sa.text('SELECT id, top_2pct_cutoff, top_5pct_cutoff FROM score_runs')).all()
    for run_id, narrow, wide in runs:
        cutoffs = {name: value for name, value in (('top_2pct', narrow), ('top_5pct', wide)) if value is not None}
        connection.execute(sa.text('UPDATE score_runs SET cutoffs = :c, flag_names = :f WHERE id = :i'),
                           {'c': json.dumps(cutoffs), 'f': json.dumps(list(OLD_FLAGS)), 'i': run_id})
    bits = ' + '.join(f'(CASE WHEN {name} THEN {1 << i} ELSE 0 END)' for i, name in enumerate(OLD_FLAGS))
    connection.execute(sa.text(f'UPDATE scores SET flags = {bits}'))

    with op.batch_alter_table('scores', recreate='never') as batch_op:
        for name in OLD_FLAGS:
            batch_op.drop_column(name)
    with op.batch_alter_table('score_runs', recreate='never') as batch_op:
        batch_op.drop_column('top_2pct_cutoff')
        batch_op.drop_column('top_5pct_cutoff')


def downgrade() -> None:
    with op.batch_alter_table('scores', recreate='never') as batch_op:
        for name in OLD_FLAGS:
            batch_op.add_column(sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('score_runs', recreate='never') as batch_op:
        batch_op.add_column(sa.Column('top_2pct_cutoff', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('top_5pct_cutoff', sa.Float(), nullable=True))
    connection = op.get_bind()
    for position, name in enumerate(OLD_FLAGS):
        connection.execute(sa.text(f'UPDATE scores SET {name} = ((flags & {1 << position}) != 0)'))
    for run_id, cutoffs in connection.execute(sa.text('SELECT id, cutoffs FROM score_runs')).all():
        cutoffs = json.loads(cutoffs) if isinstance(cutoffs, str) else (cutoffs or {})
        connection.execute(sa.text('UPDATE score_runs SET top_2pct_cutoff = :n, top_5pct_cutoff = :w WHERE id = :i'),
                           {'n': cutoffs.get('top_2pct'), 'w': cutoffs.get('top_5pct'), 'i': run_id})
    with op.batch_alter_table('scores', recreate='never') as batch_op:
        batch_op.drop_column('efi_category')
        batch_op.drop_column('flags')
    with op.batch_alter_table('score_runs', recreate='never') as batch_op:
        batch_op.drop_column('flag_names')
        batch_op.drop_column('cutoffs')
