"""From a source's raw `Item` to the shared `Document`: clean text, language, UTC time, tickers.

Ticker relevance: headline mention 1.0 > tagged by the source 0.9 > mentioned in the lead or
repeatedly in the body 0.7 > a passing mention 0.4.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from finsentry.errors import IngestError
from finsentry.ingest.base import Item, SourceSpec
from finsentry.ingest.parsing import clean_inline, html_to_text
from finsentry.records import MAX_TEXT_CHARS, Document, TickerMention

HEADLINE, TAGGED, LEAD, PASSING = 1.0, 0.9, 0.7, 0.4
LEAD_CHARS = 300
LANG_SAMPLE_CHARS = 500  # langdetect's cost grows with the text; the opening is enough
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?![\w])")
_CJK = re.compile(r"[\u3400-\u9fff]")


class NormaliseError(IngestError):
    """An item cannot become a valid Document (it goes to the dead-letter topic)."""


class TickerLinker:
    """Cashtags plus a configurable alias list (ticker -> company names, CIKs, local names)."""

    def __init__(self, aliases: dict[str, list[str]]) -> None:
        self.patterns: list[tuple[str, re.Pattern[str]]] = []
        for symbol, names in aliases.items():
            terms = list(names)
            if len(symbol) >= 3:  # bare 1-2 letter symbols ('A', 'F') are ordinary words
                terms.append(symbol)
            for term in terms:
                if not term.strip():
                    continue
                if _CJK.search(term):  # no word boundaries in Chinese text
                    pat = re.compile(re.escape(term))
                else:
                    pat = re.compile(r"(?<![\w$])" + re.escape(term) + r"(?![\w])")
                self.patterns.append((symbol.upper(), pat))

    def mentions(self, text: str) -> dict[str, list[int]]:
        """Symbol -> positions of its mentions in `text`."""
        found: dict[str, list[int]] = {}
        for m in _CASHTAG.finditer(text):
            found.setdefault(m.group(1).upper(), []).append(m.start())
        for symbol, pat in self.patterns:
            for m in pat.finditer(text):
                found.setdefault(symbol, []).append(m.start())
        return found

    def link(self, title: str, text: str, tagged: list[str]) -> list[TickerMention]:
        scores: dict[str, float] = {}
        for symbol in self.mentions(title):
            scores[symbol] = HEADLINE
        for symbol in tagged:
            symbol = symbol.upper().lstrip("$")
            scores[symbol] = max(scores.get(symbol, 0.0), TAGGED)
        for symbol, positions in self.mentions(text).items():
            in_lead = min(positions) < min(LEAD_CHARS, max(len(text) // 5, 80))
            score = LEAD if in_lead or len(positions) >= 3 else PASSING
            scores[symbol] = max(scores.get(symbol, 0.0), score)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [TickerMention(symbol=s[:32], relevance=r) for s, r in ranked]


def detect_language(text: str) -> str | None:
    """ISO 639-1 code via langdetect (seeded, so repeatable); None when unsure."""
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0
    sample = text[:LANG_SAMPLE_CHARS]
    if len(sample.strip()) < 3:
        return None
    try:
        best = detect_langs(sample)[0]
    except LangDetectException:
        return None
    if best.prob < 0.6:
        return None
    return "zh" if best.lang.startswith("zh") else str(best.lang)


def normalise(item: Item, spec: SourceSpec, linker: TickerLinker,
              fetched_at: datetime | None = None) -> Document:
    """Build the Document; NormaliseError says why an item cannot become one."""
    fetched_at = fetched_at or datetime.now(UTC)
    title = clean_inline(item.title)[:2048]
    try:
        body = html_to_text(item.body) if item.is_html else item.body.strip()
    except Exception as exc:  # noqa: BLE001 - lxml/bs4 raise a zoo of types on broken HTML
        raise NormaliseError(f"source {spec.name}: {item.url}: cannot parse HTML: {exc}") \
            from None
    text = body or title
    if not text.strip():
        raise NormaliseError(f"source {spec.name}: {item.url}: item has no title and no text")
    metadata: dict[str, Any] = {k: v for k, v in item.metadata.items() if v is not None}
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        metadata["truncated"] = True
    published = item.published
    if published is None:
        published = fetched_at
        metadata["published_estimated"] = True
    elif published.tzinfo is None:
        raise NormaliseError(f"source {spec.name}: {item.url}: naive publication time")
    language = item.language or spec.language or detect_language(f"{title}\n{text}")
    tickers = linker.link(title, text, [*item.tickers, *spec.tickers])
    try:
        return Document.create(source=spec.name, title=title, text=text, url=item.url,
                               published_at=published, fetched_at=fetched_at,
                               language=language, tickers=tickers, metadata=metadata)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise NormaliseError(f"source {spec.name}: {item.url}: invalid document: "
                             f"{where}: {first['msg']}") from None
