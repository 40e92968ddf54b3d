"""Topic creation against the real broker: explicit partitions, idempotent, mismatch named."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from finsentry.cli import cli
from finsentry.config import KafkaSettings
from finsentry.errors import KafkaAdminError
from finsentry.kafka_admin import ensure_topics, existing_partitions


def test_topics_create_is_idempotent(kafka_settings: KafkaSettings,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_KAFKA__BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("FINSENTRY_KAFKA__RAW_TOPIC", kafka_settings.raw_topic)
    monkeypatch.setenv("FINSENTRY_KAFKA__SCORED_TOPIC", kafka_settings.scored_topic)
    monkeypatch.setenv("FINSENTRY_KAFKA__DEAD_LETTER_TOPIC", kafka_settings.dead_letter_topic)
    first = CliRunner().invoke(cli, ["topics", "create", "--partitions", "3"])
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == 3
    second = CliRunner().invoke(cli, ["topics", "create", "--partitions", "3"])
    assert second.exit_code == 0 and second.output.count("exists") == 3
    counts = existing_partitions(kafka_settings, [kafka_settings.raw_topic,
                                                  kafka_settings.dead_letter_topic])
    assert counts == {kafka_settings.raw_topic: 3, kafka_settings.dead_letter_topic: 1}


def test_partition_mismatch_names_the_topic(kafka_settings: KafkaSettings) -> None:
    ensure_topics(kafka_settings)
    other = kafka_settings.model_copy(update={"partitions": 8})
    with pytest.raises(KafkaAdminError, match=kafka_settings.raw_topic):
        ensure_topics(other)
