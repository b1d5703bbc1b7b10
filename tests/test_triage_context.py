"""Lateness across the deadline and sender roles, the parts of the verdict beside kind and theme."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from intake.triage import TriageContext, parse_rules, triage
from intake.triage.verdict import Reason, Role
from tests.test_triage_kinds import RULES, RULES_FILE, make_mail

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
DEADLINE = datetime(2019, 2, 6, 0, 0, tzinfo=AMSTERDAM)  # "tot 6 februari": midnight, local time


def verdict_at(received_at: datetime, sender: str = "jan@example.nl") -> tuple[bool, Role]:
    context = TriageContext(received_at=received_at, deadline=DEADLINE)
    verdict = triage(make_mail(sender=sender), RULES, context)
    return verdict.late, verdict.role


def test_mail_one_second_before_the_deadline_is_on_time() -> None:
    assert verdict_at(DEADLINE - timedelta(seconds=1))[0] is False


def test_mail_at_the_deadline_is_late() -> None:
    assert verdict_at(DEADLINE)[0] is True


def test_lateness_compares_instants_not_wall_clock_times() -> None:
    # 23:30 UTC on 5 February is 00:30 in Amsterdam on the 6th: late.
    assert verdict_at(datetime(2019, 2, 5, 23, 30, tzinfo=UTC))[0] is True
    # 22:59 UTC is 23:59 in Amsterdam: on time.
    assert verdict_at(datetime(2019, 2, 5, 22, 59, tzinfo=UTC))[0] is False


def test_lateness_holds_across_a_daylight_saving_change() -> None:
    deadline = datetime(2019, 3, 31, 3, 0, tzinfo=AMSTERDAM)  # clocks jumped from 02:00 to 03:00
    context = TriageContext(received_at=datetime(2019, 3, 31, 0, 59, tzinfo=UTC), deadline=deadline)
    assert triage(make_mail(), RULES, context).late is False  # 01:59 CET is before 03:00 CEST


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TriageContext(received_at=datetime(2019, 2, 1), deadline=DEADLINE)


def test_late_mail_is_still_triaged_as_usual() -> None:
    context = TriageContext(received_at=DEADLINE + timedelta(days=2), deadline=DEADLINE)
    verdict = triage(make_mail(text="Meer fietsparkeren bij het station."), RULES, context)
    assert verdict.late is True
    assert verdict.primary_theme == "mobility"


ROLES_RULES = RULES_FILE.read_text(encoding="utf-8").replace(
    'addresses = []\ndomains = ["raad.maastricht.nl"]',
    'addresses = ["m.peters@gmail.example"]\ndomains = ["raad.maastricht.nl"]',
)


@pytest.mark.parametrize(
    ("sender", "role", "reason"),
    [
        (
            "m.peters@gmail.example",
            Role.COUNCIL,
            Reason("council-address", "sender", "m.peters@gmail.example"),
        ),
        (
            "M.Peters@Gmail.Example",
            Role.COUNCIL,
            Reason("council-address", "sender", "M.Peters@Gmail.Example"),
        ),
        (
            "j.smit@raad.maastricht.nl",
            Role.COUNCIL,
            Reason("council-domain", "sender", "raad.maastricht.nl"),
        ),
        (
            "a.b@maastrichtuniversity.nl",
            Role.PARTNER,
            Reason("partner-domain", "sender", "maastrichtuniversity.nl"),
        ),
        (
            "s.c@student.maastrichtuniversity.nl",
            Role.PARTNER,
            Reason("partner-domain", "sender", "maastrichtuniversity.nl"),
        ),
        ("info@zuyd.nl", Role.PARTNER, Reason("partner-domain", "sender", "zuyd.nl")),
        ("x@prvlimburg.nl", Role.PARTNER, Reason("partner-domain", "sender", "prvlimburg.nl")),
        ("y@cbs.nl", Role.PARTNER, Reason("partner-domain", "sender", "cbs.nl")),
        ("bewoner@example.nl", Role.PUBLIC, None),
        ("iemand@notcbs.nl", Role.PUBLIC, None),
    ],
)
def test_sender_role_comes_from_the_rules_file(
    sender: str, role: Role, reason: Reason | None
) -> None:
    context = TriageContext(received_at=DEADLINE - timedelta(days=3), deadline=DEADLINE)
    verdict = triage(make_mail(sender=sender), parse_rules(ROLES_RULES), context)
    assert (verdict.role, verdict.role_reason) == (role, reason)


def test_a_council_member_at_a_partner_domain_listed_by_address_is_council() -> None:
    rules = parse_rules(ROLES_RULES.replace("m.peters@gmail.example", "lid@zuyd.nl"))
    context = TriageContext(received_at=DEADLINE, deadline=DEADLINE)
    assert triage(make_mail(sender="lid@zuyd.nl"), rules, context).role is Role.COUNCIL


def test_mail_without_a_sender_is_public() -> None:
    context = TriageContext(received_at=DEADLINE, deadline=DEADLINE)
    verdict = triage(make_mail(sender=None), RULES, context)
    assert (verdict.role, verdict.role_reason) == (Role.PUBLIC, None)


def test_role_is_kept_for_machine_mail_too() -> None:
    context = TriageContext(received_at=DEADLINE, deadline=DEADLINE)
    mail = make_mail(sender="a@cbs.nl", subject="Automatisch antwoord: Smart City")
    assert triage(mail, RULES, context).role is Role.PARTNER
