"""One poll cycle as a whole: Maildir → parse → triage → link → store + queue ack → position."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from intake import ingest, outbox
from intake.config import Settings
from intake.sources import Position, RawMail, Source, open_source
from intake.store.db import open_database, session_factory
from intake.store.models import Message, OutboxMail, SourceItem
from intake.triage.rules import RuleBook
from tests.pipeline_fixtures import (
    RULES,
    CorpusMail,
    SettingsFactory,
    bounce,
    consultation_corpus,
    deliver,
    deliver_corpus,
    engine,
    mail,
    make_settings,
    messages,
    out_of_office,
    poll,
    settings,
    settings_in,
    stored_by_file,
)

__all__ = ["engine", "make_settings", "settings"]  # fixtures used by the tests below

DEADLINE_BEFORE = datetime(2019, 2, 5, 22, 59, tzinfo=UTC)  # 23:59 in Maastricht
AFTER_DEADLINE = datetime(2019, 2, 7, 10, 0, tzinfo=UTC)
JANUARY = datetime(2019, 1, 28, 10, 0, tzinfo=UTC)


def count(engine: Engine, model: type) -> int:
    with session_factory(engine)() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def stored_once(engine: Engine, expected: int) -> None:
    """Every delivered message is one row and was read at one key."""
    with session_factory(engine)() as session:
        shas = list(session.scalars(select(Message.sha256)))
        keys = list(session.scalars(select(SourceItem.key)))
    assert len(shas) == len(set(shas)) == expected
    assert len(keys) == len(set(keys)) == expected


# -- the corpus, polled once for the tests that only read what was stored ----------------------


@dataclass(frozen=True)
class CorpusStore:
    settings: Settings
    engine: Engine
    files: dict[str, Path]
    first: ingest.PollSummary

    def stored(self) -> dict[str, Message]:
        with session_factory(self.engine)() as session:
            found = stored_by_file(session, self.settings, self.files)
            for message in found.values():
                session.expunge(message)
            return found


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusStore]:
    settings = settings_in(tmp_path_factory.mktemp("corpus"))
    engine = open_database(settings.database.url)
    files = deliver_corpus(settings)
    first = poll(settings, engine)
    yield CorpusStore(settings, engine, files, first)
    engine.dispose()


def expected(name: str) -> CorpusMail:
    return next(m for m in consultation_corpus() if m.name == name)


# -- position and exactly-once -----------------------------------------------------------------


def test_second_poll_fetches_nothing_and_stores_nothing_new(corpus_store: CorpusStore) -> None:
    total = len(consultation_corpus())
    assert corpus_store.first.fetched == corpus_store.first.stored == total
    again = poll(corpus_store.settings, corpus_store.engine)
    assert (again.fetched, again.stored, again.known) == (0, 0, 0)
    assert "already known 0" in str(again)
    stored_once(corpus_store.engine, total)


def test_same_message_at_two_keys_is_stored_once_and_recorded_as_known(
    settings: Settings, engine: Engine
) -> None:
    data = mail()
    deliver(settings, data, JANUARY, name="first.copy")
    deliver(settings, data, JANUARY, name="second.copy")
    summary = poll(settings, engine)
    assert (summary.fetched, summary.stored, summary.known) == (2, 1, 1)
    assert count(engine, Message) == 1
    assert count(engine, SourceItem) == 2


def test_same_message_in_two_mailboxes_is_stored_once(
    make_settings: SettingsFactory, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    data = mail()
    deliver(settings, data, JANUARY)
    other = make_settings("other-folder")
    deliver(other, data, JANUARY)
    poll(settings, engine)
    second = open_source(other.mailbox)
    summary = poll(settings, engine, source=second)
    second.close()
    assert (summary.stored, summary.known) == (0, 1)
    assert count(engine, Message) == 1
    with session_factory(engine)() as session:
        assert len(set(session.scalars(select(SourceItem.source)))) == 2


def test_stopping_mid_poll_loses_nothing_and_the_next_poll_stores_the_rest(
    settings: Settings, engine: Engine
) -> None:
    total = len(deliver_corpus(settings))
    seen = 0

    def stop_after_30() -> bool:
        nonlocal seen
        seen += 1
        return seen >= 30

    first = poll(settings, engine, should_stop=stop_after_30)
    assert first.stored == 30
    rest = poll(settings, engine)
    assert rest.stored == total - 30
    assert rest.known == 0
    stored_once(engine, total)


class DroppingSource:
    """A real source whose connection is lost after `after` messages."""

    def __init__(self, source: Source, after: int) -> None:
        self.source, self.after = source, after
        self.name = source.name

    def fetch_new(self, position: Position) -> Iterator[RawMail]:
        for n, raw in enumerate(self.source.fetch_new(position)):
            if n == self.after:
                raise ConnectionResetError("connection lost mid-poll")
            yield raw

    def current_validity(self) -> int:
        return self.source.current_validity()

    def mark_processed(self, keys: list[str]) -> None:
        self.source.mark_processed(keys)

    def close(self) -> None:
        self.source.close()


def test_crash_mid_poll_keeps_committed_batches_and_the_next_poll_stores_each_once(
    settings: Settings, engine: Engine
) -> None:
    total = len(deliver_corpus(settings))
    crashed_at = ingest.STORE_BATCH + 20  # one batch committed, twenty analysed and lost
    dropping = DroppingSource(open_source(settings.mailbox), after=crashed_at)
    with pytest.raises(ConnectionResetError):
        poll(settings, engine, source=dropping)
    dropping.close()
    assert count(engine, Message) == ingest.STORE_BATCH
    again = poll(settings, engine)
    assert again.stored == total - ingest.STORE_BATCH
    stored_once(engine, total)
    # Every acknowledgement was queued with its message: none twice, none lost.
    with session_factory(engine)() as session:
        queued = session.scalar(select(func.count()).where(Message.ack_status == "queued"))
        acks = list(session.scalars(select(OutboxMail.message_pk)))
    assert len(acks) == len(set(acks)) == queued


# -- what is stored ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [m.name for m in consultation_corpus() if m.expect["kind"] == "unparseable"]
)
def test_malformed_mail_is_stored_raw_as_unparseable_and_the_run_goes_on(
    corpus_store: CorpusStore, name: str
) -> None:
    message = corpus_store.stored()[name]
    with session_factory(corpus_store.engine)() as session:
        raw = session.get(Message, message.id).raw  # type: ignore[union-attr]
    assert raw == expected(name).data
    assert corpus_store.first.stored == len(consultation_corpus())  # the run went on
    assert message.kind == "unparseable", (
        f"{name} stored as {message.kind} because {message.kind_reasons}"
    )
    assert message.ack_status == "suppressed"


def test_message_over_the_size_limit_is_stored_as_headers_and_a_note(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(mailbox={"max_message_bytes": 2048})
    engine = open_database(settings.database.url)
    big = mail(subject="Grote bijlage over parkeren", body="parkeren " * 2000)
    deliver(settings, big, JANUARY)
    deliver(settings, mail(), JANUARY)
    summary = poll(settings, engine)
    assert summary.stored == 2
    with session_factory(engine)() as session:
        row = session.scalars(select(Message).where(Message.truncated.is_(True))).one()
        assert row.size == len(big)
        assert row.subject == "Grote bijlage over parkeren"
        head = big.split(b"\r\n\r\n", 1)[0]
        assert row.raw.startswith(head)
        assert b"over the size limit" in row.raw
        assert len(row.raw) < 2048
    engine.dispose()


def test_every_kind_of_the_corpus_reaches_the_store(corpus_store: CorpusStore) -> None:
    stored = corpus_store.stored()
    want = Counter(m.expect["kind"] for m in consultation_corpus())
    got = Counter(stored[m.name].kind for m in consultation_corpus())
    misses = [
        f"{m.name}: want {m.expect['kind']}, got {stored[m.name].kind}"
        for m in consultation_corpus()
        if stored[m.name].kind != m.expect["kind"]
    ]
    print(f"\nkinds expected {dict(want)}\nkinds stored   {dict(got)}")
    assert set(want) <= set(got), "\n".join(misses)


def test_late_is_decided_by_arrival_not_by_the_date_header(
    settings: Settings, engine: Engine
) -> None:
    # IMAP-15: the sender's clock says nothing about when the mail reached us.
    early_claim = mail(subject="Laat maar met oude Date", date=JANUARY)
    late_claim = mail(subject="Op tijd met een Date na de deadline", date=AFTER_DEADLINE)
    deliver(settings, early_claim, AFTER_DEADLINE)
    deliver(settings, late_claim, DEADLINE_BEFORE)
    poll(settings, engine)
    late = {m.subject: m.late for m in messages(engine)}
    assert late == {"Laat maar met oude Date": True, "Op tijd met een Date na de deadline": False}


def test_corpus_late_flags_follow_the_arrival_times(corpus_store: CorpusStore) -> None:
    stored = corpus_store.stored()
    wrong = [
        f"{m.name}: want late={m.expect['late']}"
        for m in consultation_corpus()
        if m.expect["kind"] == "suggestion" and stored[m.name].late != m.expect["late"]
    ]
    assert wrong == []


def test_resends_and_replies_are_linked_as_the_sidecars_say(corpus_store: CorpusStore) -> None:
    stored = corpus_store.stored()
    wrong = []
    for m in consultation_corpus():
        message = stored[m.name]
        want_duplicate = stored[m.expect["duplicate_of"]].id if "duplicate_of" in m.expect else None
        want_thread = stored[m.expect["thread_of"]].id if "thread_of" in m.expect else None
        if message.duplicate_of_id != want_duplicate:
            wrong.append(f"{m.name}: duplicate_of {message.duplicate_of_id} ≠ {want_duplicate}")
        # A resend that answers the first mail is in its thread as well; nothing else is.
        thread_ok = message.thread_of_id == want_thread or (
            want_thread is None and message.thread_of_id == want_duplicate
        )
        if not thread_ok:
            wrong.append(f"{m.name}: thread_of {message.thread_of_id} ≠ {want_thread}")
    assert wrong == []


# -- rules hot reload --------------------------------------------------------------------------

EXTRA_RULE = """

[[rules]]
id = "mobility-zebrapad-test"
theme = "mobility"
weight = 30
words = ["zebrapadjes"]
"""


def test_rules_edited_between_polls_apply_and_a_bad_edit_keeps_the_last_good_rules(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    rules_file = tmp_path / "rules.toml"
    shutil.copy(RULES, rules_file)
    settings = make_settings(consultation={"rules": str(rules_file)})
    engine = open_database(settings.database.url)
    book = RuleBook(rules_file)
    suggestion = "Beste gemeente,\n\nMeer zebrapadjes bij scholen graag, met slimme verlichting.\n"

    def poll_one(subject: str) -> Message:
        deliver(settings, mail(subject=subject, body=suggestion), JANUARY)
        ingest.poll_once(settings, engine, book.rules)
        return next(m for m in messages(engine) if m.subject == subject)

    assert poll_one("Voorstel een").primary_theme != "mobility"
    rules_file.write_text(RULES.read_text(encoding="utf-8") + EXTRA_RULE, encoding="utf-8")
    after_edit = poll_one("Voorstel twee")
    assert after_edit.primary_theme == "mobility"
    rules_file.write_text(rules_file.read_text() + "\n[[rules]]\nid = 'Bad Id'\n")
    after_bad_edit = poll_one("Voorstel drie")
    assert after_bad_edit.primary_theme == "mobility"
    engine.dispose()


# -- acknowledgements --------------------------------------------------------------------------


def test_acknowledgement_is_queued_exactly_for_suggestions_and_suppressed_with_a_reason_else(
    corpus_store: CorpusStore,
) -> None:
    stored = corpus_store.stored().values()
    with session_factory(corpus_store.engine)() as session:
        acked = Counter(
            session.scalars(select(OutboxMail.message_pk).where(OutboxMail.purpose == "ack"))
        )
    assert all(n == 1 for n in acked.values())
    for message in stored:
        assert message.ack_status in ("queued", "suppressed"), message.message_id
        assert message.ack_reason, message.message_id
        if message.ack_status == "queued":
            assert message.kind == "suggestion"
            assert message.id in acked
        else:
            assert message.id not in acked
            if message.kind != "suggestion":
                assert message.ack_reason.startswith("not-a-suggestion"), message.ack_reason
    suggestions = [m for m in stored if m.kind == "suggestion"]
    print(
        f"\n{len(acked)} acknowledgements queued for {len(suggestions)} suggestions; suppressed: "
        + str(Counter(m.ack_reason.split(":")[0] for m in suggestions if m.id not in acked))
    )
    assert len(acked) >= 0.8 * len(suggestions)


def test_reply_to_our_acknowledgement_joins_the_suggestion_and_gets_no_second_one(
    settings: Settings, engine: Engine
) -> None:
    deliver(settings, mail(), JANUARY)
    poll(settings, engine)
    (ack,) = [row for row in outbox_rows(engine) if row.purpose == "ack"]
    reply = mail(
        subject="Re: Ontvangstbevestiging",
        body=(
            "Dank voor de bevestiging! Nog een idee: laat bewoners via een app melden waar "
            "fietsenstallingen vol zijn, dan kan de gemeente gericht uitbreiden.\n"
        ),
        headers={"In-Reply-To": f"<{ack.message_id}>", "References": f"<{ack.message_id}>"},
    )
    deliver(settings, reply, datetime(2019, 1, 29, 9, 0, tzinfo=UTC))
    poll(settings, engine)
    first, second = messages(engine)
    assert second.thread_of_id == first.id
    assert second.ack_status == "suppressed"
    assert second.ack_reason.startswith("thread-limit")
    assert len(outbox_rows(engine)) == 1


def test_out_of_office_answer_to_our_acknowledgement_is_never_acknowledged(
    settings: Settings, engine: Engine
) -> None:
    deliver(settings, mail(), JANUARY)
    poll(settings, engine)
    (ack,) = outbox_rows(engine)
    deliver(settings, out_of_office(ack.message_id), datetime(2019, 1, 28, 10, 1, tzinfo=UTC))
    poll(settings, engine)
    auto = messages(engine)[1]
    assert auto.kind == "auto_reply"
    assert auto.ack_status == "suppressed"
    assert len(outbox_rows(engine)) == 1


def test_bounce_quoting_our_acknowledgement_marks_it_bounced(
    settings: Settings, engine: Engine
) -> None:
    deliver(settings, mail(), JANUARY)
    poll(settings, engine)
    assert outbox.deliver_due(settings, engine).sent == 1
    (sent,) = Path(settings.outgoing.url.removeprefix("file:")).glob("*.eml")
    ack_mail = BytesParser(policy=policy.default).parsebytes(sent.read_bytes())
    # The bounce names our mail only inside the returned copy, not in its own headers.
    deliver(
        settings,
        bounce(sent.read_bytes(), recipient=str(ack_mail["To"])),
        datetime(2019, 1, 28, 10, 2, tzinfo=UTC),
    )
    summary = poll(settings, engine)
    assert summary.kinds == {"bounce": 1}
    (row,) = outbox_rows(engine)
    assert row.status == "bounced"
    assert "bounced" in (row.last_error or "")
    assert messages(engine)[1].ack_status == "suppressed"


def outbox_rows(engine: Engine) -> list[OutboxMail]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(OutboxMail).order_by(OutboxMail.id)))


def test_mail_reusing_a_message_id_under_another_sender_is_a_message_of_its_own(
    settings: Settings, engine: Engine
) -> None:
    deliver(settings, mail(message_id="same@example.nl"), JANUARY)
    deliver(
        settings,
        mail(message_id="same@example.nl", sender="Bob <bob@example.nl>", subject="Ander idee"),
        JANUARY,
    )
    summary = poll(settings, engine)
    assert (summary.stored, summary.known) == (2, 0)


def test_suggestion_whose_acknowledgement_cannot_be_built_is_stored_unacknowledged(
    settings: Settings, engine: Engine
) -> None:
    hostile = mail().replace(
        b"From: Anna de Vries <anna.devries@example.nl>",
        b"From: =?utf-8?Q?agent?=@example.com",  # zammad mail118: an encoded-word address
    )
    deliver(settings, hostile, JANUARY)
    summary = poll(settings, engine)
    assert summary.quarantined == 0
    (message,) = messages(engine)
    assert message.kind == "suggestion"
    assert message.ack_status == "suppressed"
    assert message.ack_reason.startswith("unbuildable")
