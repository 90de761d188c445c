"""Other users' text, made harmless: never markup, never a terminal control sequence."""

from __future__ import annotations

import unicodedata

from rich.style import Style
from rich.text import Text

ESCAPE_STYLE = Style(dim=True, reverse=True)

# Format characters that reorder or hide text (bidi overrides, zero-width joiners...)
# are as dangerous to a reader as control characters: show them too.
_VISIBLE_NAMES = {"\x1b": "ESC", "\x07": "BEL", "\x08": "BS", "\x7f": "DEL", "\r": "CR"}


def _escape(char: str) -> str:
    name = _VISIBLE_NAMES.get(char)
    if name is not None:
        return f"<{name}>"
    code = ord(char)
    return f"<U+{code:04X}>" if code > 0xFF else f"<0x{code:02X}>"


# Joiners shape emoji and scripts (Persian, Indic) and cannot move or hide text.
_SAFE_FORMAT = {"\n", "\u200c", "\u200d"}


def _is_unsafe(char: str) -> bool:
    if char in _SAFE_FORMAT:
        return False
    category = unicodedata.category(char)
    return category in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def literal_text(text: str, style: Style | str = "") -> Text:
    """A Rich Text that shows `text` exactly as typed: `[bold]` stays `[bold]`, an ESC
    byte becomes a visible `<ESC>`, and tabs become spaces. Newlines are kept."""
    if text.isprintable():
        # The usual case, and a fast one: no control, format or separator character
        # (nor a tab or a newline) to look at one by one.
        return Text(text, style=style, end="")
    result = Text(style=style, end="")
    plain: list[str] = []
    for char in text:
        if char == "\t":
            plain.append("    ")
        elif _is_unsafe(char):
            if plain:
                result.append("".join(plain))
                plain.clear()
            result.append(_escape(char), ESCAPE_STYLE)
        else:
            plain.append(char)
    if plain:
        result.append("".join(plain))
    return result
