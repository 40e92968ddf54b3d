"""RSS 2.0 / Atom feeds via feedparser, including SEC EDGAR's Atom filing feeds.

The bytes are decoded here, not by feedparser: a missing or wrong declaration (GBK feeds that
say ISO-8859-1 or nothing) is detected from the bytes, and text that still looks mis-decoded is
refused with a counted error instead of becoming mojibake. What feedparser drops (symbol
categories, permalink guids, EDGAR's `<company-info>`) comes from `feedxml`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from finsentry.ingest.base import FetchFailed, FetchReport, Item, Source, SourceSpec, item_error
from finsentry.ingest.edgar import edgar_item_metadata, merge_insider_entries
from finsentry.ingest.feedxml import EntryExtras, FeedExtras, feed_extras
from finsentry.ingest.links import story_link
from finsentry.ingest.parsing import (
    MojibakeError,
    clean_inline,
    decode_feed,
    parse_time,
    parse_time_loose,
)

if TYPE_CHECKING:
    from finsentry.ingest.http import Fetcher

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
# a time string that names its zone (offset, Z, or an abbreviation feedparser knows)
_ZONED = re.compile(r"(?:[+-]\d{2}:?\d{2}|\dZ|\b[A-Za-z]{1,5})\s*$")
_TIME_KEYS = ("published", "updated", "created")
# abbreviations that name different zones in different countries (China/US, India/Israel, ...)
_AMBIGUOUS = frozenset({"CST", "IST", "BST", "AST", "SST"})


class RssSpec(SourceSpec):
    kind: Literal["rss"] = "rss"
    url: str = Field(description="Feed URL (RSS 2.0, RSS 1.0 or Atom)")
    edgar: bool = Field(False, description="Parse SEC EDGAR filing metadata from entries")
    encoding: str | None = Field(None, description="Override the feed's declared encoding")


class RssSource(Source):
    spec_class = RssSpec

    def fetch(self, fetcher: Fetcher) -> FetchReport:
        import feedparser
        from feedparser.exceptions import CharacterEncodingOverride, NonXMLContentType

        _BENIGN = (CharacterEncodingOverride, NonXMLContentType)  # noqa: N806

        spec = self.spec
        assert isinstance(spec, RssSpec)
        report = FetchReport()
        resp = fetcher.get(spec.url, source=spec.name)
        if resp is None:
            report.not_modified = True
            return report
        report.pages = 1
        try:
            text, _encoding = decode_feed(resp.content, resp.charset, spec.encoding)
        except MojibakeError as exc:
            reason = f"source {spec.name}: {resp.url}: refused mis-decoded feed: {exc}"
            report.rejects.append((resp.url, resp.content, reason))
            raise FetchFailed(reason, report.rejects) from None
        body = _XML_DECL.sub("", text, count=1)
        parsed = feedparser.parse(
            ('<?xml version="1.0" encoding="utf-8"?>' + body).encode("utf-8"),
            response_headers={"content-type": "application/xml; charset=utf-8",
                              "content-location": resp.url})
        benign = not parsed.bozo or isinstance(parsed.bozo_exception, _BENIGN)
        if not benign and not parsed.entries:
            reason = f"source {spec.name}: {resp.url}: malformed feed: {parsed.bozo_exception}"
            report.rejects.append((resp.url, resp.content, reason))
            raise FetchFailed(reason, report.rejects)
        if not benign:
            # the loose parser salvaged entries; keep them, but count and dead-letter the page
            reason = (f"source {spec.name}: {resp.url}: malformed feed (salvaged "
                      f"{len(parsed.entries)} entries): {parsed.bozo_exception}")
            report.errors.append(reason)
            report.rejects.append((resp.url, resp.content, reason))
        extras = feed_extras(body)
        feed_lang = (parsed.feed.get("language") or "").split("-")[0].lower() or None
        for position, entry in enumerate(parsed.entries[: spec.max_items], start=1):
            try:
                report.items.append(self._item(entry, extras, feed_lang, resp.url, position,
                                               report))
            except (ValueError, TypeError, OverflowError) as exc:
                reason = item_error(spec.name, resp.url, position, entry.get("link"), str(exc))
                report.errors.append(reason)
                report.rejects.append((resp.url, repr(dict(entry)).encode(), reason))
        if spec.edgar:
            report.items = merge_insider_entries(report.items)
        return report

    def _item(self, entry: Any, extras: FeedExtras, feed_lang: str | None, page_url: str,
              position: int, report: FetchReport) -> Item:
        spec = self.spec
        assert isinstance(spec, RssSpec)
        found: EntryExtras = extras.for_entry(entry)
        body = ""
        if entry.get("content"):
            body = max((c.get("value", "") for c in entry.content), key=len)
        summary = entry.get("summary", "")
        if len(summary) > len(body):
            body = summary
        link = story_link(entry.get("link"), entry.get("feedburner_origlink"), found.permalink)
        item = Item(url=link, title=clean_inline(entry.get("title", "")), body=body,
                    is_html=True, language=feed_lang, page_url=page_url, position=position,
                    tickers=list(dict.fromkeys(found.symbols)))
        item.published = self._time(entry, item, report)
        item.metadata["guid"] = entry.get("id")
        tags = [t.get("term") for t in entry.get("tags", []) if t.get("term")]
        if tags:
            item.metadata["categories"] = tags
        if entry.get("author"):
            item.metadata["author"] = entry.author
        if spec.edgar:
            edgar_item_metadata(item, entry.get("id", ""), tags, found.filing, extras.company)
        return item

    def _time(self, entry: Any, item: Item, report: FetchReport) -> Any:
        """The entry's time in the source's zone when the feed gives none; unparseable times
        are logged with the raw string (the item keeps an estimated time)."""
        spec = self.spec
        for key in _TIME_KEYS:
            raw = entry.get(key)
            if not raw:
                continue
            struct = entry.get(f"{key}_parsed")
            zoned = _ZONED.search(str(raw))
            if zoned and zoned.group(0).strip().upper() in _AMBIGUOUS and spec.timezone != "UTC":
                # 'CST' on a Chinese site is China Standard Time, not US Central: the source's
                # zone decides
                raw, struct, zoned = str(raw)[:zoned.start()], None, None
            if struct is not None and zoned:
                return parse_time(struct)  # feedparser knows zone names (EDT, PST, ...)
            try:
                return parse_time_loose(raw, None, spec.timezone)
            except (ValueError, OverflowError) as exc:
                if struct is not None and spec.timezone == "UTC":
                    return parse_time(struct)  # a format only feedparser knows
                report.errors.append(f"{item.where(spec.name)}: {key}: {exc}")
                return None
        return None
