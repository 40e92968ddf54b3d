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


def test_message_limit_is_read_or_falls_back(kafka_settings: KafkaSettings) -> None:
    """noida-db reports no limit (DescribeConfigs answers with no entries): the setting is used;
    a broker limit below the setting is refused at start-up."""
    from finsentry.kafka_admin import _config_value, check_message_limit

    ensure_topics(kafka_settings)
    assert check_message_limit(kafka_settings) is None
    answer = {"topic": {"t.scored": {"max.message.bytes": {"value": "524288"}}}}
    assert _config_value(answer, "max.message.bytes") == 524288
    assert _config_value([{"configs": {"message.max.bytes": "1048588"}}],
                         "message.max.bytes") == 1048588


def test_setting_above_the_broker_limit_is_refused(kafka_settings: KafkaSettings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # noida-db cannot report a limit, so the broker's answer is stood in for here
    import finsentry.kafka_admin as admin

    monkeypatch.setattr(admin, "broker_message_limit", lambda settings: 500_000)
    with pytest.raises(KafkaAdminError, match=r"kafka.max_message_bytes=1000000 exceeds .*500000"):
        admin.check_message_limit(kafka_settings)
    assert admin.check_message_limit(kafka_settings.model_copy(
        update={"max_message_bytes": 400_000})) == 500_000
