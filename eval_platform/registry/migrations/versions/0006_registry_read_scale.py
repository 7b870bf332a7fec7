"""registry read scale: indexes for every lookup path; queue time, run cost and stale baseline as columns

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 14:00:00.000000

``eval_runs.queue_seconds``, ``eval_runs.cost`` and ``eval_runs.stale_baseline_run_id`` let ``/metrics``
aggregate in SQL over one covering index instead of reading every run's JSON; existing runs are
backfilled here from what they are derived from (once).
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_BACKFILL_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('cost', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('stale_baseline_run_id', sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_eval_runs_stale_baseline_run_id'), ['stale_baseline_run_id'], unique=False)
        batch_op.create_index('ix_eval_runs_requested_at', ['requested_at', 'status', 'finished_at', 'queue_seconds',
                                                            'metric_seconds', 'cost'], unique=False)
        batch_op.create_index('ix_eval_runs_status_requested_at', ['status', 'requested_at'], unique=False)
        batch_op.create_index('ix_eval_runs_model_version_status', ['model_name', 'model_version', 'status'], unique=False)
        batch_op.create_index('ix_eval_runs_dataset_version', ['dataset_id', 'dataset_version'], unique=False)
        batch_op.create_index('ix_eval_runs_suite_version', ['suite_id', 'suite_version'], unique=False)
    with op.batch_alter_table('gate_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_gate_decisions_model_version_scope', ['model_name', 'model_version', 'scope'], unique=False)
        batch_op.create_index('ix_gate_decisions_eval_run_id', ['eval_run_id'], unique=False)
    with op.batch_alter_table('gate_overrides', schema=None) as batch_op:
        batch_op.create_index('ix_gate_overrides_gate_decision_id', ['gate_decision_id'], unique=False)
    _backfill()


def _backfill() -> None:
    """Derive the new columns of the runs already recorded, in batches (the JSON is read once, here)."""
    from eval_platform.registry.schema import COSTED_STATUSES, recorded_call_cost

    runs = sa.table('eval_runs', sa.column('run_id', sa.String), sa.column('status', sa.String),
                    sa.column('results', sa.JSON), sa.column('lineage', sa.JSON), sa.column('comparison', sa.JSON),
                    sa.column('cost', sa.Float), sa.column('stale_baseline_run_id', sa.String))
    connection = op.get_bind()
    if connection.dialect.name == 'postgresql':
        seconds = 'EXTRACT(EPOCH FROM started_at - requested_at)'
    else:  # SQLite keeps UTC timestamps as text
        seconds = '(julianday(started_at) - julianday(requested_at)) * 86400.0'
    connection.execute(sa.text(f'UPDATE eval_runs SET queue_seconds = {seconds} WHERE started_at IS NOT NULL'))
    last = ''
    while True:
        rows = connection.execute(sa.select(runs.c.run_id, runs.c.status, runs.c.results, runs.c.lineage, runs.c.comparison)
                                  .where(runs.c.run_id > last).order_by(runs.c.run_id).limit(_BACKFILL_BATCH)).all()
        if not rows:
            return
        for row in rows:
            stale = (row.comparison or {}).get('stale_baseline_run_id') if isinstance(row.comparison, dict) else None
            cost = recorded_call_cost(row.results, row.lineage, row.comparison) if row.status in COSTED_STATUSES else None
            if stale or cost is not None:
                connection.execute(runs.update().where(runs.c.run_id == row.run_id)
                                   .values(cost=cost, stale_baseline_run_id=str(stale)[:40] if stale else None))
        last = rows[-1].run_id


def downgrade() -> None:
    with op.batch_alter_table('gate_overrides', schema=None) as batch_op:
        batch_op.drop_index('ix_gate_overrides_gate_decision_id')
    with op.batch_alter_table('gate_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_gate_decisions_eval_run_id')
        batch_op.drop_index('ix_gate_decisions_model_version_scope')
    with op.batch_alter_table('eval_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_eval_runs_suite_version')
        batch_op.drop_index('ix_eval_runs_dataset_version')
        batch_op.drop_index('ix_eval_runs_model_version_status')
        batch_op.drop_index('ix_eval_runs_status_requested_at')
        batch_op.drop_index('ix_eval_runs_requested_at')
        batch_op.drop_index(batch_op.f('ix_eval_runs_stale_baseline_run_id'))
        batch_op.drop_column('stale_baseline_run_id')
        batch_op.drop_column('cost')
        batch_op.drop_column('queue_seconds')
