"""Per-run crawl metrics land in ClickHouse `ingest_runs` (real 18.16 server and chdb store)."""

from __future__ import annotations

from pathlib import Path

from finsentry.config import ClickHouseSettings
from finsentry.ingest.crawler import Crawler
from finsentry.ingest.runlog import RunLog
from finsentry.store import Store, migrate, open_store

from .conftest import FixtureServer, make_settings


def test_each_run_writes_a_row(tmp_path: Path, server: FixtureServer,
                               store_settings: ClickHouseSettings) -> None:
    server.add_file("/feed.rss", "yahoo_headline.rss", "application/rss+xml", etag='"v1"')
    store: Store = open_store(store_settings)
    migrate(store)
    settings = make_settings(tmp_path, [{"kind": "rss", "name": "yahoo",
                                         "url": server.url("/feed.rss")}])
    crawler = Crawler(settings, run_log=RunLog(store))
    crawler.run_source("yahoo", deliver=False)
    crawler.run_source("yahoo", deliver=False)  # 304: nothing new
    rows = store.query("SELECT source, fetched, new, not_modified, ok FROM ingest_runs "
                       "WHERE source = %(s)s ORDER BY run_at, new DESC", {"s": "yahoo"})
    assert [(r["fetched"], r["new"], r["not_modified"], r["ok"]) for r in rows] == \
        [(3, 3, 0, 1), (0, 0, 1, 1)]
    crawler.close()  # closes the run log's store too


def test_embedded_store_has_no_run_log() -> None:
    assert RunLog.for_settings(ClickHouseSettings()) is None
