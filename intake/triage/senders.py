"""Sender role: council / partner / public, from the addresses and domains in the rules file."""

from __future__ import annotations

from intake.parsing.parsed import ParsedMail
from intake.triage.rules import Rules
from intake.triage.verdict import Reason, Role


def detect_role(mail: ParsedMail, rules: Rules) -> tuple[Role, Reason | None]:
    """The role of the sender (From) and what decided it; public, without a reason, by default.

    A listed address outranks a domain, and council outranks partner: a council member who
    also works at a partner organisation writes as a council member.
    """
    if mail.sender is None:
        return Role.PUBLIC, None
    key = mail.sender.key
    for role, senders in ((Role.COUNCIL, rules.council), (Role.PARTNER, rules.partner)):
        if key in senders.addresses:
            return role, Reason(f"{role.value}-address", "sender", mail.sender.addr)
    for role, senders in ((Role.COUNCIL, rules.council), (Role.PARTNER, rules.partner)):
        domain = senders.match(key)
        if domain is not None:
            return role, Reason(f"{role.value}-domain", "sender", domain)
    return Role.PUBLIC, None
