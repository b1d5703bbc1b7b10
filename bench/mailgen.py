"""A deterministic consultation mailbox: Dutch Outlook-style suggestions, as a city gets them.

Message `n` of seed `s` is always the same bytes, whatever else is generated, so a run can be
repeated and a single message rebuilt. The mix, per message:

- Outlook 2016 mail: multipart/alternative (text + verbose Word HTML), or HTML only (a fifth);
- charsets: utf-8 (base64 or quoted-printable), windows-1252 and iso-8859-1 (quoted-printable
  or raw 8-bit), with RFC 2047 encoded names and subjects;
- a fifth carries a PDF (50 KB to 2 MB, log-uniform), some also a photo or a Word file;
- one in 4,000 carries a 20 MB scan (at least one in every mailbox of 2,000 or more);
- replies quoting an earlier mail, signatures and disclaimers, a few out-of-office replies.

Together about 110 KB a message on average. Lines end in CRLF, as on the wire.
"""

from __future__ import annotations

import base64
import quopri
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

MAILBOX = "smartcity@maastricht.nl"
START = datetime(2019, 1, 7, 8, 0, tzinfo=UTC)
BIG_EVERY = 4000  # one 20 MB attachment per this many messages
BIG_BYTES = 14_600_000  # 20 MB once base64-encoded

FIRST = [
    "Anne",
    "Bram",
    "Chantal",
    "Daan",
    "Els",
    "Frank",
    "Gerda",
    "Hüseyin",
    "Ingrid",
    "Joost",
    "Karin",
    "Luc",
    "Marieke",
    "Niels",
    "Özlem",
    "Pieter",
    "Renée",
    "Sjef",
    "Thérèse",
    "Wim",
]
LAST = [
    "Janssen",
    "de Vries",
    "Smeets",
    "Peeters",
    "Huijnen",
    "van den Berg",
    "Willems",
    "Hermans",
    "Lemmens",
    "Schoonbrood",
    "Meertens",
    "Coenen",
    "Dassen",
    "Bröcheler",
]
DOMAINS = [
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "ziggo.nl",
    "kpnmail.nl",
    "home.nl",
    "maastrichtuniversity.nl",
    "zuyd.nl",
    "prvlimburg.nl",
    "cbs.nl",
    "planet.nl",
]
TOPICS = [
    ("slimme lantaarnpalen", "sensoren in de lantaarnpalen kunnen drukte en luchtkwaliteit meten"),
    ("parkeren in Wyck", "een parkeerapp met actuele bezetting van de parkeergarages"),
    ("privacy bij camera's", "cameratoezicht mag alleen met duidelijke afspraken over de AVG"),
    ("fietsenstallingen", "slimme fietsenstallingen bij het station en het Vrijthof"),
    ("drukte in de binnenstad", "tellingen van bezoekers helpen winkeliers en horeca"),
    ("open data", "publiceer de gemeten data als open data zodat inwoners ermee kunnen werken"),
    ("eenzaamheid onder ouderen", "sensoren in huis kunnen zorgverleners waarschuwen"),
    ("afval en containers", "ondergrondse containers die melden wanneer ze vol zijn"),
    ("geluidsoverlast", "geluidsmeters op de Markt tijdens carnaval en evenementen"),
    ("glasvezel en 5G", "eerst zorgen dat glasvezel overal in de stad beschikbaar is"),
    ("Stratumseind als voorbeeld", "Eindhoven heeft ervaring opgedaan met een living lab"),
    ("inspraak van inwoners", "betrek wijkraden vroeg bij de keuzes over technologie"),
    ("klimaatadaptatie", "meet de temperatuur in versteende straten en plant meer groen"),
    ("bereikbaarheid voor bevoorrading", "venstertijden voor bevoorrading slim handhaven"),
]
SENTENCES = [
    "Ik woon al twintig jaar in {wijk} en zie dat {idee}.",
    "Mijn voorstel is eigenlijk eenvoudig: {idee}.",
    "Zou de gemeente kunnen onderzoeken of {idee}?",
    "In {wijk} merken we dagelijks hoe belangrijk dit is.",
    "Het is wel belangrijk dat de privacy van bewoners goed geregeld is.",
    "Andere steden zoals Eindhoven en Amsterdam hebben hier al ervaring mee.",
    "Wellicht kan de Universiteit Maastricht hierbij helpen met onderzoek.",
    "Graag hoor ik of dit idee wordt meegenomen in de onderzoeksopdracht.",
    "De kosten hoeven niet hoog te zijn als we beginnen met een proef in één straat.",
    "Daarnaast denk ik dat de parkeerdruk en de drukte op zaterdag hiermee afnemen.",
    "Ook voor mensen met een beperking is een goede bereikbaarheid van de binnenstad essentieel.",
    "Ik heb hierover al eerder met de wijkagent en het buurtnetwerk gesproken.",
]
WIJKEN = [
    "Wyck",
    "Céramique",
    "Jekerkwartier",
    "Heer",
    "Malberg",
    "Sint Pieter",
    "Amby",
    "Oud-Caberg",
    "Randwyck",
    "Mariaberg",
]
DISCLAIMER = (
    "Dit bericht is uitsluitend bestemd voor de geadresseerde. Als dit bericht niet voor u "
    "bestemd is, wordt u verzocht de afzender hiervan op de hoogte te stellen en het "
    "bericht te verwijderen."
)
CHARSETS = [
    ("utf-8", "base64"),
    ("utf-8", "quoted-printable"),
    ("windows-1252", "quoted-printable"),
    ("iso-8859-1", "quoted-printable"),
    ("iso-8859-1", "8bit"),
    ("windows-1252", "8bit"),
]
HTML_HEAD = (
    '<html xmlns:v="urn:schemas-microsoft-com:vml" '
    'xmlns:o="urn:schemas-microsoft-com:office:office"'
    ' xmlns:w="urn:schemas-microsoft-com:office:word" xmlns:m="http://schemas.microsoft.com/office/'
    '2004/12/omml" xmlns="http://www.w3.org/TR/REC-html40"><head><meta http-equiv="Content-Type" '
    'content="text/html; charset={charset}"><meta name="Generator" content="Microsoft Word 15 '
    '(filtered medium)"><style><!--\n/* Font Definitions */\n@font-face\n\t{{font-family:"Cambria '
    'Math";\n\tpanose-1:2 4 5 3 5 4 6 3 2 4;}}\n@font-face\n\t{{font-family:Calibri;\n\tpanose-1:2 '
    "15 5 2 2 2 4 3 2 4;}}\n/* Style Definitions */\np.MsoNormal, li.MsoNormal, div.MsoNormal\n\t"
    '{{margin:0cm;\n\tfont-size:11.0pt;\n\tfont-family:"Calibri",sans-serif;\n\tmso-fareast-'
    "language:EN-US;}}\na:link, span.MsoHyperlink\n\t{{mso-style-priority:99;\n\tcolor:#0563C1;\n\t"
    "text-decoration:underline;}}\nspan.E-mailStijl17\n\t{{mso-style-type:personal-compose;\n\t"
    'font-family:"Calibri",sans-serif;\n\tcolor:windowtext;}}\n.MsoChpDefault\n\t{{mso-style-type:'
    'export-only;\n\tfont-family:"Calibri",sans-serif;\n\tmso-fareast-language:EN-US;}}\n@page '
    "WordSection1\n\t{{size:612.0pt 792.0pt;\n\tmargin:70.85pt 70.85pt 70.85pt 70.85pt;}}\n"
    "div.WordSection1\n\t{{page:WordSection1;}}\n--></style><!--[if gte mso 9]><xml>\n"
    "<o:shapedefaults"
    ' v:ext="edit" spidmax="1026" />\n</xml><![endif]--></head><body lang="NL" link="#0563C1" '
    'vlink="#954F72" style="word-wrap:break-word"><div class="WordSection1">'
)


@dataclass(frozen=True, slots=True)
class GeneratedMail:
    number: int
    data: bytes
    arrived_at: datetime
    message_id: str


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _encoded_word(text: str, charset: str) -> str:
    if text.isascii():
        return text
    encoded = quopri.encodestring(text.encode(charset, "replace"), header=True).decode("ascii")
    return f"=?{charset}?Q?{encoded}?="


def _body_part(content_type: str, text: str, charset: str, encoding: str) -> str:
    raw = text.encode(charset, "replace")
    if encoding == "base64":
        payload = base64.encodebytes(raw).decode("ascii")
    elif encoding == "quoted-printable":
        payload = quopri.encodestring(raw).decode("ascii")
    else:
        payload = raw.decode("latin-1")  # 8-bit bytes carried through as they are
    return (
        f'Content-Type: {content_type}; charset="{charset}"\n'
        f"Content-Transfer-Encoding: {encoding}\n\n{payload}\n"
    )


def _attachment(name: str, content_type: str, size: int, rng: random.Random) -> str:
    head = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n" if content_type == "application/pdf" else b""
    data = head + rng.randbytes(max(0, size - len(head)))
    payload = base64.encodebytes(data).decode("ascii")
    return (
        f'Content-Type: {content_type}; name="{name}"\n'
        f"Content-Description: {name}\n"
        f'Content-Disposition: attachment; filename="{name}"; size={size}\n'
        f"Content-Transfer-Encoding: base64\n\n{payload}"
    )


def _text(rng: random.Random, topic: tuple[str, str]) -> list[str]:
    paragraphs = []
    for _ in range(rng.randint(2, 6)):
        sentences = rng.sample(SENTENCES, rng.randint(2, 5))
        paragraphs.append(
            " ".join(s.format(wijk=rng.choice(WIJKEN), idee=topic[1]) for s in sentences)
        )
    return paragraphs


def generate(number: int, seed: int = 2019, *, big: bool | None = None) -> GeneratedMail:
    """Message `number` (from 0) of the mailbox with this seed; the same bytes every time."""
    rng = random.Random(seed * 1_000_003 + number)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(DOMAINS)
    address = f"{first}.{last}".lower().replace(" ", "").encode("ascii", "ignore").decode()
    address = f"{address}{number}@{domain}"
    topic = rng.choice(TOPICS)
    charset, encoding = rng.choice(CHARSETS)
    arrived = START + timedelta(seconds=number * 97 + rng.randint(0, 90))
    message_id = (
        f"<AM0PR{number:06d}{rng.getrandbits(40):010X}@AM0PR07MB.eurprd07.prod.outlook.com>"
    )
    out_of_office = rng.random() < 0.02
    subject = f"Suggestie: {topic[0]}" if not out_of_office else "Automatisch antwoord: Smart City"
    reply = rng.random() < 0.1
    if reply:
        subject = f"RE: {subject}"
    paragraphs = (
        _text(rng, topic)
        if not out_of_office
        else ["Ik ben tot en met 14 januari afwezig en lees mijn e-mail niet."]
    )
    greeting = rng.choice(["Beste heer, mevrouw,", "Geachte gemeente,", "Hallo,", "Goedemiddag,"])
    signature = f"Met vriendelijke groet,\n\n{first} {last}\n{rng.choice(WIJKEN)}, Maastricht"
    lines = [greeting, "", *"\n\n".join(paragraphs).split("\n"), "", signature]
    if reply:
        lines += [
            "",
            "Van: Smart City <smartcity@maastricht.nl>",
            f"Verzonden: maandag 7 januari 2019 {rng.randint(8, 17)}:{rng.randint(10, 59)}",
            f"Aan: {first} {last} <{address}>",
            f"Onderwerp: {subject[4:]}",
            "",
            "Dank voor uw suggestie. Wij hebben uw bericht ontvangen.",
        ]
    if rng.random() < 0.3:
        lines += ["", DISCLAIMER]
    text = "\n".join(lines)
    html_body = "".join(
        f'<p class="MsoNormal"><span style="font-size:11.0pt">{line or "&nbsp;"}</span></p>\n'
        for line in lines
    )
    html = HTML_HEAD.format(charset=charset) + html_body + "</div></body></html>"
    html_only = rng.random() < 0.2

    attachments: list[str] = []
    if big if big is not None else number % BIG_EVERY == BIG_EVERY // 2 - 1:
        attachments.append(
            _attachment("scan-bestemmingsplan.pdf", "application/pdf", BIG_BYTES, rng)
        )
    elif rng.random() < 0.2:
        size = int(50_000 * 40 ** rng.random() ** 1.7)  # 50 KB .. 2 MB, most under 500 KB
        attachments.append(
            _attachment(f"voorstel-{topic[0].split()[0]}.pdf", "application/pdf", size, rng)
        )
        if rng.random() < 0.1:
            attachments.append(
                _attachment("IMG_2041.jpg", "image/jpeg", rng.randint(60_000, 400_000), rng)
            )

    alternative = (
        _body_part("text/html", html, charset, encoding)
        if html_only
        else 'Content-Type: multipart/alternative;\n\tboundary="_000_alt_"\n\n'
        + "--_000_alt_\n"
        + _body_part("text/plain", text, charset, encoding)
        + "--_000_alt_\n"
        + _body_part("text/html", html, charset, encoding)
        + "--_000_alt_--\n"
    )
    if attachments:
        body = 'Content-Type: multipart/mixed;\n\tboundary="_004_mixed_"\n\n'
        body += "--_004_mixed_\n" + alternative
        for part in attachments:
            body += "--_004_mixed_\n" + part
        body += "--_004_mixed_--\n"
    else:
        body = alternative
    name = _encoded_word(f"{first} {last}", charset)
    headers = [
        f'From: "{name}" <{address}>' if name == f"{first} {last}" else f"From: {name} <{address}>",
        f"To: Smart City <{MAILBOX}>",
        f"Subject: {_encoded_word(subject, charset)}",
        f"Date: {format_datetime(arrived - timedelta(seconds=rng.randint(5, 60)))}",
        f"Message-ID: {message_id}",
        "Accept-Language: nl-NL, en-US",
        "Content-Language: nl-NL",
        f"Thread-Topic: {_encoded_word(topic[0], charset)}",
        "X-MS-Has-Attach: " + ("yes" if attachments else ""),
        "X-MS-TNEF-Correlator:",
        "X-Mailer: Microsoft Outlook 16.0",
        "MIME-Version: 1.0",
    ]
    if out_of_office:
        headers.append("Auto-Submitted: auto-replied")
    if reply:
        headers.append(f"In-Reply-To: <ack-{number}@maastricht.nl>")
    data = _crlf("\n".join(headers) + "\n" + body).encode("latin-1")
    return GeneratedMail(number, data, arrived, message_id.strip("<>"))
