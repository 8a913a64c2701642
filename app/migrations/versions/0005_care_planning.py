"""care planning: the personalised care and support plan's fields, holistic assessments and
clinical-judgement decisions about who is in the programme

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

PLAN_TABLES = ('care_plans', 'care_plan_history')


def _plan_columns() -> list[sa.Column]:
    return [
        sa.Column('what_matters', sa.Text(), nullable=True),
        sa.Column('contingency', sa.JSON(), nullable=True),
        sa.Column('contacts', sa.JSON(), nullable=True),
        sa.Column('follow_ups', sa.JSON(), nullable=True),
        sa.Column('closed_on', sa.Date(), nullable=True),
    ]


def _decision_columns() -> list[sa.Column]:
    return [
        sa.Column('nhs_number', sa.String(length=10), nullable=False),
        sa.Column('decision', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.String(length=30), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('flags', sa.JSON(), nullable=False),
        sa.Column('review_on', sa.Date(), nullable=True),
        sa.Column('decided_on', sa.Date(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    # Nullable columns: existing plans keep NULL, which the services read as "not recorded yet".
    for table in PLAN_TABLES:
        with op.batch_alter_table(table, recreate='never') as batch_op:
            for column in _plan_columns():
                batch_op.add_column(column)

    op.create_table(
        'assessments',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('nhs_number', sa.String(length=10), nullable=False),
        sa.Column('assessed_on', sa.Date(), nullable=False),
        sa.Column('assessor_name', sa.String(length=200), nullable=False),
        sa.Column('assessor_role', sa.String(length=60), nullable=False),
        sa.Column('findings', sa.JSON(), nullable=False),
        sa.Column('what_matters', sa.Text(), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_assessments_nhs_number', 'assessments', ['nhs_number'])

    op.create_table(
        'cohort_decisions', *_decision_columns(),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('nhs_number'),
    )
    op.create_table(
        'cohort_decision_history',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        *_decision_columns(),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('changed_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_cohort_decision_history_nhs_number', 'cohort_decision_history', ['nhs_number'])


def downgrade() -> None:
    op.drop_index('ix_cohort_decision_history_nhs_number', table_name='cohort_decision_history')
    op.drop_table('cohort_decision_history')
    op.drop_table('cohort_decisions')
    op.drop_index('ix_assessments_nhs_number', table_name='assessments')
    op.drop_table('assessments')
    for table in PLAN_TABLES:
        with op.batch_alter_table(table, recreate='never') as batch_op:
            for column in reversed(_plan_columns()):
                batch_op.drop_column(column.name)
