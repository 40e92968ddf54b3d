"""Parsing helpers shared by the source kinds: times to UTC, page encodings, HTML to text."""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

# GB2312 and GBK pages routinely contain GB18030-only characters; its decoder is a superset.
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
                    "gb_2312-80": "gb18030", "cp936": "gb18030"}
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_DROP_TAGS = ("script", "style", "noscript", "iframe", "template", "svg", "head")
_ONE_DAY = timedelta(days=1)
_BLOCK_SPLIT = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")


def parse_time(value: Any, fmt: str | None = None, tz: str | None = None,
               now: datetime | None = None) -> datetime | None:
    """A timestamp from epoch seconds, struct_time (UTC), ISO/RFC text or a strptime format.

    Naive values are read in `tz` (default UTC). A format without a year (list pages often show
    '05-02 15:30') takes the current year, or the previous one if that lands in the future.
    """
    if value is None or value == "":
        return None
    zone: tzinfo = ZoneInfo(tz) if tz else UTC
    if isinstance(value, time.struct_time):
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) / 1000.0 if value > 1e11 else float(value)  # ms epochs
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, datetime):
        dt = value
    else:
        text = " ".join(str(value).split())
        if fmt == "epoch" or (fmt is None and re.fullmatch(r"\d{9,13}(\.\d+)?", text)):
            return parse_time(float(text), now=now)
        if fmt and fmt not in ("iso", "auto"):
            dt = datetime.strptime(text, fmt)
            if "%Y" not in fmt and "%y" not in fmt:
                current = (now or datetime.now(UTC)).astimezone(zone)
                dt = dt.replace(year=current.year)
                if dt.replace(tzinfo=zone) > current + _ONE_DAY:
                    dt = dt.replace(year=current.year - 1)
        else:
            from dateutil import parser as dateparser

            dt = dateparser.parse(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return dt.astimezone(UTC)




def sniff_charset(content: bytes) -> str | None:
    """The charset a page declares in <meta> (within the first 4 KiB)."""
    match = _META_CHARSET.search(content[:4096])
    return match.group(1).decode("ascii").lower() if match else None


def decode_page(content: bytes, header_charset: str | None = None,
                override: str | None = None) -> tuple[str, str]:
    """Decode a page: configured override, else HTTP header, else <meta>, else detection.

    Returns (text, encoding used). Raises UnicodeDecodeError naming the encoding when the
    declared charset is wrong and detection cannot find a clean one either.
    """
    candidates = [c for c in (override, header_charset, sniff_charset(content)) if c]
    for name in candidates:
        enc = _CHARSET_ALIASES.get(name.lower(), name.lower())
        try:
            return content.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            continue
    if not candidates:
        try:
            return content.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(content).best()
    if best is None:
        raise UnicodeDecodeError(candidates[0] if candidates else "utf-8", content[:1], 0, 1,
                                 "no declared or detected encoding decodes this page")
    enc = _CHARSET_ALIASES.get(best.encoding, best.encoding)
    return content.decode(enc, errors="replace"), enc


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment or page: scripts/styles dropped, one line per block."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    raw = soup.get_text("\n")
    lines = (_BLOCK_SPLIT.sub(" ", line).strip() for line in raw.splitlines())
    return "\n".join(line for line in lines if line)


def clean_inline(text: str) -> str:
    """Titles: tags and entities removed, whitespace collapsed."""
    if "<" in text or "&" in text:
        from bs4 import BeautifulSoup

        text = BeautifulSoup(text, "lxml").get_text(" ")
    return " ".join(text.split())
