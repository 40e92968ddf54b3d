"""Parsing helpers shared by the source kinds: times to UTC, page encodings, HTML to text."""

from __future__ import annotations

import calendar
import contextlib
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
# '2019-09-26 12:11', '2018年9月18日 14:38:10', '2024/05/06 09:30' inside other text
_MIXED_TIME = re.compile(
    r"((?:19|20)\d{2})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*"
    r"(?:T|\s)?\s*(\d{1,2})[:：](\d{2})(?:[:：](\d{2}))?")
_TAG = re.compile(r"<[^>]+>")
_LATIN1_SOUP = re.compile(r"[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e"
                          r"\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022"
                          r"\u2026\u2030\u2039\u203a\u20ac\u2122]+")
_CJK_CHAR = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
# what feeds are actually sent in; detection restricted to them is far less error-prone
_FEED_CODECS = ["utf_8", "gb18030", "big5", "shift_jis", "euc_kr", "cp1252", "latin_1",
                "utf_16"]
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


def parse_time_loose(value: Any, fmt: str | None = None, tz: str | None = None,
                     now: datetime | None = None) -> datetime | None:
    """`parse_time`, then a date-and-time pattern found inside mixed text.

    Chinese portals put the time in a line with other text ('2019-09-26 12:11 来源：新浪财经');
    strptime and dateutil refuse that, the pattern does not. Raises ValueError naming the raw
    string when neither finds a time.
    """
    try:
        return parse_time(value, fmt, tz, now)
    except (ValueError, OverflowError) as exc:
        first = exc
    found = _MIXED_TIME.search(str(value))
    if found is None:
        raise ValueError(f"unparseable time {str(value)[:80]!r} ({first})") from None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in found.groups())
    zone: tzinfo = ZoneInfo(tz) if tz else UTC
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC)
    except ValueError as exc:
        raise ValueError(f"unparseable time {str(value)[:80]!r} ({exc})") from None


def extract_page_time(html: str, url: str | None, tz: str | None) -> datetime | None:
    """Publication time of an article page: a date-time in the page's text, else htmldate."""
    from htmldate import find_date

    found = _MIXED_TIME.search(_TAG.sub(" ", html))
    if found:
        with contextlib.suppress(ValueError):
            return parse_time_loose(found.group(0), None, tz)
    day = find_date(html, url=url, outputformat="%Y-%m-%d %H:%M:%S", original_date=True,
                    extensive_search=True)
    return parse_time(day, None, tz) if day else None


# --- feed encodings -------------------------------------------------------------------------
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']""")
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


class MojibakeError(ValueError):
    """Decoded text that is visibly wrong (the message says why)."""


def mojibake_reason(text: str) -> str | None:
    """Why `text` looks mis-decoded, or None.

    Two signatures: replacement characters (bytes the codec could not map), and 'Latin-1 soup'
    - runs of U+0080..U+00FF characters that, put back into bytes, form valid UTF-8 or GBK
    Chinese (a CJK feed read as ISO-8859-1/cp1252, or UTF-8 encoded twice).
    """
    bad = text.count("\ufffd")
    if bad > 2 and bad > len(text) // 500:
        return f"{bad} undecodable characters (U+FFFD)"
    runs = [r for r in _LATIN1_SOUP.findall(text) if len(r) >= 4]  # accents come alone
    total = sum(len(r) for r in runs)
    non_ascii = sum(1 for ch in text if ord(ch) > 0x7F)
    if total < 12 or total < 0.5 * non_ascii:
        return None
    for codec in ("cp1252", "latin-1"):
        for inner in ("utf-8", "gb18030"):
            chinese = sum(len(r) for r in runs if _reads_as_cjk(r, codec, inner))
            if chinese >= 0.6 * total:
                return f"Latin-1 soup that is {inner} Chinese read as {codec}"
    return None


def _reads_as_cjk(run: str, codec: str, inner: str) -> bool:
    try:
        again = run.encode(codec).decode(inner)
    except (UnicodeEncodeError, UnicodeDecodeError):
        return False
    return len(_CJK_CHAR.findall(again)) >= max(1, len(again) // 2)


def decode_feed(content: bytes, header_charset: str | None = None,
                override: str | None = None) -> tuple[str, str]:
    """Decode an XML feed from its bytes: override, BOM, HTTP header, XML declaration, UTF-8;
    then detection (charset-normalizer) when none of those gives clean text.

    Returns (text, encoding). Raises MojibakeError when no candidate decodes to plausible text,
    so a wrong or missing declaration never becomes mojibake silently.
    """
    declared = _XML_DECL.match(content[:512])
    bom = next((enc for mark, enc in _BOMS if content.startswith(mark)), None)
    candidates = [c for c in (override, bom, header_charset,
                              declared.group(1).decode("ascii") if declared else None, "utf-8")
                  if c]
    reasons: list[str] = []
    for name in dict.fromkeys(_CHARSET_ALIASES.get(c.lower(), c.lower()) for c in candidates):
        try:
            text = content.decode(name)
        except (UnicodeDecodeError, LookupError) as exc:
            reasons.append(f"{name}: {type(exc).__name__}")
            continue
        why = mojibake_reason(text)
        if why is None:
            return text.lstrip("\ufeff"), name
        reasons.append(f"{name}: {why}")
    from charset_normalizer import from_bytes

    best = from_bytes(content, cp_isolation=_FEED_CODECS).best() or from_bytes(content).best()
    if best is not None:
        enc = _CHARSET_ALIASES.get(best.encoding, best.encoding)
        text = content.decode(enc, errors="replace")
        why = mojibake_reason(text)
        if why is None:
            return text.lstrip("\ufeff"), enc
        reasons.append(f"detected {enc}: {why}")
    raise MojibakeError("feed text does not decode cleanly (" + "; ".join(reasons) + ")")


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
