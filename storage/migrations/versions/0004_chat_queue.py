"""Several processes on one database: each chat's line of turns, and who shows each reply.

``chat_queue`` holds a place per turn waiting or running, in arrival order, so processes that
share a PostgreSQL database answer one chat's messages one at a time and in order
(``storage.pg_order``). ``replies_in_flight.owner`` names the process showing a reply, so a
process starting beside live ones takes over only the replies of processes that are gone.
A new table and a nullable column only: existing rows are untouched (their owner is ``NULL``:
the one process there was).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# String length of keys and ids at the time, as models._KEY.
_KEY = 255


def upgrade() -> None:
    op.add_column("replies_in_flight", sa.Column("owner", sa.String(64), nullable=True))
    op.create_table(
        "chat_queue",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("chat_key", sa.String(_KEY), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_chat_queue")),
    )
    op.create_index(
        op.f("ix_chat_queue_chat_key_position"),
        "chat_queue",
        ["chat_key", "position"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_chat_queue_chat_key_position"), table_name="chat_queue")
    op.drop_table("chat_queue")
    with op.batch_alter_table("replies_in_flight") as batch:
        batch.drop_column("owner")
