"""Parse, triage and draft the acknowledgement of one message: no database, no network.

What a poll does to each message before storing it, in the polling process or in a parser
process (intake.ingest_pool). Parser processes import this module and what it needs, not the
store: they stay small next to the memory one large message takes to parse.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from intake import acks
from intake.config import Settings
from intake.parsing import parse
from intake.parsing.parsed import ParsedMail
from intake.rendering import default_templates_dir, render_mail
from intake.sources import RawMail
from intake.triage import TriageContext, triage
from intake.triage.rules import Rules
from intake.triage.verdict import Kind, Reason, Role, Verdict

log = logging.getLogger(__name__)

AnalyseFn = Callable[[RawMail, Rules, TriageContext], "Analysed"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Analysed:
    """A message parsed and triaged, ready to store; built without touching the database."""

    raw: RawMail
    mail: ParsedMail
    verdict: Verdict
    sha256: str
    body_sha256: str
    # The acknowledgement drafted beside the parse (in a parser process), for the store to
    # queue when should_ack agrees with its recipient; None: the store builds it when needed.
    ack: acks.BuiltMail | None = None


@dataclass(frozen=True, slots=True)
class TemplateRender:
    """`render_mail` with its templates folder bound; picklable, for parser processes."""

    templates: Path

    def __call__(self, name: str, lang: str, ctx: Mapping[str, object]) -> tuple[str, str, str]:
        subject, text, html = render_mail(name, lang, ctx, self.templates)
        return subject, text, html


@dataclass(frozen=True, slots=True)
class AckDrafter:
    """Drafts the acknowledgement of a suggestion where it is parsed (a parser process)."""

    settings: acks.AckSettings
    render: TemplateRender

    @classmethod
    def from_settings(cls, settings: Settings) -> AckDrafter:
        templates = settings.templates_dir or default_templates_dir()
        return cls(acks.AckSettings.from_settings(settings), TemplateRender(Path(templates)))

    def draft(self, item: Analysed, rules: Rules) -> Analysed:
        """`item` with the acknowledgement its sender would get, when it is a suggestion."""
        recipient = acks.ack_recipient(item.mail)
        if item.verdict.kind != Kind.SUGGESTION or recipient is None:
            return item
        try:
            built = build_ack(
                item, rules, recipient, settings=self.settings, render=self.render, now=_utcnow()
            )
        except ValueError:
            return item  # the store tries again and records why it cannot be built
        return replace(item, ack=built)


def analyse_and_draft(
    raw: RawMail, rules: Rules, context: TriageContext, drafter: AckDrafter
) -> Analysed:
    """`analyse`, plus the acknowledgement drafted for a suggestion. Never raises."""
    return drafter.draft(analyse(raw, rules, context), rules)


def build_ack(
    item: Analysed,
    rules: Rules,
    recipient: str,
    *,
    settings: acks.AckSettings,
    render: acks.Render,
    now: datetime,
) -> acks.BuiltMail:
    """The acknowledgement of `item` to `recipient`; raises ValueError when no mail header
    can carry the sender's name or address."""
    mail, verdict = item.mail, item.verdict
    language = acks.choose_language(mail, settings.default_language)
    names = []
    for score in verdict.themes:
        theme = rules.theme(score.theme)
        names.append(theme.name(language) if theme else score.theme)
    return acks.build_acknowledgement(
        acks.AckInput.from_mail(
            mail,
            verdict,
            recipient=recipient,
            received_at=item.raw.arrived_at,
            theme_names=names,
            language=language,
        ),
        settings,
        render,
        now=now,
    )


def analyse(raw: RawMail, rules: Rules, context: TriageContext) -> Analysed:
    """Parse and triage one message. Never raises: a failure becomes an `unparseable` verdict."""
    sha256 = hashlib.sha256(raw.data).hexdigest()
    body_sha256 = hashlib.sha256(_body_of(raw.data)).hexdigest()
    mail = parse(raw.data, truncated=raw.truncated)
    try:
        verdict = triage(mail, rules, replace(context, received_at=raw.arrived_at))
    except Exception as exc:  # the per-message boundary: one bad mail never blocks the mailbox
        log.exception("triage failed for <%s>", mail.message_id)
        mail = replace(mail, error=f"triage failed: {exc!r}")
        verdict = quarantine_verdict(f"triage failed: {exc!r}")
    return Analysed(raw, mail, verdict, sha256, body_sha256)


def quarantine_verdict(error: str) -> Verdict:
    return Verdict(
        kind=Kind.UNPARSEABLE,
        kind_reasons=(Reason("unparseable", "structure", error[:500]),),
        themes=(),
        late=False,
        role=Role.PUBLIC,
    )


def _body_of(data: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator)
        if end >= 0:
            return data[end + len(separator) :]
    return b""


# -- in a parser process ------------------------------------------------------------------------

ChunkResult = tuple[list[Analysed], float]
PARSER_NICENESS = 5


@dataclass(frozen=True, slots=True)
class RulesParcel:
    """Rules as a parser process receives them: unpickled once per process, not per chunk.

    Unpickling compiled rules costs milliseconds (5 ms for the shipped ones), half a millisecond
    a message when every chunk of ten carried its own copy.
    """

    digest: str
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, rules: Rules) -> RulesParcel:
        data = pickle.dumps(rules, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(hashlib.sha256(data).hexdigest(), data)

    def open(self) -> Rules:
        """The rules, from this process's cache when these bytes were opened before."""
        rules = _OPENED_RULES.get(self.digest)
        if rules is None:
            # Pickled by the polling process that started this one, never read from outside.
            rules = pickle.loads(self.data)  # noqa: S301
            _OPENED_RULES.clear()  # rules edited: the earlier ones are not wanted again
            _OPENED_RULES[self.digest] = rules
        return rules


_OPENED_RULES: dict[str, Rules] = {}


def analyse_chunk(
    analyse_one: AnalyseFn, chunk: list[RawMail], parcel: RulesParcel, context: TriageContext
) -> ChunkResult:
    """Each message analysed, without its bytes (the caller has them); and the seconds it took."""
    began = time.perf_counter()
    rules = parcel.open()
    results = []
    for raw in chunk:
        item = analyse_one(raw, rules, context)
        results.append(replace(item, raw=replace(raw, data=b"")))
    return results, time.perf_counter() - began


def ready() -> None:
    """A no-op task: running it means a parser process has imported what it needs."""


def init_parser_process(parent: int) -> None:
    """Prepare a parser process: lower its priority, and exit when `parent` is gone.

    The polling process fetches and stores, and is the one the others wait for: with as many
    parser processes as cores, they take what CPU it leaves (an acknowledgement due waits for
    no parsing either). A parent killed or crashed leaves no parser process behind.
    """
    os.nice(PARSER_NICENESS)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="intake-parent-watch", daemon=True).start()
