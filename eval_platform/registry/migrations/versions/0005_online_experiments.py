"""online experiments: experiments, ingests, analyses

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 03:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('experiment_id', sa.String(length=200), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('config_hash', sa.String(length=80), nullable=False),
    sa.Column('candidate_models', sa.JSON(), nullable=False),
    sa.Column('control_model', sa.String(length=200), nullable=False),
    sa.Column('offline_metric', sa.String(length=200), nullable=True),
    sa.Column('offline_gate', sa.JSON(), nullable=False),
    sa.Column('access_policy', sa.JSON(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('experiment_id')
    )
    op.create_table('experiment_ingests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('experiment_id', sa.String(length=200), nullable=False),
    sa.Column('dataset_key', sa.String(length=220), nullable=False),
    sa.Column('content_hash', sa.String(length=80), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('ingested_by', sa.String(length=200), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('experiment_ingests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experiment_ingests_experiment_id'), ['experiment_id'], unique=False)
    op.create_table('experiment_analyses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('experiment_id', sa.String(length=200), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('inputs_hash', sa.String(length=80), nullable=False),
    sa.Column('code_version', sa.String(length=64), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('trustworthy', sa.Boolean(), nullable=False),
    sa.Column('guardrail_verdict', sa.String(length=32), nullable=False),
    sa.Column('agreement', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('dagster_run_id', sa.String(length=64), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('experiment_analyses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experiment_analyses_experiment_id'), ['experiment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_experiment_analyses_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('experiment_analyses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_experiment_analyses_status'))
        batch_op.drop_index(batch_op.f('ix_experiment_analyses_experiment_id'))
    op.drop_table('experiment_analyses')
    with op.batch_alter_table('experiment_ingests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_experiment_ingests_experiment_id'))
    op.drop_table('experiment_ingests')
    op.drop_table('experiments')
