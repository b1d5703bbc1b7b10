"""detect_language: Dutch, English, or "" when it cannot be told."""

from __future__ import annotations

import pytest

from intake.parsing.language import detect_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Ik wil graag dat er meer bomen komen in onze straat, want het is er te warm.", "nl"),
        ("Beste gemeente, kunnen jullie het fietspad verbreden? Met vriendelijke groet", "nl"),
        ("I would like more trees in our street because it gets far too hot there.", "en"),
        ("Dear council, could you please widen the cycle path? Kind regards", "en"),
        ("", ""),
        ("Zebrapad!", ""),
        ("Ich möchte mehr Bäume in unserer Straße.", ""),
    ],
)
def test_language_is_detected_from_stop_words(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_detection_is_deterministic() -> None:
    text = "Het park is te klein voor de wijk en er is geen speeltuin."
    assert {detect_language(text) for _ in range(20)} == {"nl"}
