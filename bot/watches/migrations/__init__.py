"""Alembic migrations of the watch store, applied at start by :func:`bot.watches.store.migrate`."""
