"""messages, themes, attachments, mailbox positions

Revision ID: 0001
Revises:
Create Date: 2026-11-28 04:38:07.239563
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailbox_state",
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_mailbox_state")),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("message_id_derived", sa.Boolean(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("date_header", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_addr", sa.String(length=320), nullable=False),
        sa.Column("from_name", sa.Text(), nullable=False),
        sa.Column("return_path", sa.String(length=320), nullable=True),
        sa.Column("to_addrs", sa.JSON(), nullable=False),
        sa.Column("cc_addrs", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("in_reply_to", sa.String(length=998), nullable=True),
        sa.Column("references", sa.JSON(), nullable=False),
        sa.Column("content_language", sa.String(length=35), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("quoted", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("disclaimer", sa.Text(), nullable=False),
        sa.Column("forwarded_from", sa.String(length=320), nullable=True),
        sa.Column("forwarded_from_name", sa.Text(), nullable=True),
        sa.Column("html_only", sa.Boolean(), nullable=False),
        sa.Column("parse_error", sa.Text(), nullable=True),
        sa.Column("defects", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("kind_reasons", sa.JSON(), nullable=False),
        sa.Column("primary_theme", sa.String(length=64), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("sender_role", sa.String(length=16), nullable=False),
        sa.Column("role_reason", sa.Text(), nullable=False),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("thread_of_id", sa.Integer(), nullable=True),
        sa.Column("link_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"], ["messages.id"], name=op.f("fk_messages_duplicate_of_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["thread_of_id"], ["messages.id"], name=op.f("fk_messages_thread_of_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("sha256", name=op.f("uq_messages_sha256")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_body_sha256"), ["body_sha256"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_messages_duplicate_of_id"), ["duplicate_of_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_messages_from_addr"), ["from_addr"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_message_id"), ["message_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_messages_primary_theme"), ["primary_theme"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_messages_received_at"), ["received_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_messages_thread_of_id"), ["thread_of_id"], unique=False
        )

    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("is_inline", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name=op.f("fk_attachments_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_message_pk"), ["message_pk"], unique=False)

    op.create_table(
        "source_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name=op.f("fk_source_items_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_items")),
        sa.UniqueConstraint("source", "key", name=op.f("uq_source_items_source")),
    )
    with op.batch_alter_table("source_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_items_message_pk"), ["message_pk"], unique=False
        )

    op.create_table(
        "theme_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("theme", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name=op.f("fk_theme_matches_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_theme_matches")),
    )
    with op.batch_alter_table("theme_matches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_theme_matches_message_pk"), ["message_pk"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_theme_matches_theme"), ["theme"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("theme_matches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_theme_matches_theme"))
        batch_op.drop_index(batch_op.f("ix_theme_matches_message_pk"))

    op.drop_table("theme_matches")
    with op.batch_alter_table("source_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_items_message_pk"))

    op.drop_table("source_items")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_message_pk"))

    op.drop_table("attachments")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_thread_of_id"))
        batch_op.drop_index(batch_op.f("ix_messages_received_at"))
        batch_op.drop_index(batch_op.f("ix_messages_primary_theme"))
        batch_op.drop_index(batch_op.f("ix_messages_message_id"))
        batch_op.drop_index(batch_op.f("ix_messages_kind"))
        batch_op.drop_index(batch_op.f("ix_messages_from_addr"))
        batch_op.drop_index(batch_op.f("ix_messages_duplicate_of_id"))
        batch_op.drop_index(batch_op.f("ix_messages_body_sha256"))

    op.drop_table("messages")
    op.drop_table("mailbox_state")
