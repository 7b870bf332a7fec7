"""release ledger (append-only, hash-chained) and demotions (a promotion row without a version)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

#: PostgreSQL refuses any UPDATE or DELETE of a ledger row (the code has no such path either)
_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION release_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'release_ledger is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER release_ledger_append_only BEFORE UPDATE OR DELETE ON release_ledger
    FOR EACH ROW EXECUTE FUNCTION release_ledger_append_only();
"""


def upgrade() -> None:
    op.create_table(
        'release_ledger',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('model_name', sa.String(length=200), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('model_version', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('evidence', sa.JSON(), nullable=False),
        sa.Column('previous_hash', sa.String(length=80), nullable=False),
        sa.Column('entry_hash', sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('model_name', 'sequence', name='uq_release_ledger_sequence'),
    )
    op.create_index('ix_release_ledger_model_name', 'release_ledger', ['model_name'])
    with op.batch_alter_table('model_promotions') as batch:
        batch.alter_column('model_version', existing_type=sa.Integer(), nullable=True)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS release_ledger_append_only ON release_ledger")
        op.execute("DROP FUNCTION IF EXISTS release_ledger_append_only()")
    op.execute("DELETE FROM model_promotions WHERE model_version IS NULL")
    with op.batch_alter_table('model_promotions') as batch:
        batch.alter_column('model_version', existing_type=sa.Integer(), nullable=False)
    op.drop_index('ix_release_ledger_model_name', table_name='release_ledger')
    op.drop_table('release_ledger')
