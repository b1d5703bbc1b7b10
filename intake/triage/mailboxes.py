"""System mailboxes by their local part: senders of delivery reports, and list or no-reply
mailboxes. Triage reads them as kinds (bounce, bulk); the acknowledgement never answers either."""

from __future__ import annotations

import re

# Discourse's receiver.rb spells them with optional separators: post_master, mailer_daemon;
# Exchange Online sends its reports from one fixed mailbox.
_REPORTS = re.compile(
    r"""
      ^(?:post[-_.]?master|microsoftexchange329e71ec88ae4615bbc36ab6ce41109e)$
    | (?:^|[-_.])mailer[-_.]?daemon(?:[-_.]|$)
    """,
    re.VERBOSE,
)
_LISTS_AND_NO_REPLY = re.compile(
    r"""
      ^(?:listserv|majordomo|bounces?)(?:[-_.=+].*)?$   # list software; bounce-123@, bounces+x@
    | -request$ | ^owner-                               # RFC 5230 §4.6: list software
    | (?:^|[-_.])(?:no[-_.]?reply|do[-_.]?not[-_.]?reply)(?:[-_.+]|$)
    """,
    re.VERBOSE,
)


def sends_reports(local: str) -> bool:
    """The mailbox that sends delivery reports (AR-5, DET-3)."""
    return bool(_REPORTS.search(local.lower()))


def is_list_or_no_reply(local: str) -> bool:
    """A mailing list's own mailbox, or one that takes no replies."""
    return bool(_LISTS_AND_NO_REPLY.search(local.lower()))


def is_system(local: str) -> bool:
    """Any mailbox that no person reads: never acknowledged."""
    return sends_reports(local) or is_list_or_no_reply(local)
