"""Build the digest mail: headers, text + HTML with the chart related to it, the final's export.

Structure (SMTP-8, SMTP-9):

    multipart/mixed                      (the final digest only)
      multipart/alternative
        text/plain                       first
        multipart/related                last: the preferred part
          text/html                      <img src="cid:…">
          image/png                      Content-ID: <…>
      text/csv                           attachment
      application/vnd.openxml…sheet      attachment
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from intake.acks import LOOP_HEADER, MESSAGE_ID_TAG, clean_text, is_valid_address, message_id_domain
from intake.config import Settings
from intake.digests.build import RenderedDigest
from intake.errors import ConfigError

LARGE_BODY_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class FileAttachment:
    filename: str
    maintype: str
    subtype: str
    data: bytes
    charset: str = ""  # for text/* attachments: how the bytes are encoded


@dataclass(frozen=True, slots=True)
class BuiltDigest:
    message_id: str  # without angle brackets
    envelope_from: str
    recipients: tuple[str, ...]
    subject: str
    data: bytes


def digest_recipients(settings: Settings) -> tuple[str, ...]:
    """`digest.recipients`, each one valid address; ConfigError when none or one is malformed."""
    recipients = tuple(address.strip() for address in settings.digest.recipients)
    if not recipients:
        raise ConfigError(
            "digest.recipients: no one receives the digests; list the staff addresses "
            "(or set INTAKE_DIGEST_RECIPIENTS=a@example.org,b@example.org)"
        )
    bad = [address for address in recipients if not is_valid_address(address)]
    if bad:
        raise ConfigError(f"digest.recipients: not a valid address: {', '.join(bad)}")
    return recipients


def build_digest_mail(
    settings: Settings,
    rendered: RenderedDigest,
    *,
    now: datetime,
    attachments: Sequence[FileAttachment] = (),
) -> BuiltDigest:
    """The digest as bytes with a fresh Message-ID at our domain, ready to queue.

    Raises ConfigError when the recipients, the sender or the Message-ID domain are missing.
    """
    recipients = digest_recipients(settings)
    sender = settings.outgoing.from_address.strip()
    if not is_valid_address(sender):
        raise ConfigError(f"outgoing.from_address: digests need a sender address, got {sender!r}")
    domain = message_id_domain(settings)
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", domain) or ".." in domain:
        raise ConfigError(
            "outgoing.message_id_domain: set it, or outgoing.from_address, to a mail domain "
            f"(got {domain!r})"
        )
    message_id = make_msgid(idstring=MESSAGE_ID_TAG, domain=domain)
    subject = clean_text(rendered.subject, 200)

    msg = EmailMessage()
    msg["From"] = Address(
        display_name=clean_text(settings.outgoing.from_name, 80), addr_spec=sender
    )
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now.astimezone(settings.consultation.tz))
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # SMTP-11, RFC 3834 §5: not a reply
    # Staff's out-of-office answers would otherwise land in the consultation mailbox.
    msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_HEADER] = domain
    msg.set_content(rendered.text, charset="utf-8", cte=_encoding(rendered.text))
    html_encoding = _encoding(rendered.html)
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte=html_encoding)
    if rendered.chart_png is not None:
        html_part = msg.get_payload()[1]  # type: ignore[index]
        assert isinstance(html_part, EmailMessage)  # add_alternative made it one
        html_part.add_related(
            rendered.chart_png,
            maintype="image",
            subtype="png",
            cid=f"<{rendered.chart_cid}>",
            filename="themes.png",
            disposition="inline",
        )
    for attachment in attachments:
        msg.add_attachment(
            attachment.data,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
            params={"charset": attachment.charset} if attachment.charset else None,
        )
    msg["Content-Language"] = rendered.language  # after the body: set_content drops Content-*
    ascii_only = all(address.isascii() for address in recipients)
    policy = email.policy.SMTP if ascii_only else email.policy.SMTPUTF8
    return BuiltDigest(
        message_id=message_id.strip("<>"),
        envelope_from=sender,
        recipients=recipients,
        subject=subject,
        data=msg.as_bytes(policy=policy),
    )


def _encoding(body: str) -> str:
    # Quoted-printable keeps a digest readable in its raw form; for a body of megabytes the
    # standard library's pure-Python encoder is several times slower than base64's.
    return "quoted-printable" if len(body) < LARGE_BODY_CHARS else "base64"
