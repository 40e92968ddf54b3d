"""The source seam: a config spec (pydantic, discriminated on `kind`) and a fetch/parse class.

A new kind of source is one module defining a `SourceSpec` subclass and a `Source` subclass,
plus one line in `finsentry.ingest.registry`. This module stays import-light because
`finsentry.config` builds its discriminated union from the registry at import time.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from finsentry.errors import IngestError

if TYPE_CHECKING:
    from finsentry.ingest.http import Fetcher, Response


class SourceSpec(BaseModel):
    """Common settings of every source; subclasses add their kind's fields and a `kind` literal."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: str
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Unique source name")
    enabled: bool = True
    interval_s: float = Field(300.0, gt=0, description="Poll interval")
    jitter_s: float = Field(30.0, ge=0, description="Random delay added to each run")
    language: str | None = Field(
        None, description="Declared language: used when detection is unsure (short text)")
    tickers: list[str] = Field(default_factory=list,
                               description="Tickers every document of this source is about")
    max_items: int = Field(500, ge=1, description="Most items taken from one run")
    timezone: str = Field("UTC", description="IANA zone of times given without one, "
                                             "e.g. Asia/Shanghai")
    boilerplate: list[str] = Field(
        default_factory=list,
        description="Regexes removed from every text of this source (disclaimers, editor "
                    "lines); also kept out of near-duplicate detection")

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("boilerplate")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"boilerplate pattern {pattern!r}: {exc}") from None
        return patterns


@dataclass
class Item:
    """One raw story as a source parsed it, before normalisation into a `Document`."""

    url: str | None
    title: str
    body: str  # plain text or HTML (see `is_html`)
    published: datetime | None = None
    is_html: bool = False
    tickers: list[str] = field(default_factory=list)  # symbols the source itself tags
    metadata: dict[str, Any] = field(default_factory=dict)
    language: str | None = None  # declared by the feed/page (a fallback for detection)
    page_url: str | None = None  # the feed or list page the item came from
    position: int | None = None  # 1-based place on that page (names items without a link)

    def where(self, source: str) -> str:
        """'source S: <page URL>: item <link or #n>' - the prefix of every item-level error."""
        page = self.page_url or "?"
        item = self.url or (f"#{self.position}" if self.position is not None else "?")
        return f"source {source}: {page}: item {item}"


def item_error(source: str, page_url: str, position: int, link: str | None, reason: str) -> str:
    """An item-level error naming the source, the page and the item (link, else position)."""
    return f"source {source}: {page_url}: item {link or f'#{position}'}: {reason}"


@dataclass
class FetchReport:
    """What one run of a source produced: items plus per-item/page errors it survived."""

    items: list[Item] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_modified: bool = False
    pages: int = 0
    # raw payloads that could not be parsed into items: (url, payload, reason) -> dead letter
    rejects: list[tuple[str, bytes, str]] = field(default_factory=list)

    def fetch_page(self, fetcher: Fetcher, source: str, url: str, page: int,
                   params: dict[str, str] | None = None) -> Response | None:
        """One page of a paginated source; None means stop paging.

        Only the first page is conditional (later pages depend on the cursor) and only its
        failure fails the run; a later page's error is recorded and what came before is kept.
        """
        try:
            resp = fetcher.get(url, source=source, params=params, conditional=page == 0)
        except IngestError as exc:
            if page == 0:
                raise
            self.errors.append(str(exc))
            return None
        if resp is None:
            self.not_modified = True
            return None
        self.pages += 1
        return resp


class FetchFailed(IngestError):
    """A run produced nothing; carries the raw payloads that go to the dead-letter topic."""

    def __init__(self, message: str, rejects: list[tuple[str, bytes, str]]) -> None:
        super().__init__(message)
        self.rejects = rejects


class Source(ABC):
    """Fetches and parses one configured source. Implementations must not touch Kafka or state."""

    spec_class: ClassVar[type[SourceSpec]]

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        # set by the crawler: lets sources skip fetching article pages already ingested
        self.is_known: Callable[[str], bool] = lambda url: False

    @abstractmethod
    def fetch(self, fetcher: Fetcher) -> FetchReport:
        """Fetch new items (following pagination); raise IngestError only when nothing came."""


def dotted(data: Any, path: str | None) -> Any:
    """Look up 'a.b.0.c' in nested dicts/lists; None when any step is missing."""
    if not path:
        return data
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and re.fullmatch(r"-?\d+", part):
            idx = int(part)
            cur = cur[idx] if -len(cur) <= idx < len(cur) else None
        else:
            return None
        if cur is None:
            return None
    return cur
