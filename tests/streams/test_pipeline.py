"""End to end on real parts: noida-db broker, `finsentry worker` processes (Faust), the shipped
classifier, and ClickHouse — both the embedded chdb store and the 18.16 server (native protocol).

chdb allows one process per data path, so the test never opens the chdb store while a worker
process runs; two workers sharing one store need a server, so that test runs on the server only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from finsentry.broker import EmbeddedBroker
from finsentry.config import ClickHouseSettings, KafkaSettings, Settings
from finsentry.kafka_admin import end_offsets
from finsentry.store import open_store
from tests.streams.helpers import (
    consume_all,
    make_documents,
    prepare_pipeline,
    produce,
    start_worker,
    worker_messages,
    write_config,
)

WORKER_TIMEOUT = 420


def _prepare(kafka: KafkaSettings, ch: ClickHouseSettings, tmp_path: Path,
             **worker: object) -> tuple[Settings, Path]:
    settings = prepare_pipeline(kafka, ch, data_dir=str(tmp_path / "faust"), **worker)
    return settings, write_config(settings, tmp_path / "finsentry.toml")


def _stored(settings: Settings) -> dict[str, object]:
    store = open_store(settings.clickhouse)
    try:
        run = {"run": settings.worker.run_id}
        final = store.query(
            "SELECT count() AS n, uniqExact(doc_id) AS ids, "
            "countIf(abs(p_negative + p_neutral + p_positive - 1) < 0.01) AS probs_ok, "
            "countIf(sentiment IN ('negative', 'neutral', 'positive')) AS labelled, "
            "countIf(abs(score - (p_positive - p_negative)) < 0.001) AS score_ok, "
            "countIf(topic != '') AS topics "
            "FROM scored_documents FINAL WHERE run_id = %(run)s", run)[0]
        agg = store.query("SELECT sum(docs) AS docs FROM sentiment_minute "
                          "WHERE run_id = %(run)s AND ticker != ''", run)[0]
        return {**final, "agg_docs": agg["docs"]}
    finally:
        store.close()


def committed_offsets(settings: Settings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers,
                             group_id=settings.worker.app_id, enable_auto_commit=False)
    try:
        tps = [TopicPartition(settings.kafka.raw_topic, p)
               for p in range(settings.kafka.partitions)]
        return sum(consumer.committed(tp) or 0 for tp in tps)
    finally:
        consumer.close()


def _wait(proc: subprocess.Popen[bytes], log: Path) -> None:
    try:
        rc = proc.wait(WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"worker did not finish:\n{log.read_text()[-3000:]}") from None
    assert rc == 0, log.read_text()[-3000:]


def test_2000_documents_stored_exactly_once(kafka_settings: KafkaSettings,
                                            store_settings: ClickHouseSettings,
                                            tmp_path: Path) -> None:
    settings, config = _prepare(kafka_settings, store_settings, tmp_path)
    docs = make_documents(2000, "basic")
    produce(settings.kafka, (d.to_json() for d in docs),
            keys=(d.primary_ticker.encode() for d in docs))
    log = tmp_path / "worker.log"
    _wait(start_worker(config, "--expect", "2000", "--max-seconds", "400", log=log), log)

    got = _stored(settings)
    assert got == {"n": 2000, "ids": 2000, "probs_ok": 2000, "labelled": 2000,
                   "score_ok": 2000, "topics": 2000, "agg_docs": 2000}
    scored = consume_all(settings.kafka, settings.kafka.scored_topic, 2000)
    assert {s["document"]["id"] for s in scored} == {d.id for d in docs}
    # a backlog: classified batches that follow each other shared inserts (streams/grouping)
    store = open_store(settings.clickhouse)
    try:
        batches = store.query("SELECT count() AS n, sum(stored) AS stored, "
                              "sum(inserts) AS inserts, sum(rows_per_insert) AS rows "
                              "FROM worker_batches WHERE run_id = %(run)s",
                              {"run": settings.worker.run_id})[0]
    finally:
        store.close()
    assert batches["stored"] == batches["rows"] == 2000
    assert batches["n"] >= 2000 / settings.worker.batch_size
    assert batches["rows"] / batches["inserts"] > settings.worker.batch_size, batches
    # Faust's folder is under worker.data_dir, not <app_id>-data in the working directory
    assert (tmp_path / "faust" / settings.worker.app_id / "v1").is_dir()
    assert not Path(f"{settings.worker.app_id}-data").exists()


def test_worker_killed_midstream_loses_nothing(store_settings: ClickHouseSettings,
                                               tmp_path: Path) -> None:
    # A private broker: noida-db 0.2.3 never expires the session of a SIGKILLed group member
    # (a Kafka coordinator does after session.timeout.ms), so the zombie stays group leader and
    # a restarted worker never gets partitions. Restarting the broker (data dir and committed
    # offsets persist) is how this test makes the coordinator forget the dead member.
    broker = EmbeddedBroker(tmp_path / "kafka").start()
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, raw_topic="kill.raw",
                              scored_topic="kill.scored", dead_letter_topic="kill.dlq")
        _killed_and_restarted(kafka, store_settings, tmp_path, broker)
    finally:
        broker.stop()


def _killed_and_restarted(kafka: KafkaSettings, store_settings: ClickHouseSettings,
                          tmp_path: Path, broker: EmbeddedBroker) -> None:
    # small batches so the kill lands between committed and uncommitted batches
    settings, config = _prepare(kafka, store_settings, tmp_path, batch_size=32,
                                commit_interval_s=0.5)
    docs = make_documents(2000, "kill")
    produce(settings.kafka, (d.to_json() for d in docs),
            keys=(d.primary_ticker.encode() for d in docs))
    log = tmp_path / "worker.log"
    proc = start_worker(config, "--max-seconds", "400", log=log)
    deadline = time.monotonic() + WORKER_TIMEOUT
    # kill once the group has committed some offsets (Faust commits every few seconds), so the
    # restart must resume from them and re-deliver what was processed but not yet committed
    while committed_offsets(settings) < 300:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "worker made no progress"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    killed_at = sum(end_offsets(settings.kafka, settings.kafka.scored_topic).values())
    assert killed_at < 2000, "the kill came too late to test anything"
    broker.stop()
    broker.start()

    log2 = tmp_path / "worker2.log"
    _wait(start_worker(config, "--idle-exit", "20", "--max-seconds", "400", log=log2), log2)
    resumed = worker_messages(log2)
    assert resumed < 2000, f"restart re-read everything ({resumed}): offsets were not committed"
    got = _stored(settings)
    assert got["n"] == 2000 and got["ids"] == 2000, got
    assert got["agg_docs"] == 2000, f"rollup and stored documents disagree after the restart: {got}"


@pytest.mark.parametrize("store_settings", ["server"], indirect=True)
def test_two_workers_share_partitions(kafka_settings: KafkaSettings,
                                      store_settings: ClickHouseSettings,
                                      tmp_path: Path) -> None:
    settings, config = _prepare(kafka_settings, store_settings, tmp_path)
    docs = make_documents(2000, "pair")
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    procs = [start_worker(config, "--idle-exit", "25", "--max-seconds", "400", log=lg)
             for lg in logs]
    time.sleep(12)  # both join the group before data arrives, so both get partitions
    produce(settings.kafka, (d.to_json() for d in docs), keys=(d.id.encode() for d in docs))
    for proc, lg in zip(procs, logs, strict=True):
        _wait(proc, lg)
    per_worker = [worker_messages(lg) for lg in logs]
    assert all(n > 0 for n in per_worker), per_worker
    assert sum(per_worker) >= 2000
    got = _stored(settings)
    assert got["n"] == 2000 and got["ids"] == 2000, got


def test_malformed_messages_are_dead_lettered(kafka_settings: KafkaSettings,
                                              store_settings: ClickHouseSettings,
                                              tmp_path: Path) -> None:
    settings, config = _prepare(kafka_settings, store_settings, tmp_path)
    good = make_documents(40, "dlq")
    template = json.loads(good[0].to_json())
    bad = {
        "not json": b"{this is not json",
        "wrong schema": json.dumps({**template, "id": "wrong-schema-1", "surprise": 1}).encode(),
        "empty text": json.dumps({**template, "id": "empty-text-01", "text": "   "}).encode(),
        "5 MB text": json.dumps({**template, "id": "huge-text-001",
                                 "text": "x" * (5 * 1024 * 1024)}).encode(),
        "invalid UTF-8": b'{"id": "bad-utf8-0001", "text": "\xff\xfe broken"}',
    }
    values = [d.to_json() for d in good[:20]] + list(bad.values()) + \
        [d.to_json() for d in good[20:]]
    produce(settings.kafka, values, keys=[b"same-partition"] * len(values))
    log = tmp_path / "worker.log"
    _wait(start_worker(config, "--expect", str(len(values)), "--max-seconds", "300", log=log),
          log)

    letters = consume_all(settings.kafka, settings.kafka.dead_letter_topic, len(bad))
    assert len(letters) == len(bad)
    reasons = [env["reason"] for env in letters]
    assert "JSON" in reasons[0] or "json" in reasons[0]
    assert "surprise" in reasons[1]
    assert "text" in reasons[2] and "empty" in reasons[2]
    assert "text" in reasons[3] and "100000" in reasons[3]
    assert "UTF-8" in reasons[4]
    assert letters[3]["payload_truncated"] and letters[3]["payload_bytes"] > 5_000_000
    assert letters[4]["payload_base64"]
    assert all(env["topic"] == settings.kafka.raw_topic for env in letters)
    got = _stored(settings)
    assert got["n"] == 40 and got["ids"] == 40
