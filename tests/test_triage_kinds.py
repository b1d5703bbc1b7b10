"""Kind detection: each header, structure and subject check, and how hits are ranked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from intake.parsing.parsed import Address, Attachment, ParsedMail
from intake.triage import TriageContext, load_rules, parse_rules, triage
from intake.triage.kinds import KindInputs, detect_kind
from intake.triage.verdict import Kind

RULES_FILE = Path(__file__).resolve().parent.parent / "config" / "rules.toml"
RULES = load_rules(RULES_FILE)
CONTEXT = TriageContext(
    received_at=datetime(2019, 2, 1, 10, tzinfo=UTC),
    deadline=datetime(2019, 2, 5, 23, tzinfo=UTC),
    own_addresses=("smartcity@maastricht.nl",),
)


def make_mail(
    *,
    subject: str = "Suggestie voor de onderzoeksopdracht",
    text: str = "Graag aandacht voor parkeren in de binnenstad.",
    sender: str | None = "jan.jansen@example.nl",
    headers: Mapping[str, str | tuple[str, ...]] | None = None,
    return_path: str | None = "jan.jansen@example.nl",
    content_type: str = "text/plain",
    part_types: tuple[str, ...] | None = None,
    report_type: str | None = None,
    attachments: tuple[Attachment, ...] = (),
    quoted: str = "",
    signature: str = "",
    disclaimer: str = "",
    error: str | None = None,
) -> ParsedMail:
    """A ParsedMail as the parser would build it; header names are case-insensitive here too."""
    values = {
        name.lower(): (value,) if isinstance(value, str) else value
        for name, value in (headers or {}).items()
    }
    return ParsedMail(
        message_id="test@example.nl",
        message_id_derived=False,
        sender=Address(sender) if sender else None,
        to=(Address("smartcity@maastricht.nl"),),
        cc=(),
        reply_to=(),
        return_path=return_path,
        subject=subject,
        date=None,
        in_reply_to=None,
        references=(),
        content_language=None,
        headers=values,
        content_type=content_type,
        part_types=part_types or (content_type,),
        text=text,
        report_type=report_type,
        quoted=quoted,
        signature=signature,
        disclaimer=disclaimer,
        attachments=attachments,
        error=error,
    )


def kind_of(mail: ParsedMail) -> tuple[Kind, str]:
    verdict = triage(mail, RULES, CONTEXT)
    reason = verdict.kind_reason
    return verdict.kind, reason.code if reason else ""


NDR_PARTS = ("multipart/report", "text/plain", "message/delivery-status", "message/rfc822")

# (case, mail, expected kind, expected deciding reason code)
KIND_CASES = [
    (
        "dsn-multipart-report",
        make_mail(
            content_type="multipart/report",
            part_types=NDR_PARTS,
            report_type="delivery-status",
            return_path="",
        ),
        Kind.BOUNCE,
        "report-delivery-status",
    ),
    (
        "dsn-report-type-from-content-type-header",
        make_mail(
            content_type="multipart/report",
            headers={"Content-Type": 'multipart/report; report-type="delivery-status"; b=x'},
        ),
        Kind.BOUNCE,
        "report-delivery-status",
    ),
    (
        "ndr-rewrapped-as-mixed",
        make_mail(
            content_type="multipart/mixed",
            part_types=("multipart/mixed", "text/plain", "message/delivery-status"),
        ),
        Kind.BOUNCE,
        "delivery-status-part",
    ),
    (
        "exchange-ndr-header-with-empty-value",
        make_mail(
            subject="Onbestelbaar: Suggestie",
            headers={"X-MS-Exchange-Message-Is-Ndr": "", "Auto-Submitted": "auto-replied"},
        ),
        Kind.BOUNCE,
        "exchange-ndr",
    ),
    (
        "exim-failed-recipients",
        make_mail(headers={"X-Failed-Recipients": "iemand@example.nl"}),
        Kind.BOUNCE,
        "failed-recipients",
    ),
    (
        "feedback-report-is-feedback-on-our-mail",
        make_mail(
            content_type="multipart/report",
            part_types=("multipart/report", "text/plain", "message/feedback-report"),
            report_type="feedback-report",
        ),
        Kind.BOUNCE,
        "report-feedback",
    ),
    (
        "read-receipt-report",
        make_mail(
            subject="Gelezen: Suggestie",
            content_type="multipart/report",
            part_types=("multipart/report", "text/plain", "message/disposition-notification"),
            report_type="disposition-notification",
        ),
        Kind.RECEIPT,
        "report-disposition",
    ),
    (
        "mailer-daemon",
        make_mail(sender="MAILER-DAEMON@mx.example.nl", return_path=""),
        Kind.BOUNCE,
        "system-sender",
    ),
    (
        "postmaster",
        make_mail(sender="postmaster@gemeente.onmicrosoft.com", return_path=None),
        Kind.BOUNCE,
        "system-sender",
    ),
    (
        "exchange-online-system-sender",
        make_mail(
            sender="MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@maastricht.nl",
            return_path=None,
        ),
        Kind.BOUNCE,
        "system-sender",
    ),
    (
        "own-address-loop",
        make_mail(sender="SmartCity@Maastricht.nl", return_path="smartcity@maastricht.nl"),
        Kind.AUTO_REPLY,
        "own-address",
    ),
    (
        "spam-flag",
        make_mail(headers={"X-Spam-Flag": "YES"}),
        Kind.SPAM,
        "spam-flag",
    ),
    (
        "spam-status",
        make_mail(headers={"X-Spam-Status": "Yes, score=9.1 required=5.0"}),
        Kind.SPAM,
        "spam-status",
    ),
    (
        "forefront-spam-verdict",
        make_mail(
            headers={"X-Forefront-Antispam-Report": "CIP:1.2.3.4;CTRY:NL;SFV:SPM;H:mx;CAT:SPM;"}
        ),
        Kind.SPAM,
        "forefront-spam",
    ),
    (
        "auto-submitted-auto-replied",
        make_mail(headers={"Auto-Submitted": "auto-replied (vacation)"}),
        Kind.AUTO_REPLY,
        "auto-submitted",
    ),
    (
        "auto-submitted-auto-generated",
        make_mail(headers={"Auto-Submitted": "Auto-Generated (warning-timeout)"}),
        Kind.AUTO_REPLY,
        "auto-submitted",
    ),
    (
        "auto-submitted-auto-notified",
        make_mail(headers={"Auto-Submitted": "auto-notified; owner-email=a@example.nl"}),
        Kind.AUTO_REPLY,
        "auto-submitted",
    ),
    (
        "exchange-inbox-rule-pair",
        make_mail(
            headers={"X-Auto-Response-Suppress": "All", "X-MS-Exchange-Inbox-Rules-Loop": "a@b.nl"}
        ),
        Kind.AUTO_REPLY,
        "exchange-inbox-rule",
    ),
    ("x-autoreply", make_mail(headers={"X-Autoreply": "yes"}), Kind.AUTO_REPLY, "autoreply-marker"),
    (
        "x-autorespond",
        make_mail(headers={"X-Autorespond": "true"}),
        Kind.AUTO_REPLY,
        "autoreply-marker",
    ),
    (
        "x-autogenerated",
        make_mail(headers={"X-Autogenerated": "Reply"}),
        Kind.AUTO_REPLY,
        "autoreply-marker",
    ),
    (
        "x-fc-machinegenerated",
        make_mail(headers={"X-FC-MachineGenerated": "true"}),
        Kind.AUTO_REPLY,
        "autoreply-marker",
    ),
    (
        "x-post-messageclass",
        make_mail(headers={"X-POST-MessageClass": "9; Autoresponder"}),
        Kind.AUTO_REPLY,
        "autoreply-marker",
    ),
    (
        "x-amazon-auto-reply",
        make_mail(headers={"X-Amazon-Auto-Reply": "true"}),
        Kind.AUTO_REPLY,
        "autoreply-marker",
    ),
    ("x-loop", make_mail(headers={"X-Loop": "helpdesk"}), Kind.AUTO_REPLY, "autoreply-marker"),
    (
        "precedence-auto-reply",
        make_mail(headers={"Precedence": "auto_reply"}),
        Kind.AUTO_REPLY,
        "precedence",
    ),
    ("precedence-bulk", make_mail(headers={"Precedence": "bulk"}), Kind.BULK, "precedence"),
    ("precedence-junk", make_mail(headers={"Precedence": "Junk"}), Kind.BULK, "precedence"),
    ("x-precedence-list", make_mail(headers={"X-Precedence": "list"}), Kind.BULK, "precedence"),
    (
        "list-unsubscribe-only",
        make_mail(headers={"List-Unsubscribe": "<https://example.nl/u>"}),
        Kind.BULK,
        "list-header",
    ),
    ("list-id", make_mail(headers={"List-Id": "<raad.example.nl>"}), Kind.BULK, "list-header"),
    (
        "feedback-id",
        make_mail(headers={"Feedback-ID": "123:campaign:mailer"}),
        Kind.BULK,
        "feedback-id",
    ),
    ("noreply", make_mail(sender="noreply@nieuwsbrief.nl"), Kind.BULK, "system-sender"),
    ("no-reply", make_mail(sender="no-reply@example.com"), Kind.BULK, "system-sender"),
    ("donotreply", make_mail(sender="DoNotReply@example.com"), Kind.BULK, "system-sender"),
    ("list-request", make_mail(sender="smartcity-request@lists.nl"), Kind.BULK, "system-sender"),
    ("list-owner", make_mail(sender="owner-smartcity@lists.nl"), Kind.BULK, "system-sender"),
    ("null-sender-alone", make_mail(return_path=""), Kind.BOUNCE, "null-return-path"),
    (
        "null-sender-with-ooo-subject",
        make_mail(subject="Automatisch antwoord: Suggestie", return_path=""),
        Kind.AUTO_REPLY,
        "ooo-subject-nl",
    ),
    (
        "ooo-subject-nl",
        make_mail(subject="Automatisch antwoord: Smart City"),
        Kind.AUTO_REPLY,
        "ooo-subject-nl",
    ),
    ("afwezig-subject", make_mail(subject="Afwezig"), Kind.AUTO_REPLY, "ooo-subject-nl"),
    (
        "out-of-office-subject",
        make_mail(subject="Out of Office: Smart City"),
        Kind.AUTO_REPLY,
        "ooo-subject-en",
    ),
    (
        "automatic-reply-subject",
        make_mail(subject="Automatic reply: suggestion"),
        Kind.AUTO_REPLY,
        "ooo-subject-en",
    ),
    (
        "auto-prefix-subject",
        make_mail(subject="Auto: Smart City"),
        Kind.AUTO_REPLY,
        "ooo-subject-en",
    ),
    (
        "onbestelbaar-subject",
        make_mail(subject="Onbestelbaar: Ideeën"),
        Kind.BOUNCE,
        "ndr-subject-nl",
    ),
    (
        "niet-bezorgd-subject",
        make_mail(subject="Niet bezorgd: Ideeën"),
        Kind.BOUNCE,
        "ndr-subject-nl",
    ),
    (
        "undeliverable-subject",
        make_mail(subject="Undeliverable: Ideas"),
        Kind.BOUNCE,
        "ndr-subject-en",
    ),
    (
        "mail-delivery-failed-subject",
        make_mail(subject="Mail delivery failed: returning message to sender"),
        Kind.BOUNCE,
        "ndr-subject-en",
    ),
    (
        "dsn-subject",
        make_mail(subject="Delivery Status Notification (Failure)"),
        Kind.BOUNCE,
        "ndr-subject-en",
    ),
    (
        "returned-mail-subject",
        make_mail(subject="Returned mail: see transcript"),
        Kind.BOUNCE,
        "ndr-subject-en",
    ),
    (
        "gelezen-subject",
        make_mail(subject="Gelezen: Smart City"),
        Kind.RECEIPT,
        "receipt-subject-nl",
    ),
    (
        "niet-gelezen-subject",
        make_mail(subject="Niet gelezen: Smart City"),
        Kind.RECEIPT,
        "receipt-subject-nl",
    ),
    ("read-subject", make_mail(subject="Read: Smart City"), Kind.RECEIPT, "receipt-subject-en"),
    (
        "not-read-subject",
        make_mail(subject="Not read: Smart City"),
        Kind.RECEIPT,
        "receipt-subject-en",
    ),
    ("empty-text", make_mail(text="  \n "), Kind.EMPTY, "no-text"),
]


@pytest.mark.parametrize(
    ("mail", "kind", "code"),
    [pytest.param(mail, kind, code, id=case) for case, mail, kind, code in KIND_CASES],
)
def test_each_kind_check_classifies_its_fixture(mail: ParsedMail, kind: Kind, code: str) -> None:
    assert kind_of(mail) == (kind, code)


def test_plain_human_mail_is_a_suggestion_without_kind_reasons() -> None:
    verdict = triage(make_mail(), RULES, CONTEXT)
    assert verdict.kind is Kind.SUGGESTION
    assert verdict.kind_reasons == ()


def test_out_of_office_without_auto_headers_is_auto_reply() -> None:
    mail = make_mail(subject="Automatisch antwoord: Suggestie Smart City", text="Ik ben afwezig.")
    verdict = triage(mail, RULES, CONTEXT)
    assert verdict.kind is Kind.AUTO_REPLY
    assert verdict.kind_reason is not None
    assert verdict.kind_reason.field == "subject"
    assert verdict.themes == ()


def test_auto_response_suppress_alone_stays_a_suggestion() -> None:
    # AR-6: Exchange stamps it on human mail sent through a distribution group.
    mail = make_mail(headers={"X-Auto-Response-Suppress": "All"})
    assert triage(mail, RULES, CONTEXT).kind is Kind.SUGGESTION


def test_auto_submitted_no_is_human() -> None:
    assert kind_of(make_mail(headers={"Auto-Submitted": "no"})) == (Kind.SUGGESTION, "")


def test_exchange_ndr_keeps_every_hit_with_the_deciding_one_first() -> None:
    mail = make_mail(
        subject="Onbestelbaar: Suggestie",
        sender="MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@maastricht.nl",
        return_path="",
        headers={"X-MS-Exchange-Message-Is-Ndr": "", "Auto-Submitted": "auto-replied"},
    )
    verdict = triage(mail, RULES, CONTEXT)
    codes = [reason.code for reason in verdict.kind_reasons]
    assert codes == [
        "exchange-ndr",
        "system-sender",
        "auto-submitted",
        "null-return-path",
        "ndr-subject-nl",
    ]
    assert str(verdict.kind_reasons[0]) == "exchange-ndr in header: X-MS-Exchange-Message-Is-Ndr:"


def test_auto_submitted_gives_way_to_a_bounce_subject() -> None:
    # Exchange NDRs carry Auto-Submitted: auto-replied; without the NDR header the subject decides.
    mail = make_mail(subject="Undeliverable: Ideas", headers={"Auto-Submitted": "auto-replied"})
    assert kind_of(mail) == (Kind.BOUNCE, "ndr-subject-en")


def test_null_sender_with_auto_submitted_is_an_auto_reply() -> None:
    mail = make_mail(return_path="", headers={"Auto-Submitted": "auto-replied"})
    assert kind_of(mail) == (Kind.AUTO_REPLY, "auto-submitted")


def test_a_councillor_writing_afwezig_in_the_middle_of_a_subject_is_not_an_auto_reply() -> None:
    mail = make_mail(subject="Ik ben afwezig bij het werkatelier, hierbij mijn input")
    assert kind_of(mail) == (Kind.SUGGESTION, "")


def test_allowlisted_sender_is_exempt_from_bulk_and_marker_checks() -> None:
    rules = parse_rules(
        RULES_FILE.read_text(encoding="utf-8").replace(
            'addresses = []  # e.g. ["noreply@raadsinformatie.example.nl"]',
            'addresses = ["noreply@raadsinformatie.example.nl"]',
        )
    )
    mail = make_mail(
        sender="noreply@raadsinformatie.example.nl",
        headers={"List-Id": "<raad>", "Precedence": "bulk", "X-Loop": "ris", "Feedback-ID": "x"},
    )
    assert detect_kind(mail, KindInputs(rules)) == (Kind.SUGGESTION, ())
    assert detect_kind(mail, KindInputs(RULES))[0] is Kind.AUTO_REPLY


def test_allowlist_does_not_hide_a_delivery_report() -> None:
    rules = parse_rules(
        RULES_FILE.read_text(encoding="utf-8").replace(
            "domains = []\n", 'domains = ["example.nl"]\n'
        )
    )
    mail = make_mail(headers={"X-MS-Exchange-Message-Is-Ndr": ""})
    assert detect_kind(mail, KindInputs(rules))[0] is Kind.BOUNCE


def test_mail_with_only_an_attachment_is_not_empty() -> None:
    memo = Attachment("ideeen.pdf", "application/pdf", 1200, "0" * 64)
    assert kind_of(make_mail(text="", attachments=(memo,))) == (Kind.SUGGESTION, "")


def test_mail_with_only_an_inline_logo_is_empty() -> None:
    logo = Attachment("logo.png", "image/png", 800, "0" * 64, is_inline=True)
    assert kind_of(make_mail(text="", attachments=(logo,))) == (Kind.EMPTY, "no-text")


def test_mail_whose_only_text_is_quoted_is_empty() -> None:
    mail = make_mail(text="", quoted="> Op 1 feb schreef Sanne: graag uw input")
    assert kind_of(mail) == (Kind.EMPTY, "no-text")


def test_a_blank_out_of_office_is_an_auto_reply_not_empty() -> None:
    mail = make_mail(subject="Automatic reply: Smart City", text="")
    verdict = triage(mail, RULES, CONTEXT)
    assert verdict.kind is Kind.AUTO_REPLY
    assert [reason.code for reason in verdict.kind_reasons] == ["ooo-subject-en", "no-text"]


def test_kind_is_never_decided_on_words_inside_the_body() -> None:
    # DET-8: a suggestion quoting an out-of-office text is still a suggestion.
    mail = make_mail(
        text="Mijn idee: geen 'Automatic reply: I am out of the office' meer van de gemeente."
        " Undeliverable: mailbox full. Dit is een automatisch bericht."
    )
    assert kind_of(mail) == (Kind.SUGGESTION, "")


@pytest.mark.parametrize(
    "text",
    [
        "Dit is een automatisch bericht.\n\nIk ben afwezig tot 18 februari.",
        "Automatisch gegenereerd antwoord: uw bericht is ontvangen.",
        "This is an automatic reply. I am away until 11 February.",
        "Ik ben afwezig tot en met 8 februari. Voor spoed: 043 350 5050.",
    ],
)
def test_a_short_text_that_opens_as_an_absence_notice_is_an_auto_reply(text: str) -> None:
    assert kind_of(make_mail(subject="RE: Smart City", text=text)) == (
        Kind.AUTO_REPLY,
        "ooo-opening",
    )


def test_a_long_text_that_opens_like_a_notice_is_still_a_suggestion() -> None:
    text = "Ik ben afwezig tot maandag, maar wil dit nog kwijt. " + "Meer sensoren. " * 40
    assert kind_of(make_mail(text=text)) == (Kind.SUGGESTION, "")


def test_a_delivery_notification_where_every_recipient_was_reached_is_a_receipt() -> None:
    mail = replace(
        make_mail(
            subject="Bezorgd: Ontvangstbevestiging",
            return_path="",
            content_type="multipart/report",
            report_type="delivery-status",
            part_types=("multipart/report", "text/plain", "message/delivery-status"),
            headers={"Auto-Submitted": "auto-replied"},
        ),
        dsn_actions=("delivered",),
    )
    assert kind_of(mail) == (Kind.RECEIPT, "dsn-delivered")
    assert kind_of(replace(mail, dsn_actions=("delivered", "failed")))[0] is Kind.BOUNCE


def test_a_subscription_notification_is_bulk_not_an_auto_reply() -> None:
    headers = {"Auto-Submitted": "auto-generated", "Precedence": "bulk"}
    assert kind_of(make_mail(headers=headers)) == (Kind.BULK, "precedence")
    replied = {"Auto-Submitted": "auto-replied", "Precedence": "bulk"}
    assert kind_of(make_mail(headers=replied)) == (Kind.AUTO_REPLY, "auto-submitted")


def test_a_web_form_relaying_a_resident_from_a_no_reply_address_is_a_suggestion() -> None:
    relay = make_mail(sender="noreply@maastricht.nl", return_path="noreply@maastricht.nl")
    assert kind_of(relay) == (Kind.BULK, "system-sender")
    resident = (Address("ton.vaessen@live.nl", "Ton Vaessen"),)
    assert kind_of(replace(relay, reply_to=resident)) == (Kind.SUGGESTION, "")
    same_domain = (Address("info@maastricht.nl"),)
    assert kind_of(replace(relay, reply_to=same_domain)) == (Kind.BULK, "system-sender")


def test_a_prize_draw_without_spam_headers_is_spam() -> None:
    mail = make_mail(subject="CONGRATULATIONS!!! You have won EUR 1.500.000")
    assert kind_of(mail) == (Kind.SPAM, "spam-subject")


def test_decoded_binary_is_unparseable_whatever_its_null_sender_says() -> None:
    mail = make_mail(return_path="", text="x\x00\x01" * 40)
    assert kind_of(replace(mail, defects=("UnreadableText",))) == (
        Kind.UNPARSEABLE,
        "unreadable-text",
    )


def test_unparseable_mail_is_unparseable_with_the_error_as_reason() -> None:
    verdict = triage(make_mail(error="truncated MIME structure"), RULES, CONTEXT)
    assert verdict.kind is Kind.UNPARSEABLE
    assert verdict.kind_reason is not None
    assert verdict.kind_reason.matched == "truncated MIME structure"
    assert verdict.themes == ()
