"""Acknowledgements: who gets one (`should_ack`, pure) and what it says (`build_acknowledgement`).

`marks` holds what both halves share: the headers and Message-IDs that mark intake's own mail.
"""

from intake.acks.decision import (
    ACK_REASONS,
    AckDecision,
    AckHistory,
    AckPolicy,
    ack_recipient,
    choose_language,
    should_ack,
)
from intake.acks.marks import (
    LANGUAGES,
    LOOP_HEADER,
    MESSAGE_ID_TAG,
    is_valid_address,
    message_id_domain,
)
from intake.acks.message import (
    AckInput,
    AckSettings,
    BuiltMail,
    Render,
    ack_context,
    build_acknowledgement,
    clean_text,
    salutation_name,
)

__all__ = [
    "ACK_REASONS",
    "LANGUAGES",
    "LOOP_HEADER",
    "MESSAGE_ID_TAG",
    "AckDecision",
    "AckHistory",
    "AckInput",
    "AckPolicy",
    "AckSettings",
    "BuiltMail",
    "Render",
    "ack_context",
    "ack_recipient",
    "build_acknowledgement",
    "choose_language",
    "clean_text",
    "is_valid_address",
    "message_id_domain",
    "salutation_name",
    "should_ack",
]
