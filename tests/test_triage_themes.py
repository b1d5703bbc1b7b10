"""Theme scoring and matching: compounds, whole words, regexes, accents, explanations, speed."""

from __future__ import annotations

import random
import string

import pytest

from intake.triage import parse_rules, triage
from intake.triage.matching import TermMatcher, fold, normalise
from intake.triage.themes import find_matches, score_themes
from intake.triage.verdict import Match
from tests.test_triage_kinds import CONTEXT, RULES, RULES_FILE, make_mail

SMALL_RULES = """
[themes.privacy]
name = { nl = "Privacy", en = "Privacy" }
[themes.technology]
name = { nl = "Technologie", en = "Technology" }
[themes.mobility]
name = { nl = "Mobiliteit", en = "Mobility" }

[neutral]
words = ["zorgen"]

[[rules]]
id = "privacy-words"
theme = "privacy"
weight = 3
words = ["privé", "camera", "privacy"]

[[rules]]
id = "privacy-ownership"
theme = "privacy"
weight = 2
regex = ['\\beigena(ar|ren) van (de )?(data|gegevens)']

[[rules]]
id = "technology-short"
theme = "technology"
weight = 2
whole_word = true
words = ["ai", "5g", "iot"]

[[rules]]
id = "mobility-parking"
theme = "mobility"
weight = 2
words = ["parkeer", "zorg"]

[[rules]]
id = "mobility-subject-only"
theme = "mobility"
weight = 1
fields = ["subject"]
words = ["fiets"]
"""


def themes_of(text: str, subject: str = "Idee", rules_text: str = SMALL_RULES) -> dict[str, float]:
    scores = score_themes(make_mail(subject=subject, text=text), parse_rules(rules_text))
    return {theme.theme: theme.score for theme in scores}


def matches_of(text: str, subject: str = "Idee") -> list[Match]:
    return find_matches(make_mail(subject=subject, text=text), parse_rules(SMALL_RULES))


# -- normalising ----------------------------------------------------------------------------


def test_fold_lowercases_strips_accents_and_collapses_whitespace() -> None:
    assert fold("  Privé\u00a0 en  CAFÉ\n\tﬁets Straße ") == "prive en cafe fiets strasse"


def test_normalised_text_maps_back_to_the_original_characters() -> None:
    folded = normalise("Zorgen over  PRIVÉ-gegevens")
    start = folded.text.index("prive")
    assert folded.original_span(start, start + 5) == "PRIVÉ"
    assert folded.original_word(start + 1, start + 3) == "PRIVÉ"


# -- matchers -------------------------------------------------------------------------------


def test_a_word_matches_inside_dutch_compounds() -> None:
    assert themes_of("Meer cameratoezicht bij de parkeergarage")["privacy"] == 3
    assert themes_of("Meer cameratoezicht bij de parkeergarage")["mobility"] == 2


def test_whole_word_rules_do_not_match_inside_other_words() -> None:
    assert "technology" not in themes_of("Een detail over de maaltijd in het hoofdkwartier")
    assert themes_of("Wat kan AI betekenen, en 5G?")["technology"] == 4


def test_regex_rules_match_on_folded_text() -> None:
    assert themes_of("Wie is Eigenaar van de Data op straat?") == {"privacy": 2}


def test_matching_ignores_accents_both_ways() -> None:
    assert themes_of("Mijn prive leven") == {"privacy": 3}
    assert themes_of("Mijn privé leven") == {"privacy": 3}
    assert themes_of("Mijn PRIVÉ leven") == {"privacy": 3}


def test_accented_match_is_shown_as_written_in_the_message() -> None:
    (match,) = matches_of("Dit raakt mijn privéleven")
    assert match == Match("privacy-words", "body", "privéleven", 3)


def test_a_neutral_word_hides_the_theme_word_inside_it() -> None:
    assert themes_of("Ik maak me zorgen over de planning") == {"other": 0}
    assert themes_of("Betere zorg voor iedereen") == {"mobility": 2}


def test_longest_term_at_a_position_wins() -> None:
    matcher = TermMatcher.build(["veilig", "cyberveilig", "camera", "cameratoezicht"], [])
    hits = matcher.find(fold("Cyberveiligheid en cameratoezicht"))
    assert [hit.term for hit in hits] == ["cyberveilig", "cameratoezicht"]


def test_shipped_rules_count_cyberveiligheid_as_privacy_not_safety() -> None:
    scores = score_themes(make_mail(subject="Idee", text="Cyberveiligheid is belangrijk"), RULES)
    assert [theme.theme for theme in scores] == ["privacy"]


# -- scoring --------------------------------------------------------------------------------


def test_a_repeated_word_counts_once_per_field() -> None:
    assert themes_of("privacy privacy privacy, en nog eens privacy") == {"privacy": 3}


def test_a_subject_hit_weighs_more_than_a_body_hit() -> None:
    assert themes_of("geen", subject="Privacy") == {"privacy": 4.5}
    assert themes_of("privacy", subject="Privacy") == {"privacy": 7.5}


def test_a_rule_limited_to_the_subject_ignores_the_body() -> None:
    assert themes_of("Meer fietsen") == {"other": 0}
    assert themes_of("", subject="Fietsenstalling") == {"mobility": 1.5}


def test_a_suggestion_no_rule_matches_gets_other_with_score_zero() -> None:
    verdict = triage(make_mail(subject="Hallo", text="Een goed plan, succes!"), RULES, CONTEXT)
    assert verdict.primary_theme == "other"
    assert verdict.themes[0].score == 0
    assert verdict.themes[0].matches == ()


def test_ties_go_to_the_theme_listed_first() -> None:
    rules = SMALL_RULES + (
        '\n[[rules]]\nid = "mobility-extra"\ntheme = "mobility"\nweight = 1\nwords = ["garage"]\n'
    )
    scores = score_themes(
        make_mail(subject="x", text="camera, parkeer, garage"), parse_rules(rules)
    )
    assert [(t.theme, t.score) for t in scores] == [("privacy", 3), ("mobility", 3)]


def test_a_weak_secondary_theme_is_left_out() -> None:
    text = "Privacy, camera's en eigenaar van de data: en ook AI."
    scores = {
        t.theme: t.score for t in score_themes(make_mail(text=text), parse_rules(SMALL_RULES))
    }
    assert scores == {"privacy": 8}  # technology (2) is under half of 8 and has one word


def test_a_secondary_theme_with_two_words_is_kept() -> None:
    text = "Privacy, camera's en eigenaar van de data: en ook AI en 5G."
    scores = {
        t.theme: t.score for t in score_themes(make_mail(text=text), parse_rules(SMALL_RULES))
    }
    assert scores == {"privacy": 8, "technology": 4}


def test_explanation_names_rule_field_and_text_as_written() -> None:
    matches = matches_of("Wie is eigenaar van de data uit de Parkeergarage?", subject="Privacy!")
    assert Match("privacy-words", "subject", "Privacy", 4.5) in matches
    assert Match("privacy-ownership", "body", "eigenaar van de data", 2) in matches
    assert Match("mobility-parking", "body", "Parkeergarage", 2) in matches


def test_a_sender_rule_scores_mail_from_that_domain() -> None:
    rules = SMALL_RULES + (
        '\n[[rules]]\nid = "mobility-from-the-bus-company"\ntheme = "mobility"\nweight = 2\n'
        'senders = { domains = ["arriva.nl"] }\n'
    )
    mail = make_mail(subject="Idee", text="Een idee van ons", sender="jan@arriva.nl")
    (theme,) = score_themes(mail, parse_rules(rules))
    assert theme.theme == "mobility"
    assert theme.matches == (Match("mobility-from-the-bus-company", "sender", "jan@arriva.nl", 2),)


# -- what does not count --------------------------------------------------------------------


def test_quoted_text_signature_and_disclaimer_do_not_count() -> None:
    mail = make_mail(
        subject="Re: Smart City",
        text="Eens met het voorstel.",
        quoted="> Graag aandacht voor parkeren, fietsen en openbaar vervoer.",
        signature="Jan Jansen\nRaadslid, woordvoerder mobiliteit en verkeer",
        disclaimer="Dit bericht kan vertrouwelijke informatie bevatten (privacy, AVG).",
    )
    verdict = triage(mail, RULES, CONTEXT)
    assert verdict.primary_theme == "other"


FORWARDED = (
    "---------- Doorgestuurd bericht ---------\nVan: Marcel <marcel@example.nl>\n"
    "Subject: touringcars\n\nOp drukke dagen rijden touringcars rond: te weinig parkeerplaatsen."
)


def test_a_forward_behind_a_short_note_is_scored_on_the_forwarded_text() -> None:
    mail = make_mail(subject="Fwd: touringcars", text="Zie hieronder.", quoted=FORWARDED)
    verdict = triage(mail, RULES, CONTEXT)
    assert verdict.primary_theme == "mobility"
    assert "forwarded" in {match.field for match in verdict.themes[0].matches}


def test_a_resend_quoting_the_senders_own_mail_is_scored_on_that_mail() -> None:
    own = "Van: Jan <jan.jansen@example.nl>\nVerzonden: 1 feb\n\nMeer deelfietsen en bushaltes."
    mail = make_mail(subject="RE: idee", text="Nu met de bijlage.", quoted=own)
    assert triage(mail, RULES, CONTEXT).primary_theme == "mobility"


def test_a_note_that_says_enough_itself_is_scored_on_its_own_words() -> None:
    mail = make_mail(
        subject="Fwd: touringcars", text="Ik vind privacy en de AVG belangrijk.", quoted=FORWARDED
    )
    verdict = triage(mail, RULES, CONTEXT)
    assert verdict.primary_theme == "privacy"
    assert all(m.field != "forwarded" for theme in verdict.themes for m in theme.matches)


def test_a_reply_quoting_someone_elses_mail_is_not_scored_on_the_quote() -> None:
    letter = "Van: Griffie <griffie@maastricht.nl>\n\nParkeren, verkeer en fietsen."
    mail = make_mail(subject="RE: Raadsinformatiebrief", text="Dank u.", quoted=letter)
    assert triage(mail, RULES, CONTEXT).primary_theme == "other"


def test_the_consultation_topic_itself_does_not_score() -> None:
    verdict = triage(
        make_mail(subject="Smart City", text="Smart city, slimme stad!"), RULES, CONTEXT
    )
    assert verdict.primary_theme == "other"


def test_greeting_the_contact_person_is_not_greenery() -> None:
    text = "Geachte mevrouw De Groen,\n\nIk heb geen verdere opmerkingen."
    assert triage(make_mail(text=text, subject="Reactie"), RULES, CONTEXT).primary_theme == "other"


def test_zorgen_as_worry_is_not_care_but_zorg_is() -> None:
    assert (
        triage(make_mail(subject="x", text="Ik maak me zorgen."), RULES, CONTEXT).themes[0].theme
        == "other"
    )
    text = "Betere zorg thuis."
    assert triage(make_mail(subject="x", text=text), RULES, CONTEXT).primary_theme == "liveability"


def test_themes_are_empty_for_anything_but_a_suggestion() -> None:
    mail = make_mail(subject="Automatisch antwoord: privacy", text="Ik ben afwezig, privacy.")
    assert triage(mail, RULES, CONTEXT).themes == ()


# -- cost ------------------------------------------------------------------------------------


def _many_keyword_rules(count: int) -> str:
    generator = random.Random(20190206)
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(generator.choices(string.ascii_lowercase, k=generator.randint(5, 12))))
    ordered = sorted(words)
    tables = []
    for number in range(0, count, 20):
        listed = ", ".join(f'"{word}"' for word in ordered[number : number + 20])
        tables.append(
            f'[[rules]]\nid = "generated-{number}"\ntheme = "technology"\nwords = [{listed}]\n'
        )
    return RULES_FILE.read_text(encoding="utf-8") + "\n" + "\n".join(tables)


@pytest.mark.parametrize("count", [10, 2000])
def test_rules_with_many_keywords_still_find_the_shipped_themes(count: int) -> None:
    rules = parse_rules(_many_keyword_rules(count))
    mail = make_mail(subject="Parkeren", text="Slimme parkeersensoren in de binnenstad.")
    assert triage(mail, rules, CONTEXT).primary_theme == "mobility"
