"""What feedparser drops from a feed: symbol categories, permalink guids, EDGAR's own elements.

feedparser keeps a category's `domain` but not its `type`, never says whether a guid is a
permalink, and ignores SEC EDGAR's `<company-info>` and the filing fields inside `<content>`.
This reads them from the same (already decoded) XML with lxml's recovering parser, keyed by the
entry's link and guid so it lines up with feedparser's entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_SYMBOL_SCHEME = re.compile(r"(?:^|[/#:._-])(?:symbols?|tickers?|stocks?)(?:$|[/#:._-])", re.I)
_SYMBOL_TEXT = re.compile(r"^\$?[A-Za-z0-9]{1,10}(?:[.:][A-Za-z0-9]{1,4})?$")
# EDGAR's company feeds have long spelt one element 'accession-nunber': read both
_EDGAR_FIELDS = ("accession-number", "accession-nunber", "filing-type", "filing-date",
                 "form-name", "size", "act", "file-number", "items-desc", "xbrl_href")


@dataclass
class EntryExtras:
    symbols: list[str] = field(default_factory=list)
    permalink: str | None = None  # a guid that is the story's own address
    filing: dict[str, str] = field(default_factory=dict)


@dataclass
class FeedExtras:
    company: dict[str, str] = field(default_factory=dict)  # EDGAR <company-info>
    entries: dict[str, EntryExtras] = field(default_factory=dict)  # by link and by guid

    def for_entry(self, entry: Any) -> EntryExtras:
        for key in (entry.get("id"), entry.get("link")):
            if key and key in self.entries:
                return self.entries[key]
        return EntryExtras()


def is_symbol_category(scheme: str | None, type_: str | None, term: str) -> bool:
    """A category that names a ticker: `type="symbol"` or a symbol/ticker `domain`."""
    marked = (type_ or "").lower() in {"symbol", "ticker", "stock"} or bool(
        scheme and _SYMBOL_SCHEME.search(scheme))
    return marked and bool(_SYMBOL_TEXT.match(term.strip()))


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _child_text(node: Any, name: str) -> str | None:
    for child in node:
        if _local(child.tag) == name:
            text = "".join(child.itertext()).strip()
            return text or None
    return None


def feed_extras(text: str) -> FeedExtras:
    """Extras from decoded feed XML; an unparseable document gives no extras (not an error:
    feedparser's own verdict on the feed stands)."""
    from lxml import etree

    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True,
                             huge_tree=False)
    try:
        root = etree.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", text).encode("utf-8"),
                                parser)
    except (etree.XMLSyntaxError, ValueError):
        return FeedExtras()
    extras = FeedExtras()
    if root is None:
        return extras
    for node in root.iter():
        name = _local(node.tag)
        if name == "company-info":
            for child in node:
                value = "".join(child.itertext()).strip()
                if value and len(child) == 0:
                    extras.company[_local(child.tag)] = value
        elif name in ("item", "entry"):
            _entry(node, extras)
    return extras


def _entry(node: Any, extras: FeedExtras) -> None:
    found = EntryExtras()
    keys: list[str] = []
    for child in node:
        name = _local(child.tag)
        if name == "category":
            term = (child.get("term") or child.text or "").strip()
            if term and is_symbol_category(child.get("domain") or child.get("scheme"),
                                           child.get("type"), term):
                found.symbols.append(term.lstrip("$").upper())
        elif name in ("guid", "id"):
            guid = (child.text or "").strip()
            if guid:
                keys.append(guid)
                permalink = child.get("isPermaLink", "true" if name == "guid" else "false")
                if permalink.lower() == "true" and guid.startswith(("http://", "https://")):
                    found.permalink = guid
        elif name == "link":
            href = child.get("href") or (child.text or "").strip()
            if href and child.get("rel", "alternate") == "alternate":
                keys.append(href)
        elif name == "content":
            for field_name in _EDGAR_FIELDS:
                value = _child_text(child, field_name)
                if value:
                    found.filing[field_name.replace("nunber", "number")] = value
    for key in keys:
        extras.entries.setdefault(key, found)
