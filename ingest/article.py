"""One article page -> one item: canonical address, main text, title and publication time.

Without configured selectors the extraction is trafilatura's (main-text detection that handles
Chinese portals; its dates come from htmldate); a date-time written in the page's text
('2019-09-26 12:11 来源：…') is preferred to htmldate's day, read in the source's zone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from finsentry.ingest.base import FetchReport, Item
from finsentry.ingest.links import strip_tracking
from finsentry.ingest.parsing import extract_page_time, parse_time

if TYPE_CHECKING:
    from bs4 import BeautifulSoup

    from finsentry.ingest.html import HtmlSpec

_META_TIMES = ("article:published_time", "og:published_time", "pubdate", "publishdate",
               "datePublished", "article:published")


@dataclass
class Extracted:
    title: str
    text: str
    date: str | None
    html: str
    url: str

    def published(self, zone: str) -> datetime | None:
        """A full date-time from the page text when there is one, else trafilatura's day."""
        when = extract_page_time(self.html, self.url, zone)
        if when is not None:
            return when
        if self.date:
            with contextlib.suppress(ValueError, OverflowError):
                return parse_time(self.date, None, zone)
        return None


def extract_main(html: str, url: str) -> Extracted:
    """trafilatura's main text and metadata (empty strings when it finds no article)."""
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False,
                                      include_tables=False, favor_precision=True,
                                      deduplicate=True)
    if doc is None:
        return Extracted("", "", None, html, url)
    data: dict[str, Any] = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    title = " ".join(str(data.get("title") or "").split())
    lines = str(data.get("text") or "").strip().splitlines()
    if lines and title and " ".join(lines[0].split()) == title:
        lines = lines[1:]  # the headline, repeated as the text's first line
    return Extracted(title=title, text="\n".join(lines).strip(), date=data.get("date"),
                     html=html, url=url)


def canonical_url_of(soup: BeautifulSoup, fetched_url: str) -> str:
    """`link[rel=canonical]`, else `og:url`, else the fetched URL.

    Another site's address is accepted (syndicated copies name the original: one story, one
    id); one pointing at a front page while the page is an article (a template-wide tag) is
    not, nor, in article mode, one another article of the run already claimed.
    """
    fetched = urlsplit(fetched_url)
    candidates = []
    link = soup.select_one('link[rel~="canonical"][href]')
    if link is not None:
        candidates.append(str(link.get("href")))
    og = soup.select_one('meta[property="og:url"][content]')
    if og is not None:
        candidates.append(str(og.get("content")))
    for href in candidates:
        url = urljoin(fetched_url, href.strip())
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        if parts.path in ("", "/") and fetched.path not in ("", "/"):
            continue
        return strip_tracking(url)
    return strip_tracking(fetched_url)


def article_item(soup: BeautifulSoup, html: str, fetched_url: str, spec: HtmlSpec,
                 report: FetchReport, position: int) -> Item | None:
    """The item of an article page: selectors when configured, trafilatura otherwise."""
    from finsentry.ingest.html import time_of

    url = canonical_url_of(soup, fetched_url)
    item = Item(url=url, title="", body="", page_url=fetched_url, position=position,
                metadata={"fetched_url": fetched_url} if url != fetched_url else {})
    where = item.where(spec.name)
    main = extract_main(html, fetched_url)
    if spec.article_title_selector and (el := soup.select_one(spec.article_title_selector)):
        item.title = " ".join(el.get_text(" ", strip=True).split())
    item.title = item.title or main.title or _og_title(soup)
    if spec.article_body_selector:
        body = soup.select_one(spec.article_body_selector)
        if body is None:
            report.errors.append(f"{where}: no article body matches "
                                 f"'{spec.article_body_selector}'")
            return None
        item.body, item.is_html = str(body), True
    else:
        item.body = main.text
    if spec.article_time_selector:
        item.published = time_of(soup, spec.article_time_selector, spec.article_time_attr,
                                 spec.article_time_format, spec.timezone, report, where)
    if item.published is None:
        item.published = _meta_time(soup, spec.timezone) or main.published(spec.timezone)
    if not item.body and not item.title:
        report.errors.append(f"{where}: no article text found")
        return None
    return item


def _og_title(soup: BeautifulSoup) -> str:
    og = soup.select_one('meta[property="og:title"][content]')
    if og is not None:
        return " ".join(str(og.get("content")).split())
    return " ".join(soup.title.get_text(" ").split()) if soup.title else ""


def _meta_time(soup: BeautifulSoup, zone: str) -> datetime | None:
    for name in _META_TIMES:
        el = soup.select_one(f'meta[property="{name}"][content], meta[name="{name}"][content],'
                             f' meta[itemprop="{name}"][content]')
        if el is not None:
            with contextlib.suppress(ValueError, OverflowError):
                return parse_time(str(el.get("content")), None, zone)
    return None
