"""Message sizes: scored documents and dead letters always fit kafka.max_message_bytes."""

from __future__ import annotations

import json

from finsentry.records import dead_letter
from finsentry.streams.publish import fit_envelope, fit_scored
from tests.store.factories import scored


def test_small_documents_are_sent_whole() -> None:
    doc = scored(1)
    value, note = fit_scored(doc, 64 * 1024)
    assert value == doc.to_json() and note is None


def test_oversized_scored_document_is_cut_with_a_note() -> None:
    big = scored(2, text="é" * 90_000)  # 180 kB of UTF-8
    big = big.model_copy(update={"document": big.document.model_copy(
        update={"metadata": {"blob": "m" * 60_000}, "entities": ["x" * 200] * 200})})
    value, note = fit_scored(big, 64 * 1024)
    assert len(value) <= 64 * 1024 - 512
    assert note and "metadata" in note and "text" in note
    data = json.loads(value)
    assert data["document"]["id"] == big.document.id
    assert data["sentiment"] == big.sentiment
    assert "finsentry_cut" in data["document"]["metadata"]
    assert big.document.text.startswith(data["document"]["text"])


def test_dead_letter_envelope_fits() -> None:
    env = dead_letter(b"\x01" * 200_000, "bad", topic="raw")  # JSON-escapes to 1.2 MB
    assert len(env) > 64 * 1024
    fitted = fit_envelope(env, 64 * 1024)
    assert len(fitted) <= 64 * 1024
    data = json.loads(fitted)
    assert data["payload_truncated"] and data["payload_bytes"] == 200_000
    assert data["reason"] == "bad"
