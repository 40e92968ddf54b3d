"""Delivery to Kafka through the on-disk outbox.

Every document is first written to the SQLite outbox (same transaction as the dedup state) and
only deleted once the broker acknowledged it (acks=all). A broker outage therefore just leaves
rows in the outbox; the next flush sends them. Nothing is lost, and delivery errors are counted,
logged with the topic and returned to the caller.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from finsentry.config import IngestSettings, KafkaSettings
from finsentry.ingest.state import StateStore

log = logging.getLogger(__name__)
BATCH = 500
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass
class FlushResult:
    sent: int = 0
    pending: int = 0
    parked: int = 0  # refused for good (oversized): moved aside, not retried
    error: str | None = None


class KafkaSink:
    """Sends the outbox; the producer is (re)created lazily so a down broker is not fatal."""

    def __init__(self, kafka: KafkaSettings, ingest: IngestSettings, state: StateStore) -> None:
        self.kafka = kafka
        self.ingest = ingest
        self.state = state
        self._producer: Any = None
        self._flushing = threading.Lock()  # one flush at a time, or rows would be sent twice

    def _connect(self) -> Any:
        from kafka import KafkaProducer

        if self._producer is None:
            timeout_ms = int(self.ingest.send_timeout_s * 1000)
            self._producer = KafkaProducer(
                bootstrap_servers=self.kafka.bootstrap_servers,
                client_id="finsentry-ingest",
                acks="all",
                retries=5,
                max_in_flight_requests_per_connection=1,  # retries keep per-key order
                linger_ms=20,
                max_block_ms=timeout_ms,
                request_timeout_ms=min(timeout_ms, int(self.kafka.request_timeout_s * 1000)),
                delivery_timeout_ms=timeout_ms * 2,
                bootstrap_timeout_ms=timeout_ms,
                allow_auto_create_topics=False,  # topics come from `finsentry topics create`
                max_request_size=MAX_REQUEST_BYTES,
            )
        return self._producer

    def _drop_producer(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:  # noqa: BLE001 - closing a broken producer must not raise
                log.debug("closing Kafka producer failed", exc_info=True)
            self._producer = None

    def flush(self) -> FlushResult:
        """Send everything pending, oldest first; stop at the first batch the broker refuses.

        A flush already running in another thread will pick up new rows: this one returns.
        """
        if not self._flushing.acquire(blocking=False):
            return FlushResult(pending=self.state.pending_count())
        try:
            return self._flush()
        finally:
            self._flushing.release()

    def _flush(self) -> FlushResult:
        from kafka.errors import KafkaError, MessageSizeTooLargeError

        result = FlushResult()
        while True:
            rows = self.state.pending(BATCH)
            if not rows:
                break
            futures: list[tuple[int, Any]] = []
            parked = 0
            try:
                producer = self._connect()
                for seq, topic, key, value in rows:
                    try:
                        futures.append((seq, producer.send(topic, key=key, value=value)))
                    except MessageSizeTooLargeError as exc:
                        # a poison message must not block the buffer: keep it aside on disk
                        self.state.park(seq, f"topic {topic}: {exc}")
                        parked += 1
                producer.flush(timeout=self.ingest.send_timeout_s)
            except (KafkaError, OSError, ValueError) as exc:
                result.error = (f"Kafka at {self.kafka.bootstrap_servers} unavailable: "
                                f"{type(exc).__name__}: {exc}")
                self.state.delivery_failed([r[0] for r in rows], result.error)
                self._drop_producer()
                break
            ok, failed, error = [], [], None
            for seq, fut in futures:
                try:
                    fut.get(timeout=self.ingest.send_timeout_s)
                    ok.append(seq)
                except MessageSizeTooLargeError as exc:
                    self.state.park(seq, f"rejected by the broker: {exc}")
                    parked += 1
                except (KafkaError, OSError) as exc:
                    failed.append(seq)
                    error = error or f"{type(exc).__name__}: {exc}"
            if ok:
                self.state.delivered(ok)
                result.sent += len(ok)
            result.parked += parked
            if failed:
                topics = sorted({r[1] for r in rows if r[0] in set(failed)})
                result.error = (f"delivery to topic(s) {', '.join(topics)} failed for "
                                f"{len(failed)} message(s): {error}")
                self.state.delivery_failed(failed, result.error)
                self._drop_producer()
                break
        result.pending = self.state.pending_count()
        if result.parked:
            log.error("%d oversized message(s) parked in %s (table parked)", result.parked,
                      self.state.path)
        if result.error:
            log.warning("%s; %d message(s) kept in the disk buffer %s", result.error,
                        result.pending, self.state.path)
        return result

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.flush(timeout=self.ingest.send_timeout_s)
            except Exception:  # noqa: BLE001
                log.debug("final Kafka flush failed", exc_info=True)
        self._drop_producer()
