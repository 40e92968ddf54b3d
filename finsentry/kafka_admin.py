"""Topic administration: create the pipeline's topics with explicit partition counts.

Auto-created topics get one partition (and Faust then fails with PartitionsMismatch), so every
topic the pipeline uses is created here, idempotently, before producers or workers start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from finsentry.config import KafkaSettings
from finsentry.errors import KafkaAdminError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int


def pipeline_topics(settings: KafkaSettings) -> list[TopicSpec]:
    rf = settings.replication_factor
    return [
        TopicSpec(settings.raw_topic, settings.partitions, rf),
        TopicSpec(settings.scored_topic, settings.partitions, rf),
        TopicSpec(settings.dead_letter_topic, settings.dead_letter_partitions, rf),
    ]


def _admin(settings: KafkaSettings, retries_s: float = 20.0) -> KafkaAdminClient:
    try:
        for attempt in Retrying(stop=stop_after_delay(retries_s), wait=wait_fixed(0.5),
                                retry=retry_if_exception_type(KafkaError)):
            with attempt:
                return KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                        client_id="finsentry-admin",
                                        request_timeout_ms=int(settings.request_timeout_s * 1000))
    except RetryError:
        pass
    raise KafkaAdminError(f"no Kafka broker reachable at {settings.bootstrap_servers}")


def existing_partitions(settings: KafkaSettings, topics: Iterable[str]) -> dict[str, int]:
    """Partition count of each existing topic (absent topics are left out)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             client_id="finsentry-admin-meta")
    try:
        found = {}
        for topic in topics:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                found[topic] = len(parts)
        return found
    finally:
        consumer.close()


def ensure_topics(settings: KafkaSettings, extra: Iterable[TopicSpec] = ()) -> list[str]:
    """Create missing topics; return the names created. Existing topics with a different
    partition count are an error naming the topic (they are never silently re-partitioned)."""
    specs = pipeline_topics(settings) + list(extra)
    admin = _admin(settings)
    try:
        have = set(admin.list_topics())
        new = [NewTopic(s.name, s.partitions, s.replication_factor) for s in specs
               if s.name not in have]
        created: list[str] = []
        for topic in new:
            try:
                admin.create_topics([topic], validate_only=False)
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                raise KafkaAdminError(f"could not create topic {topic.name!r}: {exc}") from exc
    finally:
        admin.close()
    _wait_for_metadata(settings, specs)
    return created


def _wait_for_metadata(settings: KafkaSettings, specs: list[TopicSpec],
                       timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = existing_partitions(settings, [s.name for s in specs])
        wrong = [s for s in specs if counts.get(s.name) != s.partitions]
        if not wrong:
            return
        if time.monotonic() > deadline:
            detail = ", ".join(f"{s.name!r} has {counts.get(s.name, 0)} partitions, "
                               f"config says {s.partitions}" for s in wrong)
            raise KafkaAdminError(f"topic check failed: {detail}")
        time.sleep(0.3)


def end_offsets(settings: KafkaSettings, topic: str) -> dict[int, int]:
    """High-water mark per partition (used to know when a stream is drained)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
