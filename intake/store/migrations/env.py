"""Alembic environment: runs against the engine intake hands over, or `database.url`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from intake.store.db import WRITE_OPTION
from intake.store.models import Base

config = context.config
engine: Engine | None = config.attributes.get("engine")
if engine is None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")

# On SQLite the migration takes the write lock before it reads the schema version: two processes
# opening a fresh database at once (the worker and the container's first health check) would
# otherwise both read "empty", and the later one fail at once with "database is locked".
with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
