"""Completions mode, bot messages and daily usage.

Chats gain a completions slot (``local_id``), a ``model`` (``NULL``: server mode, what every
existing chat is) and a ``system_prompt``; conversations gain their ``mode`` (existing rows are
``server``) and ``model``; the bot keeps completions context in ``turns``. ``bot_messages`` maps
the bot's messages to conversations, for replies to them. Usage counts ``streamed_chars`` (``0``
for the past) and is also kept per UTC day in ``usage_days``; past totals are not split into
days, since their dates were never stored.

Only columns and tables are added, which SQLite can do in place; the downgrade's column drops
rebuild the tables in batch mode.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# String length of keys and ids at the time, as models._KEY.
_KEY = 255


def upgrade() -> None:
    op.add_column("chats", sa.Column("local_id", sa.String(_KEY), nullable=True))
    op.add_column("chats", sa.Column("model", sa.String(_KEY), nullable=True))
    op.add_column("chats", sa.Column("system_prompt", sa.Text(), nullable=True))
    op.add_column(
        "conversations",
        sa.Column("mode", sa.String(16), server_default="server", nullable=False),
    )
    op.add_column("conversations", sa.Column("model", sa.String(_KEY), nullable=True))
    op.add_column(
        "usage", sa.Column("streamed_chars", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(_KEY), nullable=False),
        sa.Column("user_text", sa.Text(), nullable=False),
        sa.Column("assistant_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name=op.f("fk_turns_conversation_id_conversations"),
        ),
    )
    op.create_index(
        op.f("ix_turns_conversation_id_id"), "turns", ["conversation_id", "id"], unique=False
    )
    op.create_table(
        "bot_messages",
        sa.Column("chat_key", sa.String(_KEY), nullable=False),
        sa.Column("message_id", sa.String(_KEY), nullable=False),
        sa.Column("conversation_id", sa.String(_KEY), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_key", "message_id", name=op.f("pk_bot_messages")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            name=op.f("fk_bot_messages_conversation_id_conversations"),
        ),
    )
    op.create_table(
        "usage_days",
        sa.Column("chat_key", sa.String(_KEY), nullable=False),
        sa.Column("user_id", sa.String(_KEY), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("billed_chars", sa.BigInteger(), nullable=False),
        sa.Column("streamed_chars", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chat_key", "user_id", "day", name=op.f("pk_usage_days")),
    )
    op.create_index(
        op.f("ix_usage_days_user_id_day"), "usage_days", ["user_id", "day"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_days_user_id_day"), table_name="usage_days")
    op.drop_table("usage_days")
    op.drop_table("bot_messages")
    op.drop_index(op.f("ix_turns_conversation_id_id"), table_name="turns")
    op.drop_table("turns")
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("streamed_chars")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("model")
        batch.drop_column("mode")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("system_prompt")
        batch.drop_column("model")
        batch.drop_column("local_id")
