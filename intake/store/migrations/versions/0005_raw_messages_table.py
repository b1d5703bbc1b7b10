"""raw bytes in a table of their own

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 17:40:00.000000

SQLite keeps a large value's overflow pages inside the row's record: with the raw bytes among
the columns of `messages`, reading any column after them reads the whole message. Lists of
messages (the digest, the export) then read the mailbox's every byte.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raw_messages",
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name=op.f("fk_raw_messages_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_pk", name=op.f("pk_raw_messages")),
    )
    op.execute("INSERT INTO raw_messages (message_pk, data) SELECT id, raw FROM messages")
    # A plain ALTER TABLE (SQLite 3.35+, PostgreSQL): the batch mode's copy-and-rename of
    # `messages` would cascade its foreign keys and delete every theme and attachment row.
    op.drop_column("messages", "raw")


def downgrade() -> None:
    # Nullable: a column added to filled rows needs a default, and bytes have none that both
    # dialects spell alike; every row gets its bytes back just below.
    op.add_column("messages", sa.Column("raw", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE messages SET raw = "
        "(SELECT data FROM raw_messages WHERE raw_messages.message_pk = messages.id)"
    )
    op.drop_table("raw_messages")
