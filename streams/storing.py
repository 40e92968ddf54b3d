"""Storing one batch: wait out outages, isolate the documents the store refuses.

- Transient failures (StoreUnavailableError: server down, overloaded, timing out) are retried
  with exponential backoff until the write lands or the worker aborts (`abort` set on shutdown
  ends the wait and raises StoreInterrupted; the batch is then left unacked). The store's own
  OutageLog keeps this to one warning when the outage starts, one when it ends, a summary between.
- Data errors (StoreDataError: a value out of range, too large) bisect the batch: halves are
  written until single culprits remain, which come back with the server's reason to be
  dead-lettered; every other document is stored. The sink is idempotent, so re-writing a half
  that partly landed stores nothing twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from tenacity import Retrying, retry_if_exception_type, stop_when_event_set, wait_exponential

from finsentry.errors import StoreDataError, StoreInterrupted, StoreUnavailableError
from finsentry.records import ScoredDocument
from finsentry.store.base import TransientStoreError

log = logging.getLogger(__name__)


class SinkProtocol(Protocol):
    """What the worker needs of a store sink (finsentry.store.ScoredSink satisfies it)."""

    def write(self, docs: Sequence[ScoredDocument]) -> int: ...


Culprit = tuple[ScoredDocument, str]


class BatchWriter:
    """Write scored batches through `sink`; see the module docstring for the failure policy."""

    def __init__(self, sink: SinkProtocol, abort: threading.Event,
                 retry_max_wait_s: float = 10.0) -> None:
        self.sink = sink
        self.abort = abort
        self.retry_max_wait_s = retry_max_wait_s
        self.retries = 0  # whole-batch retries after an outage outlasted the store's attempts

    def write(self, docs: Sequence[ScoredDocument]) -> tuple[int, list[Culprit]]:
        """Store `docs`; return (rows inserted, documents refused with the reason)."""
        if not docs:
            return 0, []
        try:
            return self._until_stored(docs), []
        except StoreDataError as exc:
            if len(docs) == 1:
                return 0, [(docs[0], str(exc))]
            log.warning("store refused a batch of %d documents (%s); isolating the culprits",
                        len(docs), str(exc)[:300])
        return self._bisect(docs)

    def _bisect(self, docs: Sequence[ScoredDocument]) -> tuple[int, list[Culprit]]:
        if len(docs) == 1:
            try:
                return self._until_stored(docs), []
            except StoreDataError as exc:
                return 0, [(docs[0], str(exc))]
        mid = len(docs) // 2
        written, culprits = 0, []
        for half in (docs[:mid], docs[mid:]):
            try:
                written += self._until_stored(half)
            except StoreDataError:
                more, bad = self._bisect(half)
                written += more
                culprits.extend(bad)
        return written, culprits

    def _until_stored(self, docs: Sequence[ScoredDocument]) -> int:
        """One write, retried through outages until it lands or the worker aborts."""
        retryer = Retrying(
            stop=stop_when_event_set(self.abort),
            wait=wait_exponential(multiplier=0.5, max=self.retry_max_wait_s),
            retry=retry_if_exception_type((StoreUnavailableError, TransientStoreError)),
            sleep=self._sleep,
            before_sleep=lambda _state: self._count_retry(),
            reraise=True,
        )
        try:
            return retryer(self.sink.write, docs)
        except (StoreUnavailableError, TransientStoreError) as exc:
            if self.abort.is_set():
                raise StoreInterrupted(f"write of {len(docs)} documents interrupted: {exc}") \
                    from exc
            raise

    def _count_retry(self) -> None:
        self.retries += 1

    def _sleep(self, seconds: float) -> None:
        if self.abort.wait(seconds):
            raise StoreInterrupted("write interrupted by shutdown")
