"""smtp:// (STARTTLS) and smtps://; timeouts, pacing, reply code → TransportError."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl

from intake.config import Outgoing
from intake.errors import ConfigError, TransportError
from intake.transports import OutgoingMail, SmtpAddress, Transport
from intake.transports.pacing import Pacer

log = logging.getLogger(__name__)

# Answers that carry a 5yz code yet pass with time: Exchange Online's daily recipient quota
# ("554 5.2.0 …SubmissionQuotaExceededException", rolls over after 24 h) and its "continuous
# error throttling" of a mailbox ("550 5.2.251"–"5.2.255 Sender throttled …", for a period).
# learn.microsoft.com: "Continuous error throttling for SMTP AUTH submissions", "Message storage
# and concurrent connection throttling for SMTP Authenticated Submission".
TEMPORARY_DESPITE_5XX = re.compile(r"SubmissionQuotaExceeded|\b5\.2\.25[1-5]\b")


class SmtpTransport(Transport):
    """Sends through one SMTP connection, reused while it lives and reopened when dropped.

    This is the only place that decides what is permanent. Problems with the connection itself
    (refused, timeout, TLS certificate, STARTTLS missing, login refused) are temporary even
    with a 5yz code: no message is at fault, every message would fail alike, and each will go
    once the relay or the configuration is fixed, so the outbox keeps them queued and retries.
    Within a transaction a 5yz answer to MAIL, RCPT or DATA is permanent, a 4yz temporary
    (RFC 5321 §4.2.1).
    """

    def __init__(
        self,
        address: SmtpAddress,
        settings: Outgoing,
        password: str = "",
        *,
        pacer: Pacer | None = None,
    ) -> None:
        self.name = address.name
        self._address = address
        self._password = password
        self._timeout = settings.timeout_seconds
        # SMTP-1: smtplib's own default context verifies nothing; this one checks the chain and
        # the host name, against the system store or the configured CA file.
        try:
            self._context = ssl.create_default_context(cafile=settings.ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"outgoing.ca_file: cannot use {settings.ca_file}: {exc.strerror or exc}"
            ) from exc
        # EHLO names the sending domain rather than socket.getfqdn(), which leaks container
        # host names and can stall on DNS.
        self._local_hostname = (
            settings.message_id_domain or settings.from_address.rpartition("@")[2] or "localhost"
        )
        self._pacer = pacer if pacer is not None else Pacer(settings.max_per_minute)
        self._smtp: smtplib.SMTP | None = None

    def send(self, mail: OutgoingMail) -> str:
        """The relay's answer to DATA (e.g. "250 2.0.0 OK queued as 4Xz"), plus any refusals.

        When the relay refuses some recipients but accepts others, the mail has gone to those;
        it is not retried (that would repeat it) and the refused ones are named in the answer.
        """
        # Connect before pacing: a relay that is down costs no slot, so a queue of mail
        # meeting a dead relay fails fast instead of sleeping between connection attempts.
        smtp = self._connection()
        if self._pacer.wait():
            smtp = self._connection()  # the wait may have outlasted the relay's idle time-out
        try:
            return self._transact(smtp, mail)
        except TransportError:
            # After a failed transaction the session state is unknown: start afresh next time.
            self._drop()
            raise

    def close(self) -> None:
        self._drop()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (smtplib.SMTPException, OSError):
                pass  # dropped by the relay (idle time-out, restart): open a new one
            self._drop()
        self._smtp = self._open()
        return self._smtp

    def _open(self) -> smtplib.SMTP:
        address = self._address
        smtp: smtplib.SMTP | None = None
        try:
            # The host goes to the constructor, which connects: smtplib takes the name that
            # TLS checks the certificate against from there, not from connect().
            if address.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    address.host,
                    address.port,
                    local_hostname=self._local_hostname,
                    timeout=self._timeout,
                    context=self._context,
                )
            else:
                smtp = smtplib.SMTP(
                    address.host,
                    address.port,
                    local_hostname=self._local_hostname,
                    timeout=self._timeout,
                )
            smtp.ehlo()
            if address.starttls:
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if self._password:
                smtp.login(address.username, self._password)
        except (smtplib.SMTPException, OSError) as exc:
            if smtp is not None:
                smtp.close()
            message = self._describe_connect_failure(exc)
            raise self._error(message, permanent=False, connection=True) from None
        log.debug("connected to %s", self.name)
        return smtp

    def _describe_connect_failure(self, exc: BaseException) -> str:
        where = self.name
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"{where}: the server's certificate is not trusted ({exc.verify_message}); "
                "set outgoing.ca_file to the CA that signed it"
            )
        if isinstance(exc, ssl.SSLError):
            return f"{where}: TLS failed: {exc.reason or exc}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            answer = _answer(exc.smtp_code, exc.smtp_error)
            return (
                f"{where}: login as {self._address.username} refused: {answer}; "
                "check outgoing.username and the password"
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            if self._address.starttls and "STARTTLS" in str(exc).upper():
                return (
                    f"{where}: the server does not offer STARTTLS and mail is never sent in "
                    "plain text; use smtps:// or a relay that offers STARTTLS"
                )
            return f"{where}: {exc}"
        if isinstance(exc, smtplib.SMTPResponseException):
            answer = _answer(exc.smtp_code, exc.smtp_error)
            return f"{where}: the server turned the connection down: {answer}"
        if _is_timeout(exc):
            return f"{where}: no answer within {self._timeout:g} s"
        if isinstance(exc, ConnectionRefusedError):
            return f"{where}: connection refused (is the relay running and the port right?)"
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return f"{where}: the server closed the connection ({exc})"
        if isinstance(exc, OSError) and exc.strerror:
            return f"{where}: cannot connect: {exc.strerror}"
        return f"{where}: cannot connect: {exc}"

    def _transact(self, smtp: smtplib.SMTP, mail: OutgoingMail) -> str:
        options = _mail_options(mail, smtp)
        refused: dict[str, tuple[int, bytes]] = {}
        try:
            code, reply = smtp.mail(mail.envelope_from, options)
            if code != 250:
                raise self._reply_error(f"MAIL FROM <{mail.envelope_from}>", code, reply)
            for recipient in mail.recipients:
                code, reply = smtp.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = (code, reply)
            if len(refused) == len(mail.recipients):
                raise self._all_refused(refused)
            # data() raises for a refused DATA command but returns the answer to the message.
            code, reply = smtp.data(_with_crlf(mail.data))
            if code != 250:
                raise self._reply_error("DATA", code, reply)
        except smtplib.SMTPNotSupportedError as exc:
            # Raised by smtplib before sending when SMTPUTF8 is needed but not offered.
            raise self._error(f"{self.name}: {exc}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:  # SMTPDataError: the answer to DATA
            raise self._reply_error("DATA", exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPException, OSError) as exc:
            if _is_timeout(exc):
                message = f"{self.name}: no answer within {self._timeout:g} s while sending"
            else:
                message = f"{self.name}: connection lost while sending: {exc}"
            raise self._error(message, permanent=False, connection=True) from None
        answer = _answer(code, reply)
        if refused:
            listed = ", ".join(f"{rcpt} ({_answer(*why)})" for rcpt, why in refused.items())
            log.warning("sent %s but %s refused %s", mail.message_id, self.name, listed)
            answer += f"; refused {len(refused)} of {len(mail.recipients)}: {listed}"
        log.debug("sent %s via %s: %s", mail.message_id, self.name, answer)
        return answer

    def _all_refused(self, refused: dict[str, tuple[int, bytes]]) -> TransportError:
        # Permanent only when every refusal is: one 4yz (say, greylisting) is worth a retry.
        listed = "; ".join(
            f"RCPT TO <{rcpt}> refused: {_answer(*why)}" for rcpt, why in refused.items()
        )
        permanent = all(_is_permanent(code, reply) for code, reply in refused.values())
        return self._error(f"{self.name}: {listed}", permanent=permanent)

    def _reply_error(self, stage: str, code: int, reply: bytes | str) -> TransportError:
        return self._error(
            f"{self.name}: {stage} refused: {_answer(code, reply)}",
            permanent=_is_permanent(code, reply),
        )

    def _error(self, message: str, *, permanent: bool, connection: bool = False) -> TransportError:
        if self._password:
            message = message.replace(self._password, "***")
        return TransportError(message, permanent=permanent, connection=connection)

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass  # the connection is gone either way
        finally:
            smtp.close()


def _mail_options(mail: OutgoingMail, smtp: smtplib.SMTP) -> list[str]:
    options = []
    if not all(address.isascii() for address in (mail.envelope_from, *mail.recipients)):
        options.append("SMTPUTF8")  # RFC 6531; smtplib refuses it when the relay lacks it
    if not mail.data.isascii() and smtp.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")  # RFC 6152
    return options


def _is_permanent(code: int, reply: bytes | str) -> bool:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return 500 <= code < 600 and not TEMPORARY_DESPITE_5XX.search(text)


def _answer(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' / '.join(line.strip() for line in text.splitlines())}".strip()


def _with_crlf(data: bytes) -> bytes:
    # smtplib passes bytes through untouched, and EmailMessage.as_bytes() ends lines with LF;
    # RFC 5321 §2.3.8 wants CRLF on the wire (the same rule as smtplib's _fix_eols for str).
    return re.sub(rb"\r\n|\n|\r(?!\n)", b"\r\n", data)


def _is_timeout(exc: BaseException) -> bool:
    # smtplib wraps a socket time-out as SMTPServerDisconnected("… timed out").
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
