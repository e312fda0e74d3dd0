"""Watches: keep re-checking a pending verification and announce the result exactly once.

``store`` holds watches, channel subscriptions, the outbox of pending posts and the abuse counters
(SQLAlchemy Core, SQLite or PostgreSQL); ``schedule`` says when to look again; ``scheduler`` claims due
watches with leases and runs the checks; ``outbox`` delivers the resulting posts; ``service`` is the
front door the Slack app and the command line use.
"""
