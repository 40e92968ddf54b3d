"""RSS 2.0 / Atom feeds via feedparser, including SEC EDGAR's Atom filing feeds."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from finsentry.ingest.base import FetchFailed, FetchReport, Item, Source, SourceSpec
from finsentry.ingest.parsing import clean_inline, parse_time

if TYPE_CHECKING:
    from finsentry.ingest.http import Fetcher

# EDGAR titles look like "8-K - Apple Inc. (0000320193) (Filer)"
_EDGAR_TITLE = re.compile(r"^(?P<form>[^\s].*?) - (?P<company>.+?) \((?P<cik>\d{10})\)")
_EDGAR_ACCESSION = re.compile(r"accession-number=(\d{10}-\d{2}-\d{6})")


class RssSpec(SourceSpec):
    kind: Literal["rss"] = "rss"
    url: str = Field(description="Feed URL (RSS 2.0, RSS 1.0 or Atom)")
    edgar: bool = Field(False, description="Parse SEC EDGAR filing metadata from entries")


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
        parsed = feedparser.parse(resp.content, response_headers={
            "content-type": resp.headers.get("content-type", "application/xml"),
            "content-location": resp.url})
        if parsed.bozo and not parsed.entries:
            reason = f"source {spec.name}: {resp.url}: malformed feed: {parsed.bozo_exception}"
            report.rejects.append((resp.url, resp.content, reason))
            raise FetchFailed(reason, report.rejects)
        if parsed.bozo and not isinstance(parsed.bozo_exception, _BENIGN):
            # the loose parser salvaged entries; keep them, but count and dead-letter the page
            reason = (f"source {spec.name}: {resp.url}: malformed feed (salvaged "
                      f"{len(parsed.entries)} entries): {parsed.bozo_exception}")
            report.errors.append(reason)
            report.rejects.append((resp.url, resp.content, reason))
        feed_lang = (parsed.feed.get("language") or "").split("-")[0] or None
        for entry in parsed.entries[: spec.max_items]:
            try:
                report.items.append(self._item(entry, feed_lang))
            except (ValueError, TypeError, OverflowError) as exc:
                reason = f"source {spec.name}: {resp.url}: entry {entry.get('id', '?')}: {exc}"
                report.errors.append(reason)
                report.rejects.append((resp.url, repr(dict(entry)).encode(), reason))
        return report

    def _item(self, entry: Any, feed_lang: str | None) -> Item:
        spec = self.spec
        assert isinstance(spec, RssSpec)
        body = ""
        if entry.get("content"):
            body = max((c.get("value", "") for c in entry.content), key=len)
        summary = entry.get("summary", "")
        if len(summary) > len(body):
            body = summary
        published = None
        for key in ("published_parsed", "updated_parsed", "created_parsed"):
            if entry.get(key):
                published = parse_time(entry[key])
                break
        metadata: dict[str, Any] = {"guid": entry.get("id")}
        tags = [t.get("term") for t in entry.get("tags", []) if t.get("term")]
        if tags:
            metadata["categories"] = tags
        if entry.get("author"):
            metadata["author"] = entry.author
        title = clean_inline(entry.get("title", ""))
        if spec.edgar:
            metadata.update(_edgar_metadata(title, entry.get("id", ""), tags))
        return Item(url=entry.get("link"), title=title, body=body, published=published,
                    is_html=True, metadata=metadata, language=spec.language or feed_lang)


def _edgar_metadata(title: str, guid: str, tags: list[str]) -> dict[str, Any]:
    """Form type, company, CIK and accession number from an EDGAR entry."""
    meta: dict[str, Any] = {"filing": True}
    match = _EDGAR_TITLE.match(title)
    if match:
        meta.update(form_type=match["form"], company=match["company"], cik=match["cik"])
    elif tags:
        meta["form_type"] = tags[0]
    acc = _EDGAR_ACCESSION.search(guid)
    if acc:
        meta["accession_number"] = acc.group(1)
    return meta
