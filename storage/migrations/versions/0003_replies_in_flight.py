"""Replies in flight, for crash recovery.

``replies_in_flight`` holds each reply while it is being shown: the platform messages it has
so far, where they are and the text the last one shows. A row is written before the reply's
first platform call and deleted once it settles, so rows found at start belong to replies a
crash cut off, which the frontend then marks as interrupted. No foreign key to ``chats``: a
reply may start before its chat has a row. A new table only, so existing rows are untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# String length of keys and ids at the time, as models._KEY.
_KEY = 255


def upgrade() -> None:
    op.create_table(
        "replies_in_flight",
        sa.Column("reply_id", sa.String(_KEY), nullable=False),
        sa.Column("chat_key", sa.String(_KEY), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("message_ids", sa.Text(), nullable=False),
        sa.Column("language", sa.String(35), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shown", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("reply_id", name=op.f("pk_replies_in_flight")),
    )
    op.create_index(
        op.f("ix_replies_in_flight_platform_started_at"),
        "replies_in_flight",
        ["platform", "started_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_replies_in_flight_platform_started_at"), table_name="replies_in_flight")
    op.drop_table("replies_in_flight")
