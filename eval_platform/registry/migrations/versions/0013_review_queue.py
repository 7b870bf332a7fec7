"""review queue: items a judge run puts up for human review, their append-only labels, and dataset versions' lineage

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-07 02:30:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

#: PostgreSQL refuses any UPDATE or DELETE of a label row (the code has no such path either)
_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION review_labels_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'review_labels is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER review_labels_append_only BEFORE UPDATE OR DELETE ON review_labels
    FOR EACH ROW EXECUTE FUNCTION review_labels_append_only();
"""


def upgrade() -> None:
    op.create_table(
        'review_items',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('dataset_id', sa.String(length=200), nullable=False),
        sa.Column('dataset_version', sa.Integer(), nullable=False),
        sa.Column('model_name', sa.String(length=200), nullable=False),
        sa.Column('model_version', sa.Integer(), nullable=False),
        sa.Column('suite_id', sa.String(length=200), nullable=False),
        sa.Column('suite_version', sa.Integer(), nullable=False),
        sa.Column('example_id', sa.String(length=400), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('judge_label', sa.String(length=16), nullable=True),
        sa.Column('judge_score', sa.Float(), nullable=True),
        sa.Column('judge_agreement', sa.Float(), nullable=True),
        sa.Column('judge_config_hash', sa.String(length=80), nullable=True),
        sa.Column('reference_metric', sa.String(length=200), nullable=True),
        sa.Column('reference_value', sa.Float(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('published_in', sa.String(length=220), nullable=True),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('run_id', 'example_id', 'reason', name='uq_review_item'),
    )
    op.create_index('ix_review_items_dataset_status', 'review_items', ['dataset_id', 'dataset_version', 'status'])
    op.create_index('ix_review_items_status', 'review_items', ['status'])
    op.create_table(
        'review_labels',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=8), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('reviewer', sa.String(length=200), nullable=False),
        sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['review_items.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_review_labels_item_id', 'review_labels', ['item_id'])
    with op.batch_alter_table('eval_datasets') as batch:
        batch.add_column(sa.Column('lineage', sa.JSON(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS review_labels_append_only ON review_labels")
        op.execute("DROP FUNCTION IF EXISTS review_labels_append_only()")
    with op.batch_alter_table('eval_datasets') as batch:
        batch.drop_column('lineage')
    op.drop_index('ix_review_labels_item_id', table_name='review_labels')
    op.drop_table('review_labels')
    op.drop_index('ix_review_items_status', table_name='review_items')
    op.drop_index('ix_review_items_dataset_status', table_name='review_items')
    op.drop_table('review_items')
