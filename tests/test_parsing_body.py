"""Body choice, HTML to text and attachment names."""

from __future__ import annotations

import hashlib

from intake.parsing import parse
from intake.parsing.attachments import MAX_FILENAME, safe_filename
from intake.parsing.htmltext import html_to_text


def test_plain_text_wins_over_html_in_alternative() -> None:
    data = (
        b"Content-Type: multipart/alternative; boundary=a\n\n"
        b"--a\nContent-Type: text/plain\n\nplat\n"
        b"--a\nContent-Type: text/html\n\n<p>html</p>\n--a--\n"
    )
    mail = parse(data)
    assert (mail.text, mail.html_only) == ("plat", False)


def test_empty_plain_alternative_falls_back_to_html() -> None:
    data = (
        b"Content-Type: multipart/alternative; boundary=a\n\n"
        b"--a\nContent-Type: text/plain\n\n \n"
        b"--a\nContent-Type: text/html\n\n<p>alleen html</p>\n--a--\n"
    )
    mail = parse(data)
    assert (mail.text, mail.html_only) == ("alleen html", True)


def test_mailparser_body_joiner_never_reaches_the_text() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=m\n\n"
        b"--m\nContent-Type: text/plain\n\neen\n"
        b"--m\nContent-Type: text/html\n\n<p>twee</p>\n--m--\n"
    )
    assert "mail_boundary" not in parse(data).text


def test_text_attachment_is_not_body_text() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=m\n\n"
        b"--m\nContent-Type: text/plain\n\nZie bijlage.\n"
        b"--m\nContent-Type: text/plain; name=notulen.txt\n"
        b"Content-Disposition: attachment; filename=notulen.txt\n\ngeheim\n--m--\n"
    )
    mail = parse(data)
    assert mail.text == "Zie bijlage."
    [notes] = mail.attachments
    assert (notes.filename, notes.size) == (
        "notulen.txt",
        len(b"geheim"),
    )  # the newline before a boundary is the boundary's


def test_outlook_word_html_becomes_plain_prose() -> None:
    html = (
        "<html><head><style>p.MsoNormal{margin:0}</style></head><body>"
        '<!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit"/></xml><![endif]-->'
        '<p class="MsoNormal">Eerste alinea<o:p></o:p></p>'
        '<p class="MsoListParagraph"><![if !supportLists]>·<![endif]>Punt</p>'
        "<table><tr><td>links</td><td>rechts</td></tr></table>"
        "<p><b>Van:</b> Jan<br><b>Verzonden:</b> maandag</p></body></html>"
    )
    text = html_to_text(html)
    assert "Eerste alinea" in text
    assert "·Punt" in text
    assert "links rechts" in text
    assert "Van: Jan\nVerzonden: maandag" in text
    for noise in ("o:p", "shapedefaults", "margin", "**", "|"):
        assert noise not in text


def test_script_text_is_dropped_even_when_unterminated() -> None:
    assert html_to_text("<p>ok</p><script>steal()") == "ok"
    assert html_to_text("<p>ok</p><SCRIPT type=x>a</SCRIPT ><style>b{}</style>") == "ok"


def test_html_blockquote_becomes_quoted_lines() -> None:
    assert html_to_text("<p>nieuw</p><blockquote>oud</blockquote>") == "nieuw\n\n> oud"


def test_safe_filename_strips_paths_controls_and_bidi() -> None:
    assert safe_filename("C:\\Users\\x\\..\\brief.docx") == "brief.docx"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("fact\u202eexe.pdf") == "factexe.pdf"
    assert safe_filename("a\x00b\r\nc.txt") == "abc.txt"
    assert safe_filename("=?utf-8?q?caf=C3=A9.pdf?=") == "café.pdf"
    assert safe_filename("..") == ""


def test_safe_filename_caps_length_and_keeps_the_extension() -> None:
    name = safe_filename("x" * 500 + ".pdf")
    assert len(name) <= MAX_FILENAME
    assert name.endswith(".pdf")


def test_attachments_carry_no_payload() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/plain\n\nx\n"
        b"--m\nContent-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n\n"
        b"JVBERi0xLjQK\n--m--\n"
    )
    [pdf] = parse(data).attachments
    assert set(pdf.__slots__) == {"filename", "content_type", "size", "sha256", "is_inline"}
    assert pdf.sha256 == hashlib.sha256(b"%PDF-1.4\n").hexdigest()  # of the decoded bytes
    assert pdf.size == len(b"%PDF-1.4\n")
