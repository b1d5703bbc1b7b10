"""Resends and replies are linked to the message they repeat or answer."""

from __future__ import annotations

from intake.links import Earlier, find_resend, find_thread

TEXT = (
    "Graag zou ik willen voorstellen om in het onderzoek ook te kijken naar de inzet van "
    "sensoren voor het meten van de luchtkwaliteit in de binnenstad, zoals in Eindhoven."
)


def test_identical_resend_links_to_the_first() -> None:
    earlier = [Earlier(7, "Voorstel luchtkwaliteit", TEXT, None)]
    link = find_resend("Voorstel luchtkwaliteit", TEXT, earlier)
    assert link is not None
    assert link.target_id == 7


def test_lightly_edited_resend_links_to_the_first_not_to_another_resend() -> None:
    edited = TEXT.replace("Graag zou ik", "Excuses, nogmaals: graag zou ik") + " Dank!"
    earlier = [Earlier(9, "Voorstel", TEXT, 7)]
    link = find_resend("Fw: Voorstel", edited, earlier)
    assert link is not None
    assert link.target_id == 7


def test_a_different_suggestion_from_the_same_sender_is_not_a_resend() -> None:
    other = "Kunnen de studenten ook onderzoeken hoe Barcelona burgers betrekt bij open data?"
    assert find_resend("Tweede idee", other, [Earlier(7, "Voorstel", TEXT, None)]) is None


def test_reply_links_through_in_reply_to_before_references() -> None:
    known = {"a@x": 1, "b@x": 2}
    link = find_thread("b@x", ["a@x"], known)
    assert link is not None
    assert link.target_id == 2
    assert "In-Reply-To" in link.reason


def test_reply_links_through_the_newest_known_reference() -> None:
    link = find_thread(None, ["a@x", "b@x", "unknown@y"], {"a@x": 1, "b@x": 2})
    assert link is not None
    assert link.target_id == 2


def test_no_known_reference_means_no_thread() -> None:
    assert find_thread("zz@x", [], {"a@x": 1}) is None
