"""Alembic environment: migrations run on the connection :func:`bot.watches.store.migrate` passes in.

There is no ``alembic.ini``: the package applies its own migrations at start, inside one transaction.
On PostgreSQL an advisory lock serialises processes that start together; on SQLite the transaction is
``BEGIN IMMEDIATE`` (see :mod:`bot.watches.store`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from bot.watches.store import metadata

# Any constant works; it only has to be the same in every dcv-bot process.
MIGRATION_LOCK_KEY = 0x0DC7B07

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="dcv_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
