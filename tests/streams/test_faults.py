"""Worker faults end to end: real `finsentry worker` processes, noida-db, ClickHouse 18.16 / chdb.

Each test prints a `FIGURES` line (lost, duplicated, dead-lettered, recovery time) that
docs/reliability.md quotes; run with `-s` to see them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from finsentry.config import ClickHouseSettings, KafkaSettings, Settings
from finsentry.store import open_store
from tests.fixtures.clickhouse import ClickHouseServer, ch_settings, free_port_pair
from tests.ingest.conftest import FixtureServer, Route
from tests.streams.helpers import (
    consume_all,
    feed_items,
    health_status,
    health_url,
    make_documents,
    prepare_pipeline,
    produce,
    start_crawler,
    start_worker,
    with_crawler,
    write_config,
)
from tests.streams.test_pipeline import _stored, committed_offsets

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[ClickHouseServer]:
    srv = ClickHouseServer("127.0.0.1", free_port_pair(), tmp_path / "ch")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _server_settings(server: ClickHouseServer) -> ClickHouseSettings:
    return ch_settings(host=server.host, port=server.port, database="faults", retry_attempts=2,
                       retry_max_wait_s=1.0, connect_timeout_s=1.0)


def _wait_rc(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"worker did not exit:\n{log.read_text()[-3000:]}") from None


def _n(got: dict[str, object], key: str) -> int:
    return int(str(got[key]))


def _figures(name: str, **values: object) -> None:
    print(f"FIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def test_sigterm_during_clickhouse_outage_loses_nothing(
        kafka_settings: KafkaSettings, private_server: ClickHouseServer, tmp_path: Path) -> None:
    settings = prepare_pipeline(kafka_settings, _server_settings(private_server), batch_size=32,
                                commit_interval_s=0.5, shutdown_grace_s=3.0)
    config = write_config(settings, tmp_path / "finsentry.toml")
    docs = make_documents(640, "term")
    produce(settings.kafka, (d.to_json() for d in docs), keys=(d.id.encode() for d in docs))
    log = tmp_path / "worker.log"
    proc = start_worker(config, "--max-seconds", "300", log=log)
    deadline = time.monotonic() + 300
    while committed_offsets(settings) < 64:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "worker made no progress"
        time.sleep(0.2)
    private_server.kill()  # the in-flight batch's insert now retries
    time.sleep(4)
    committed_before = committed_offsets(settings)
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    rc = _wait_rc(proc, log, 60)
    exit_s = time.monotonic() - signalled
    assert rc == 0, log.read_text()[-3000:]
    assert exit_s < 3.0 + 20, f"took {exit_s:.1f}s to stop"
    assert committed_offsets(settings) == committed_before, "committed what was not stored"

    private_server.start()
    log2 = tmp_path / "worker2.log"
    restarted = time.monotonic()
    rc = _wait_rc(start_worker(config, "--idle-exit", "15", "--max-seconds", "300", log=log2),
                  log2, 400)
    assert rc == 0, log2.read_text()[-3000:]
    got = _stored(settings)
    _figures("sigterm-during-outage", lost=640 - _n(got, "ids"),
             duplicated=_n(got, "n") - _n(got, "ids"), dead_lettered=0,
             exit_after_sigterm_s=round(exit_s, 1),
             recovery_s=round(time.monotonic() - restarted, 1))
    assert got["n"] == 640 and got["ids"] == 640, got
    assert got["agg_docs"] == 640, got


def test_clickhouse_down_60s_health_and_no_loss(
        kafka_settings: KafkaSettings, private_server: ClickHouseServer, tmp_path: Path) -> None:
    settings = prepare_pipeline(kafka_settings, _server_settings(private_server), batch_size=32)
    config = write_config(settings, tmp_path / "finsentry.toml")
    docs = make_documents(640, "outage")
    produce(settings.kafka, (d.to_json() for d in docs[:320]),
            keys=(d.id.encode() for d in docs[:320]))
    log = tmp_path / "worker.log"
    proc = start_worker(config, "--expect", "640", "--max-seconds", "500", log=log)
    try:
        url = health_url(log)
        deadline = time.monotonic() + 300
        while committed_offsets(settings) < 64:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.2)
        assert health_status(url)[0] == 200, health_status(url)
        lines_before = len(log.read_text().splitlines())
        private_server.kill()
        down_at = time.monotonic()
        produce(settings.kafka, (d.to_json() for d in docs[320:]),
                keys=(d.id.encode() for d in docs[320:]))
        while health_status(url)[0] != 503:
            assert time.monotonic() - down_at < 20, "health stayed green during the outage"
            time.sleep(0.5)
        unhealthy_after = time.monotonic() - down_at
        code, body = health_status(url)
        assert "clickhouse" in body["reasons"], body
        time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
        private_server.start()
        up_at = time.monotonic()
        while health_status(url)[0] != 200:
            assert time.monotonic() - up_at < 60, health_status(url)
            time.sleep(0.5)
        healthy_after = time.monotonic() - up_at
        rc = _wait_rc(proc, log, 300)
        assert rc == 0, log.read_text()[-3000:]
        drained_after = time.monotonic() - up_at
    finally:
        if proc.poll() is None:
            proc.kill()
    outage_lines = len(log.read_text().splitlines()) - lines_before
    got = _stored(settings)
    _figures("clickhouse-down-60s", lost=640 - _n(got, "ids"),
             duplicated=_n(got, "n") - _n(got, "ids"), dead_lettered=0,
             unhealthy_after_s=round(unhealthy_after, 1),
             healthy_after_restart_s=round(healthy_after, 1),
             drained_after_restart_s=round(drained_after, 1), log_lines=outage_lines)
    assert got["n"] == 640 and got["ids"] == 640, got
    assert got["agg_docs"] == 640, got
    assert outage_lines <= 12, log.read_text()[-3000:]


def test_poison_documents_are_dead_lettered_the_rest_stored(
        kafka_settings: KafkaSettings, store_settings: ClickHouseSettings,
        tmp_path: Path) -> None:
    small = kafka_settings.model_copy(update={"max_message_bytes": 128 * 1024})
    settings: Settings = prepare_pipeline(small, store_settings)
    config = write_config(settings, tmp_path / "finsentry.toml")
    good = make_documents(300, "poison")
    long_text = "é" * 70_000  # 140 kB: stored whole, published cut to fit 128 kB
    good[10] = good[10].model_copy(update={"text": long_text})
    template = json.loads(good[0].to_json())
    poison = {
        f"year {y}": json.dumps({**template, "id": f"poison-date-{y}",
                                 "published_at": f"{y:04d}-06-01T00:00:00Z"}).encode()
        for y in (1, 1900, 2200, 9999)
    }
    poison["3 MB metadata"] = json.dumps({**template, "id": "poison-metadata",
                                          "metadata": {"blob": "m" * (3 * 1024 * 1024)}}).encode()
    values = [d.to_json() for d in good[:150]] + list(poison.values()) + \
        [d.to_json() for d in good[150:]]
    produce(settings.kafka, values, keys=[b"one-partition"] * len(values))
    log = tmp_path / "worker.log"
    started = time.monotonic()
    rc = _wait_rc(start_worker(config, "--expect", str(len(values)), "--max-seconds", "300",
                               log=log), log, 400)
    assert rc == 0, log.read_text()[-3000:]
    letters = consume_all(settings.kafka, settings.kafka.dead_letter_topic, len(poison))
    got = _stored(settings)
    _figures(f"poison-documents[{'server' if store_settings.host else 'chdb'}]",
             lost=300 - _n(got, "ids"), duplicated=_n(got, "n") - _n(got, "ids"),
             dead_lettered=len(letters), seconds=round(time.monotonic() - started, 1))
    assert len(letters) == len(poison)
    reasons = [env["reason"] for env in letters]
    assert all("published_at" in r and "range" in r for r in reasons[:4]), reasons
    assert "metadata" in reasons[4] and "bytes" in reasons[4], reasons[4]
    assert got["n"] == 300 and got["ids"] == 300, got
    scored = consume_all(settings.kafka, settings.kafka.scored_topic, 300)
    assert len(scored) == 300
    cut = [s for s in scored if s["document"]["id"] == good[10].id]
    assert len(cut) == 1 and "finsentry_cut" in cut[0]["document"]["metadata"]
    with open_store(settings.clickhouse) as store:
        rows = store.query("SELECT length(text) AS n FROM scored_documents FINAL "
                           "WHERE run_id = %(run)s AND doc_id = %(id)s",
                           {"run": settings.worker.run_id, "id": good[10].id})
    assert rows[0]["n"] == len(long_text.encode()), "the store keeps the whole text"


def test_broker_restart_worker_reconnects(store_settings: ClickHouseSettings,
                                          tmp_path: Path) -> None:
    """The broker stops for 10 s mid-stream and comes back (same port, data kept)."""
    from finsentry.broker import EmbeddedBroker

    broker = EmbeddedBroker(tmp_path / "kafka").start()
    proc = None
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, raw_topic="bounce.raw",
                              scored_topic="bounce.scored", dead_letter_topic="bounce.dlq")
        settings = prepare_pipeline(kafka, store_settings, batch_size=32)
        config = write_config(settings, tmp_path / "finsentry.toml")
        docs = make_documents(600, "bounce")
        produce(settings.kafka, (d.to_json() for d in docs[:300]),
                keys=(d.id.encode() for d in docs[:300]))
        log = tmp_path / "worker.log"
        # idle exit, not --expect: re-deliveries after the restart count as messages too
        proc = start_worker(config, "--idle-exit", "20", "--max-seconds", "400", log=log)
        deadline = time.monotonic() + 300
        while committed_offsets(settings) < 64:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.2)
        broker.stop()
        time.sleep(10)
        broker.start()
        back = time.monotonic()
        produce(settings.kafka, (d.to_json() for d in docs[300:]),
                keys=(d.id.encode() for d in docs[300:]))
        rc = _wait_rc(proc, log, 400)
        assert rc == 0, log.read_text()[-3000:]
        recovered = time.monotonic() - back - 20  # minus the idle exit
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        broker.stop()
    got = _stored(settings)
    _figures(f"broker-restart[{'server' if store_settings.host else 'chdb'}]",
             lost=600 - _n(got, "ids"), duplicated=_n(got, "n") - _n(got, "ids"),
             dead_lettered=0, drained_after_restart_s=round(recovered, 1))
    assert got["n"] == 600 and got["ids"] == 600, got


def _crawler_state(state_dir: Path) -> dict[str, int]:
    """What `finsentry ingest run` last wrote to its metrics.json: admitted and buffered."""
    try:
        snap = json.loads((state_dir / "metrics.json").read_text())
    except (OSError, ValueError):  # not written yet, or replaced right now
        return {"new": 0, "buffered": -1}
    return {"new": sum(int(s["new"]) for s in snap["sources"]), "buffered": int(snap["buffered"])}


def _raw_end(settings: Settings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers)
    try:
        tps = [TopicPartition(settings.kafka.raw_topic, p)
               for p in range(settings.kafka.partitions)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


@pytest.mark.parametrize("store_settings", ["chdb"], indirect=True)
def test_broker_restart_crawler_buffers_worker_reconnects(
        store_settings: ClickHouseSettings, tmp_path: Path) -> None:
    """A real crawler (`finsentry ingest run`) and worker run while the broker is down 15 s.

    The feed gains 100 items before, 150 during and 50 after the outage: the crawler keeps the
    150 in its disk buffer, sends them once the broker is back, and all 300 are stored once."""
    from finsentry.broker import EmbeddedBroker

    broker = EmbeddedBroker(tmp_path / "kafka").start()
    feed = FixtureServer()
    route = feed.add("/wire.rss", Route(content_type="application/rss+xml"))
    crawler = worker = None
    running: list[tuple[subprocess.Popen[bytes], Path]] = []
    state_dir = tmp_path / "ingest"
    wlog, clog = tmp_path / "worker.log", tmp_path / "ingest.log"

    def publish(n: int) -> None:
        route.body = feed_items(n)

    def wait(what: str, ok: Callable[[], bool], timeout: float = 120) -> float:
        start = time.monotonic()
        while not ok():
            for proc, log in running:
                assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() - start < timeout, f"{what}: {_crawler_state(state_dir)}"
            time.sleep(0.2)
        return time.monotonic() - start

    try:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, raw_topic="crawl.raw",
                              scored_topic="crawl.scored", dead_letter_topic="crawl.dlq")
        settings = prepare_pipeline(kafka, store_settings, batch_size=32)
        config = write_config(settings, tmp_path / "finsentry.toml")
        publish(100)
        worker = start_worker(config, "--max-seconds", "400", log=wlog)
        crawl_config = write_config(with_crawler(settings, feed.url("/wire.rss"), state_dir),
                                    tmp_path / "ingest.toml")
        crawler = start_crawler(crawl_config, log=clog)
        running += [(worker, wlog), (crawler, clog)]
        wait("first 100 sent", lambda: _crawler_state(state_dir) == {"new": 100, "buffered": 0})
        wait("worker storing", lambda: committed_offsets(settings) >= 64, 300)

        broker.stop()
        down_at = time.monotonic()
        for n in range(110, 251, 10):  # new items appear while the broker is down
            publish(n)
            time.sleep(0.5)
        wait("outage items crawled", lambda: _crawler_state(state_dir)["new"] == 250, 60)
        buffered = _crawler_state(state_dir)["buffered"]
        assert buffered >= 150, _crawler_state(state_dir)
        time.sleep(max(0.0, 15 - (time.monotonic() - down_at)))

        broker.start()
        back = time.monotonic()
        publish(300)
        drained = wait("buffer drained", lambda: _crawler_state(state_dir) == {
            "new": 300, "buffered": 0})
        running.pop()
        crawler.send_signal(signal.SIGTERM)
        assert _wait_rc(crawler, clog, 60) == 0, clog.read_text()[-3000:]
        raw = _raw_end(settings)
        wait("worker caught up", lambda: committed_offsets(settings) >= raw, 300)
        recovered = time.monotonic() - back
        worker.send_signal(signal.SIGTERM)
        assert _wait_rc(worker, wlog, 60) == 0, wlog.read_text()[-3000:]
        messages = consume_all(settings.kafka, settings.kafka.raw_topic, raw)
    finally:
        for proc in (crawler, worker):
            if proc is not None and proc.poll() is None:
                proc.kill()
        feed.close()
        broker.stop()
    got = _stored(settings)
    raw_ids = {m["id"] for m in messages}
    _figures("broker-restart-with-crawler[chdb]", lost=300 - _n(got, "ids"),
             duplicated=_n(got, "n") - _n(got, "ids"), dead_lettered=0,
             buffered_during_outage=buffered, raw_messages=len(messages),
             raw_distinct=len(raw_ids), crawler_drained_s=round(drained, 1),
             all_stored_after_restart_s=round(recovered, 1))
    assert len(raw_ids) == 300, "the crawler lost or never sent documents"
    assert got["n"] == 300 and got["ids"] == 300, got
