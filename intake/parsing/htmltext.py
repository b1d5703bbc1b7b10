"""Readable plain text from mail HTML (Outlook Word HTML included), via html2text."""

from __future__ import annotations

import re

import html2text

# Removed before conversion so that no script or style text can reach stored text, whatever
# html2text does with unbalanced or odd markup (PARSE-4, SEC-3).
_DROP_BLOCKS = re.compile(
    r"<(script|style|head|title|xml)\b[^>]*>.*?(</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL
)
# Outlook/Word conditional comments: <!--[if gte mso 9]> … <![endif]--> hold VML and XML,
# and the downlevel-revealed form <![if !supportLists]> … <![endif]> holds fake bullets.
_MSO_CONDITIONAL = re.compile(r"<!--\[if[^\]]*\]>.*?<!\[endif\]-->", re.IGNORECASE | re.DOTALL)
_MSO_REVEALED = re.compile(r"<!\[(?:if[^\]]*|endif)\]>", re.IGNORECASE)
# Table cells end without whitespace in the markup; html2text with ignore_tables glues them.
_CELL_END = re.compile(r"(</t[dh]\s*>)", re.IGNORECASE)
_HEADING = re.compile(r"^#{1,6} ", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


class _PlainText(html2text.HTML2Text):
    """html2text without Markdown escaping: we want prose, not Markdown source."""

    def handle_data(self, data: str, entity_char: bool = False) -> None:
        # entity_char=True is html2text's only switch that skips escape_md_section, which
        # would otherwise turn "1. punt" into "1\\. punt" and "- ja" into "\\- ja".
        super().handle_data(data, entity_char=True)


def html_to_text(html: str) -> str:
    """The readable text of an HTML body: no tags, images, scripts, styles or link targets."""
    cleaned = _MSO_CONDITIONAL.sub("", html)
    cleaned = _DROP_BLOCKS.sub("", cleaned)
    cleaned = _MSO_REVEALED.sub("", cleaned)
    cleaned = _CELL_END.sub(r" \1", cleaned)
    converter = _PlainText()
    converter.ignore_images = True
    converter.ignore_links = True  # link text stays; URLs written as text stay too
    converter.ignore_emphasis = True
    converter.ignore_tables = True
    converter.body_width = 0  # no re-wrapping: keep the sender's lines
    converter.unicode_snob = True  # keep é and € rather than ASCII look-alikes
    converter.single_line_break = False
    text = str(converter.handle(cleaned))
    text = _HEADING.sub("", text)
    lines = [line.rstrip() for line in text.replace("\xa0", " ").splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
