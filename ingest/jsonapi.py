"""JSON listing APIs (posts, comments, messages) with cursor pagination.

Configured by field paths, so Reddit's listing (`data.children[].data`, `after` cursor) and the
StockTwits symbol stream (`messages[]`, `cursor.max` with `cursor.more`) are config entries.
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

from pydantic import Field

from finsentry.ingest.base import (
    FetchFailed,
    FetchReport,
    Item,
    Source,
    SourceSpec,
    dotted,
    item_error,
)
from finsentry.ingest.links import strip_tracking
from finsentry.ingest.parsing import clean_inline, parse_time_loose

if TYPE_CHECKING:
    from finsentry.ingest.http import Fetcher

_TEMPLATE_FIELD = re.compile(r"\{([A-Za-z0-9_.]+)\}")


class JsonApiSpec(SourceSpec):
    kind: Literal["json"] = "json"
    url: str
    params: dict[str, str] = Field(default_factory=dict, description="Query parameters")
    items_path: str = Field(description="Dotted path to the list of items in a page")
    item_path: str | None = Field(None, description="Path inside each item, e.g. 'data'")
    id_field: str = "id"
    title_field: str | None = None
    text_field: str = Field(description="Dotted path of the body text")
    text_is_html: bool = False
    url_field: str | None = Field(None, description="Path of the item's URL or permalink")
    url_base: str | None = Field(None, description="Joined with relative URLs")
    url_template: str | None = Field(None, description="e.g. 'https://x/{user.username}/{id}'")
    time_field: str
    time_format: str = Field("auto", description="'auto', 'epoch', 'iso' or a strptime format")
    tickers_field: str | None = Field(None, description="List of symbols or of objects")
    tickers_key: str | None = Field(None, description="Key of the symbol in those objects")
    metadata_fields: dict[str, str] = Field(default_factory=dict,
                                            description="metadata name -> dotted path")
    cursor_path: str | None = Field(None, description="Path of the next-page cursor")
    cursor_param: str | None = Field(None, description="Query parameter that takes it")
    more_path: str | None = Field(None, description="Boolean path: false = last page")
    max_pages: int = Field(5, ge=1)


class JsonApiSource(Source):
    spec_class = JsonApiSpec

    def fetch(self, fetcher: Fetcher) -> FetchReport:
        spec = self.spec
        assert isinstance(spec, JsonApiSpec)
        report = FetchReport()
        cursor: str | None = None
        seen_cursors: set[str] = set()
        for page in range(spec.max_pages):
            params = dict(spec.params)
            if cursor is not None and spec.cursor_param:
                params[spec.cursor_param] = cursor
            resp = report.fetch_page(fetcher, spec.name, spec.url, page, params or None)
            if resp is None:
                break
            try:
                data = json.loads(resp.content.decode(resp.charset or "utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                reason = f"source {spec.name}: {resp.url}: invalid JSON: {exc}"
                report.rejects.append((resp.url, resp.content, reason))
                if page == 0:
                    raise FetchFailed(reason, report.rejects) from None
                report.errors.append(reason)
                break
            raw_items = dotted(data, spec.items_path)
            if not isinstance(raw_items, list):
                reason = f"source {spec.name}: {resp.url}: no list at '{spec.items_path}'"
                report.rejects.append((resp.url, resp.content, reason))
                if page == 0:
                    raise FetchFailed(reason, report.rejects)
                report.errors.append(reason)
                break
            for position, raw in enumerate(raw_items, start=1):
                if len(report.items) >= spec.max_items:
                    break
                try:
                    item = self._item(raw, resp.url)
                    item.position = position
                    report.items.append(item)
                except (ValueError, TypeError, KeyError, OverflowError) as exc:
                    reason = item_error(spec.name, resp.url, position, self._safe_url(raw),
                                        str(exc))
                    report.errors.append(reason)
                    report.rejects.append((resp.url, json.dumps(raw).encode(), reason))
            if len(report.items) >= spec.max_items or not spec.cursor_path:
                break
            page_urls = [i.url for i in report.items[-len(raw_items):] if i.url]
            if page_urls and all(self.is_known(u) for u in page_urls):
                break  # caught up with what earlier runs ingested: older pages are known too
            more = dotted(data, spec.more_path) if spec.more_path else True
            nxt = dotted(data, spec.cursor_path)
            if not more or nxt in (None, "") or str(nxt) in seen_cursors or not raw_items:
                break
            cursor = str(nxt)
            seen_cursors.add(cursor)
        return report

    def _item(self, raw: Any, page_url: str) -> Item:
        spec = self.spec
        assert isinstance(spec, JsonApiSpec)
        obj = dotted(raw, spec.item_path) if spec.item_path else raw
        if not isinstance(obj, dict):
            raise ValueError("item is not an object")
        text = dotted(obj, spec.text_field) or ""
        title = dotted(obj, spec.title_field) if spec.title_field else ""
        if not isinstance(text, str) or not isinstance(title or "", str):
            raise ValueError(f"'{spec.text_field}' is not text")
        if not spec.text_is_html:
            # plain-text APIs still send '&amp;' and '&#39;' (StockTwits, Reddit titles)
            text = html.unescape(text)
        url = self._url(obj, page_url)
        raw_time = dotted(obj, spec.time_field)
        try:
            published = parse_time_loose(raw_time, spec.time_format, spec.timezone)
        except (ValueError, OverflowError):
            raise ValueError(f"unparseable time {str(raw_time)[:80]!r} in "
                             f"'{spec.time_field}'") from None
        if published is None:
            raise ValueError(f"missing time field '{spec.time_field}'")
        tickers: list[str] = []
        if spec.tickers_field:
            for entry in dotted(obj, spec.tickers_field) or []:
                sym = dotted(entry, spec.tickers_key) if spec.tickers_key else entry
                if isinstance(sym, str) and sym:
                    tickers.append(sym.upper())
        metadata: dict[str, Any] = {"source_id": dotted(obj, spec.id_field)}
        for name, path in spec.metadata_fields.items():
            value = dotted(obj, path)
            if value is not None:
                metadata[name] = value
        return Item(url=url, title=clean_inline(title or ""), body=text,
                    is_html=spec.text_is_html, published=published, tickers=tickers,
                    metadata=metadata, page_url=page_url)

    def _safe_url(self, raw: Any) -> str | None:
        """The item's link for an error message, if it can be found at all."""
        spec = self.spec
        assert isinstance(spec, JsonApiSpec)
        try:
            obj = dotted(raw, spec.item_path) if spec.item_path else raw
            return self._url(obj, spec.url) if isinstance(obj, dict) else None
        except (ValueError, TypeError):
            return None

    def _url(self, obj: dict[str, Any], page_url: str) -> str | None:
        spec = self.spec
        assert isinstance(spec, JsonApiSpec)
        if spec.url_template:
            def field(m: re.Match[str]) -> str:
                value = dotted(obj, m.group(1))
                if value is None:
                    raise ValueError(f"url_template field '{m.group(1)}' missing")
                return str(value)
            return _TEMPLATE_FIELD.sub(field, spec.url_template)
        if spec.url_field:
            value = dotted(obj, spec.url_field)
            if isinstance(value, str) and value:
                return strip_tracking(urljoin(spec.url_base or page_url, value))
        return None
