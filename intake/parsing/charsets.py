"""Bytes → text with charset repair for the labels real mail gets wrong."""

from __future__ import annotations

import codecs
import re
import unicodedata
from functools import cache

# Labels that Outlook and webmail put on text that is really Windows-1252 (€ = 0x80, curly
# quotes 0x91–0x94). The WHATWG Encoding Standard maps all of them to windows-1252 as well.
_CP1252_LABELS = frozenset(
    {
        "iso-8859-1",
        "iso8859-1",
        "iso_8859-1",
        "latin-1",
        "latin1",
        "l1",
        "us-ascii",
        "ascii",
        "windows-1252",
        "cp1252",
        "x-user-defined",
        "",
    }
)

# Labels whose text is often written with the larger superset (Zammad issue #6144 and friends):
# decode with the superset, which reads the smaller charset identically.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "iso-8859-8-i": "iso-8859-8",
    "unicode-1-1-utf-7": "utf-7",  # IANA alias Python does not know (zammad mail018)
}

# Bytes where cp1252 has printable characters and ISO-8859-1 has C1 control codes.
_C1 = re.compile(rb"[\x80-\x9f]")
# ISO-2022-JP is 7-bit, so raw 8-bit bytes in a header of such a message are in one of the
# 8-bit Japanese encodings, Shift_JIS most often (zammad mail093).
_RAW_8BIT_FAMILY = {"iso-2022-jp": ("cp932", "euc_jp")}

# ISO-2022-JP is 7-bit and announces itself with ESC $ B / ESC $ @ (RFC 1468); mail without a
# charset parameter (zammad mail116) still says what it is.
_ISO2022JP = re.compile(rb"\x1b\$[@B]")


def normalise_label(label: str | None) -> str:
    """The charset label lower-cased and stripped of quotes and blanks ("" when absent)."""
    return (label or "").strip().strip("\"'").strip().lower()


def decode_text(data: bytes, label: str | None) -> tuple[str, bool]:
    """Return the text of `data` and whether the declared charset had to be overridden.

    Never raises: undecodable bytes become U+FFFD as a last resort.
    """
    name = normalise_label(label)
    if name in _CP1252_LABELS:
        if _ISO2022JP.search(data) and data.isascii():
            return _decode_strict(data, "iso-2022-jp") or data.decode("ascii", "replace"), True
        # Mislabelled UTF-8 is common too (webmail forms posting UTF-8 as "iso-8859-1"); valid
        # UTF-8 with non-ASCII bytes is practically never intended as cp1252 (Discourse tries
        # utf-8 first for the same reason).
        if not data.isascii():
            as_utf8 = _decode_strict(data, "utf-8")
            if as_utf8 is not None:
                return as_utf8, name not in ("", "us-ascii", "ascii")
        # Report the repair only where cp1252 and the declared charset differ.
        differs = not data.isascii() if name in ("us-ascii", "ascii") else bool(_C1.search(data))
        return _decode_cp1252(data), differs
    codec = _SUPERSETS.get(name, name)
    text = _decode_strict(data, codec)
    if text is not None:
        return text, False
    text = _decode_strict(data, "utf-8")
    if text is not None:
        return text, True
    return _decode_cp1252(data), True


def _decode_strict(data: bytes, codec: str) -> str | None:
    try:
        codecs.lookup(codec)
        text = data.decode(codec)
    except (LookupError, UnicodeError, ValueError):
        return None
    try:
        # Some codecs (utf-7, utf-16 on odd input) yield lone surrogates, which break every
        # UTF-8 sink later on; treat that as a failed decode.
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text


def _decode_cp1252(data: bytes) -> str:
    # Five bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) are undefined in cp1252; read them as
    # Latin-1 control characters rather than failing, as browsers do.
    return data.decode("cp1252", errors="_intake_latin1")


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    chunk = error.object[error.start : error.end]
    return bytes(chunk).decode("latin-1"), error.end


codecs.register_error("_intake_latin1", _latin1_fallback)


# A raw 8-bit byte, as surrogateescape keeps it.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def unsurrogate(value: str, hint: str | None = None) -> str:
    """Undo the surrogateescape of raw 8-bit header bytes: UTF-8, else `hint`, else cp1252.

    RFC 6532 allows UTF-8 in headers; older clients put raw bytes in the body's charset, so the
    message's own charset (`hint`) is the next best guess.
    """
    if value.isascii() or not _ESCAPED_BYTE.search(value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    as_utf8 = _decode_strict(raw, "utf-8")
    if as_utf8 is not None:
        return as_utf8
    name = normalise_label(hint)
    if name and name not in _CP1252_LABELS:
        for codec in (_SUPERSETS.get(name, name), *_RAW_8BIT_FAMILY.get(name, ())):
            text = _decode_strict(raw, codec)
            if text is not None:
                return text
    return _decode_cp1252(raw)


def is_western(label: str | None) -> bool:
    """True for the labels read as cp1252 (and for no label at all)."""
    return normalise_label(label) in _CP1252_LABELS


# Decoded binary (a PNG or ciphertext labelled text/plain, random bytes after a broken header
# block) is about one character in eight a control or undecodable character; written text in
# any script has practically none. One in twenty leaves room for a stray NUL or two.
UNREADABLE_SHARE = 0.05
_MIN_UNREADABLE_LENGTH = 40


def is_unreadable(text: str) -> bool:
    """True when `text` is decoded binary rather than something a person wrote."""
    text = text.strip()
    if len(text) < _MIN_UNREADABLE_LENGTH:
        return False
    # The regex finds the noise in C; only characters beyond the BMP are left to check here.
    noise = sum(1 for ch in _noise_finder().findall(text) if ch < _ASTRAL or _is_noise(ch))
    return noise > UNREADABLE_SHARE * len(text)


def _is_noise(ch: str) -> bool:
    if ch in "\t\n\r\f\v" or ch.isprintable():
        return ch == "\ufffd"
    return unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs")


_ASTRAL = "\U00010000"


@cache
def _noise_finder() -> re.Pattern[str]:
    """A pattern for every BMP character that `_is_noise` holds for, and for every character
    beyond the BMP (rare in text; `is_unreadable` checks those one by one).

    Made from `_is_noise` itself, for the Unicode version Python runs with, on first use (some
    30 ms): a class of BMP ranges is a lookup table in `re`, where astral ranges would be
    tried one after another for every character.
    """
    ranges = []
    start = None
    for code in range(0x10000):
        if _is_noise(chr(code)):
            if start is None:
                start = code
        elif start is not None:
            ranges.append((start, code - 1))
            start = None
    if start is not None:
        ranges.append((start, 0xFFFF))
    members = "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges)
    return re.compile(f"[{members}\\U00010000-\\U0010ffff]")
