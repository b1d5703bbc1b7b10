"""nl/en detection by stop-word counts.

Why not a language-identification model (langdetect, fastText, lingua): intake only has to tell
Dutch from English, to pick the acknowledgement template. The most frequent function words of
the two languages barely overlap, so counting them decides short mails reliably, with no model to
load, no randomness (langdetect is non-deterministic without a seed) and no new dependency.
Anything else (German, French, too little text) comes back as "", and callers use their default.
"""

from __future__ import annotations

import re


def _words(*lines: str) -> frozenset[str]:
    return frozenset(word for line in lines for word in line.split())


# Frequent function words only, and none in both lists ("is", "was", "we", "of" are both).
_DUTCH = _words(
    "de het een en van ik je jij u wij ze zij niet zijn waren heb hebben heeft dat die",
    "dit deze er op aan met voor naar bij uit ook maar als dan nog wel geen om tot door over",
    "graag mijn ons onze uw jullie hier daar wat wie waarom hoe omdat want moet moeten kan",
    "kunnen zou zouden wordt worden meer veel goed dank bedankt groet vriendelijke beste",
    "gemeente straat",
)
_ENGLISH = _words(
    "the a an and i you they he she it not are were have has had that this these those",
    "there on at with for to from by out also but if then still no about would could should",
    "can will my our your their here what who why how because must more many good thanks",
    "thank regards kind dear please",
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_HITS = 2  # fewer stop words than this: too little text to tell
SAMPLE_WORDS = 400  # the opening of a long mail decides as well as the whole


def detect_language(text: str) -> str:
    """Return "nl", "en", or "" when the text is too short or neither language dominates."""
    words = _WORD.findall(text.lower())[:SAMPLE_WORDS]
    dutch = sum(1 for word in words if word in _DUTCH)
    english = sum(1 for word in words if word in _ENGLISH)
    if max(dutch, english) < MIN_HITS or dutch == english:
        return ""
    # Ask for a clear majority: mixed mails (an English quote under a Dutch line) stay honest.
    if dutch >= english * 1.5:
        return "nl"
    if english >= dutch * 1.5:
        return "en"
    return ""
