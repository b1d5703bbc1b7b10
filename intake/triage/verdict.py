"""Kind, Reason, ThemeScore, Verdict: what triage decides about a message, and why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    SUGGESTION = "suggestion"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    BULK = "bulk"
    RECEIPT = "receipt"
    SPAM = "spam"
    EMPTY = "empty"
    UNPARSEABLE = "unparseable"


class Role(StrEnum):
    COUNCIL = "council"
    PARTNER = "partner"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Reason:
    """One decision and what caused it: a rule id, the field it looked at and what matched."""

    code: str  # kebab case: "auto-submitted", "ooo-subject-nl", "null-return-path"
    field: str = ""  # "header", "subject", "body", "sender", "structure"
    matched: str = ""

    def __str__(self) -> str:
        where = f" in {self.field}" if self.field else ""
        what = f": {self.matched}" if self.matched else ""
        return f"{self.code}{where}{what}"

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "matched": self.matched}


@dataclass(frozen=True, slots=True)
class Match:
    """One rule hit that counted towards a theme."""

    rule: str
    field: str  # "subject", "body", "sender"
    matched: str  # the text as it stands in the message
    weight: float

    def as_dict(self) -> dict[str, str | float]:
        return {
            "rule": self.rule,
            "field": self.field,
            "matched": self.matched,
            "weight": self.weight,
        }


@dataclass(frozen=True, slots=True)
class ThemeScore:
    theme: str  # slug
    score: float
    matches: tuple[Match, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    kind_reasons: tuple[Reason, ...]  # the deciding reason first, then every other hit
    themes: tuple[ThemeScore, ...]  # primary first; empty for anything but a suggestion
    late: bool
    role: Role
    role_reason: Reason | None = None

    @property
    def primary_theme(self) -> str | None:
        return self.themes[0].theme if self.themes else None

    @property
    def kind_reason(self) -> Reason | None:
        return self.kind_reasons[0] if self.kind_reasons else None
