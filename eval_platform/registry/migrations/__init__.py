"""Alembic migrations of the registry schema, run from code by ``Registry.migrate`` (``versions/``: one module per revision)."""
