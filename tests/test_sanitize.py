import logging

from finsentry.sanitize import InertFormatter, inert


def test_inert_escapes_line_breaks_controls_and_bidi() -> None:
    hostile = "AAPL\r\nBcc: x@evil\x1b[2J\u0085\u2028\u202e\tok"
    out = inert(hostile)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out
    assert "\u0085" not in out and "\u2028" not in out and "\u202e" not in out
    assert out == "AAPL\\r\\nBcc: x@evil\\x1b[2J\\x85\\u2028\\u202e\\tok"


def test_inert_keeps_readable_text_and_caps_length() -> None:
    assert inert("贵州茅台 <b>& 'q'") == "贵州茅台 <b>& 'q'"
    assert inert("x" * 50, max_len=10) == "x" * 9 + "…"
    assert inert(42) == "42"


def test_inert_formatter_makes_one_line() -> None:
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "title %s", ("a\nFAKE: b",), None)
    line = InertFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING title a\\nFAKE: b"
