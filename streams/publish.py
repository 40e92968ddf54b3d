"""Publishing a stored batch: scored documents cut to fit, sends confirmed or dead-lettered.

Every message fits `kafka.max_message_bytes`: a scored document too large loses its metadata,
then its entities, then the tail of its text, and says so in `metadata["finsentry_cut"]` (the
full document is in ClickHouse). A send the broker still refuses as too large dead-letters that
one document with the broker's reason; the batch goes on. A broker outage is waited out with
backoff until the sends are confirmed or the worker aborts (the batch then stays unacked).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from finsentry.errors import StreamError
from finsentry.records import ScoredDocument, dead_letter
from finsentry.store.faults import OutageLog
from finsentry.streams.processor import BatchResult, Rejected

log = logging.getLogger(__name__)
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)
_HEADROOM = 512  # record overhead (key, headers, batch framing) on top of the value


class Abandoned(StreamError):
    """The worker aborted while a send was still unconfirmed."""


def fit_scored(doc: ScoredDocument, limit: int) -> tuple[bytes, str | None]:
    """The scored message, cut to at most `limit` bytes; the note says what was cut."""
    value = doc.to_json()
    budget = limit - _HEADROOM
    if len(value) <= budget:
        return value, None
    d = doc.document
    cut: list[str] = []
    if d.metadata:
        cut.append(f"metadata ({len(value)} bytes total)")
        d = d.model_copy(update={"metadata": {}})
    if len(_with(doc, d, cut)) > budget and d.entities:
        cut.append(f"{len(d.entities)} entities")
        d = d.model_copy(update={"entities": []})
    value = _with(doc, d, cut)
    if len(value) > budget:
        raw = d.text.encode("utf-8")
        keep = max(1, len(raw) - (len(value) - budget) - 256)
        cut.append(f"text after byte {keep} of {len(raw)}")
        d = d.model_copy(update={"text": raw[:keep].decode("utf-8", errors="ignore") or "…"})
        value = _with(doc, d, cut)
    note = "cut to fit kafka.max_message_bytes: " + ", ".join(cut)
    return value, note


def fit_envelope(envelope: bytes, limit: int) -> bytes:
    """A dead-letter envelope cut to `limit`: its payload shortened (the hash still names it)."""
    budget = limit - _HEADROOM
    if len(envelope) <= budget:
        return envelope
    env = json.loads(envelope)
    for field in ("payload", "payload_base64"):
        text = env.get(field)
        if text:
            over = len(envelope) - budget
            env[field] = text[: max(0, len(text) - over - 1024)]
            env["payload_truncated"] = True
            envelope = json.dumps(env, ensure_ascii=False).encode("utf-8")
    while len(envelope) > budget and (env.get("payload") or env.get("payload_base64")):
        for field in ("payload", "payload_base64"):
            if env.get(field):
                env[field] = env[field][: len(env[field]) // 2]
        envelope = json.dumps(env, ensure_ascii=False).encode("utf-8")
    return envelope


def _with(doc: ScoredDocument, document: Any, cut: list[str]) -> bytes:
    meta = {"finsentry_cut": "; ".join(cut)} if cut else {}
    slim = document.model_copy(update={"metadata": {**document.metadata, **meta}})
    return doc.model_copy(update={"document": slim}).to_json()


Send = Callable[[bytes | None, bytes], Awaitable[Any]]


class Publisher:
    """Sends a batch's scored documents and dead letters; returns when all are confirmed."""

    def __init__(self, send_scored: Send, send_dead_letter: Send, raw_topic: str, limit: int,
                 abort: threading.Event, retry_max_wait_s: float = 10.0) -> None:
        self.send_scored = send_scored
        self.send_dead_letter = send_dead_letter
        self.raw_topic = raw_topic
        self.limit = limit
        self.abort = abort
        self.retry_max_wait_s = retry_max_wait_s
        self.outage = OutageLog("Kafka producer", log)
        self.cut = 0

    async def publish(self, result: BatchResult) -> None:
        """Publish scored documents, then every dead letter (incl. sends refused as too large)."""
        docs = result.scored
        values = []
        for doc in docs:
            value, note = fit_scored(doc, self.limit)
            if note:
                self.cut += 1
                log.info("scored document %s: %s", doc.document.id, note)
            values.append(value)
        outcomes = await self._send_all(
            self.send_scored, [(d.document.id.encode(), v) for d, v in zip(docs, values,
                                                                            strict=True)])
        published = []
        for doc, outcome in zip(docs, outcomes, strict=True):
            if isinstance(outcome, TOO_LARGE):
                reason = f"scored message refused by the broker as too large: {outcome}"
                env = dead_letter(doc.document.to_json(), reason, topic=self.raw_topic,
                                  stage="publish")
                result.rejected.append(Rejected(key=None, envelope=env, reason=reason))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                published.append(doc)
        result.scored = published
        letters = await self._send_all(
            self.send_dead_letter,
            [(r.key, fit_envelope(r.envelope, self.limit)) for r in result.rejected])
        for outcome in letters:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _send_all(self, send: Send,
                        items: list[tuple[bytes | None, bytes]]) -> list[Any]:
        """Queue every message in order, then await each acknowledgement; a send that failed
        for a broker reason is retried alone. Returns the RecordMetadata or exception per item."""
        queued: list[Any] = []
        for key, value in items:
            try:
                queued.append(await send(key, value))
            except Exception as exc:  # noqa: BLE001 - sorted below
                queued.append(exc)
        outcomes: list[Any] = []
        for (key, value), pending in zip(items, queued, strict=True):
            outcome: Any = pending
            if not isinstance(pending, BaseException):
                try:
                    outcome = await pending
                except Exception as exc:  # noqa: BLE001 - sorted below
                    outcome = exc
            if isinstance(outcome, KafkaError) and not isinstance(outcome, TOO_LARGE):
                try:
                    outcome = await self._confirmed(send, key, value)
                except Exception as exc:  # noqa: BLE001 - the caller raises it
                    outcome = exc
            outcomes.append(outcome)
        if not any(isinstance(o, KafkaError) for o in outcomes):
            self.outage.recovered()
        return outcomes

    async def _confirmed(self, send: Send, key: bytes | None, value: bytes) -> Any:
        """One send, awaited until the broker acknowledged it; outages retried with backoff."""
        wait = 0.5
        while True:
            try:
                pending = await send(key, value)
                ack = await pending
            except TOO_LARGE:
                raise
            except KafkaError as exc:
                if self.abort.is_set():
                    raise Abandoned(f"send abandoned at shutdown: {exc}") from exc
                self.outage.failed(exc, "a send")
                until = asyncio.get_running_loop().time() + wait
                while not self.abort.is_set() and asyncio.get_running_loop().time() < until:
                    await asyncio.sleep(0.2)
                wait = min(wait * 2, self.retry_max_wait_s)
                continue
            self.outage.recovered()
            return ack
