"""token log-probabilities of cached LLM calls (perplexity metrics)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 23:30:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('llm_call_cache') as batch:
        batch.add_column(sa.Column('logprobs', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('llm_call_cache') as batch:
        batch.drop_column('logprobs')
