"""Delivery to a real Kafka-protocol broker (noida-db): keys, dead letters, outage buffering."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from finsentry.config import KafkaSettings
from finsentry.ingest.crawler import Crawler
from finsentry.kafka_admin import end_offsets, ensure_topics
from finsentry.records import decode_document
from tests.streams.helpers import consume_all

from .conftest import FixtureServer, make_settings
from .test_dedup import three_sources


def _closed_port() -> int:
    """A port nothing listens on: the broker is 'down'."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kafka(kafka: KafkaSettings) -> dict[str, str]:
    return {"raw_topic": kafka.raw_topic, "dead_letter_topic": kafka.dead_letter_topic}


def test_broker_down_buffers_then_delivers(tmp_path: Path, server: FixtureServer,
                                           kafka_settings: KafkaSettings) -> None:
    sources = three_sources(server)
    server.add_file("/broken.rss", "broken_feed.rss", "application/rss+xml")
    sources.append({"kind": "rss", "name": "broken", "url": server.url("/broken.rss")})
    down = make_settings(tmp_path, sources, bootstrap=f"127.0.0.1:{_closed_port()}",
                         kafka=_kafka(kafka_settings), send_timeout_s=1.0)
    crawler = Crawler(down)
    results = crawler.run_all()
    assert sum(r.new for r in results) == 3
    delivery = results[0].delivery
    assert delivery is not None and delivery.sent == 0 and delivery.error
    assert "unavailable" in delivery.error
    buffered = crawler.state.pending_count()
    assert buffered >= 4  # 3 documents + the malformed feed's dead letter(s)
    metrics = json.loads(crawler.metrics_file.read_text())
    assert metrics["buffered"] == buffered and metrics["last_delivery_error"]
    crawler.close()

    # the broker is back: a restarted crawler sends the buffer, and nothing is lost
    ensure_topics(kafka_settings)
    up = make_settings(tmp_path, sources, bootstrap=kafka_settings.bootstrap_servers,
                       kafka=_kafka(kafka_settings))
    crawler = Crawler(up)
    flushed = crawler.flush()
    assert flushed.error is None and flushed.sent == buffered and flushed.pending == 0
    docs = [decode_document(json.dumps(m)) for m in
            consume_all(kafka_settings, kafka_settings.raw_topic, expect=3, timeout=30)]
    assert sorted(d.source for d in docs) == ["forum", "ledger", "wire"]
    assert len({d.duplicate_of for d in docs if d.duplicate_of}) == 1
    dead = consume_all(kafka_settings, kafka_settings.dead_letter_topic, expect=1, timeout=30)
    assert dead and all(e["stage"] == "ingest" for e in dead)
    assert any("source broken" in e["reason"] for e in dead)

    # restart + re-poll: nothing is re-emitted
    before = sum(end_offsets(kafka_settings, kafka_settings.raw_topic).values())
    again = crawler.run_all()
    assert sum(r.new for r in again) == 0
    assert sum(end_offsets(kafka_settings, kafka_settings.raw_topic).values()) == before == 3
    crawler.close()


def test_messages_keyed_by_primary_ticker_or_source(tmp_path: Path, server: FixtureServer,
                                                    kafka_settings: KafkaSettings) -> None:
    from kafka import KafkaConsumer

    ensure_topics(kafka_settings)
    server.add_file("/feed.atom", "newsroom.atom", "application/atom+xml")
    spec = {"kind": "rss", "name": "newsroom", "url": server.url("/feed.atom")}
    settings = make_settings(tmp_path, [spec], bootstrap=kafka_settings.bootstrap_servers,
                             kafka=_kafka(kafka_settings))
    crawler = Crawler(settings)
    result = crawler.run_source("newsroom")
    assert result.delivery is not None and result.delivery.sent == 2
    crawler.close()
    consumer = KafkaConsumer(kafka_settings.raw_topic,
                             bootstrap_servers=kafka_settings.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=f"keys-{kafka_settings.raw_topic}",
                             consumer_timeout_ms=10_000)
    keys = {}
    try:
        for record in consumer:
            keys[json.loads(record.value)["title"]] = record.key
            if len(keys) == 2:
                break
    finally:
        consumer.close()
    # Nvidia & Microsoft both in the headline: the key is one of them; no ticker -> source
    assert keys["Nvidia & Microsoft extend AI infrastructure partnership"] in (b"MSFT", b"NVDA")
    assert keys["Weekly outlook: jobs report and central banks in focus"] == b"newsroom"


def test_oversized_message_is_parked_not_blocking(tmp_path: Path,
                                                  kafka_settings: KafkaSettings) -> None:
    ensure_topics(kafka_settings)
    settings = make_settings(tmp_path, [], bootstrap=kafka_settings.bootstrap_servers,
                             kafka=_kafka(kafka_settings))
    crawler = Crawler(settings)
    with crawler.state.transaction() as conn:
        crawler.state.enqueue(conn, kafka_settings.raw_topic, b"k", b"x" * (5 * 1024 * 1024))
        crawler.state.enqueue(conn, kafka_settings.raw_topic, b"k", b'{"small": true}')
    result = crawler.flush()
    assert result.sent == 1 and result.parked == 1 and result.pending == 0
    assert crawler.state.parked_count() == 1
    assert json.loads(crawler.metrics_file.read_text())["parked"] == 1
    crawler.close()
