"""should_ack: one test per reason; build_acknowledgement: the mail parsed back."""

from __future__ import annotations

import email
import email.policy
import re
import sys
import unicodedata
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from intake.acks import (
    ACK_REASONS,
    LOOP_HEADER,
    AckDecision,
    AckHistory,
    AckInput,
    AckPolicy,
    AckSettings,
    BuiltMail,
    ack_context,
    ack_recipient,
    build_acknowledgement,
    choose_language,
    salutation_name,
    should_ack,
)
from intake.acks.marks import is_valid_address
from intake.config import Ack, Consultation, Outgoing, Settings
from intake.errors import ConfigError
from intake.parsing.parsed import Address, Attachment, ParsedMail
from intake.rendering import default_templates_dir, render_mail
from intake.triage.verdict import Kind, Reason, Role, ThemeScore, Verdict

AMS = ZoneInfo("Europe/Amsterdam")
MAILBOX = "smartcity@maastricht.nl"
POLICY = AckPolicy(
    own_addresses=frozenset({MAILBOX, "sanne.de.groen@maastricht.nl"}),
    own_message_id_domain="maastricht.nl",
)
FRESH = AckHistory()
RESIDENT = "jan.jansen@example.nl"


def make_mail(headers: dict[str, str | tuple[str, ...]] | None = None, **fields: Any) -> ParsedMail:
    """A resident's Dutch suggestion; `headers` adds (lower-cased) headers, `fields` replaces."""
    values: dict[str, Any] = {
        "message_id": "CAB+x1@mail.gmail.com",
        "message_id_derived": False,
        "sender": Address(RESIDENT, "Jan Jansen"),
        "to": (Address(MAILBOX),),
        "cc": (),
        "reply_to": (),
        "return_path": RESIDENT,
        "subject": "Slimme lantaarnpalen",
        "date": datetime(2019, 2, 4, 10, 0, tzinfo=AMS),
        "in_reply_to": None,
        "references": (),
        "content_language": None,
        "headers": {},
        "content_type": "text/plain",
        "part_types": ("text/plain",),
        "text": "Beste gemeente, ik stel voor om lantaarnpalen slim te maken.",
        "language": "nl",
    }
    values.update(fields)
    merged: dict[str, tuple[str, ...]] = {
        "from": (f"Jan Jansen <{RESIDENT}>",),
        "subject": (values["subject"],),
    }
    for name, value in (headers or {}).items():
        merged[name.lower()] = value if isinstance(value, tuple) else (value,)
    values["headers"] = merged
    return ParsedMail(**values)


def verdict(kind: Kind = Kind.SUGGESTION, *, late: bool = False) -> Verdict:
    return Verdict(
        kind=kind,
        kind_reasons=(Reason("default"),),
        themes=(ThemeScore("mobiliteit", 2.0),) if kind is Kind.SUGGESTION else (),
        late=late,
        role=Role.PUBLIC,
    )


def decide(
    mail: ParsedMail,
    policy: AckPolicy = POLICY,
    history: AckHistory = FRESH,
    kind: Kind = Kind.SUGGESTION,
) -> AckDecision:
    return should_ack(mail, verdict(kind), policy, history)


# ---------------------------------------------------------------------------------------------
# should_ack: every reason


def test_a_resident_suggestion_is_acknowledged_to_the_return_path() -> None:
    assert decide(make_mail()) == AckDecision(send=True, reason="ok", recipient=RESIDENT)


def test_disabled_acknowledgements_send_nothing() -> None:
    assert decide(make_mail(), replace(POLICY, enabled=False)).reason == "disabled"


@pytest.mark.parametrize("kind", [k for k in Kind if k is not Kind.SUGGESTION])
def test_anything_but_a_suggestion_is_not_acknowledged(kind: Kind) -> None:
    decision = decide(make_mail(), kind=kind)
    assert (decision.send, decision.reason, decision.detail) == (False, "not-a-suggestion", kind)


def test_the_kind_check_comes_first() -> None:
    assert decide(make_mail(return_path=""), kind=Kind.BOUNCE).reason == "not-a-suggestion"


def test_the_null_return_path_is_never_answered() -> None:
    decision = decide(make_mail(return_path=""))
    assert (decision.send, decision.reason, decision.recipient) == (False, "null-return-path", None)


# Suggestions as triage might misfile them: each carries one robot (or loop) signal.
REFUSED: list[tuple[str, str, dict[str, Any]]] = [
    # AR-9 loops with ourselves
    ("own-address", "our mailbox as Return-Path", {"return_path": MAILBOX}),
    ("own-address", "an alias as From", {"sender": Address("Sanne.de.Groen@Maastricht.nl")}),
    ("own-message-id", "our Message-ID", {"message_id": "1549.12.99.intake@maastricht.nl"}),
    ("loop-header", "our loop header", {"headers": {LOOP_HEADER: "maastricht.nl"}}),
    ("loop-header", "another install's loop header", {"headers": {LOOP_HEADER: "example.org"}}),
    # AR-7 reports
    ("delivery-report", "multipart/report", {"content_type": "multipart/report"}),
    (
        "delivery-report",
        "a delivery-status part",
        {
            "content_type": "multipart/mixed",
            "part_types": ("text/plain", "message/delivery-status"),
        },
    ),
    (
        "delivery-report",
        "a read receipt part",
        {"part_types": ("text/plain", "message/disposition-notification")},
    ),
    (
        "delivery-report",
        "Exchange NDR (empty value)",
        {"headers": {"X-MS-Exchange-Message-Is-Ndr": ""}},
    ),
    ("delivery-report", "Exim", {"headers": {"X-Failed-Recipients": RESIDENT}}),
    # AR-2 Auto-Submitted
    ("auto-submitted", "vacation", {"headers": {"Auto-Submitted": "auto-replied (vacation)"}}),
    ("auto-submitted", "generated", {"headers": {"Auto-Submitted": "auto-generated (warning)"}}),
    ("auto-submitted", "notified", {"headers": {"Auto-Submitted": "Auto-Notified"}}),
    (
        "auto-submitted",
        "the second of two",
        {"headers": {"Auto-Submitted": ("no", "auto-replied")}},
    ),
    # AR-8 vendor markers
    ("auto-reply-marker", "X-Autoreply", {"headers": {"X-Autoreply": "yes"}}),
    ("auto-reply-marker", "X-Autorespond", {"headers": {"X-Autorespond": "Out of office"}}),
    ("auto-reply-marker", "X-AutoReply-From", {"headers": {"X-AutoReply-From": RESIDENT}}),
    ("auto-reply-marker", "X-Mail-Autoreply", {"headers": {"X-Mail-Autoreply": "1"}}),
    ("auto-reply-marker", "X-Autogenerated", {"headers": {"X-Autogenerated": "Reply"}}),
    ("auto-reply-marker", "X-FC-MachineGenerated", {"headers": {"X-FC-MachineGenerated": "true"}}),
    (
        "auto-reply-marker",
        "X-POST-MessageClass",
        {"headers": {"X-POST-MessageClass": "9; Autoresponder"}},
    ),
    ("auto-reply-marker", "Delivered-To", {"headers": {"Delivered-To": "Autoresponder"}}),
    ("auto-reply-marker", "X-Loop", {"headers": {"X-Loop": "helpdesk@example.nl"}}),
    ("auto-reply-marker", "Feedback-ID", {"headers": {"Feedback-ID": "1:campaign:ses"}}),
    ("auto-reply-marker", "X-Amazon-Auto-Reply", {"headers": {"X-Amazon-Auto-Reply": "yes"}}),
    # AR-3 Precedence
    ("precedence", "bulk", {"headers": {"Precedence": "bulk"}}),
    ("precedence", "junk", {"headers": {"Precedence": "junk"}}),
    ("precedence", "list", {"headers": {"Precedence": "List"}}),
    ("precedence", "auto_reply", {"headers": {"Precedence": "auto_reply"}}),
    ("precedence", "X-Precedence", {"headers": {"X-Precedence": "bulk"}}),
    # AR-4 lists
    ("list-mail", "List-Unsubscribe only", {"headers": {"List-Unsubscribe": "<mailto:u@x.nl>"}}),
    ("list-mail", "List-Id", {"headers": {"List-Id": "<buurt.lists.example.nl>"}}),
    ("list-mail", "X-Mailing-List", {"headers": {"X-Mailing-List": "buurt"}}),
    # AR-12 upstream spam verdicts
    ("spam-flag", "SpamAssassin flag", {"headers": {"X-Spam-Flag": "YES"}}),
    ("spam-flag", "SpamAssassin status", {"headers": {"X-Spam-Status": "Yes, score=9.1"}}),
    (
        "spam-flag",
        "Exchange Online Protection",
        {"headers": {"X-Forefront-Antispam-Report": "CIP:1.2.3.4;CTRY:NL;SFV:SPM;"}},
    ),
    ("spam-flag", "Exchange SCL", {"headers": {"X-MS-Exchange-Organization-SCL": "6"}}),
]


@pytest.mark.parametrize(
    ("reason", "fields"), [(r, f) for r, _, f in REFUSED], ids=[f"{r}: {d}" for r, d, _ in REFUSED]
)
def test_robot_and_loop_signals_stop_the_acknowledgement(
    reason: str, fields: dict[str, Any]
) -> None:
    decision = decide(make_mail(**fields))
    assert (decision.send, decision.reason, decision.recipient) == (False, reason, None)
    assert decision.detail


@pytest.mark.parametrize(
    "address",
    [
        "MAILER-DAEMON@mx.example.nl",
        "mailer_daemon@example.nl",
        "postmaster@example.nl",
        "LISTSERV@lists.example.nl",
        "majordomo@example.nl",
        "noreply@example.nl",
        "no-reply@example.nl",
        "no_reply+abc@example.nl",
        "notifications-noreply@example.com",
        "donotreply@example.nl",
        "do-not-reply@example.nl",
        "bounce@example.nl",
        "bounces@example.nl",
        "bounces+123@example.nl",
        "buurt-request@lists.example.nl",
        "owner-buurt@lists.example.nl",
        "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@maastricht.onmicrosoft.com",
    ],
)
@pytest.mark.parametrize("where", ["return_path", "sender"])
def test_system_senders_are_never_acknowledged(address: str, where: str) -> None:
    fields: dict[str, Any] = {"return_path": address} if where == "return_path" else {}
    if where == "sender":
        fields["sender"] = Address(address)
        fields["return_path"] = None
    assert decide(make_mail(**fields)).reason == "system-sender"


@pytest.mark.parametrize(
    "address",
    [
        "noreplyjan@example.nl",  # "noreply" must be a word of its own
        "bouncer.bob@example.nl",
        "postmaster.general@example.nl",
        "request@example.nl",
        "owner@example.nl",
    ],
)
def test_people_whose_address_resembles_a_system_name_are_acknowledged(address: str) -> None:
    mail = make_mail(return_path=address, sender=Address(address))
    assert decide(mail).reason == "ok"


@pytest.mark.parametrize(
    "return_path",
    [
        "bounce-mc.us5_123.4567-jan=example.nl@mail123.mcsv.net",
        "0102018c5a1b2c3d-abcdef12-3456-7890-abcd-ef1234567890-000000@eu-west-1.amazonses.com",
        "msprvs1=17978abc=bounces-12345@mailer.example.com",
        "nieuwsbrief+jan=example.nl@mailer.example.com",
        "em-20190204-99887766@mailer.example.com",
        "1234567890abcdef1234@bulk.example.com",
        "info@sendgrid.net",
    ],
)
def test_bulk_platform_return_paths_are_not_acknowledged(return_path: str) -> None:
    decision = decide(make_mail(return_path=return_path))
    assert decision.reason in ("bulk-return-path", "system-sender")
    assert not decision.send


def test_a_verp_return_path_is_a_bulk_platform() -> None:
    mail = make_mail(return_path="nieuws-jan=example.nl@mailer.example.com")
    assert decide(mail).reason == "bulk-return-path"


@pytest.mark.parametrize(
    "return_path",
    [
        "SRS0=abcd=XY=example.nl=jan.jansen@forwarder.example.org",
        "SRS1=HHH=example.org==abcd=XY=example.nl=jan.jansen@forwarder.example.net",
    ],
)
def test_srs_forwarding_still_gets_an_ack_through_the_forwarder(return_path: str) -> None:
    decision = decide(make_mail(return_path=return_path))
    assert (decision.send, decision.recipient) == (True, return_path)


def test_a_batv_signed_return_path_is_answered_at_the_address_it_signs() -> None:
    decision = decide(make_mail(return_path="prvs=0123456789=jan.jansen@example.nl"))
    assert (decision.send, decision.recipient) == (True, RESIDENT)


def test_a_return_path_equal_to_from_is_the_person_even_with_digits() -> None:
    address = "j.jansen19830412@example.nl"
    assert decide(make_mail(return_path=address, sender=Address(address))).send


def test_a_robot_answering_our_mail_is_named_as_such() -> None:
    mail = make_mail(headers={"Auto-Submitted": "auto-replied"}, in_reply_to="1.2.3.intake@x.nl")
    decision = decide(mail, history=AckHistory(refers_to_our_mail=True))
    assert (decision.send, decision.reason) == (False, "reply-to-our-mail-by-robot")
    assert decision.detail.startswith("auto-submitted: ")


def test_a_person_replying_to_our_ack_adds_to_an_acknowledged_thread() -> None:
    decision = decide(make_mail(), history=AckHistory(refers_to_our_mail=True, acks_in_thread=0))
    assert (decision.send, decision.reason) == (False, "thread-limit")


# AR-10 (off by default) -------------------------------------------------------------------------

BCC: dict[str, Any] = {"to": (Address("raad@maastricht.nl"),), "cc": ()}


def test_bcc_and_forwarded_suggestions_are_acknowledged_by_default() -> None:
    assert decide(make_mail(**BCC)).send


def test_when_required_a_bcc_suggestion_is_not_addressed() -> None:
    policy = replace(POLICY, require_addressed=True)
    assert decide(make_mail(**BCC), policy).reason == "not-addressed"


@pytest.mark.parametrize(
    "fields",
    [
        {"to": (Address("SmartCity@Maastricht.nl"),)},
        {"to": (), "cc": (Address(MAILBOX),)},
        {"to": (), "headers": {"Resent-To": f"Smart City <{MAILBOX}>"}},
        {"to": (), "headers": {"Resent-Cc": f"a@b.nl, {MAILBOX}"}},
    ],
)
def test_when_required_to_cc_and_resent_headers_count_as_addressed(fields: dict[str, Any]) -> None:
    policy = replace(POLICY, require_addressed=True)
    assert decide(make_mail(**fields), policy).send


# AR-6 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["All", "OOF, AutoReply", "DR,all", "autoreply"])
def test_the_sender_can_ask_not_to_be_answered(value: str) -> None:
    decision = decide(make_mail(headers={"X-Auto-Response-Suppress": value}))
    assert (decision.send, decision.reason) == (False, "suppressed-by-sender")


@pytest.mark.parametrize("value", ["DR, NDR, RN, NRN", "OOF", "None"])
def test_suppressing_only_receipts_or_oof_still_gets_an_ack(value: str) -> None:
    assert decide(make_mail(headers={"X-Auto-Response-Suppress": value})).send


def test_the_suppress_header_can_be_ignored_by_setting() -> None:
    mail = make_mail(headers={"X-Auto-Response-Suppress": "All"})
    assert decide(mail, replace(POLICY, honour_suppress_header=False)).send


# AR-11 limits -----------------------------------------------------------------------------------


def test_one_ack_per_thread() -> None:
    assert decide(make_mail(), history=AckHistory(acks_in_thread=1)).reason == "thread-limit"


def test_a_sender_gets_at_most_three_acks_a_day() -> None:
    sent = [decide(make_mail(), history=AckHistory(acks_to_sender_last_24h=n)) for n in range(5)]
    assert [d.send for d in sent] == [True, True, True, False, False]
    assert sent[3].reason == "sender-limit"


def test_limits_follow_the_policy() -> None:
    policy = replace(POLICY, max_per_thread=2, max_per_sender_per_day=10)
    assert decide(make_mail(), policy, AckHistory(acks_in_thread=1, acks_to_sender_last_24h=9)).send


# Late mail and resends ------------------------------------------------------------------------


def test_a_late_suggestion_is_acknowledged() -> None:
    assert should_ack(make_mail(), verdict(late=True), POLICY, FRESH).send


def test_a_resend_with_a_new_message_id_is_acknowledged() -> None:
    resend = make_mail(message_id="CAB+x2@mail.gmail.com")
    assert decide(resend, history=AckHistory(acks_to_sender_last_24h=1)).send


# Recipients (AR-20) -----------------------------------------------------------------------------


def test_the_ack_goes_to_the_return_path_not_from_or_reply_to() -> None:
    mail = make_mail(
        return_path="jan+envelope@example.nl",
        sender=Address("jan@example.nl", "Jan"),
        reply_to=(Address("secretariaat@example.nl"),),
    )
    assert decide(mail).recipient == "jan+envelope@example.nl"


def test_without_a_return_path_the_ack_goes_to_from() -> None:
    assert decide(make_mail(return_path=None)).recipient == RESIDENT


def test_without_any_sender_there_is_no_recipient() -> None:
    decision = decide(make_mail(return_path=None, sender=None))
    assert (decision.send, decision.reason) == (False, "no-recipient")
    assert ack_recipient(make_mail(return_path="")) is None


@pytest.mark.parametrize(
    "address",
    [
        "jan@example.nl\r\nBcc: victim@example.org",
        "jan@example.nl, victim@example.org",
        "jan@@example.nl",
        "jan@a@example.nl",
        "jan.example.nl",
        "jan jansen@example.nl",
        "jan@example..nl",
        "jan@example.nl\u202e",
        "@example.nl",
    ],
)
def test_a_malformed_recipient_is_refused(address: str) -> None:
    decision = decide(make_mail(return_path=None, sender=Address(address)))
    assert (decision.send, decision.reason) == (False, "invalid-recipient")
    assert "\r" not in decision.detail
    assert "\n" not in decision.detail


# Order and coverage ---------------------------------------------------------------------------


def test_the_first_rule_in_the_table_decides() -> None:
    mail = make_mail(
        headers={
            "Auto-Submitted": "auto-replied",
            "Precedence": "bulk",
            "List-Id": "<x>",
            "X-Auto-Response-Suppress": "All",
        },
        return_path="noreply@example.nl",
    )
    assert decide(mail).reason == "auto-submitted"
    assert decide(replace(mail, content_type="multipart/report")).reason == "delivery-report"


def test_every_reason_is_exercised_here() -> None:
    tested = {r for r, _, _ in REFUSED} | {
        "disabled",
        "not-a-suggestion",
        "null-return-path",
        "system-sender",
        "bulk-return-path",
        "reply-to-our-mail-by-robot",
        "no-recipient",
        "invalid-recipient",
        "not-addressed",
        "suppressed-by-sender",
        "thread-limit",
        "sender-limit",
        "ok",
    }
    assert tested == set(ACK_REASONS)


def test_auto_submitted_no_is_a_person() -> None:
    assert decide(make_mail(headers={"Auto-Submitted": "No"})).send


def test_ordinary_precedence_values_are_a_person() -> None:
    assert decide(make_mail(headers={"Precedence": "first-class"})).send


def test_a_derived_message_id_is_never_ours() -> None:
    mail = make_mail(message_id="derived-ab.intake@maastricht.nl", message_id_derived=True)
    assert decide(mail).send


def test_a_colleague_whose_client_uses_our_domain_is_acknowledged() -> None:
    mail = make_mail(
        message_id="5C5A1B2C.3040506@maastricht.nl", sender=Address("raadslid@maastricht.nl")
    )
    assert decide(replace(mail, return_path="raadslid@maastricht.nl")).send


def test_policy_from_settings() -> None:
    settings = Settings(
        consultation=Consultation(
            addresses=["SmartCity@Maastricht.nl", "suggesties@maastricht.nl"]
        ),
        outgoing=Outgoing(from_address="noreply-smartcity@maastricht.nl"),
        ack=Ack(require_addressed=True, max_per_thread=2),
    )
    policy = AckPolicy.from_settings(settings)
    assert policy.own_addresses == {
        "smartcity@maastricht.nl",
        "suggesties@maastricht.nl",
        "noreply-smartcity@maastricht.nl",
    }
    assert policy.own_message_id_domain == "maastricht.nl"
    assert (policy.require_addressed, policy.max_per_thread, policy.honour_suppress_header) == (
        True,
        2,
        True,
    )


# choose_language ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"language": "en", "content_language": "nl-NL"}, "en"),
        ({"language": "", "content_language": "en-GB"}, "en"),
        ({"language": "", "content_language": "de-DE, en-US"}, "en"),
        ({"language": "", "headers": {"Accept-Language": "en-US, nl-NL"}}, "en"),
        ({"language": "", "content_language": "de-DE"}, "nl"),
        ({"language": ""}, "nl"),
    ],
)
def test_choose_language(fields: dict[str, Any], expected: str) -> None:
    assert choose_language(make_mail(**fields), "nl") == expected


# ---------------------------------------------------------------------------------------------
# build_acknowledgement

SETTINGS = AckSettings(
    from_address=MAILBOX,
    from_name="Gemeente Maastricht, Smart City",
    message_id_domain="smartcity.maastricht.nl",
    consultation_name="Smart City: onderzoeksopdracht",
    deadline=datetime(2019, 2, 6, tzinfo=AMS),
    timezone="Europe/Amsterdam",
    contact="sanne.de.groen@maastricht.nl",
)
NOW = datetime(2019, 2, 4, 9, 31, 5, tzinfo=ZoneInfo("UTC"))
RENDER = partial(render_mail, templates_dir=default_templates_dir())
SECRET = "geheim-voorstel-7731"  # occurs in the original body only


def ack_input(**fields: Any) -> AckInput:
    mail = make_mail(
        message_id="CAB+x1@mail.gmail.com",
        references=("root@example.nl", "CAB+x0@mail.gmail.com"),
        text=f"Mijn voorstel: {SECRET}",
        attachments=(Attachment("plan.pdf", "application/pdf", 10, "0" * 64),),
    )
    base = AckInput.from_mail(
        mail,
        verdict(),
        recipient=RESIDENT,
        received_at=datetime(2019, 2, 4, 9, 30, tzinfo=ZoneInfo("UTC")),
        theme_names=("Mobiliteit", "Privacy"),
        language="nl",
    )
    return replace(base, **fields)


def build(**fields: Any) -> tuple[BuiltMail, EmailMessage]:
    built = build_acknowledgement(ack_input(**fields), SETTINGS, RENDER, now=NOW)
    parsed = email.message_from_bytes(built.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return built, parsed


def bodies(msg: EmailMessage) -> tuple[str, str]:
    plain, html = msg.iter_parts()
    return plain.get_content(), html.get_content()


def test_the_ack_carries_every_header() -> None:
    built, msg = build()
    assert msg["From"] == f'"Gemeente Maastricht, Smart City" <{MAILBOX}>'
    assert msg["To"] == f"Jan Jansen <{RESIDENT}>"
    assert msg["Subject"] == "Ontvangstbevestiging: Slimme lantaarnpalen" == built.subject
    assert msg["Date"] == "Mon, 04 Feb 2019 10:31:05 +0100"  # Amsterdam time, SMTP-7
    assert str(msg["Message-ID"]).strip() == f"<{built.message_id}>"
    assert built.message_id.endswith(".intake@smartcity.maastricht.nl")
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Precedence"] == "auto_reply"
    assert msg["Content-Language"] == "nl"
    assert msg[LOOP_HEADER] == "smartcity.maastricht.nl"
    assert built.recipient == RESIDENT
    assert msg["Bcc"] is None
    assert msg["Reply-To"] is None


def test_the_ack_threads_under_the_original() -> None:
    _, msg = build()
    assert msg["In-Reply-To"] == "<CAB+x1@mail.gmail.com>"
    assert msg["References"] == "<root@example.nl> <CAB+x0@mail.gmail.com> <CAB+x1@mail.gmail.com>"


def test_without_an_original_message_id_there_is_no_threading() -> None:
    _, msg = build(message_id=None, references=())
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None


def test_long_reference_chains_are_trimmed_keeping_the_root() -> None:
    refs = tuple(f"r{n}@example.nl" for n in range(60))
    _, msg = build(references=refs)
    ids = str(msg["References"]).split()
    assert len(ids) == 20
    assert ids[0] == "<r0@example.nl>"
    assert ids[-2:] == [
        "<r59@example.nl>",
        "<CAB+x1@mail.gmail.com>",
    ]


def test_broken_reference_ids_are_dropped() -> None:
    _, msg = build(references=("ok@example.nl", "bad id@x", "evil@x>\r\nBcc: a@b.nl"))
    assert msg["References"] == "<ok@example.nl> <CAB+x1@mail.gmail.com>"


def test_plain_text_comes_first_then_html_both_utf8() -> None:
    _, msg = build()
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)


def test_the_ack_names_what_was_received_and_never_quotes_the_body() -> None:
    built, msg = build()
    text, html = bodies(msg)
    for body in (text, html):
        assert "Slimme lantaarnpalen" in body
        assert "4 februari 2019" in body
        assert "10:30" in body
        assert "plan.pdf" in body
        assert "Mobiliteit, Privacy" in body
        assert "sanne.de.groen@maastricht.nl" in body
        assert SECRET not in body
    assert SECRET.encode() not in built.data


def test_a_late_ack_says_so_kindly() -> None:
    _, msg = build(late=True)
    text, html = bodies(msg)
    assert "na de sluitingsdatum (6 februari 2019)" in text
    assert "niet meer wordt meegenomen" in html
    _, on_time = build()
    assert "sluitingsdatum" not in bodies(on_time)[0]


def test_an_english_ack() -> None:
    built, msg = build(language="en")
    assert built.subject == "Received: Slimme lantaarnpalen"
    assert msg["Content-Language"] == "en"
    assert "Thank you for your suggestion" in bodies(msg)[0]


def test_an_unknown_language_falls_back_to_the_default() -> None:
    _, msg = build(language="de")
    assert msg["Content-Language"] == "nl"


def test_a_missing_subject_gets_the_fallback() -> None:
    built, _ = build(subject="   ")
    assert built.subject == "Ontvangstbevestiging van uw suggestie"


@pytest.mark.parametrize(
    "field",
    ["subject", "recipient_name"],
)
def test_header_injection_through_reused_values_is_impossible(field: str) -> None:
    built, msg = build(**{field: "Hallo\r\nBcc: victim@example.org\nX-Evil: 1"})
    assert msg["Bcc"] is None
    assert msg["X-Evil"] is None
    header_lines = built.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert not [line for line in header_lines if line.startswith((b"Bcc", b"X-Evil"))]
    assert "\n" not in built.subject


def test_an_injected_recipient_is_refused() -> None:
    with pytest.raises(ValueError, match="single valid address"):
        build(recipient=f"{RESIDENT}\r\nBcc: victim@example.org")


def test_bidi_controls_are_stripped_and_long_subjects_capped() -> None:
    built, msg = build(subject="Slim\u202eenoj\u202c " + "x" * 400, recipient_name="Jan\u2066 J")
    assert "\u202e" not in built.subject
    assert "\u202c" not in built.subject
    assert len(built.subject) <= 200
    assert msg["To"] == f"Jan J <{RESIDENT}>"
    text, html = bodies(msg)
    assert "\u202e" not in text
    assert "\u202e" not in html


def header_block(built: BuiltMail) -> bytes:
    return built.data.split(b"\r\n\r\n", 1)[0]


def assert_wire_safe(built: BuiltMail) -> None:
    """CRLF line ends only, no line over 998 octets, no blank or whitespace-only folded line."""
    assert not re.search(rb"(?<!\r)\n|\r(?!\n)", built.data)
    assert max(len(line) for line in built.data.split(b"\r\n")) <= 998
    for line in header_block(built).split(b"\r\n"):
        assert line.strip()
        assert line[:1] in (b" ", b"\t") or re.match(rb"[A-Za-z-]+:", line)


@pytest.mark.parametrize(
    "name",
    [
        "Jänš Jánssen",
        "Hermans, Jörg",
        "O'Neil, Seán",
        'Jan "Jantje" Smit',
        "Zoë Ünal-Çelik (bewonersraad)",
        "Ελένη Παπαδοπούλου",
        "王小明",
        "Gemeente Maastricht — Afdeling Ruimtelijke Ontwikkeling",
        "😀 Fan van groen",
    ],
)
def test_a_non_ascii_display_name_goes_out_7bit_and_reads_back(name: str) -> None:
    built, msg = build(recipient_name=name)
    assert built.data.isascii()
    assert_wire_safe(built)
    assert msg["To"].addresses[0].display_name == name
    assert msg["To"].addresses[0].addr_spec == RESIDENT


def test_a_long_non_ascii_subject_is_folded_7bit_and_reads_back() -> None:
    subject = " ".join(["Ideeën", "voor", "de", "Maasboulevard", "én", "het", "Vrijthof"] * 8)
    built, msg = build(subject=subject)
    assert built.data.isascii()
    assert_wire_safe(built)
    assert built.subject.endswith("…")
    assert msg["Subject"] == built.subject
    assert all(len(line) <= 78 for line in header_block(built).split(b"\r\n"))


def test_text_that_looks_like_an_encoded_word_reads_as_written() -> None:
    built, msg = build(subject="=?utf-8?q?Bcc?= idee", recipient_name="=?utf-8?b?SmFu?=")
    assert msg["Subject"] == built.subject == "Ontvangstbevestiging: =?utf-8?q?Bcc?= idee"
    assert msg["To"].addresses[0].display_name == "=?utf-8?b?SmFu?="


def test_a_right_to_left_override_in_a_name_never_reaches_the_header() -> None:
    built, msg = build(recipient_name="Jan \u202eznassnaJ\u202c \u2067Ω\u2069")
    assert msg["To"].addresses[0].display_name == "Jan znassnaJ Ω"
    assert b"\xe2\x80\xae" not in built.data
    assert_wire_safe(built)


def test_a_non_ascii_recipient_gets_utf8_headers_and_7bit_bodies() -> None:
    built = build_acknowledgement(
        ack_input(recipient="jan@exämple.nl", recipient_name="Jänš"), SETTINGS, RENDER, now=NOW
    )
    assert_wire_safe(built)
    head, body = built.data.split(b"\r\n\r\n", 1)
    assert "To: Jänš <jan@exämple.nl>".encode() in head.split(b"\r\n")
    assert body.isascii()
    # The stdlib reads raw UTF-8 headers from text, not from bytes.
    msg = email.message_from_string(built.data.decode(), policy=email.policy.SMTPUTF8)
    assert isinstance(msg, EmailMessage)
    assert msg["To"].addresses[0].display_name == "Jänš"
    assert msg["Subject"] == built.subject


@pytest.mark.parametrize(
    "recipient",
    [
        "jän@example.nl",
        ".jan@example.nl",
        "jan..j@example.nl",
        "=?utf-8?Q?agent?=@example.com",  # zammad mail118
        "=?x?q?utf-8?=@example.nl",  # the stdlib's parser raises CharsetError on it
    ],
)
def test_a_recipient_the_stdlib_address_parser_refuses_is_refused(recipient: str) -> None:
    with pytest.raises(ValueError, match=r"local-part|stdlib"):
        build(recipient=recipient)


def test_long_message_ids_stay_whole_in_the_threading_headers() -> None:
    long_id = "x" * 120 + "@example.nl"
    built, msg = build(message_id=long_id, references=("root@example.nl",))
    assert f"\r\n <{long_id}>".encode() in header_block(built)
    # Folded before the id: the stdlib reads that blank as part of these unstructured fields.
    assert msg["In-Reply-To"].strip() == f"<{long_id}>"
    assert msg["References"] == f"<root@example.nl> <{long_id}>"
    assert_wire_safe(built)


def test_the_bodies_are_quoted_printable_and_read_back_to_the_rendered_text() -> None:
    built, msg = build(subject="Ünïcode = gelijk", recipient_name="Jänš")
    _, text, html = RENDER(
        "ack",
        "nl",
        ack_context(ack_input(subject="Ünïcode = gelijk", recipient_name="Jänš"), SETTINGS),
    )
    assert tuple(b.replace("\r\n", "\n") for b in bodies(msg)) == (text, html)
    assert built.data.count(b"Content-Transfer-Encoding: quoted-printable\r\n") == 2


@pytest.mark.parametrize("code", range(0, sys.maxunicode + 1, 0x10000))
def test_clean_text_skips_its_character_loop_only_where_it_would_change_nothing(
    code: int,
) -> None:
    # clean_text takes str.isprintable() as "nothing to remove": check that for one plane.
    for char in map(chr, range(code, code + 0x10000)):
        if char.isprintable():
            assert unicodedata.category(char) not in ("Cc", "Cf", "Co", "Cs")
            assert char == " " or not char.isspace()


def test_the_message_id_domain_comes_from_config_never_the_host() -> None:
    settings = Settings(outgoing=Outgoing(from_address=MAILBOX, message_id_domain="Ack.Example.NL"))
    built = build_acknowledgement(ack_input(), AckSettings.from_settings(settings), RENDER, now=NOW)
    assert built.message_id.endswith("@ack.example.nl")
    fallback = AckSettings.from_settings(Settings(outgoing=Outgoing(from_address=MAILBOX)))
    built = build_acknowledgement(ack_input(), fallback, RENDER, now=NOW)
    assert built.message_id.endswith(".intake@maastricht.nl")


def test_every_ack_gets_a_fresh_message_id() -> None:
    assert build()[0].message_id != build()[0].message_id


def test_without_a_sender_address_building_fails_with_the_setting_named() -> None:
    with pytest.raises(ConfigError, match=r"outgoing\.from_address"):
        build_acknowledgement(ack_input(), AckSettings.from_settings(Settings()), RENDER, now=NOW)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        build_acknowledgement(ack_input(), SETTINGS, RENDER, now=datetime(2019, 2, 4))


def test_settings_supply_contact_and_deadline() -> None:
    settings = Settings(
        consultation=Consultation(contact=""), outgoing=Outgoing(from_address=MAILBOX)
    )
    ack_settings = AckSettings.from_settings(settings)
    assert ack_settings.contact == MAILBOX
    assert ack_settings.deadline == datetime(2019, 2, 6, tzinfo=AMS)


def test_our_own_ack_coming_back_is_never_acknowledged() -> None:
    built, msg = build()
    headers: dict[str, tuple[str, ...]] = {}
    for name, value in msg.items():
        headers[name.lower()] = (*headers.get(name.lower(), ()), str(value))
    echoed = make_mail(
        message_id=built.message_id,
        sender=Address(MAILBOX),
        return_path=MAILBOX,
        subject=built.subject,
    )
    echoed = replace(echoed, headers=headers)
    assert decide(echoed).reason == "own-address"
    # Even relayed by someone else, the Message-ID and the loop header give it away.
    relayed = replace(echoed, sender=Address("relay@example.org"), return_path="relay@example.org")
    policy = replace(POLICY, own_message_id_domain="smartcity.maastricht.nl")
    assert decide(relayed, policy).reason == "own-message-id"
    assert decide(replace(relayed, message_id="x@example.org"), policy).reason == "loop-header"


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("Hermans, Jeroen", "Jeroen Hermans"),
        ("Jeroen Hermans", "Jeroen Hermans"),
        ("Gemeente, Afdeling, Team", "Gemeente, Afdeling, Team"),
        ("", ""),
    ],
)
def test_outlook_last_first_display_name_is_turned_round_for_the_salutation(
    display: str, expected: str
) -> None:
    assert salutation_name(display) == expected


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("anne.janssen@home.nl", True),
        ("renée@voorbeeld.nl", True),
        ("anne\u200b@home.nl", False),  # a zero-width space (Cf) would pass for the address
        ("anne\x07@home.nl", False),
        ("anne\u0085@home.nl", False),  # NEL, a control character outside ASCII
        ("anne@home..nl", False),
        ("anne janssen@home.nl", False),
    ],
)
def test_an_address_with_hidden_characters_is_not_valid(address: str, valid: bool) -> None:
    assert is_valid_address(address) is valid
