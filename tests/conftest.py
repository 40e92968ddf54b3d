"""Session fixtures start real services once (a Kafka-protocol broker, ClickHouse 18.16);
CI may start them itself and point the tests at them through FINSENTRY_TEST_* variables."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.clickhouse"]
