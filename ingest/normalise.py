"""From a source's raw `Item` to the shared `Document`: clean text, language, UTC time, tickers.

Ticker relevance: headline mention 1.0 > tagged by the source 0.9 > mentioned in the lead or
repeatedly in the body 0.7 > a passing mention 0.4.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from finsentry.errors import IngestError
from finsentry.ingest.base import Item, SourceSpec
from finsentry.ingest.parsing import clean_inline, html_to_text
from finsentry.records import MAX_TEXT_CHARS, Document, TickerMention

HEADLINE, TAGGED, LEAD, PASSING = 1.0, 0.9, 0.7, 0.4
LEAD_CHARS = 300
LANG_SAMPLE_CHARS = 500  # detection cost grows with the text; the opening is enough
LANGUAGES: tuple[str, ...] = ("en", "zh")  # what the pipeline's classifiers handle
MIN_LATIN_LETTERS = 8  # fewer letters of Latin-script words: no language, use the declared one
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?![\w])")
_CJK = re.compile(r"[\u3400-\u9fff]")
_CIK = re.compile(r"\d{10}")  # SEC CIK, zero-padded as EDGAR writes it
_CN_CODE = re.compile(r"(\d{6})\.(?:SH|SS|SZ|BJ)", re.IGNORECASE)
_NOT_WORDS = re.compile(r"https?://\S+|\$[A-Za-z][A-Za-z.]*|[^\w\s]|\d+|_")


class NormaliseError(IngestError):
    """An item cannot become a valid Document (it goes to the dead-letter topic)."""


class TickerLinker:
    """Cashtags plus aliases (ticker -> company names, CIKs, Chinese short names).

    All aliases are compiled into two alternations (CJK names need no word boundaries, Latin
    ones do), so linking costs one scan per text however many hundred aliases are loaded.
    """

    def __init__(self, aliases: dict[str, list[str]]) -> None:
        self.by_term: dict[str, set[str]] = {}
        self.by_cik: dict[str, str] = {}
        for symbol, names in aliases.items():
            terms = list(names)
            if len(symbol) >= 3 and not symbol[0].isdigit():
                terms.append(symbol)  # bare 1-2 letter symbols ('A', 'F') are ordinary words
            if code := _CN_CODE.fullmatch(symbol):
                terms.append(code.group(1))  # '贵州茅台(600519)'
            for term in terms:
                term = term.strip()
                if _CIK.fullmatch(term):  # identity (tagged), not a mention in the text
                    self.by_cik.setdefault(term, symbol.upper())
                elif term:
                    self.by_term.setdefault(term, set()).add(symbol.upper())
        groups: dict[str, list[str]] = {"cjk": [], "code": [], "latin": []}
        for term in self.by_term:
            kind = "cjk" if _CJK.search(term) else "code" if term.isdigit() else "latin"
            groups[kind].append(term)
        wrap = {"cjk": ("", ""), "code": (r"(?<![\d.])", r"(?!\d)"),
                "latin": (r"(?<![\w$])", r"(?![\w])")}
        self._patterns = [
            re.compile(wrap[kind][0] + "(?:" + "|".join(
                map(re.escape, sorted(terms, key=len, reverse=True))) + ")" + wrap[kind][1])
            for kind, terms in groups.items() if terms]

    def mentions(self, text: str) -> dict[str, list[int]]:
        """Symbol -> positions of its mentions in `text`."""
        found: dict[str, list[int]] = {}
        for m in _CASHTAG.finditer(text):
            found.setdefault(m.group(1).upper(), []).append(m.start())
        for pattern in self._patterns:
            for m in pattern.finditer(text):
                for symbol in self.by_term.get(m.group(0), ()):
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


def load_aliases(user: dict[str, list[str]], builtin: list[str]) -> dict[str, list[str]]:
    """Shipped alias lists (`ingest/data/<name>_aliases.csv`) plus the user's aliases.

    A name the user maps to a ticker is taken away from the shipped lists, so a user alias
    always wins (e.g. '贵州茅台' -> '600519.SS' where the shipped file says '600519.SH').
    """
    import csv
    from importlib.resources import files

    merged: dict[str, list[str]] = {}
    for name in builtin:
        resource = files("finsentry.ingest").joinpath("data", f"{name}_aliases.csv")
        with resource.open("r", encoding="utf-8") as fh:
            rows = csv.DictReader(line for line in fh if not line.startswith("#"))
            for row in rows:
                merged.setdefault(row["ticker"], []).extend(row["names"].split("|"))
    taken = {term.strip() for names in user.values() for term in names}
    for symbol in list(merged):
        merged[symbol] = [t for t in merged[symbol] if t not in taken]
    for symbol, names in user.items():
        # the user's spelling of a shipped ticker ('600519.SS' for '600519.SH') replaces it
        if (code := _CN_CODE.fullmatch(symbol)) is not None:
            for shipped in [s for s in merged if s != symbol and s.startswith(code.group(1))]:
                names = [*names, *merged.pop(shipped)]
        merged[symbol] = list(dict.fromkeys([*merged.get(symbol, []), *names]))
    return merged


@lru_cache(maxsize=4)
def _detector(languages: tuple[str, ...]) -> Any:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, code.upper()) for code in languages]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def detect_language(text: str, languages: tuple[str, ...] = LANGUAGES,
                    min_confidence: float = 0.6) -> str | None:
    """ISO 639-1 code among `languages` (lingua, accurate on short text); None when unsure.

    Cashtags, URLs, numbers and symbols are removed first: '$AAPL $MSFT 🚀' says nothing about
    a language, and a filing's '8-K - (0000320193)' only its words do.
    """
    sample = _NOT_WORDS.sub(" ", text[:LANG_SAMPLE_CHARS])
    letters = sum(1 for ch in sample if ch.isalpha())
    if letters < (2 if _CJK.search(sample) else MIN_LATIN_LETTERS):
        return None
    best = _detector(languages).compute_language_confidence_values(sample)
    if not best or best[0].value < min_confidence:
        return None
    return str(best[0].language.iso_code_639_1.name.lower())


def strip_boilerplate(text: str, patterns: list[re.Pattern[str]]) -> str:
    """`text` without the source's boilerplate (each match removed, blank lines dropped)."""
    for pattern in patterns:
        text = pattern.sub("", text)
    return "\n".join(line for line in (ln.strip() for ln in text.splitlines()) if line)


@lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> list[re.Pattern[str]]:
    return [re.compile(p, re.MULTILINE) for p in patterns]


def normalise(item: Item, spec: SourceSpec, linker: TickerLinker,
              fetched_at: datetime | None = None,
              languages: tuple[str, ...] = LANGUAGES) -> Document:
    """Build the Document; NormaliseError says why an item cannot become one.

    Language: detection among `languages`, else what the feed or page declares, else the
    source's configured language, else none (short or symbol-only text says nothing).
    """
    fetched_at = fetched_at or datetime.now(UTC)
    where = item.where(spec.name)
    title = clean_inline(item.title)[:2048]
    try:
        body = html_to_text(item.body) if item.is_html else item.body.strip()
    except Exception as exc:  # noqa: BLE001 - lxml/bs4 raise a zoo of types on broken HTML
        raise NormaliseError(f"{where}: cannot parse HTML: {exc}") from None
    if spec.boilerplate:
        body = strip_boilerplate(body, _compiled(tuple(spec.boilerplate)))
    text = body or title
    if not text.strip():
        raise NormaliseError(f"{where}: item has no title and no text")
    metadata: dict[str, Any] = {k: v for k, v in item.metadata.items() if v is not None}
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        metadata["truncated"] = True
    published = item.published
    if published is None:
        published = fetched_at
        metadata["published_estimated"] = True
    elif published.tzinfo is None:
        raise NormaliseError(f"{where}: naive publication time")
    language = (detect_language(f"{title}\n{text}", languages) or item.language
                or spec.language)
    tagged = [*item.tickers, *spec.tickers]
    cik = metadata.get("cik")
    if isinstance(cik, str) and (symbol := linker.by_cik.get(cik.zfill(10))):
        tagged.append(symbol)
    tickers = linker.link(title, text, tagged)
    try:
        return Document.create(source=spec.name, title=title, text=text, url=item.url,
                               published_at=published, fetched_at=fetched_at,
                               language=language, tickers=tickers, metadata=metadata)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise NormaliseError(f"{where}: invalid document: {loc}: {first['msg']}") from None
