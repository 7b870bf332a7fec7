"""dataset roles (golden/canary sets) and models' training cutoff and manifest (leakage checks)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 23:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('eval_datasets') as batch:
        batch.add_column(sa.Column('role', sa.String(length=16), server_default='standard', nullable=False))
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('training_cutoff', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('training_manifest_hash', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.drop_column('training_manifest_hash')
        batch.drop_column('training_cutoff')
    with op.batch_alter_table('eval_datasets') as batch:
        batch.drop_column('role')
