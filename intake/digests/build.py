"""Render a digest for a span: figures, chart and the template triple, ready to be mailed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import make_msgid
from pathlib import Path

from sqlalchemy.orm import Session

from intake.acks import clean_text, message_id_domain
from intake.config import Settings
from intake.digests.charts import theme_chart
from intake.digests.content import (
    FILTERED_LISTED,
    filtered_messages,
    shaping_for,
    theme_groups,
)
from intake.digests.figures import Figures, Span, count_figures
from intake.rendering import default_templates_dir, render_mail
from intake.triage.rules import Rules

PREVIEW_DOMAIN = "preview.invalid"  # RFC 2606: a Content-ID domain for previews without config


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """A digest's subject, text and HTML, and the chart the HTML shows as `cid:<chart_cid>`."""

    final: bool
    subject: str
    text: str
    html: str
    chart_png: bytes | None  # None when there is nothing to chart yet
    chart_cid: str  # without angle brackets; "" without a chart
    language: str
    figures: Figures

    def preview_html(self, chart_file: str) -> str:
        """The HTML with the chart taken from `chart_file` (beside it) instead of the mail part."""
        if not self.chart_cid:
            return self.html
        return self.html.replace(f'src="cid:{self.chart_cid}"', f'src="{chart_file}"')

    def write_preview(self, path: Path) -> list[Path]:
        """Write the HTML to `path` and the chart beside it as `<name>.chart.png`; the files."""
        written = [path]
        chart = path.with_name(path.stem + ".chart.png")
        if self.chart_png is not None:
            chart.write_bytes(self.chart_png)
            written.append(chart)
        path.write_text(self.preview_html(chart.name), encoding="utf-8")
        return written


def render_digest(
    session: Session,
    settings: Settings,
    rules: Rules,
    span: Span,
    *,
    final: bool,
    now: datetime,
    after_final: bool = False,
) -> RenderedDigest:
    """The digest of `span` rendered in `digest.language`; reads the database, writes nothing."""
    language = settings.digest.language
    tz = settings.consultation.tz
    figures = count_figures(session, span, rules, language)
    shaping = shaping_for(figures, final=final, language=language, tz=tz)
    chart_png, chart_cid = None, ""
    if figures.total:
        chart_png = theme_chart([(theme.name, theme.total) for theme in figures.themes])
        domain = message_id_domain(settings) or PREVIEW_DOMAIN
        chart_cid = make_msgid(idstring="chart", domain=domain)[1:-1]
    filtered = filtered_messages(session, span, tz, FILTERED_LISTED)
    context: dict[str, object] = {
        "consultation": clean_text(settings.consultation.name),
        "final": final,
        "after_final": after_final,
        "empty": figures.is_empty,
        "period_start": span.start.astimezone(tz) if span.start else None,
        "period_end": span.end.astimezone(tz),
        "since": span.since.astimezone(tz) if span.since else None,
        "generated_at": now.astimezone(tz),
        "deadline": settings.consultation.deadline_at.astimezone(tz),
        "figures": figures,
        "themes": list(figures.themes),
        "chart_src": f"cid:{chart_cid}" if chart_cid else "",
        "groups": theme_groups(session, span, rules, figures, shaping),
        "filtered": filtered,
        "filtered_more": figures.filtered_total + figures.quarantined - len(filtered),
        "text_complete": shaping.text_complete,
        "html_texts": shaping.html_texts,
        "trim_chars": shaping.trim_chars,
        "sender_name": clean_text(settings.outgoing.from_name),
    }
    templates = settings.templates_dir or default_templates_dir()
    subject, text, html = render_mail("digest", language, context, templates)
    return RenderedDigest(
        final=final,
        subject=subject,
        text=text,
        html=html,
        chart_png=chart_png,
        chart_cid=chart_cid,
        language=language,
        figures=figures,
    )
