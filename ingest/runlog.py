"""Per-run crawl metrics into ClickHouse (`ingest_runs`), for the pipeline-health dashboard.

Only with a ClickHouse server: the embedded chdb store belongs to one process (the worker), so a
crawler next to it keeps its metrics in `<state_dir>/metrics.json` only. A failed write is
retried by the store and then logged: the cumulative counters stay in the crawler's state.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreError

if TYPE_CHECKING:
    from finsentry.ingest.crawler import RunResult
    from finsentry.store import Store

log = logging.getLogger(__name__)


class RunLog:
    """Writes one `ingest_runs` row per source run."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def for_settings(cls, settings: ClickHouseSettings) -> RunLog | None:
        """A run log on the configured server, or None for the embedded store."""
        if settings.embedded:
            return None
        from finsentry.store import migrate, open_store

        store = open_store(settings)
        migrate(store)
        return cls(store)

    def record(self, result: RunResult, seconds: float, at: datetime | None = None) -> None:
        row = {
            "source": result.source, "run_at": at or datetime.now(UTC),
            "seconds": float(seconds), "fetched": result.fetched, "new": result.new,
            "duplicate": result.duplicate, "near_duplicate": result.near_duplicate,
            "failed": result.failed, "dead_lettered": result.dead_lettered,
            "not_modified": int(result.not_modified), "ok": int(result.ok),
            "error": result.errors[-1][:2000] if result.errors else "",
        }
        try:
            self.store.insert("ingest_runs", [row])
        except StoreError as exc:
            log.warning("source %s: run metrics not written to ClickHouse: %s",
                        result.source, exc)

    def close(self) -> None:
        self.store.close()
