"""judge license invalidations (append-only): a license whose calibration dataset version was found contaminated

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

#: PostgreSQL refuses any UPDATE or DELETE of an invalidation row (the code has no such path either)
_PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION judge_license_invalidations_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'judge_license_invalidations is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER judge_license_invalidations_append_only BEFORE UPDATE OR DELETE ON judge_license_invalidations
    FOR EACH ROW EXECUTE FUNCTION judge_license_invalidations_append_only();
"""


def upgrade() -> None:
    op.create_table(
        'judge_license_invalidations',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('license_id', sa.Integer(), nullable=False),
        sa.Column('judge_config_hash', sa.String(length=80), nullable=False),
        sa.Column('calibration_dataset_id', sa.String(length=200), nullable=False),
        sa.Column('calibration_version', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('invalidated_by', sa.String(length=200), nullable=False),
        sa.Column('invalidated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['license_id'], ['judge_licenses.id']),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('license_id'),
    )
    op.create_index('ix_judge_license_invalidations_lookup', 'judge_license_invalidations',
                    ['judge_config_hash', 'calibration_dataset_id'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS judge_license_invalidations_append_only ON judge_license_invalidations")
        op.execute("DROP FUNCTION IF EXISTS judge_license_invalidations_append_only()")
    op.drop_index('ix_judge_license_invalidations_lookup', table_name='judge_license_invalidations')
    op.drop_table('judge_license_invalidations')
