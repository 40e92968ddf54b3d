"""The record contract: stable ids, validation on the way in and out, dead-letter envelopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from finsentry.errors import RecordError
from finsentry.records import (
    Document,
    ScoredDocument,
    SentimentProbs,
    canonical_url,
    dead_letter,
    decode_document,
    decode_scored,
)

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_id_is_stable_across_url_spellings() -> None:
    a = Document.create(source="s", text="t", published_at=AT,
                        url="HTTPS://News.example.com:443/a/?utm_source=x&b=2&a=1#top")
    b = Document.create(source="other", text="different", published_at=AT,
                        url="https://news.example.com/a?a=1&b=2")
    assert a.id == b.id
    assert canonical_url("http://x.com:80/p/") == "http://x.com/p"


def test_id_from_content_without_url() -> None:
    a = Document.create(source="s", title="Profit  rose", text="Body", published_at=AT)
    b = Document.create(source="s", title="profit rose", text="body", published_at=AT)
    assert a.id == b.id and a.content_hash == b.content_hash


def test_round_trip_and_validation() -> None:
    doc = Document.create(source="wire", title="T", text="Shares fell 3%", published_at=AT,
                          url="https://e.com/1")
    assert decode_document(doc.to_json()) == doc
    probs = SentimentProbs(negative=0.8, neutral=0.15, positive=0.05)
    scored = ScoredDocument(document=doc, sentiment="negative", sentiment_probs=probs,
                            score=-0.75, topic="Stock Movement", model_name="m",
                            model_version="1", run_id="live")
    assert decode_scored(scored.to_json()) == scored


@pytest.mark.parametrize(("payload", "fragment"), [
    (b"{oops", "Invalid JSON"),
    (b"\xff\xfe", "not valid UTF-8"),
    (json.dumps({"id": "abcdefgh12", "source": "s", "text": " ", "published_at": AT.isoformat()}),
     "text"),
    (json.dumps({"id": "abcdefgh12", "source": "s", "text": "x",
                 "published_at": "2026-11-27T12:00:00"}), "published_at"),
    (json.dumps({"id": "abcdefgh12", "source": "s", "text": "x", "published_at": AT.isoformat(),
                 "extra": 1}), "extra"),
])
def test_bad_documents_name_the_field(payload: bytes | str, fragment: str) -> None:
    with pytest.raises(RecordError, match=fragment):
        decode_document(payload)


def test_dead_letter_keeps_binary_and_truncates_huge() -> None:
    env = json.loads(dead_letter(b"\xff\x00", "bad", topic="raw", partition=1, offset=9))
    assert env["payload"] is None and env["payload_base64"] == "/wA="
    assert env["topic"] == "raw" and env["offset"] == 9 and env["reason"] == "bad"
    big = json.loads(dead_letter(b"y" * 3_000_000, "too big", topic="raw"))
    assert big["payload_truncated"] and big["payload_bytes"] == 3_000_000
    assert len(big["payload"]) < 300_000
