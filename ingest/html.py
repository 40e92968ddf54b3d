"""HTML pages (UTF-8, GBK/GB18030, ...): list pages by CSS selectors, or article pages directly.

Single-article mode (`mode = "article"`) crawls the configured pages themselves: the document's
address is the page's canonical URL (`link[rel=canonical]`, `og:url`, else the fetched URL),
and without selectors trafilatura extracts title, main text and date (htmldate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, model_validator

from finsentry.errors import IngestError
from finsentry.ingest.article import article_item, canonical_url_of, extract_main
from finsentry.ingest.base import FetchFailed, FetchReport, Item, Source, SourceSpec, item_error
from finsentry.ingest.links import strip_tracking
from finsentry.ingest.parsing import decode_page, mojibake_reason, parse_time_loose

if TYPE_CHECKING:
    from bs4 import BeautifulSoup, Tag

    from finsentry.ingest.http import Fetcher, Response


class HtmlSpec(SourceSpec):
    kind: Literal["html"] = "html"
    url: str = Field(description="The list page, or (article mode) the first article page")
    mode: Literal["list", "article"] = Field(
        "list", description="'list': a list page of links; 'article': the pages are articles")
    urls: list[str] = Field(default_factory=list,
                            description="Article mode: more article pages after `url`")
    encoding: str | None = Field(None, description="Override the declared page encoding")
    item_selector: str | None = Field(None,
                                      description="CSS: one element per story (list mode)")
    link_selector: str = Field("a[href]", description="CSS inside an item: the story link")
    title_selector: str | None = Field(None, description="CSS inside an item; default link text")
    summary_selector: str | None = None
    time_selector: str | None = Field(None, description="CSS inside an item: its time")
    time_attr: str | None = Field(None, description="Attribute holding the time, else text")
    time_format: str = Field("auto", description="strptime format or 'auto'")
    next_selector: str | None = Field(None, description="CSS: link to the next list page")
    max_pages: int = Field(1, ge=1)
    follow_links: bool = Field(True, description="Fetch each article page for its body")
    article_title_selector: str | None = None
    article_body_selector: str | None = Field(None, description="CSS of the article body")
    article_time_selector: str | None = None
    article_time_attr: str | None = None
    article_time_format: str = "auto"

    @model_validator(mode="after")
    def _list_needs_items(self) -> HtmlSpec:
        if self.mode == "list" and not self.item_selector:
            raise ValueError("list mode needs item_selector (or set mode = 'article')")
        return self


class HtmlSource(Source):
    spec_class = HtmlSpec

    def fetch(self, fetcher: Fetcher) -> FetchReport:
        spec = self.spec
        assert isinstance(spec, HtmlSpec)
        report = FetchReport()
        if spec.mode == "article":
            return self._articles(fetcher, report)
        assert spec.item_selector is not None
        url: str | None = spec.url
        used: dict[str, str] = {}  # link -> title: two different stories never share an id
        for page in range(spec.max_pages):
            if url is None:
                break
            resp = report.fetch_page(fetcher, spec.name, url, page)
            if resp is None:
                break
            soup = self._soup(resp, report, fatal=page == 0)
            if soup is None:
                break
            rows = soup.select(spec.item_selector)
            if not rows and page == 0:
                reason = f"source {spec.name}: {resp.url}: no items match '{spec.item_selector}'"
                report.rejects.append((resp.url, resp.content, reason))
                raise FetchFailed(reason, report.rejects)
            for position, row in enumerate(rows, start=1):
                if len(report.items) >= spec.max_items:
                    break
                try:
                    item = self._list_item(row, resp.url, position, report)
                except ValueError as exc:
                    report.errors.append(item_error(spec.name, resp.url, position, None,
                                                    str(exc)))
                    continue
                prev = used.setdefault(item.url, item.title) if item.url else ""
                if prev and item.title and prev != item.title:
                    item.url = None  # one link for several stories (a section page)
                if item.url and spec.follow_links and not self.is_known(item.url):
                    self._fill_from_article(item, fetcher, report)
                if item.body or item.title:
                    report.items.append(item)
            nxt = soup.select_one(spec.next_selector) if spec.next_selector else None
            href = nxt.get("href") if nxt is not None else None
            url = urljoin(resp.url, str(href)) if href else None
        return report

    def _soup(self, resp: Response, report: FetchReport, fatal: bool) -> BeautifulSoup | None:
        from bs4 import BeautifulSoup

        spec = self.spec
        assert isinstance(spec, HtmlSpec)
        try:
            text, encoding = decode_page(resp.content, resp.charset, spec.encoding)
        except UnicodeDecodeError as exc:
            reason = f"source {spec.name}: {resp.url}: cannot decode page: {exc}"
            report.rejects.append((resp.url, resp.content, reason))
            if fatal:
                raise FetchFailed(reason, report.rejects) from None
            report.errors.append(reason)
            return None
        why = mojibake_reason(text)
        if text.count("\ufffd") > max(8, len(text) // 100) or why:
            reason = f"source {spec.name}: {resp.url}: page is not valid {encoding}" + (
                f" ({why})" if why else "")
            report.rejects.append((resp.url, resp.content, reason))
            if fatal:
                raise FetchFailed(reason, report.rejects)
            report.errors.append(reason)
            return None
        return BeautifulSoup(text, "lxml")

    def _articles(self, fetcher: Fetcher, report: FetchReport) -> FetchReport:
        """Single-article mode: each configured page is one document."""
        spec = self.spec
        assert isinstance(spec, HtmlSpec)
        used: dict[str, str] = {}  # canonical URL -> title (two articles never share an id)
        for page, url in enumerate([spec.url, *spec.urls][: spec.max_items]):
            resp = report.fetch_page(fetcher, spec.name, url, page)
            if resp is None:
                continue
            soup = self._soup(resp, report, fatal=page == 0 and not spec.urls)
            if soup is None:
                continue
            item = article_item(soup, str(soup), resp.url, spec, report, position=page + 1)
            if item is None:
                continue
            if item.url in used and used[item.url] != item.title:
                item.metadata["canonical_rejected"] = item.url
                item.url = resp.url  # a shared canonical (site-wide tag): the page's own URL
            used[item.url or resp.url] = item.title
            report.items.append(item)
        return report

    def _list_item(self, row: Tag, base_url: str, position: int, report: FetchReport) -> Item:
        spec = self.spec
        assert isinstance(spec, HtmlSpec)
        link = row.select_one(spec.link_selector)
        href = link.get("href") if link is not None else None
        url = story_url(base_url, str(href)) if href else None
        title_el = row.select_one(spec.title_selector) if spec.title_selector else link
        title = ""
        if title_el is not None:
            title = str(title_el.get("title") or "") or title_el.get_text(" ", strip=True)
        summary = ""
        if spec.summary_selector and (el := row.select_one(spec.summary_selector)) is not None:
            summary = el.get_text(" ", strip=True)
        if not url and not title:
            raise ValueError("item has neither link nor title")
        item = Item(url=url, title=" ".join(title.split()), body=summary,
                    page_url=base_url, position=position, metadata={"list_page": base_url})
        item.published = time_of(row, spec.time_selector, spec.time_attr, spec.time_format,
                                 spec.timezone, report, item.where(spec.name))
        return item

    def _fill_from_article(self, item: Item, fetcher: Fetcher, report: FetchReport) -> None:
        from bs4 import BeautifulSoup

        spec = self.spec
        assert isinstance(spec, HtmlSpec) and item.url
        try:
            resp = fetcher.get(item.url, source=spec.name, conditional=False)
        except IngestError as exc:
            report.errors.append(str(exc))
            return
        if resp is None:
            return
        report.pages += 1
        try:
            text, _ = decode_page(resp.content, resp.charset, spec.encoding)
        except UnicodeDecodeError as exc:
            report.errors.append(f"source {spec.name}: {resp.url}: cannot decode article: {exc}")
            return
        soup = BeautifulSoup(text, "lxml")
        where = f"source {spec.name}: {resp.url}"
        if not spec.article_body_selector and not spec.article_title_selector:
            # no selectors: trafilatura finds the main text (the list link stays the id)
            main = extract_main(text, resp.url)
            if main.text:
                item.body, item.is_html = main.text, False
            item.title = item.title or main.title
            if item.published is None and spec.article_time_selector is None:
                item.published = main.published(spec.timezone)
            item.metadata.setdefault("canonical_url", canonical_url_of(soup, resp.url))
        if spec.article_title_selector and (
                el := soup.select_one(spec.article_title_selector)) is not None:
            item.title = " ".join(el.get_text(" ", strip=True).split()) or item.title
        body = soup.select_one(spec.article_body_selector) if spec.article_body_selector else None
        if body is None and spec.article_body_selector:
            report.errors.append(f"source {spec.name}: {resp.url}: no article body matches "
                                 f"'{spec.article_body_selector}'")
        elif body is not None:
            item.body, item.is_html = str(body), True
        when = time_of(soup, spec.article_time_selector, spec.article_time_attr,
                       spec.article_time_format, spec.timezone, report, where)
        if when is not None:
            item.published = when


def story_url(page_url: str, href: str) -> str | None:
    """An item's link, unless it is no story address: 'javascript:', 'mailto:', or the list
    page itself ('#', '?page=1#top')."""
    if href.strip().lower().startswith(("javascript:", "mailto:", "tel:", "#")):
        return None
    url = urljoin(page_url, href.strip())
    if urlsplit(url)._replace(fragment="") == urlsplit(page_url)._replace(fragment=""):
        return None
    return strip_tracking(url) if urlsplit(url).scheme in ("http", "https") else None


def time_of(node: Any, selector: str | None, attr: str | None, fmt: str, zone: str,
            report: FetchReport, where: str) -> Any:
    """The time at `selector` in the source's zone; a time that does not parse (neither by
    the format nor as a date-time inside mixed text) is logged with the raw string."""
    if not selector:
        return None
    el = node.select_one(selector)
    if el is None:
        return None
    raw = el.get(attr) if attr else el.get_text(" ", strip=True)
    if not raw:
        return None
    try:
        return parse_time_loose(str(raw), fmt, zone)
    except (ValueError, OverflowError) as exc:
        report.errors.append(f"{where}: {exc}")
        return None
