"""llm call cache and pinned prompt templates

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 21:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('llm_call_cache',
    sa.Column('cache_key', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('endpoint', sa.String(length=200), nullable=False),
    sa.Column('endpoint_url', sa.Text(), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('model_version', sa.String(length=100), nullable=False),
    sa.Column('prompt_id', sa.String(length=200), nullable=False),
    sa.Column('prompt_version', sa.String(length=64), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('response_text', sa.Text(), nullable=False),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=True),
    sa.Column('latency_seconds', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('response_model', sa.String(length=200), nullable=True),
    sa.Column('system_fingerprint', sa.String(length=200), nullable=True),
    sa.Column('dataset', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cache_key')
    )
    with op.batch_alter_table('llm_call_cache', schema=None) as batch_op:
        batch_op.create_index('ix_llm_call_cache_lookup', ['kind', 'endpoint', 'model', 'prompt_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_llm_call_cache_dataset'), ['dataset'], unique=False)
        batch_op.create_index(batch_op.f('ix_llm_call_cache_created_at'), ['created_at'], unique=False)

    op.create_table('llm_prompt_templates',
    sa.Column('template_id', sa.String(length=200), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('text_hash', sa.String(length=80), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('system', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('template_id', 'version')
    )


def downgrade() -> None:
    op.drop_table('llm_prompt_templates')
    with op.batch_alter_table('llm_call_cache', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_llm_call_cache_created_at'))
        batch_op.drop_index(batch_op.f('ix_llm_call_cache_dataset'))
        batch_op.drop_index('ix_llm_call_cache_lookup')
    op.drop_table('llm_call_cache')
