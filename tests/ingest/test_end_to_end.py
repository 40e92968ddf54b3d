"""End to end on real parts: crawl the local fixture server -> noida-db broker -> a real
`finsentry worker` process (shipped classifier) -> ClickHouse (embedded chdb store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finsentry.config import ClickHouseSettings, KafkaSettings, Settings
from finsentry.ingest.crawler import Crawler
from finsentry.store import open_store
from tests.streams.helpers import prepare_pipeline, start_worker, write_config

from .conftest import FixtureServer, make_settings
from .test_dedup import three_sources
from .test_html import _serve_sina, sina_spec
from .test_jsonapi import stocktwits_spec

WORKER_TIMEOUT = 420


@pytest.mark.parametrize("store_settings", ["chdb"], indirect=True)
def test_crawl_to_clickhouse(tmp_path: Path, server: FixtureServer,
                             kafka_settings: KafkaSettings,
                             store_settings: ClickHouseSettings) -> None:
    pipeline = prepare_pipeline(kafka_settings, store_settings)

    sources = three_sources(server)
    _serve_sina(server)
    sources.append(sina_spec(server))
    path = "/api/2/streams/symbol/AAPL.json"
    server.add_file(path, "stocktwits_aapl_p1.json", "application/json", query={})
    server.add_file(path, "stocktwits_aapl_p2.json", "application/json",
                    query={"max": "573012120"})
    sources.append(stocktwits_spec(server))
    crawl = make_settings(tmp_path / "ingest", sources,
                          bootstrap=kafka_settings.bootstrap_servers,
                          kafka={"raw_topic": kafka_settings.raw_topic,
                                 "dead_letter_topic": kafka_settings.dead_letter_topic})
    crawler = Crawler(crawl)
    results = crawler.run_all()
    crawler.close()
    sent = sum(r.new for r in results)
    assert sent == 3 + 3 + 4 and results[0].delivery is not None
    assert results[0].delivery.sent == sent and results[0].delivery.pending == 0

    config = write_config(pipeline, tmp_path / "finsentry.toml")
    log = tmp_path / "worker.log"
    proc = start_worker(config, "--expect", str(sent), "--max-seconds", "400", log=log)
    assert proc.wait(WORKER_TIMEOUT) == 0, log.read_text()[-3000:]

    rows = _stored(pipeline)
    assert len(rows) == sent
    by_source: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_source.setdefault(str(row["source"]), []).append(row)
    assert {s: len(v) for s, v in by_source.items()} == {
        "wire": 1, "forum": 1, "ledger": 1, "sina-roll": 3, "stocktwits-aapl": 4}
    wire, forum = by_source["wire"][0], by_source["forum"][0]
    assert wire["novelty"] == 1.0 and wire["duplicate_of"] == ""
    assert forum["duplicate_of"] == wire["doc_id"] and forum["novelty"] == pytest.approx(0.75)
    assert wire["primary_ticker"] == "ACMR"
    assert all(r["language"] == "zh" for r in by_source["sina-roll"])
    assert any("贵州茅台" in str(r["title"]) for r in by_source["sina-roll"])
    assert all(r["sentiment"] in ("negative", "neutral", "positive") for r in rows)


def _stored(settings: Settings) -> list[dict[str, object]]:
    store = open_store(settings.clickhouse)
    try:
        return store.query(
            "SELECT doc_id, source, title, language, primary_ticker, novelty, duplicate_of, "
            "sentiment FROM scored_documents FINAL WHERE run_id = %(run)s",
            {"run": settings.worker.run_id})
    finally:
        store.close()
