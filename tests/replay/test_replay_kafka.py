"""Replay from Kafka by timestamp (real noida-db broker, chdb store): start offsets, event-time
order on the run's own topic, pacing, and the live topics untouched."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from finsentry.config import ClickHouseSettings, KafkaSettings
from finsentry.kafka_admin import end_offsets, ensure_topics, existing_partitions
from finsentry.records import ScoredDocument
from finsentry.replay.runner import Replayer, ReplayPlan, delete_replay_topic, replay_topic
from finsentry.replay.sources import start_offsets
from finsentry.store import Store, migrate, open_store
from finsentry.store.runs import drop_run
from tests.replay.helpers import minute_aggregates, scored_stream, settings_for

LAG = timedelta(seconds=30)  # documents reach Kafka half a minute after they are published
# Recent event times: a broker's time-based retention deletes messages stamped long ago.
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)


@pytest.fixture
def chdb_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(ClickHouseSettings(chdb_path=tmp_path / "chdb")) as store:
        migrate(store)
        yield store


def _produce(kafka: KafkaSettings, docs: list[ScoredDocument]) -> None:
    """Publish in arrival order (not event order), message time = published_at + LAG."""
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    arrival = sorted(docs, key=lambda d: (d.document.published_at, d.document.id))
    arrival = arrival[1::2] + arrival[::2]  # out of event order, as partitions interleave
    for d in sorted(arrival, key=lambda d: d.document.published_at):
        ts = int((d.document.published_at + LAG).timestamp() * 1000)
        producer.send(kafka.scored_topic, key=d.document.tickers[0].symbol.encode(),
                      value=d.to_json(), timestamp_ms=ts)
    producer.flush()
    producer.close()


def _read_topic(kafka: KafkaSettings, topic: str) -> list[tuple[int, ScoredDocument]]:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers,
                             consumer_timeout_ms=3000, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, 0)])
    out = [(m.timestamp, ScoredDocument.model_validate_json(m.value)) for m in consumer]
    consumer.close()
    return out


def test_start_offsets_follow_message_timestamps(kafka_settings: KafkaSettings,
                                                 chdb_store: Store) -> None:
    ensure_topics(kafka_settings)
    docs = scored_stream(80, minutes=40, start=T0)
    _produce(kafka_settings, docs)
    cut = T0 + timedelta(minutes=20)
    offsets = start_offsets(kafka_settings, kafka_settings.scored_topic, cut)
    consumer = KafkaConsumer(bootstrap_servers=kafka_settings.bootstrap_servers,
                             consumer_timeout_ms=3000, auto_offset_reset="earliest")
    parts = [TopicPartition(kafka_settings.scored_topic, p) for p in sorted(offsets)]
    consumer.assign(parts)
    first_at_or_after: dict[int, int] = {}
    for m in consumer:
        if m.timestamp >= cut.timestamp() * 1000:
            first_at_or_after.setdefault(m.partition, m.offset)
    consumer.close()
    assert {p: o for p, o in offsets.items() if o is not None} == first_at_or_after
    assert any(o and o > 0 for o in offsets.values())  # really seeks, not from the start

    # The replay from `cut` holds exactly the documents published in [cut, end).
    end = T0 + timedelta(minutes=40)
    settings = settings_for(chdb_store, kafka=kafka_settings.model_dump(),
                            replay={"publish": False, "kafka_lateness_s": 120})
    result = Replayer(settings, chdb_store, ReplayPlan("k-1", "kafka", cut, end),
                      progress=False).run()
    expected = [d for d in docs if cut <= d.document.published_at < end]
    assert result.read == result.stored == len(expected)


def test_kafka_replay_orders_by_event_time_paces_and_isolates(kafka_settings: KafkaSettings,
                                                              chdb_store: Store) -> None:
    ensure_topics(kafka_settings)
    docs = scored_stream(60, minutes=20, start=T0)
    _produce(kafka_settings, docs)
    raw_before = end_offsets(kafka_settings, kafka_settings.raw_topic)
    settings = settings_for(chdb_store, kafka=kafka_settings.model_dump(),
                            replay={"batch_size": 8, "kafka_lateness_s": 120})
    speed = 1200.0  # 20 minutes of event time in about one second
    began = time.monotonic()
    result = Replayer(settings, chdb_store,
                      ReplayPlan("k-2", "kafka", T0, T0 + timedelta(minutes=20), speed=speed),
                      progress=False).run()
    wall = time.monotonic() - began

    assert result.read == result.stored == result.published == 60
    # pacing: a batch is never released before its event time / speed; overall roughly paced
    for wall_s, event_s in result.pacing:
        assert wall_s >= event_s / speed - 0.01
    span = (result.pacing[-1][1]) / speed
    assert wall >= 0.9 * span and span > 0.5
    # the run's own topic holds the documents in event-time order under the replay's run id
    topic = replay_topic(settings.replay.topic_prefix, "k-2")
    published = _read_topic(kafka_settings, topic)
    times = [d.document.published_at for _, d in published]
    assert times == sorted(times) and len(published) == 60
    assert {d.run_id for _, d in published} == {"k-2"}
    assert [ts for ts, _ in published] == sorted(ts for ts, _ in published)
    # live consumers read the raw topic: untouched; live rows: none written
    assert end_offsets(kafka_settings, kafka_settings.raw_topic) == raw_before
    assert minute_aggregates(chdb_store, "live") == []
    assert json.loads(published[0][1].to_json())["document"]["id"] in {d.document.id
                                                                      for d in docs}
    # `runs drop` removes the run's rows and its topic
    assert drop_run(chdb_store, "k-2")["scored_documents"] == 60
    assert delete_replay_topic(settings, "k-2") == topic
    assert topic not in existing_partitions(kafka_settings, [topic])
