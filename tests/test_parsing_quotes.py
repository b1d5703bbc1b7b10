"""split_reply: quoted replies, signatures and disclaimers in Dutch and English mail."""

from __future__ import annotations

import pytest

from intake.parsing.quotes import split_reply

NEW = "Graag een extra zebrapad bij de Dorpsstraat."


@pytest.mark.parametrize(
    "attribution",
    [
        "Op 3 feb. 2019 om 10:12 schreef Jan <jan@x.nl>:",
        "Op ma 3 feb. 2019 om 10:12 schreef Jan Jansen <\njan@x.nl>:",
        "Op ma 3 feb. 2019 om 10:12 schreef\nJan Jansen <jan@x.nl>:",
        "Op 3 feb. 2019, om 10:12 heeft Jan Jansen <jan@x.nl> het volgende geschreven:",
        "On Mon, Feb 3, 2019 at 10:12 AM Jan Jansen <jan@x.nl> wrote:",
        "-----Oorspronkelijk bericht-----",
        "-----Original Message-----",
    ],
)
def test_attribution_lines_start_the_quote(attribution: str) -> None:
    reply = split_reply(f"{NEW}\n\n{attribution}\n> Eerder bericht.\n")
    assert reply.text == NEW
    assert reply.quoted.startswith(attribution.partition("\n")[0])
    assert "Eerder bericht." in reply.quoted


@pytest.mark.parametrize(
    "block",
    [
        "Van: Jan Jansen <jan@x.nl>\nVerzonden: maandag 3 februari 2019 10:12\n"
        "Aan: Inspraak <inspraak@x.nl>\nOnderwerp: Zebrapad",
        "From: Jan Jansen <jan@x.nl>\nSent: Monday, February 3, 2019 10:12 AM\n"
        "To: Inspraak <inspraak@x.nl>\nSubject: Zebrapad",
    ],
)
def test_outlook_header_block_starts_the_quote_with_its_rule(block: str) -> None:
    reply = split_reply(f"{NEW}\n\n________________________________\n{block}\n\nOud bericht.")
    assert reply.text == NEW
    assert reply.quoted.startswith("________________________________")
    assert reply.quoted.endswith("Oud bericht.")


def test_trailing_quoted_lines_are_split_off() -> None:
    reply = split_reply(f"{NEW}\n\n> oud\n> ouder\n")
    assert (reply.text, reply.quoted) == (NEW, "> oud\n> ouder")


def test_interleaved_quotes_stay_in_the_text() -> None:
    text = "> Vraag een?\nAntwoord een.\n> Vraag twee?\nAntwoord twee."
    assert split_reply(text).text == text


def test_answer_below_the_quote_is_kept_as_the_text() -> None:
    reply = split_reply("On Mon, 3 Feb 2019 at 10:12 Jan wrote:\n> Vraag?\n\nMijn antwoord.")
    assert reply.text == "Mijn antwoord."
    assert "> Vraag?" in reply.quoted


def test_prose_starting_with_op_is_not_an_attribution() -> None:
    text = "Op de markt schreef iemand het volgende:\nmeer fietsenrekken graag."
    assert split_reply(text).text == text


@pytest.mark.parametrize(
    "closing",
    [
        "Met vriendelijke groet,",
        "Met vriendelijke groeten",
        "Vriendelijke groet",
        "Groet,",
        "Groet, Jan",
        "Mvg",
        "Kind regards,",
        "Best regards",
        "-- ",
        "Verstuurd vanaf mijn iPhone",
    ],
)
def test_closing_lines_start_the_signature(closing: str) -> None:
    reply = split_reply(f"{NEW}\n\n{closing}\nJan Jansen\n06-12345678")
    assert reply.text == NEW
    assert reply.signature.startswith(closing.strip())


def test_greeting_in_prose_is_not_a_signature() -> None:
    text = f"Groeten uit de Dorpsstraat, waar het druk is.\n{NEW}"
    assert split_reply(text).text == text


def test_closing_followed_by_a_long_block_is_not_a_signature() -> None:
    tail = "\n".join(f"Punt {n} van mijn voorstel." for n in range(15))
    text = f"Groet,\n{tail}"
    assert split_reply(text).text == text


@pytest.mark.parametrize(
    "disclaimer",
    [
        "Dit bericht is uitsluitend bestemd voor de geadresseerde. Het kan vertrouwelijke "
        "informatie bevatten.",
        "Aan dit bericht kunnen geen rechten worden ontleend.",
        "Disclaimer: de inhoud van dit bericht is vertrouwelijk.",
        "This e-mail and any attachments are confidential and intended solely for the addressee.",
        "Denk aan het milieu voordat u deze e-mail print.",
    ],
)
def test_disclaimers_are_split_off_after_the_text(disclaimer: str) -> None:
    reply = split_reply(f"{NEW}\n\nMet vriendelijke groet,\nJan\n\n{disclaimer}")
    assert reply.text == NEW
    assert reply.signature == "Met vriendelijke groet,\nJan"
    assert reply.disclaimer == disclaimer


def test_nothing_is_lost_when_splitting() -> None:
    text = (
        f"{NEW}\n\nMet vriendelijke groet,\nJan\n\nAan dit bericht kunnen geen rechten worden "
        "ontleend.\n\n-----Original Message-----\nFrom: x\n\nOud."
    )
    reply = split_reply(text)
    for part in (NEW, "Jan", "ontleend", "Oud."):
        assert part in reply.text + reply.signature + reply.disclaimer + reply.quoted


def test_text_without_markers_is_kept_whole() -> None:
    assert split_reply(f"{NEW}\nNog een regel.\n") == split_reply(f"{NEW}\nNog een regel.")
    assert split_reply(f"{NEW}\nNog een regel.").text == f"{NEW}\nNog een regel."


def test_a_reply_whose_only_new_text_is_a_disclaimer_has_no_text() -> None:
    reply = split_reply(
        "Dit e-mailbericht is uitsluitend bestemd voor de geadresseerde(n).\n\n"
        "Van: Griffie <griffie@example.nl>\nVerzonden: dinsdag 15 januari 2019 16:42\n"
        "Aan: Raadsleden\nOnderwerp: Smart City\n\nGeachte raadsleden,"
    )
    assert reply.text == ""
    assert reply.disclaimer.startswith("Dit e-mailbericht")


def test_a_message_opening_with_disclaimer_words_but_no_quote_keeps_them() -> None:
    text = "Disclaimer: ik werk bij de provincie, maar dit is op persoonlijke titel.\n\nMeer groen."
    assert split_reply(text).text == text
