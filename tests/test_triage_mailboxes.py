"""System mailboxes by local part: one list for triage (bounce, bulk) and acknowledgements."""

from __future__ import annotations

import pytest

from intake.triage import mailboxes


@pytest.mark.parametrize(
    "local",
    [
        "MAILER-DAEMON",
        "mailer_daemon",
        "post_master",
        "postmaster",
        "lists.mailer-daemon",
        "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e",
    ],
)
def test_report_senders(local: str) -> None:
    assert mailboxes.sends_reports(local)
    assert mailboxes.is_system(local)


@pytest.mark.parametrize(
    "local",
    [
        "noreply",
        "no-reply",
        "do_not_reply",
        "shop.noreply",
        "noreply+nieuwsbrief",
        "listserv",
        "majordomo",
        "bounce-123",
        "bounces+anna=example.nl",
        "raad-request",
        "owner-raad",
    ],
)
def test_list_and_no_reply_mailboxes(local: str) -> None:
    assert mailboxes.is_list_or_no_reply(local)
    assert not mailboxes.sends_reports(local)
    assert mailboxes.is_system(local)


@pytest.mark.parametrize(
    "local", ["anna.devries", "noreplyteam", "replies", "postmasters", "bouncer", "requester"]
)
def test_people_are_no_system_mailbox(local: str) -> None:
    assert not mailboxes.is_system(local)
