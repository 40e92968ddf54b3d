"""Explicit registry of source kinds: one line per kind.

`SourceConfig` (the discriminated union on `kind`) is built from it and used by
`finsentry.config.IngestSettings.sources`, so a new kind needs no other edit.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from finsentry.ingest.base import Source
from finsentry.ingest.filesource import FileSource
from finsentry.ingest.html import HtmlSource
from finsentry.ingest.jsonapi import JsonApiSource
from finsentry.ingest.rss import RssSource

SOURCE_KINDS: dict[str, type[Source]] = {
    "rss": RssSource,
    "json": JsonApiSource,
    "html": HtmlSource,
    "file": FileSource,
}

_specs: tuple[Any, ...] = tuple(kind.spec_class for kind in SOURCE_KINDS.values())
SourceConfig: Any = Annotated[Union[_specs], Field(discriminator="kind")]  # noqa: UP007


def build_source(spec: Any) -> Source:
    """The Source object for a validated spec from the config."""
    return SOURCE_KINDS[spec.kind](spec)
