"""Two Jinja2 environments (HTML autoescape; text); render_mail(name, lang, ctx)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined, UndefinedError

DEFAULT_LANGUAGE = "nl"
MAX_SUBJECT_CHARS = 200
_BLANK_LINES = re.compile(r"\n{3,}")


class RenderedMail(NamedTuple):
    """A mail's three rendered parts. A NamedTuple, so that modules which may not import this
    one (acks, a sibling in the same layer) take it as a plain (subject, text, html) triple."""

    subject: str
    text: str
    html: str


def default_templates_dir() -> Path:
    """The repository's top-level `templates/` folder."""
    return Path(__file__).resolve().parent.parent / "templates"


def render_mail(
    name: str,
    lang: str,
    context: Mapping[str, object],
    templates_dir: Path,
    *,
    fallback: str = DEFAULT_LANGUAGE,
) -> RenderedMail:
    """The subject (one line), text and HTML of mail `name` in `lang`, else in `fallback`.

    Loads `<lang>/<name>.subject.j2`, `.txt.j2` and `.html.j2`, each falling back on its own.
    A variable the template uses but `context` lacks raises jinja2.UndefinedError, and so does
    printing None: a gap in the context must never reach a recipient.
    """
    if not re.fullmatch(r"[a-z]{2,3}", lang):
        lang = fallback
    html_env, text_env = _environments(str(templates_dir.resolve()))

    def render(env: Environment, suffix: str) -> str:
        names = [f"{lang}/{name}.{suffix}.j2", f"{fallback}/{name}.{suffix}.j2"]
        return env.select_template(names).render(context)

    return RenderedMail(
        subject=one_line(render(text_env, "subject"), MAX_SUBJECT_CHARS),
        text=_tidy(render(text_env, "txt")),
        html=_tidy(render(html_env, "html")),
    )


def one_line(value: str, limit: int) -> str:
    """`value` as one header-safe line: control and bidi characters removed, capped at `limit`."""
    # A printable string holds none of the removed characters and no whitespace but the space
    # (str.isprintable is false for every Cc, Cf, Co, Cs, Zl, Zp and Zs but U+0020).
    if value.isprintable():
        kept = value
    else:
        spaced = "".join(" " if char.isspace() else char for char in value)
        kept = "".join(
            ch for ch in spaced if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")
        )
    line = " ".join(kept.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


@lru_cache(maxsize=8)
def _environments(templates_dir: str) -> tuple[Environment, Environment]:
    # SEC-1: select_autoescape() looks at the last extension only, so `ack.html.j2` would NOT
    # be escaped; the HTML environment escapes everything, the text one nothing.
    return _environment(templates_dir, escape=True), _environment(templates_dir, escape=False)


def _environment(templates_dir: str, *, escape: bool) -> Environment:
    return Environment(
        loader=FileSystemLoader(templates_dir, encoding="utf-8"),
        autoescape=escape,  # noqa: S701 - False only for text/plain, where nothing is HTML
        undefined=StrictUndefined,
        finalize=_refuse_none,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _refuse_none(value: object) -> object:
    # StrictUndefined catches missing names; None passed in by mistake would print "None".
    if value is None:
        raise UndefinedError("a template printed None: the context lacks a value")
    return value


def _tidy(body: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row, one final newline."""
    text = "\n".join([line.rstrip() for line in body.splitlines()])
    if "\n\n\n" in text:  # a plain search first: the regex scan costs more than the rest
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip("\n") + "\n"
