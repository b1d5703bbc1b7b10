"""The errors intake raises on purpose; `cli` maps them onto messages and exit codes."""

from __future__ import annotations


class IntakeError(Exception):
    """A failure the user can act on; the message says what to do next."""


class ConfigError(IntakeError):
    """A setting or rules file is wrong: names the file (or env var), the key and the line."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RulesError(ConfigError):
    """The rules file is invalid; the last good rules stay in force when reloading."""


class SourceError(IntakeError):
    """The mailbox could not be read (connection, login, folder)."""


class StoreError(IntakeError):
    """The database could not be opened or migrated."""


class NotFoundError(IntakeError):
    """A message reference (id, Message-ID or file) matched nothing."""


class TransportError(IntakeError):
    """Outgoing mail was not accepted; `permanent` decides whether to retry.

    `connection` says the connection failed (refused, no answer, dropped, TLS or login
    refused): no mail is at fault, and the next one would fail alike.
    """

    def __init__(self, message: str, *, permanent: bool, connection: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent  # 5xx, refused recipient: never retry
        self.connection = connection
