"""Text taken from files and paths, made safe to show on a terminal as one line of plain data."""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 300
"""Default bound on the length of one shown value (characters)."""

# ANSI escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character ones
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_WHITESPACE_CONTROLS = str.maketrans({"\t": " ", "\n": " ", "\r": " ", "\v": " ", "\f": " "})


def printable(value: object, max_chars: int = MAX_CHARS) -> str:
    """``str(value)`` as one line of plain text of at most ``max_chars`` characters.

    Terminal escape sequences and other control and format characters (Unicode categories Cc and Cf,
    e.g. bidirectional overrides) are removed, line breaks and tabs become spaces, and undecodable bytes
    of a file name (lone surrogates) become U+FFFD. A longer text keeps its start and its end around a
    marker that says how many characters were left out. Rich markup is not touched: print the result
    with markup off (``markup=False`` or ``rich.text.Text``).
    """
    text = _ESCAPE_SEQUENCE.sub("", str(value)).translate(_WHITESPACE_CONTROLS)
    if not text.isprintable():  # the fast check; most text has nothing to remove
        text = "".join(_visible(character) for character in text)
    if len(text) <= max_chars:
        return text
    marker = f" …({len(text):,} characters)… "
    if len(marker) >= max_chars:
        return text[:max_chars]
    keep = max_chars - len(marker)
    head = (keep + 1) // 2
    return text[:head] + marker + text[len(text) - (keep - head) :]


def _visible(character: str) -> str:
    """The character itself, "" for a control or format character, U+FFFD for a lone surrogate."""
    category = unicodedata.category(character)
    if category == "Cs":
        return "\ufffd"
    return "" if category in ("Cc", "Cf") else character
