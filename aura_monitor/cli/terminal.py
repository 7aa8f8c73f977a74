"""Text from job records made inert for terminals: no escape sequences, no control characters, no rich markup.

Why: a record is written by less-trusted processes; printed raw, a message holding `ESC]52;...` or
`ESC[2J` rewrites the operator's clipboard, title or screen, and `[link=...]` in a rich markup string
becomes a live hyperlink. Every CLI path that prints record text goes through these two functions.
"""

from __future__ import annotations

import re
from typing import Any

from rich.markup import escape

# ESC-introduced sequences (CSI `ESC[...X`, OSC/DCS/APC/PM/SOS strings up to BEL or ST, and two-byte
# escapes), plus their 8-bit C1 forms (U+009B CSI, U+009D OSC, ...), removed whole so no stray
# parameters are left behind.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # any other escape
)
# What is left: C0 controls but tab and newline, DEL, C1 controls, and the bidi overrides that make a
# line read differently from what it holds.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert(text: object) -> str:
    """`text` as a string a terminal only displays: sequences removed, other controls shown as U+FFFD."""
    raw = str(text)
    if raw.isprintable():  # the usual case, nothing to do (tab and newline are not printable: handled below)
        return raw
    return _CONTROL.sub("\ufffd", _SEQUENCE.sub("", raw))


def markup_safe(text: object) -> str:
    """`inert(text)`, escaped so rich prints it literally inside a markup string."""
    return escape(inert(text))


def inert_data(value: Any) -> Any:
    """A decoded JSON value (an SSE event's data) with every string in it made inert."""
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, dict):
        return {key: inert_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [inert_data(item) for item in value]
    return value
