"""eval runs: launch attempts of the orchestrator (bounded retries of runs that failed to launch or died)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 14:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('eval_runs') as batch:
        batch.add_column(sa.Column('launch_attempts', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('launch_key', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('launched_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('next_launch_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index('ix_eval_runs_launch_key', ['launch_key'], unique=False)
    with op.batch_alter_table('dagster_requests') as batch:
        batch.add_column(sa.Column('launch_key', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dagster_requests') as batch:
        batch.drop_column('launch_key')
    with op.batch_alter_table('eval_runs') as batch:
        batch.drop_index('ix_eval_runs_launch_key')
        batch.drop_column('next_launch_at')
        batch.drop_column('launched_at')
        batch.drop_column('launch_key')
        batch.drop_column('launch_attempts')
