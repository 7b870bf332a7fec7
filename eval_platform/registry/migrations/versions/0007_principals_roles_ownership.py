"""principals, roles and expiry of tokens; owner teams of names

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 13:30:00.000000

Existing tokens become the team's default principal: principal ``<team>`` (a service) with role ``member``,
never expiring, so every token keeps working with the rights a team token had (and no more: platform-wide
operations now need an admin token).

Existing names get no owner (``owner_team`` NULL, "legacy/unowned": only an admin may register new
versions of them, change their plans, invalidate, override or promote), because nothing recorded says
which team registered them: the registry kept no author for datasets, suites and models. The one
exception is an experiment whose ``created_by`` is a team that has a token (the API recorded the
calling team there): it is owned by that team. An operator hands an unowned name to a team with
``evalp owners set`` (an admin command) or by registering the next version with an admin token of it.
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_OWNED = ("eval_datasets", "metric_suites", "models", "experiments")


def upgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('principal', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('principal_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('roles', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE api_tokens SET principal = team, principal_kind = 'service', roles = '[\"member\"]'")
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('principal', existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column('principal_kind', existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column('roles', existing_type=sa.JSON(), nullable=False)
    for table in _OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('owner_team', sa.String(length=200), nullable=True))
    op.execute("UPDATE experiments SET owner_team = created_by WHERE created_by IN (SELECT team FROM api_tokens)")


def downgrade() -> None:
    for table in reversed(_OWNED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('owner_team')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('roles')
        batch_op.drop_column('principal_kind')
        batch_op.drop_column('principal')
