"""One crawl of one source: fetch -> normalise -> dedup/novelty -> outbox -> Kafka, with metrics.

Errors never stop the crawler: each is logged and counted against the source (and URL), items
that cannot become Documents go to the dead-letter topic with their reason.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finsentry.config import Settings
from finsentry.errors import IngestError
from finsentry.ingest.base import Source
from finsentry.ingest.dedup import NoveltyIndex, shared_lines
from finsentry.ingest.http import Fetcher
from finsentry.ingest.normalise import NormaliseError, TickerLinker, load_aliases, normalise
from finsentry.ingest.producer import FlushResult, KafkaSink
from finsentry.ingest.registry import build_source
from finsentry.ingest.runlog import RunLog
from finsentry.ingest.state import StateStore
from finsentry.records import Document, dead_letter

log = logging.getLogger(__name__)
DEAD_LETTER_MAX_BYTES = 256 * 1024


@dataclass
class RunResult:
    source: str
    fetched: int = 0
    new: int = 0
    duplicate: int = 0
    near_duplicate: int = 0
    failed: int = 0
    dead_lettered: int = 0
    not_modified: bool = False
    documents: list[Document] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    delivery: FlushResult | None = None

    @property
    def ok(self) -> bool:
        return not self.errors or self.fetched > 0 or self.not_modified


class Crawler:
    """Owns the fetcher, state, novelty index and Kafka sink shared by all sources."""

    def __init__(self, settings: Settings, *, transport: Any = None,
                 run_log: RunLog | None = None) -> None:
        self.settings = settings
        self.run_log = run_log
        cfg = settings.ingest
        self.state = StateStore(cfg.state_dir / "state.sqlite3")
        self.fetcher = Fetcher(cfg, validators=self.state, transport=transport)
        self.linker = TickerLinker(load_aliases(cfg.aliases, list(cfg.builtin_aliases)))
        self.languages = tuple(cfg.languages)
        self.state.prune(cfg.seen_retention_days * 86400.0, 2 * cfg.novelty_window_h * 3600.0)
        self.novelty = NoveltyIndex(cfg, self.state)
        self.sink = KafkaSink(settings.kafka, cfg, self.state)
        self.sources: dict[str, Source] = {}
        for spec in cfg.sources:
            if spec.enabled:
                source = build_source(spec)
                source.is_known = self._url_known
                self.sources[spec.name] = source
        self.metrics_file = cfg.metrics_file or cfg.state_dir / "metrics.json"

    def close(self) -> None:
        if self.run_log is not None:
            self.run_log.close()
        self.sink.close()
        self.fetcher.close()
        self.state.close()

    def _url_known(self, url: str) -> bool:
        from finsentry.records import document_id

        return self.state.is_seen(document_id(url, "", ""))

    # -- running ----------------------------------------------------------------------------
    def run_source(self, name: str, *, deliver: bool = True) -> RunResult:
        """Crawl one source now; never raises for source errors (they are in the result)."""
        if name not in self.sources:
            raise IngestError(f"source {name}: not configured or disabled "
                              f"(known: {', '.join(sorted(self.sources)) or 'none'})")
        source = self.sources[name]
        spec = source.spec
        result = RunResult(source=name)
        started = time.monotonic()
        try:
            report = source.fetch(self.fetcher)
        except IngestError as exc:
            report = None
            result.errors.append(str(exc))
            self._dead_letter_rejects(name, getattr(exc, "rejects", []), result)
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the other sources
            report = None
            log.exception("source %s: unexpected error", name)
            result.errors.append(f"source {name}: {type(exc).__name__}: {exc}")
        if report is not None:
            result.not_modified = report.not_modified
            result.errors.extend(report.errors)
            result.fetched = len(report.items)
            fetched_at = datetime.now(UTC)
            docs = []
            for item in report.items:
                try:
                    docs.append(normalise(item, spec, self.linker, fetched_at,
                                          self.languages))
                except NormaliseError as exc:
                    result.errors.append(str(exc))
                    self._dead_letter(name, item.url or item.page_url or "", _item_payload(item),
                                      str(exc), result)
            self._admit(docs, result)
            self._dead_letter_rejects(name, report.rejects, result)
            # items are persisted: now it is safe to remember the ETag/Last-Modified
            self.fetcher.commit_validators(name)
        else:
            self.fetcher.discard_validators(name)
        result.failed = len(result.errors)
        for err in result.errors:
            log.warning("%s", err)
        self.state.bump(name, fetched=result.fetched, new=result.new,
                        duplicate=result.duplicate, near_duplicate=result.near_duplicate,
                        failed=result.failed, dead_lettered=result.dead_lettered,
                        not_modified=int(result.not_modified), runs=1)
        self.state.mark_run(name, result.ok, result.errors[-1] if result.errors else None)
        if self.run_log is not None:
            self.run_log.record(result, time.monotonic() - started)
        if deliver:
            result.delivery = self.flush()
        else:
            self.write_metrics()
        log.info("source %s: fetched %d, new %d, duplicate %d, near-duplicate %d, failed %d "
                 "in %.1fs", name, result.fetched, result.new, result.duplicate,
                 result.near_duplicate, result.failed, time.monotonic() - started)
        return result

    def run_all(self, *, deliver: bool = True) -> list[RunResult]:
        results = [self.run_source(name, deliver=False) for name in self.sources]
        if deliver:
            delivery = self.flush()
            for r in results:
                r.delivery = delivery
        return results

    def prune(self) -> None:
        """Forget state older than its retention (long-running crawlers call this periodically)."""
        cfg = self.settings.ingest
        with self.state.lock:
            self.state.prune(cfg.seen_retention_days * 86400.0,
                             2 * cfg.novelty_window_h * 3600.0)
            dropped = self.novelty.prune()
        log.info("ingest state pruned (%d near-duplicate signatures expired)", dropped)

    def flush(self) -> FlushResult:
        """Send the disk buffer to Kafka (what the broker refuses stays buffered)."""
        result = self.sink.flush()
        self.write_metrics(result)
        return result

    # -- internals --------------------------------------------------------------------------
    def _admit(self, docs: list[Document], result: RunResult) -> None:
        """Dedup, score novelty and buffer a run's documents in ONE transaction (one fsync)."""
        topic = self.settings.kafka.raw_topic
        boilerplate = shared_lines([doc.text for doc in docs])
        sigs = [self.novelty.signature(doc, boilerplate) for doc in docs]
        admitted: list[Document] = []
        with self.state.lock:
            try:
                with self.state.transaction() as conn:
                    for doc, sig in zip(docs, sigs, strict=True):
                        verdict = self.novelty.assess(doc, sig)
                        if verdict.kind == "duplicate":
                            result.duplicate += 1
                            continue
                        doc = doc.model_copy(update={"novelty": round(verdict.novelty, 6),
                                                     "duplicate_of": verdict.duplicate_of})
                        key = (doc.primary_ticker or doc.source).encode("utf-8")
                        self.novelty.remember(conn, doc, verdict, sig)
                        self.state.enqueue(conn, topic, key, doc.to_json())
                        # visible to the rest of this batch (a rewrite within one feed)
                        self.novelty.committed(doc, sig)
                        admitted.append(doc)
                        if verdict.kind == "near_duplicate":
                            result.near_duplicate += 1
            except BaseException:
                for doc in admitted:  # rolled back: forget them in memory too
                    self.novelty.forget(doc.id)
                raise
        result.new += len(admitted)
        result.documents.extend(admitted)

    def _dead_letter(self, source: str, url: str, payload: bytes, reason: str,
                     result: RunResult) -> None:
        topic = self.settings.kafka.dead_letter_topic
        if len(payload) > DEAD_LETTER_MAX_BYTES:  # the head is enough to debug a bad page
            reason = f"{reason} [payload truncated from {len(payload)} bytes]"
            payload = payload[:DEAD_LETTER_MAX_BYTES]
        envelope = dead_letter(payload, reason, topic=f"source:{source}", stage="ingest")
        with self.state.transaction() as conn:
            self.state.enqueue(conn, topic, source.encode("utf-8"), envelope)
        result.dead_lettered += 1

    def _dead_letter_rejects(self, source: str, rejects: list[tuple[str, bytes, str]],
                             result: RunResult) -> None:
        for url, payload, reason in rejects:
            self._dead_letter(source, url, payload, reason, result)

    def write_metrics(self, delivery: FlushResult | None = None) -> dict[str, Any]:
        """Per-source counters as JSON for the pipeline-health dashboard (atomic replace)."""
        sources = []
        for row in self.state.metrics():
            for key in ("last_run", "last_success", "last_error_at"):
                if row.get(key) is not None:
                    row[key] = datetime.fromtimestamp(row[key], UTC).isoformat()
            sources.append(row)
        snapshot: dict[str, Any] = {
            "updated_at": datetime.now(UTC).isoformat(),
            "buffered": self.state.pending_count(),
            "parked": self.state.parked_count(),
            "last_delivery_error": delivery.error if delivery else None,
            "sources": sources,
        }
        _atomic_write(self.metrics_file, json.dumps(snapshot, indent=2))
        return snapshot


def _item_payload(item: Any) -> bytes:
    data = {"url": item.url, "title": item.title, "body": item.body[:200_000],
            "published": item.published.isoformat() if item.published else None,
            "metadata": item.metadata}
    return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".metrics-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
