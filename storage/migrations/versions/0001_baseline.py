"""Baseline: the schema ``create_all`` made before migrations, with every name spelled out.

Databases from that time are stamped at this revision instead of running it, which is only sound
if the two agree exactly, so the names are the ones models.py's naming convention produced
(``op.f`` keeps them as written). Frozen: later changes go in new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# String length of keys and ids at the time, as models._KEY.
_KEY = 255


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("chat_key", sa.String(_KEY), nullable=False),
        sa.Column("conversation_id", sa.String(_KEY), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_key", name=op.f("pk_chats")),
    )
    op.create_table(
        "conversations",
        sa.Column("conversation_id", sa.String(_KEY), nullable=False),
        sa.Column("chat_key", sa.String(_KEY), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_conversations")),
        sa.ForeignKeyConstraint(
            ["chat_key"], ["chats.chat_key"], name=op.f("fk_conversations_chat_key_chats")
        ),
    )
    op.create_index(
        op.f("ix_conversations_chat_key_last_used_at"),
        "conversations",
        ["chat_key", "last_used_at"],
        unique=False,
    )
    op.create_table(
        "usage",
        sa.Column("chat_key", sa.String(_KEY), nullable=False),
        sa.Column("user_id", sa.String(_KEY), nullable=False),
        sa.Column("billed_chars", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chat_key", "user_id", name=op.f("pk_usage")),
        sa.ForeignKeyConstraint(
            ["chat_key"], ["chats.chat_key"], name=op.f("fk_usage_chat_key_chats")
        ),
    )


def downgrade() -> None:
    op.drop_table("usage")
    op.drop_index(op.f("ix_conversations_chat_key_last_used_at"), table_name="conversations")
    op.drop_table("conversations")
    op.drop_table("chats")
