"""Parsing in worker processes stores what parsing in the poll's own process stores, in order,
and a message that kills a worker process is stored raw as unparseable, never lost."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from intake.analysis import Analysed, analyse
from intake.ingest_pool import CRASHED, PoolAnalyser, analyser_for
from intake.sources import RawMail
from intake.store.db import open_database, session_factory
from intake.store.models import Message, OutboxMail
from intake.storing import triage_context
from intake.triage import TriageContext
from intake.triage.rules import Rules, load_rules, parse_rules
from tests.pipeline_fixtures import (
    SettingsFactory,
    consultation_corpus,
    deliver,
    make_settings,
    poll,
)

__all__ = ["make_settings"]  # the fixture used below


def stored(settings_url: str) -> list[tuple[Any, ...]]:
    """What a poll stored, without what differs between any two polls (ids of time, Message-IDs
    of acknowledgements)."""
    engine = open_database(settings_url)
    with session_factory(engine)() as session:
        rows = [
            (
                m.source_key,
                m.message_id,
                m.sha256,
                m.raw,
                m.kind,
                m.kind_reasons,
                m.primary_theme,
                [(t.theme, t.score, t.rank, t.matches) for t in m.themes],
                [(a.filename, a.size, a.sha256) for a in m.attachments],
                m.text,
                m.quoted,
                m.language,
                m.late,
                m.sender_role,
                m.duplicate_of_id,
                m.thread_of_id,
                m.link_reason,
                m.ack_status,
                m.ack_reason,
                m.parse_error,
            )
            for m in session.scalars(select(Message).order_by(Message.id))
        ]
        acks = [
            (o.message_pk, o.recipients, o.subject)
            for o in session.scalars(select(OutboxMail).order_by(OutboxMail.id))
        ]
    engine.dispose()
    return [*rows, *acks]


def test_a_pool_of_parser_processes_stores_exactly_what_one_process_stores(
    make_settings: SettingsFactory,
) -> None:
    results = []
    for processes in (0, 2):
        settings = make_settings(f"p{processes}", worker={"parse_processes": processes})
        for mail in consultation_corpus():
            deliver(settings, mail.data, mail.arrived_at, name=mail.name.removesuffix(".eml"))
        engine = open_database(settings.database.url)
        with analyser_for(settings) as analyser:
            assert isinstance(analyser, PoolAnalyser) == (processes == 2)
            summary = poll(settings, engine, analyser=analyser)
            again = poll(settings, engine, analyser=analyser)
        engine.dispose()
        assert summary.fetched == summary.stored == len(consultation_corpus())
        assert again.stored == 0
        results.append(stored(settings.database.url))
    assert results[0] == results[1]


def crash_on_marker(raw: RawMail, rules: Rules, context: TriageContext) -> Analysed:
    """Analyses like intake does, but kills its process on a message marked to crash it."""
    if b"X-Test-Crash: yes" in raw.data:
        os._exit(70)
    return analyse(raw, rules, context)


def test_a_message_that_kills_a_parser_process_is_stored_unparseable_and_the_rest_parsed(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings(worker={"parse_processes": 2})
    corpus = consultation_corpus()[:6]
    for number, mail in enumerate(corpus):
        deliver(settings, mail.data, mail.arrived_at, name=f"{number}-ok")
        if number == 2:
            crash = b"X-Test-Crash: yes\r\n" + mail.data + b"\r\nP.S.\r\n"  # a mail of its own
            deliver(settings, crash, mail.arrived_at, name=f"{number}-crash")
    engine = open_database(settings.database.url)
    with PoolAnalyser(2, crash_on_marker) as analyser:
        summary = poll(settings, engine, analyser=analyser)
        assert summary.stored == len(corpus) + 1
        assert summary.quarantined == 1
        # The pool was replaced: the next poll parses in fresh processes.
        later = corpus[0].data + b"\r\nP.S.\r\n"
        deliver(settings, later, corpus[0].arrived_at)
        assert poll(settings, engine, analyser=analyser).stored == 1
    with session_factory(engine)() as session:
        rows = list(session.scalars(select(Message).order_by(Message.id)))
        crashed = [m for m in rows if m.parse_error == CRASHED]
        assert len(crashed) == 1
        assert crashed[0].kind == "unparseable"
        assert crashed[0].raw.startswith(b"X-Test-Crash: yes")
        assert crashed[0].source_key == "2-crash"
        assert all(m.parse_error is None for m in rows if m is not crashed[0])
    engine.dispose()


def test_rules_edited_between_polls_reach_the_running_parser_processes(
    make_settings: SettingsFactory,
) -> None:
    # Parser processes keep the rules they unpickled; edited rules must replace them.
    settings = make_settings(worker={"parse_processes": 2})
    shipped = load_rules(settings.rules_path)
    context = triage_context(settings)
    raw = next(
        raw
        for mail in consultation_corpus()
        if analyse(
            raw := RawMail("1", mail.data, mail.arrived_at, len(mail.data)), shipped, context
        ).verdict.themes
    )
    with analyser_for(settings) as analyser:

        def primary(rules: Rules) -> str:
            analysed = next(iter(analyser.analyse_all([raw], rules, context, {})))
            return analysed.verdict.themes[0].theme

        before = primary(shipped)
        other = next(theme.slug for theme in shipped.themes if theme.slug != before)
        edited = parse_rules(
            settings.rules_path.read_text(encoding="utf-8")
            + f'\n[[rules]]\nid = "all"\ntheme = "{other}"\nweight = 99\nregex = [".+"]\n'
        )
        assert [primary(edited), primary(shipped)] == [other, before]
