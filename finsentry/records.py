"""The versioned record contract shared by every package: `Document` and `ScoredDocument`.

Both travel as JSON on Kafka and are validated on the way in and out (`decode_*` raise
RecordError naming the field). Bump SCHEMA_VERSION on any incompatible change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finsentry.errors import RecordError

SCHEMA_VERSION: Literal[1] = 1
MAX_TEXT_CHARS = 100_000
# What the store can hold, checked up front (chdb silently turns an out-of-range DateTime into
# 1970, the server refuses the whole insert): ClickHouse DateTime spans 1970-01-01 .. 2106-02-07.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2105, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 16
MAX_ENTITIES = 256
MAX_ENTITY_CHARS = 256
MAX_TICKERS = 64
DEAD_LETTER_MAX_PAYLOAD = 256 * 1024
SENTIMENTS: tuple[str, str, str] = ("negative", "neutral", "positive")
Sentiment = Literal["negative", "neutral", "positive"]

# Query parameters that never change what a URL points at (tracking, sessions).
_TRACKING_PARAMS = {"fbclid", "gclid", "mc_cid", "mc_eid", "ref", "cmpid", "sessionid", "sid"}


def canonical_url(url: str) -> str:
    """Lower-case scheme/host, drop fragment, default ports, tracking params; sort the query."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in _TRACKING_PARAMS
    ]
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return urlunsplit((scheme, host, path, urlencode(sorted(query)), ""))


def normalise_text(text: str) -> str:
    """NFKC + collapsed whitespace: the form content hashes are taken over."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def document_id(url: str | None, title: str, text: str) -> str:
    """Stable id: from the canonical URL when there is one, else from the content."""
    if url:
        basis = "url:" + canonical_url(url)
    else:
        basis = "text:" + normalise_text(title).lower() + "\n" + normalise_text(text).lower()
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def content_hash(title: str, text: str) -> str:
    """Hash of the normalised content, for exact-repeat detection across different URLs."""
    basis = normalise_text(title).lower() + "\n" + normalise_text(text).lower()
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class TickerMention(Record):
    """A ticker the document is about; relevance 1.0 = headline, lower = body/passing mention."""

    symbol: str = Field(min_length=1, max_length=32)
    relevance: float = Field(1.0, ge=0.0, le=1.0)


class Document(Record):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    source: str = Field(min_length=1, max_length=128)
    url: str | None = Field(None, max_length=4096)
    title: str = Field("", max_length=2048)
    text: str = Field(max_length=MAX_TEXT_CHARS)
    language: str | None = Field(None, max_length=16)
    published_at: datetime
    fetched_at: datetime = Field(default_factory=utcnow)
    tickers: list[TickerMention] = Field(default_factory=list, max_length=MAX_TICKERS)
    entities: list[str] = Field(default_factory=list, max_length=MAX_ENTITIES)
    content_hash: str | None = None
    novelty: float = Field(1.0, ge=0.0, le=1.0, description="1 = first story of its cluster")
    duplicate_of: str | None = Field(None, description="id of the first story when a near-dup")
    metadata: dict[str, Any] = Field(default_factory=dict, description="raw source metadata")

    @field_validator("published_at", "fetched_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone")
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"timestamp {value.isoformat()} is outside the storable range "
                             f"{MIN_TIME.year}..{MAX_TIME.year}") from None
        if not MIN_TIME <= value <= MAX_TIME:
            raise ValueError(f"timestamp {value.isoformat()} is outside the storable range "
                             f"{MIN_TIME.year}..{MAX_TIME.year}")
        return value

    @field_validator("entities")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        for entity in value:
            if len(entity) > MAX_ENTITY_CHARS:
                raise ValueError(f"an entity has {len(entity)} characters "
                                 f"(at most {MAX_ENTITY_CHARS})")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        depth = _depth(value)
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"nested {depth} levels deep (at most {MAX_METADATA_DEPTH})")
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"{size} bytes as JSON (at most {MAX_METADATA_BYTES})")
        return value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty or whitespace")
        return value

    @classmethod
    def create(cls, *, source: str, text: str, title: str = "", url: str | None = None,
               published_at: datetime | None = None, **fields: Any) -> Document:
        """Build a document with its stable id and content hash filled in."""
        return cls(
            id=document_id(url, title, text),
            source=source, url=url, title=title, text=text,
            published_at=published_at or utcnow(),
            content_hash=content_hash(title, text),
            **fields,
        )

    @property
    def classify_text(self) -> str:
        """What the classifiers read: the headline and the body."""
        if self.title and not self.text.startswith(self.title):
            return f"{self.title}. {self.text}"
        return self.text

    @property
    def primary_ticker(self) -> str:
        if not self.tickers:
            return ""
        return max(self.tickers, key=lambda t: t.relevance).symbol


def _depth(value: Any, level: int = 0) -> int:
    """Nesting depth of JSON-like data, stopping early once past the limit."""
    if level > MAX_METADATA_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list | tuple):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class SentimentProbs(Record):
    negative: float = Field(ge=0.0, le=1.0)
    neutral: float = Field(ge=0.0, le=1.0)
    positive: float = Field(ge=0.0, le=1.0)


class ScoredDocument(Record):
    schema_version: Literal[1] = SCHEMA_VERSION
    document: Document
    sentiment: Sentiment
    sentiment_probs: SentimentProbs
    score: float = Field(ge=-1.0, le=1.0, description="P(positive) - P(negative)")
    topic: str = ""
    topic_probs: dict[str, float] = Field(default_factory=dict)
    model_name: str
    model_version: str
    processed_at: datetime = Field(default_factory=utcnow)
    run_id: str = Field(min_length=1, max_length=64)


def _decode(model: type[Record], payload: bytes | str | dict[str, Any], what: str) -> Any:
    try:
        if isinstance(payload, dict):
            return model.model_validate(payload)
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8")
        return model.model_validate_json(payload)
    except UnicodeDecodeError as exc:
        raise RecordError(f"{what}: payload is not valid UTF-8 ({exc.reason} at byte {exc.start})")\
            from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "<root>"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RecordError(f"{what}: {field}: {first['msg']}{more}") from None


def decode_document(payload: bytes | str | dict[str, Any]) -> Document:
    """Validate a raw-topic message; RecordError names the offending field."""
    return _decode(Document, payload, "Document")


def decode_scored(payload: bytes | str | dict[str, Any]) -> ScoredDocument:
    return _decode(ScoredDocument, payload, "ScoredDocument")


def dead_letter(payload: bytes, reason: str, *, topic: str, partition: int | None = None,
                offset: int | None = None, stage: str = "validate") -> bytes:
    """The dead-letter envelope: the reason, where it came from, and the payload kept intact."""
    try:
        text: str | None = payload.decode("utf-8")
        b64 = None
    except UnicodeDecodeError:
        text, b64 = None, base64.b64encode(payload).decode("ascii")
    truncated = len(payload) > DEAD_LETTER_MAX_PAYLOAD
    if truncated:
        # keep the envelope under broker message limits; the head and a hash identify it
        if text is not None:
            text = payload[:DEAD_LETTER_MAX_PAYLOAD].decode("utf-8", errors="replace")
        else:
            b64 = base64.b64encode(payload[:DEAD_LETTER_MAX_PAYLOAD]).decode("ascii")
    env = {
        "reason": reason, "stage": stage, "topic": topic, "partition": partition,
        "offset": offset, "failed_at": utcnow().isoformat(), "payload": text,
        "payload_base64": b64, "payload_bytes": len(payload), "payload_truncated": truncated,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    return json.dumps(env, ensure_ascii=False).encode("utf-8")
