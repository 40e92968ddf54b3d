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


@dataclass
class FlushResult:
    sent: int = 0
    pending: int = 0
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
        from kafka.errors import KafkaError

        result = FlushResult()
        while True:
            rows = self.state.pending(BATCH)
            if not rows:
                break
            try:
                producer = self._connect()
                futures = [(seq, producer.send(topic, key=key, value=value))
                           for seq, topic, key, value in rows]
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
                except (KafkaError, OSError) as exc:
                    failed.append(seq)
                    error = error or f"{type(exc).__name__}: {exc}"
            if ok:
                self.state.delivered(ok)
                result.sent += len(ok)
            if failed:
                topics = sorted({r[1] for r in rows if r[0] in set(failed)})
                result.error = (f"delivery to topic(s) {', '.join(topics)} failed for "
                                f"{len(failed)} message(s): {error}")
                self.state.delivery_failed(failed, result.error)
                self._drop_producer()
                break
        result.pending = self.state.pending_count()
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
