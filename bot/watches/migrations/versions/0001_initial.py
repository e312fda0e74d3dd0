"""Watches, subscriptions, outbox, rate counters and command receipts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = 64


def upgrade() -> None:
    op.create_table(
        "watches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("team_id", sa.String(_ID), nullable=False),
        sa.Column("channel_id", sa.String(_ID), nullable=False),
        sa.Column("thread_ts", sa.String(_ID)),
        sa.Column("parent_ts", sa.String(_ID)),
        sa.Column("created_by", sa.String(_ID), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("next_check_at", sa.Double, nullable=False),
        sa.Column("checks_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_checked_at", sa.Double),
        sa.Column("last_verdict", sa.String(16)),
        sa.Column("last_error", sa.String(500)),
        sa.Column("failing_since", sa.Double),
        sa.Column("reminded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("first_diagnosis", sa.Text),
        sa.Column("last_diagnosis", sa.Text),
        sa.Column("finished_at", sa.Double),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_token", sa.String(64)),
        sa.Column("lease_until", sa.Double),
    )
    op.create_index("ix_watches_due", "watches", ["status", "next_check_at"])
    op.create_index("ix_watches_channel", "watches", ["team_id", "channel_id", "status"])
    # One active watch per channel and check; finished watches may repeat (partial unique index).
    op.create_index(
        "uq_watches_active",
        "watches",
        ["team_id", "channel_id", "domain", "method", "target"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("team_id", sa.String(_ID), nullable=False),
        sa.Column("channel_id", sa.String(_ID), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("created_by", sa.String(_ID), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("team_id", "channel_id", "domain", name="uq_subscriptions"),
    )
    op.create_index("ix_subscriptions_domain", "subscriptions", ["team_id", "domain"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("team_id", sa.String(_ID), nullable=False),
        sa.Column("channel_id", sa.String(_ID), nullable=False),
        sa.Column("thread_ts", sa.String(_ID)),
        sa.Column("watch_id", sa.Integer, sa.ForeignKey("watches.id", ondelete="SET NULL")),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("sent_at", sa.Double),
        sa.Column("slack_ts", sa.String(_ID)),
        sa.Column("last_error", sa.String(500)),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_token", sa.String(64)),
        sa.Column("lease_until", sa.Double),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("window_start", sa.Double, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "command_receipts",
        sa.Column("team_id", sa.String(_ID), primary_key=True),
        sa.Column("request_key", sa.String(255), primary_key=True),
        sa.Column("received_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for table in ("command_receipts", "rate_counters", "outbox", "subscriptions", "watches"):
        op.drop_table(table)
