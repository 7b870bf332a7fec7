"""judge licenses (append-only): a judge's agreement with human labels on a calibration dataset version

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:30:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

#: PostgreSQL refuses any UPDATE or DELETE of a license row (the code has no such path either)
_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION judge_licenses_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'judge_licenses is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER judge_licenses_append_only BEFORE UPDATE OR DELETE ON judge_licenses
    FOR EACH ROW EXECUTE FUNCTION judge_licenses_append_only();
"""


def upgrade() -> None:
    op.create_table(
        'judge_licenses',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('judge_key', sa.String(length=300), nullable=False),
        sa.Column('judge_config_hash', sa.String(length=80), nullable=False),
        sa.Column('judge_model', sa.String(length=300), nullable=False),
        sa.Column('judge_prompt_version', sa.String(length=300), nullable=False),
        sa.Column('judge_config', sa.JSON(), nullable=False),
        sa.Column('calibration_dataset_id', sa.String(length=200), nullable=False),
        sa.Column('calibration_version', sa.Integer(), nullable=False),
        sa.Column('calibration_content_hash', sa.String(length=80), nullable=False),
        sa.Column('measure', sa.String(length=16), nullable=False),
        sa.Column('confidence', sa.Float(), nullable=False),
        sa.Column('min_lower_bound', sa.Float(), nullable=False),
        sa.Column('estimate', sa.Float(), nullable=True),
        sa.Column('ci_low', sa.Float(), nullable=True),
        sa.Column('ci_high', sa.Float(), nullable=True),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('n_judge_errors', sa.Integer(), nullable=False),
        sa.Column('pass_rate', sa.Float(), nullable=True),
        sa.Column('licensed', sa.Boolean(), nullable=False),
        sa.Column('verdicts', sa.JSON(), nullable=False),
        sa.Column('drift', sa.JSON(), nullable=True),
        sa.Column('calls', sa.JSON(), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('computed_by', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_judge_licenses_judge_key', 'judge_licenses', ['judge_key'])
    op.create_index('ix_judge_licenses_lookup', 'judge_licenses',
                    ['judge_config_hash', 'calibration_dataset_id', 'calibration_version'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS judge_licenses_append_only ON judge_licenses")
        op.execute("DROP FUNCTION IF EXISTS judge_licenses_append_only()")
    op.drop_index('ix_judge_licenses_lookup', table_name='judge_licenses')
    op.drop_index('ix_judge_licenses_judge_key', table_name='judge_licenses')
    op.drop_table('judge_licenses')
