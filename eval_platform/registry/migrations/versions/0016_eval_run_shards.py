"""eval run shards: which shard artifacts and index keys each run used (retention purges them with the run)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 06:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'eval_run_shards',
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('shard_key', sa.String(length=80), nullable=False),
        sa.Column('artifact_hash', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['eval_runs.run_id']),
        sa.PrimaryKeyConstraint('run_id', 'shard_key', 'artifact_hash'),
    )
    op.create_index('ix_eval_run_shards_artifact_hash', 'eval_run_shards', ['artifact_hash'])


def downgrade() -> None:
    op.drop_index('ix_eval_run_shards_artifact_hash', table_name='eval_run_shards')
    op.drop_table('eval_run_shards')
