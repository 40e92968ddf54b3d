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


def broker_message_limit(settings: KafkaSettings) -> int | None:
    """The broker's limit on one message for the scored and dead-letter topics, if it says.

    Read with DescribeConfigs: the topic's `max.message.bytes`, else the broker's
    `message.max.bytes`. Brokers that report neither (noida-db answers with no entries) give None.
    """
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = _admin(settings)
    try:
        limits: list[int] = []
        for topic in (settings.scored_topic, settings.dead_letter_topic):
            res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            value = _config_value(res, "max.message.bytes")
            if value is not None:
                limits.append(value)
        if not limits:
            for node in admin.describe_cluster().get("brokers", [])[:1]:
                broker_id = str(node.get("node_id", node.get("nodeId", "")))
                res = admin.describe_configs(
                    [ConfigResource(ConfigResourceType.BROKER, broker_id)])
                value = _config_value(res, "message.max.bytes")
                if value is not None:
                    limits.append(value)
        return min(limits) if limits else None
    except Exception as exc:  # noqa: BLE001 - brokers that cannot say fall back to the setting
        log.info("could not read the broker's message size limit: %r", exc)
        return None
    finally:
        admin.close()


def _config_value(found: object, key: str) -> int | None:
    """Find `key` anywhere in a describe_configs answer (its shape varies by client version)."""
    if isinstance(found, dict):
        for k, v in found.items():
            if k == key:
                raw = v.get("value") if isinstance(v, dict) else v
                return int(str(raw)) if raw is not None and str(raw).isdigit() else None
            inner = _config_value(v, key)
            if inner is not None:
                return inner
    if isinstance(found, list | tuple):
        for item in found:
            inner = _config_value(item, key)
            if inner is not None:
                return inner
    return None


def check_message_limit(settings: KafkaSettings) -> int | None:
    """Refuse to start when kafka.max_message_bytes exceeds what the broker accepts."""
    limit = broker_message_limit(settings)
    if limit is None:
        log.info("broker %s did not report its message size limit; producing at most "
                 "kafka.max_message_bytes=%d bytes per message", settings.bootstrap_servers,
                 settings.max_message_bytes)
        return None
    if settings.max_message_bytes > limit:
        raise KafkaAdminError(
            f"kafka.max_message_bytes={settings.max_message_bytes} exceeds the broker's limit "
            f"of {limit} bytes at {settings.bootstrap_servers}; lower it or raise the topic's "
            f"max.message.bytes")
    return limit
