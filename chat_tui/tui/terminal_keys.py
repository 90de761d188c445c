"""Alt+digit as WeeChat and irssi users press it.

Textual reads ESC followed by a digit as the character that macOS Option+digit types
(`\\x1b1` becomes `¡`), for WezTerm on macOS. In xterm, GNOME Terminal, tmux and
friends that is exactly what Alt+1 sends, so the app would insert `¡` instead of
switching conversations. Removing those entries makes Textual report `alt+1` .. `alt+9`
(and `alt+0`); keys typed directly, such as `£`, are unaffected.
"""

from __future__ import annotations

from textual._ansi_sequences import ANSI_SEQUENCES_KEYS

ALT_DIGIT_SEQUENCES = tuple(f"\x1b{digit}" for digit in "0123456789")


def report_alt_digits() -> None:
    """Make ESC+digit arrive as `alt+<digit>` (idempotent)."""
    for sequence in ALT_DIGIT_SEQUENCES:
        ANSI_SEQUENCES_KEYS.pop(sequence, None)  # type: ignore[attr-defined]
