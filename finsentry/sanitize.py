"""Make untrusted text inert for terminals, log lines and plain-text bodies.

Crawled titles, sources and tickers are attacker-controlled. Written raw, a CR/LF forges a log
line or an email header (`Bcc: …`), and an ESC sequence rewrites a terminal. `inert` keeps the
text readable but turns every control character, line or paragraph separator and bidi override
into a visible escape, so one value is always one line. HTML is not this module's job: every
Jinja environment autoescapes (see `finsentry.templating`, when it exists, or `autoescape=True`).
"""

from __future__ import annotations

import logging
import unicodedata
from typing import Any

# Characters that are not controls (category Cc) but still break lines or reorder text.
_EXTRA = {
    "\u0085": "\\x85",  # NEL
    "\u2028": "\\u2028",  # LINE SEPARATOR
    "\u2029": "\\u2029",  # PARAGRAPH SEPARATOR
}
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if ch in _EXTRA:
        return _EXTRA[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(value: Any, max_len: int | None = None) -> str:
    """`value` as one printable line: controls, line separators and bidi overrides escaped.

    `max_len` caps the result (an ellipsis marks the cut) so a 5 MB title cannot flood a log.
    """
    text = value if isinstance(value, str) else str(value)
    out = []
    for ch in text:
        if ch in _EXTRA or ch in _BIDI or unicodedata.category(ch) == "Cc":
            out.append(_escape(ch))
        else:
            out.append(ch)
    result = "".join(out)
    if max_len is not None and len(result) > max_len:
        result = result[: max(0, max_len - 1)] + "…"
    return result


class InertFormatter(logging.Formatter):
    """A logging formatter whose message part is always one inert line.

    The arguments interpolated into a record (titles, URLs, server replies) are untrusted, so the
    formatted message is escaped; the traceback, when present, is appended as the library made it.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        record.message = inert(record.message)
        return super().formatMessage(record)
