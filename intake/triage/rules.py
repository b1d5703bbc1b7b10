"""Load + validate the rules file → Rules; RulesError(file, key, line); reload on change."""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from intake.errors import RulesError
from intake.triage.matching import TermMatcher, fold, strip_accents
from intake.triage.toml_lines import line_of
from intake.triage.verdict import Kind

log = logging.getLogger(__name__)

OTHER = "other"  # the fallback theme: a suggestion no rule matches
TEXT_FIELDS = ("subject", "body")
PATTERN_KINDS = (Kind.AUTO_REPLY, Kind.BOUNCE, Kind.RECEIPT, Kind.BULK, Kind.SPAM)
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # kebab case, as rule ids and theme slugs are
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,}$")


@dataclass(frozen=True, slots=True)
class Theme:
    slug: str
    name_nl: str
    name_en: str
    description: str = ""

    def name(self, language: str) -> str:
        return self.name_en if language == "en" else self.name_nl


@dataclass(frozen=True, slots=True)
class ThemeRule:
    """One `[[rules]]` table: terms that, found in a field, add `weight` to `theme`."""

    id: str
    theme: str
    weight: float
    fields: tuple[str, ...]  # subset of TEXT_FIELDS
    words: tuple[str, ...] = ()  # folded
    whole_word: bool = False
    regex: tuple[str, ...] = ()  # sources as written
    senders: SenderList | None = None


@dataclass(frozen=True, slots=True)
class KindPattern:
    """Patterns that mark mail without machine headers (DET-7): the last resort."""

    id: str
    kind: Kind
    subject: tuple[re.Pattern[str], ...]  # matched against the folded subject
    # Matched against the folded start of a short new text (kinds.OPENING_*), for notices
    # that say what they are only in their first words.
    opening: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True, slots=True)
class SenderList:
    """Addresses and domains; a domain also covers its subdomains (student.example.nl)."""

    addresses: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()

    def match(self, address: str) -> str | None:
        """What matched `address` ("address" or the domain), or None."""
        key = address.strip().lower()
        if key in self.addresses:
            return key
        domain = key.rpartition("@")[2]
        for listed in self.domains:
            if domain == listed or domain.endswith("." + listed):
                return listed
        return None

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains)


@dataclass(frozen=True, slots=True)
class Scoring:
    # A term in the subject says more about the theme than one in the body.
    subject_factor: float = 1.5
    # A secondary theme needs this share of the primary's score, or this many distinct terms.
    secondary_min_share: float = 0.5
    secondary_min_terms: int = 2


@dataclass(frozen=True, slots=True)
class FieldIndex:
    """The compiled matcher for one field and which rules each term belongs to."""

    matcher: TermMatcher
    owners: Mapping[tuple[str, str], tuple[int, ...]]  # (hit source, term) -> rule indexes


@dataclass(frozen=True, slots=True)
class Rules:
    source: str
    themes: tuple[Theme, ...]  # in file order; ties between theme scores go to the earlier one
    rules: tuple[ThemeRule, ...]
    kind_patterns: tuple[KindPattern, ...] = ()
    council: SenderList = field(default_factory=SenderList)
    partner: SenderList = field(default_factory=SenderList)
    # Senders exempt from the bulk, list and vendor-marker checks (DET-9).
    allowlist: SenderList = field(default_factory=SenderList)
    neutral: tuple[str, ...] = ()
    scoring: Scoring = field(default_factory=Scoring)
    index: Mapping[str, FieldIndex] = field(default_factory=dict, repr=False)

    def theme(self, slug: str) -> Theme | None:
        return next((theme for theme in self.themes if theme.slug == slug), None)


def load_rules(path: str | os.PathLike[str]) -> Rules:
    """The validated rules in the file at `path`; raises RulesError listing every problem."""
    location = Path(path)
    try:
        text = location.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{location}: cannot read rules file: {exc}") from exc
    return parse_rules(text, str(location))


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    """The validated rules in TOML `text`; `source` names the file in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        where = f"{source}:{found.group(1)}" if found else source
        raise RulesError(f"{where}: not valid TOML: {exc}") from exc
    return _Reader(text, source).read(data)


class RuleBook:
    """The rules in force, re-read when the file changes; a bad edit keeps the last good rules.

    The first load raises RulesError: there is nothing good to fall back on.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp = self._stat()
        self._rules = load_rules(self.path)
        self._failed: tuple[int, int] | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    @property
    def rules(self) -> Rules:
        """The current rules, after a reload if the file changed since the last look."""
        self.reload()
        return self._rules

    def reload(self) -> bool:
        """True when changed rules were loaded; a bad file is logged (WARNING), nothing changes."""
        stamp = self._stat()
        if stamp is None or stamp in (self._stamp, self._failed):
            return False
        try:
            rules = load_rules(self.path)
        except RulesError as exc:
            self._failed = stamp  # warn once per bad version, not on every poll
            log.warning(
                "rules file %s not reloaded, the previous rules stay in force:\n%s",
                self.path,
                "\n".join(exc.problems),
            )
            return False
        self._rules, self._stamp, self._failed = rules, stamp, None
        log.info(
            "rules reloaded from %s themes=%d rules=%d",
            self.path,
            len(rules.themes),
            len(rules.rules),
        )
        return True


Key = tuple[str | int, ...]


class _Reader:
    """Validates parsed TOML, collecting every problem before raising one RulesError."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.problems: list[str] = []

    def problem(self, key: Key, message: str) -> None:
        dotted = ""
        for part in key:
            dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else part)
        line = line_of(self.text, key)
        where = f"{self.source}:{line}" if line else self.source
        self.problems.append(f"{where}: {dotted}: {message}")

    def read(self, data: Mapping[str, object]) -> Rules:
        self.known_keys(
            (),
            data,
            {"scoring", "themes", "rules", "kind_patterns", "roles", "allowlist", "neutral"},
        )
        themes = self.read_themes(data.get("themes"))
        slugs = {theme.slug for theme in themes}
        ids: set[str] = set()
        rules = tuple(
            rule
            for number, table in self.tables(data, "rules")
            if (rule := self.read_rule(number, table, slugs, ids)) is not None
        )
        patterns = tuple(
            pattern
            for number, table in self.tables(data, "kind_patterns")
            if (pattern := self.read_kind_pattern(number, table, ids)) is not None
        )
        roles = self.table(("roles",), data.get("roles", {}))
        self.known_keys(("roles",), roles, {"council", "partner"})
        council = self.read_senders(("roles", "council"), roles.get("council", {}))
        partner = self.read_senders(("roles", "partner"), roles.get("partner", {}))
        allowlist = self.read_senders(("allowlist",), data.get("allowlist", {}))
        neutral_table = self.table(("neutral",), data.get("neutral", {}))
        self.known_keys(("neutral",), neutral_table, {"words"})
        neutral = self.words(("neutral", "words"), neutral_table.get("words", []), allow_empty=True)
        scoring = self.read_scoring(data.get("scoring", {}))
        if self.problems:
            raise RulesError(self.problems)
        return Rules(
            source=self.source,
            themes=themes,
            rules=rules,
            kind_patterns=patterns,
            council=council,
            partner=partner,
            allowlist=allowlist,
            neutral=neutral,
            scoring=scoring,
            index={name: _compile_field(name, rules, neutral) for name in TEXT_FIELDS},
        )

    # -- shapes ---------------------------------------------------------------------------------

    def table(self, key: Key, value: object) -> Mapping[str, object]:
        if isinstance(value, dict):
            return value
        self.problem(key, f"must be a table, got {_shown(value)}")
        return {}

    def tables(
        self, data: Mapping[str, object], name: str
    ) -> list[tuple[int, Mapping[str, object]]]:
        value = data.get(name, [])
        if not isinstance(value, list):
            self.problem((name,), f"must be written as [[{name}]] tables")
            return []
        found: list[tuple[int, Mapping[str, object]]] = []
        for number, table in enumerate(value, start=1):
            if isinstance(table, dict):
                found.append((number, table))
            else:
                self.problem((name, number), f"must be a table, got {_shown(table)}")
        return found

    def known_keys(self, key: Key, table: Mapping[str, object], allowed: set[str]) -> None:
        for name in table:
            if name not in allowed:
                self.problem(
                    (*key, name), f"unknown key; expected one of {', '.join(sorted(allowed))}"
                )

    def text_value(self, key: Key, value: object, *, required: bool = True) -> str:
        if isinstance(value, str) and (value.strip() or not required):
            return value.strip()
        self.problem(key, f"must be a non-empty string, got {_shown(value)}")
        return ""

    def strings(self, key: Key, value: object, *, allow_empty: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.problem(key, f"must be a list of strings, got {_shown(value)}")
            return ()
        if not value and not allow_empty:
            self.problem(key, "empty list; remove the key or add at least one entry")
        good = []
        for position, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                good.append(item.strip())
            else:
                self.problem(
                    key, f"entry {position + 1} must be a non-empty string, got {_shown(item)}"
                )
        return tuple(good)

    def words(self, key: Key, value: object, *, allow_empty: bool = False) -> tuple[str, ...]:
        folded: list[str] = []
        for word in self.strings(key, value, allow_empty=allow_empty):
            term = fold(word)
            if not term:
                self.problem(key, f"{word!r} has no letters or digits left after folding")
            elif term in folded:
                self.problem(key, f"{word!r} is listed twice (case and accents are ignored)")
            else:
                folded.append(term)
        return tuple(folded)

    def number(self, key: Key, value: object, check: Callable[[float], bool], want: str) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool) and check(float(value)):
            return float(value)
        self.problem(key, f"must be {want}, got {_shown(value)}")
        return 1.0

    # -- sections -------------------------------------------------------------------------------

    def read_themes(self, value: object) -> tuple[Theme, ...]:
        if value is None:
            self.problem(("themes",), "missing: define at least one [themes.<slug>] table")
            return ()
        themes: list[Theme] = []
        for slug, body in self.table(("themes",), value).items():
            key: Key = ("themes", slug)
            if not _ID.match(slug):
                self.problem(key, "slug must be kebab case (lower-case letters, digits, hyphens)")
            table = self.table(key, body)
            self.known_keys(key, table, {"name", "description"})
            names = self.table((*key, "name"), table.get("name", {}))
            self.known_keys((*key, "name"), names, {"nl", "en"})
            name_nl = self.text_value((*key, "name", "nl"), names.get("nl"))
            name_en = self.text_value((*key, "name", "en"), names.get("en"))
            description = self.text_value(
                (*key, "description"), table.get("description", ""), required=False
            )
            themes.append(Theme(slug, name_nl, name_en, description))
        if not any(theme.slug == OTHER for theme in themes):
            themes.append(Theme(OTHER, "Overig", "Other", "Suggestions no rule matches."))
        return tuple(themes)

    def read_id(self, key: Key, value: object, ids: set[str]) -> str:
        rule_id = self.text_value((*key, "id"), value)
        if rule_id and not _ID.match(rule_id):
            self.problem((*key, "id"), f"{rule_id!r} must be kebab case, like 'mobility-parking'")
        elif rule_id in ids:
            self.problem((*key, "id"), f"duplicate id {rule_id!r}; every rule needs its own id")
        ids.add(rule_id)
        return rule_id

    def read_rule(
        self, number: int, table: Mapping[str, object], slugs: set[str], ids: set[str]
    ) -> ThemeRule | None:
        key: Key = ("rules", number)
        before = len(self.problems)
        self.known_keys(
            key,
            table,
            {"id", "theme", "weight", "fields", "words", "whole_word", "regex", "senders", "note"},
        )
        rule_id = self.read_id(key, table.get("id"), ids)
        theme = self.text_value((*key, "theme"), table.get("theme"))
        if theme == OTHER:
            self.problem((*key, "theme"), "'other' is the fallback theme and takes no rules")
        elif theme and theme not in slugs:
            known = ", ".join(sorted(slugs - {OTHER}))
            self.problem((*key, "theme"), f"unknown theme {theme!r}; known themes: {known}")
        weight = self.number(
            (*key, "weight"), table.get("weight", 1), lambda w: w > 0, "a positive number"
        )
        fields = self.strings((*key, "fields"), table.get("fields", list(TEXT_FIELDS)))
        for name in fields:
            if name not in TEXT_FIELDS:
                self.problem((*key, "fields"), f"unknown field {name!r}; use subject and/or body")
        words = self.words((*key, "words"), table["words"]) if "words" in table else ()
        whole_word = table.get("whole_word", False)
        if not isinstance(whole_word, bool):
            self.problem((*key, "whole_word"), f"must be true or false, got {_shown(whole_word)}")
        regex = self.strings((*key, "regex"), table["regex"]) if "regex" in table else ()
        for source in regex:
            try:
                re.compile(strip_accents(source), re.IGNORECASE)
            except re.error as exc:
                self.problem((*key, "regex"), f"bad regular expression {source!r}: {exc}")
        senders = (
            self.read_senders((*key, "senders"), table["senders"]) if "senders" in table else None
        )
        if not (words or regex or senders) and "words" not in table and "regex" not in table:
            self.problem(key, "a rule needs words, regex or senders")
        if len(self.problems) > before:
            return None
        return ThemeRule(
            id=rule_id,
            theme=theme,
            weight=weight,
            fields=tuple(name for name in TEXT_FIELDS if name in fields),
            words=words,
            whole_word=bool(whole_word),
            regex=regex,
            senders=senders,
        )

    def read_kind_pattern(
        self, number: int, table: Mapping[str, object], ids: set[str]
    ) -> KindPattern | None:
        key: Key = ("kind_patterns", number)
        before = len(self.problems)
        self.known_keys(key, table, {"id", "kind", "subject", "opening", "note"})
        pattern_id = self.read_id(key, table.get("id"), ids)
        kind_name = self.text_value((*key, "kind"), table.get("kind"))
        if kind_name and kind_name not in PATTERN_KINDS:
            allowed = ", ".join(PATTERN_KINDS)
            self.problem((*key, "kind"), f"unknown kind {kind_name!r}; use one of {allowed}")
        if "subject" not in table and "opening" not in table:
            self.problem(key, "needs `subject` or `opening` patterns")
        subject = self.pattern_list((*key, "subject"), table.get("subject", []))
        opening = self.pattern_list((*key, "opening"), table.get("opening", []))
        if len(self.problems) > before:
            return None
        return KindPattern(pattern_id, Kind(kind_name), subject, opening)

    def pattern_list(self, key: Key, value: object) -> tuple[re.Pattern[str], ...]:
        compiled = []
        for source in self.strings(key, value, allow_empty=True):
            try:
                compiled.append(re.compile(strip_accents(source), re.IGNORECASE))
            except re.error as exc:
                self.problem(key, f"bad regular expression {source!r}: {exc}")
        return tuple(compiled)

    def read_senders(self, key: Key, value: object) -> SenderList:
        table = self.table(key, value)
        self.known_keys(key, table, {"addresses", "domains"})
        addresses = self.strings((*key, "addresses"), table.get("addresses", []), allow_empty=True)
        domains = self.strings((*key, "domains"), table.get("domains", []), allow_empty=True)
        for address in addresses:
            if not _ADDRESS.match(address):
                self.problem((*key, "addresses"), f"{address!r} is not an e-mail address")
        cleaned = []
        for domain in domains:
            plain = domain.lower().lstrip("@.")
            if not _DOMAIN.match(plain):
                self.problem(
                    (*key, "domains"), f"{domain!r} is not a domain name (no @, no spaces)"
                )
            cleaned.append(plain)
        return SenderList(frozenset(a.lower() for a in addresses), tuple(cleaned))

    def read_scoring(self, value: object) -> Scoring:
        key: Key = ("scoring",)
        table = self.table(key, value)
        defaults = Scoring()
        self.known_keys(
            key, table, {"subject_factor", "secondary_min_share", "secondary_min_terms"}
        )
        factor = self.number(
            (*key, "subject_factor"),
            table.get("subject_factor", defaults.subject_factor),
            lambda v: v > 0,
            "a positive number",
        )
        share = self.number(
            (*key, "secondary_min_share"),
            table.get("secondary_min_share", defaults.secondary_min_share),
            lambda v: 0 <= v <= 1,
            "a number from 0 to 1",
        )
        terms = table.get("secondary_min_terms", defaults.secondary_min_terms)
        if isinstance(terms, bool) or not isinstance(terms, int) or terms < 1:
            self.problem(
                (*key, "secondary_min_terms"), f"must be a whole number ≥ 1, got {_shown(terms)}"
            )
            terms = defaults.secondary_min_terms
        return Scoring(factor, share, terms)


def _compile_field(name: str, rules: tuple[ThemeRule, ...], neutral: tuple[str, ...]) -> FieldIndex:
    """One matcher for all terms that count in field `name`, so cost stays flat as rules grow."""
    owners: dict[tuple[str, str], list[int]] = {}
    regexes: dict[str, re.Pattern[str]] = {}
    for number, rule in enumerate(rules):
        if name not in rule.fields:
            continue
        source = "whole_word" if rule.whole_word else "substring"
        for word in rule.words:
            owners.setdefault((source, word), []).append(number)
        for pattern in rule.regex:
            regexes.setdefault(pattern, re.compile(strip_accents(pattern), re.IGNORECASE))
            owners.setdefault(("regex", pattern), []).append(number)
    matcher = TermMatcher.build(
        [term for source, term in owners if source == "substring"] + list(neutral),
        [term for source, term in owners if source == "whole_word"],
        list(regexes.items()),
    )
    return FieldIndex(matcher, {key: tuple(numbers) for key, numbers in owners.items()})


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
