"""Digests for staff: which periods are due, what they contain, the mail, recording and sending.

`send_due_digests(settings, engine, now)` records and queues what is due (the worker calls it on
a schedule, then `outbox.deliver_due`, then `mark_sent_digests(engine)`); `preview_digest`
builds one without recording or sending.
"""

from __future__ import annotations

from intake.digests.build import RenderedDigest
from intake.digests.periods import Period, due_periods, next_fire_time
from intake.digests.sending import mark_sent_digests, preview_digest, send_due_digests

__all__ = [
    "Period",
    "RenderedDigest",
    "due_periods",
    "mark_sent_digests",
    "next_fire_time",
    "preview_digest",
    "send_due_digests",
]
