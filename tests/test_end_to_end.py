"""The whole pipeline against real servers: Dovecot in, poll, store, aiosmtpd out.

The consultation corpus is appended to Dovecot with INTERNALDATE = each sidecar's arrival time,
polled once (module scope), and the acknowledgements are delivered to the real SMTP server.
The tests after that read the result, or poll again and check that nothing new happens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intake import ingest, outbox
from intake.config import Settings
from intake.sources import open_source
from intake.store.db import open_database, session_factory
from intake.store.models import Message, OutboxMail
from intake.triage.rules import load_rules
from tests.pipeline_fixtures import consultation_corpus, mail, settings_in
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import ReceivedMail, RecordingSMTP

pytestmark = pytest.mark.imap

FOLDER = "Consultation"
KIND_ACCURACY = 0.98
PRIMARY_THEME = 0.80
PRIMARY_AMONG_EXPECTED = 0.95


def imap_settings(folder: Path, dovecot: Dovecot, smtp: RecordingSMTP, mailbox: str) -> Settings:
    """Settings of an intake reading `mailbox` on Dovecot and sending through aiosmtpd."""
    outgoing = smtp.outgoing()
    settings = settings_in(
        folder,
        mailbox={"url": dovecot.url(mailbox, tls="implicit"), "ca_file": dovecot.ca_path},
        outgoing={"url": outgoing.url, "max_per_minute": 0, "timeout_seconds": 5},
    )
    return settings.model_copy(update={"mailbox_password": dovecot.password})


def poll(settings: Settings, engine: Engine, **kwargs: Any) -> ingest.PollSummary:
    return ingest.poll_once(settings, engine, load_rules(settings.rules_path), **kwargs)


@dataclass
class Run:
    settings: Settings
    engine: Engine
    dovecot: Dovecot
    smtp: RecordingSMTP
    first: ingest.PollSummary
    delivered: outbox.DeliverySummary
    acks: list[ReceivedMail]  # what the SMTP server received after the first poll
    keys: dict[str, str]  # "<uidvalidity>:<uid>" → corpus file name

    def stored(self) -> dict[str, Message]:
        """Stored messages by corpus file name, through the IMAP key each was first read at
        (the server may hand back other bytes than appended: CRLF line ends, no NULs)."""
        with session_factory(self.engine)() as session:
            rows = list(session.scalars(select(Message)))
            for row in rows:
                session.expunge(row)
        return {self.keys[row.source_key]: row for row in rows if row.source_key in self.keys}

    def outbox(self) -> list[OutboxMail]:
        with session_factory(self.engine)() as session:
            return list(session.scalars(select(OutboxMail).order_by(OutboxMail.id)))


@pytest.fixture(scope="module")
def run(
    dovecot: Dovecot, smtp_server: RecordingSMTP, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    dovecot.reset()
    smtp_server.reset()
    uids = {
        m.name: dovecot.append(m.data, folder=FOLDER, internaldate=m.arrived_at)
        for m in consultation_corpus()
    }
    validity = dovecot.uidvalidity(FOLDER)
    keys = {f"{validity}:{uid}": name for name, uid in uids.items()}
    settings = imap_settings(tmp_path_factory.mktemp("e2e"), dovecot, smtp_server, FOLDER)
    engine = open_database(settings.database.url)
    first = poll(settings, engine)
    delivered = outbox.deliver_due(settings, engine)
    acks = list(smtp_server.messages)
    yield Run(settings, engine, dovecot, smtp_server, first, delivered, acks, keys)
    engine.dispose()


def test_every_message_in_the_mailbox_is_stored_once(run: Run) -> None:
    total = len(consultation_corpus())
    assert len(run.dovecot.uids(FOLDER)) == total
    assert (run.first.fetched, run.first.stored) == (total, total)
    assert len(run.stored()) == total


def test_kinds_agree_with_the_sidecars(run: Run) -> None:
    stored = run.stored()
    corpus = consultation_corpus()
    misses = [
        f"  {m.name}: want {m.expect['kind']}, got {stored[m.name].kind} "
        f"({', '.join(r['code'] for r in stored[m.name].kind_reasons) or 'no signal'})"
        for m in corpus
        if stored[m.name].kind != m.expect["kind"]
    ]
    accuracy = 1 - len(misses) / len(corpus)
    print(f"\nkind accuracy {accuracy:.1%} ({len(corpus) - len(misses)}/{len(corpus)})")
    print("\n".join(misses))
    assert accuracy >= KIND_ACCURACY, (
        f"kind accuracy {accuracy:.1%} < {KIND_ACCURACY:.0%}; misses:\n" + "\n".join(misses)
    )


def test_primary_themes_agree_with_the_sidecars(run: Run) -> None:
    stored = run.stored()
    suggestions = [m for m in consultation_corpus() if m.expect["kind"] == "suggestion"]
    exact, among, misses = 0, 0, []
    for m in suggestions:
        got = stored[m.name].primary_theme or "other"
        want = m.expect["themes"]
        exact += got == want[0]
        among += got in want
        if got != want[0]:
            misses.append(f"  {m.name}: primary {got}, want {want}")
    exact_rate, among_rate = exact / len(suggestions), among / len(suggestions)
    print(
        f"\nprimary theme = expected primary: {exact_rate:.1%} ({exact}/{len(suggestions)}); "
        f"primary among expected: {among_rate:.1%} ({among}/{len(suggestions)})"
    )
    print("\n".join(misses))
    # The shipped rules are tuned against these figures; a shortfall lists every miss.
    listing = "\n".join(misses)
    assert exact_rate >= PRIMARY_THEME, (
        f"primary theme {exact_rate:.1%} < {PRIMARY_THEME:.0%}; misses:\n{listing}"
    )
    assert among_rate >= PRIMARY_AMONG_EXPECTED, (
        f"primary among expected {among_rate:.1%} < {PRIMARY_AMONG_EXPECTED:.0%}; "
        f"misses:\n{listing}"
    )


def test_late_suggestions_are_flagged_by_their_internaldate(run: Run) -> None:
    stored = run.stored()
    wrong = [
        f"{m.name}: late={stored[m.name].late}, want {m.expect['late']}"
        for m in consultation_corpus()
        if m.expect["kind"] == "suggestion" and stored[m.name].late != m.expect["late"]
    ]
    assert sum(m.expect.get("late", False) for m in consultation_corpus()) >= 3
    assert wrong == []


def test_resends_are_linked_to_the_first_mail(run: Run) -> None:
    stored = run.stored()
    resends = [m for m in consultation_corpus() if "duplicate_of" in m.expect]
    assert resends
    wrong = [
        f"{m.name}: duplicate_of {stored[m.name].duplicate_of_id}"
        for m in resends
        if stored[m.name].duplicate_of_id != stored[m.expect["duplicate_of"]].id
    ]
    assert wrong == []


def _parsed(received: ReceivedMail) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(received.data)


def test_one_acknowledgement_per_acknowledged_suggestion_reaches_the_smtp_server(
    run: Run,
) -> None:
    stored = {m.id: m for m in run.stored().values()}
    acked = [m for m in stored.values() if m.ack_status == "queued"]
    assert run.delivered.sent == len(acked) == len(run.acks) > 0
    assert run.delivered.failed == run.delivered.retrying == 0
    rows = {row.message_id: row for row in run.outbox()}
    answered = Counter()
    for received in run.acks:
        message = _parsed(received)
        assert not message.defects, message.defects
        assert message["Auto-Submitted"] == "auto-replied"
        row = rows[str(message["Message-ID"]).strip("<>")]
        assert row.status == "sent"
        original = stored[row.message_pk]  # type: ignore[index]
        assert original.kind == "suggestion"
        answered[original.id] += 1
        if original.message_id_derived:
            assert message["In-Reply-To"] is None
        else:
            # A long Message-ID is folded onto its own line: compare without the fold.
            assert str(message["In-Reply-To"]).strip() == f"<{original.message_id}>"
        assert received.recipients == (row.recipients[0],)
        assert message.get_body(("plain",)) is not None
    assert set(answered) == {m.id for m in acked}
    assert set(answered.values()) == {1}


def test_second_poll_stores_nothing_and_sends_nothing(run: Run) -> None:
    again = poll(run.settings, run.engine)
    assert (again.fetched, again.stored) == (0, 0)
    assert outbox.deliver_due(run.settings, run.engine).sent == 0
    assert len(run.smtp.messages) == len(run.acks)


def test_poll_after_the_server_dropped_every_connection_goes_on(run: Run) -> None:
    source = open_source(run.settings.mailbox, run.settings.mailbox_password)
    try:
        poll(run.settings, run.engine, source=source)
        run.dovecot.kick()
        after_kick = poll(run.settings, run.engine, source=source)  # same source, reconnects
    finally:
        source.close()
    assert after_kick.stored == 0
    run.dovecot.kick()
    assert poll(run.settings, run.engine).stored == 0


def test_new_uidvalidity_with_the_same_mail_stores_no_duplicates_and_sends_no_acks(
    run: Run,
) -> None:
    total = len(consultation_corpus())
    before = len(run.outbox())
    run.dovecot.recreate_folder(FOLDER)
    for m in consultation_corpus():
        run.dovecot.append(m.data, folder=FOLDER, internaldate=m.arrived_at)
    again = poll(run.settings, run.engine)
    # Every message of the folder is read again: the first copies and the new ones.
    assert again.fetched == 2 * total
    assert (again.stored, again.known) == (0, 2 * total)
    assert len(run.stored()) == total
    assert len(run.outbox()) == before
    assert outbox.deliver_due(run.settings, run.engine).sent == 0
    assert len(run.smtp.messages) == len(run.acks)


# -- two intakes answering each other ---------------------------------------------------------


def test_two_intakes_acknowledging_each_other_exchange_one_acknowledgement_each(
    dovecot: Dovecot, smtp_server: RecordingSMTP, tmp_path: Path
) -> None:
    dovecot.reset()
    smtp_server.reset()
    folders = {"alpha@alpha.example": "Alpha", "beta@beta.example": "Beta"}
    instances = []
    for address, folder in folders.items():
        settings = imap_settings(tmp_path / folder, dovecot, smtp_server, folder)
        settings = settings.model_copy(
            update={
                "outgoing": settings.outgoing.model_copy(
                    update={"from_address": address, "message_id_domain": address.split("@")[1]}
                ),
                "consultation": settings.consultation.model_copy(update={"addresses": [address]}),
            }
        )
        instances.append((settings, open_database(settings.database.url)))
    # Each consultation receives one suggestion from the other one's address.
    dovecot.append(mail(sender="beta@beta.example", to="alpha@alpha.example"), folder="Alpha")
    dovecot.append(mail(sender="alpha@alpha.example", to="beta@beta.example"), folder="Beta")

    routed = 0
    for _ in range(4):
        for settings, engine in instances:
            poll(settings, engine)
            outbox.deliver_due(settings, engine)
        for received in smtp_server.messages[routed:]:
            for recipient in received.recipients:
                dovecot.append(received.data, folder=folders[recipient])
        routed = len(smtp_server.messages)

    assert sorted(r.recipients[0] for r in smtp_server.messages) == sorted(folders)
    for _, engine in instances:
        with session_factory(engine)() as session:
            acks = list(session.scalars(select(OutboxMail)))
            kinds = Counter(session.scalars(select(Message.kind)))
        assert len(acks) == 1
        assert kinds == {"suggestion": 1, "auto_reply": 1}
        engine.dispose()
