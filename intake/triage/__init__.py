"""triage(mail, rules, context) -> Verdict; pure: no DB, no network, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from intake.parsing.parsed import ParsedMail
from intake.triage.kinds import KindInputs, detect_kind
from intake.triage.rules import RuleBook, Rules, load_rules, parse_rules
from intake.triage.senders import detect_role
from intake.triage.themes import score_themes
from intake.triage.verdict import Kind, Reason, Verdict

__all__ = ["RuleBook", "Rules", "TriageContext", "load_rules", "parse_rules", "triage"]


@dataclass(frozen=True, slots=True)
class TriageContext:
    """What triage needs besides the mail and the rules; times must be timezone-aware."""

    received_at: datetime  # arrival at our mailbox (IMAP INTERNALDATE), not the sender's Date
    deadline: datetime
    own_addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("received_at", "deadline"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"TriageContext.{name} must be timezone-aware, got {value!r}")


def triage(mail: ParsedMail, rules: Rules, context: TriageContext) -> Verdict:
    """The verdict on one message: kind, themes (suggestions only), lateness and sender role.

    Pure and deterministic: the same mail, rules and context always give the same verdict.
    """
    role, role_reason = detect_role(mail, rules)
    late = context.received_at >= context.deadline
    if mail.error:
        reason = Reason("parse-error", "structure", mail.error)
        return Verdict(Kind.UNPARSEABLE, (reason,), (), late, role, role_reason)
    own = frozenset(address.strip().lower() for address in context.own_addresses)
    kind, reasons = detect_kind(mail, KindInputs(rules, own))
    themes = score_themes(mail, rules) if kind is Kind.SUGGESTION else ()
    return Verdict(kind, reasons, themes, late, role, role_reason)
