"""Grafana's ClickHouse user (deploy/clickhouse/users.d/grafana.xml) can SELECT and cannot
INSERT, DROP or CREATE, on Debian's ClickHouse 18.16 server.

The deployed file targets the compose image (current ClickHouse: `<clickhouse>` root and a
`GRANT SELECT ON finsentry.*` grant). 18.16 predates SQL grants, so the test loads the same
user, profile and password-from-environment into a private 18.16 server with the two
translations that version needs: the `<yandex>` root and `allow_databases` for the grant. The
read-only guarantee itself (the profile's `readonly`) is the deployed file's, unchanged.
"""

from __future__ import annotations

import copy
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - our own config file
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException

from finsentry.store import ScoredSink, migrate, open_store
from tests.dashboards.data import documents
from tests.fixtures.clickhouse import ClickHouseServer, ch_settings, free_port_pair

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_USERS = ROOT / "deploy" / "clickhouse" / "users.d" / "grafana.xml"
PASSWORD = f"pw-{uuid.uuid4().hex[:12]}"


def users_d_for_18_16(database: str) -> str:
    deployed = ET.parse(GRAFANA_USERS).getroot()  # noqa: S314
    root = ET.Element("yandex")
    for child in deployed:
        root.append(copy.deepcopy(child))
    user = root.find("users/grafana")
    assert user is not None
    grants = user.find("grants")
    assert grants is not None and [q.text for q in grants] == ["GRANT SELECT ON finsentry.*"]
    user.remove(grants)
    allow = ET.SubElement(user, "allow_databases")
    ET.SubElement(allow, "database").text = database
    networks = user.find("networks")
    assert networks is not None
    for ip in list(networks):
        networks.remove(ip)
    ET.SubElement(networks, "ip").text = "127.0.0.1"
    return ET.tostring(root, encoding="unicode")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    data_dir = tmp_path_factory.mktemp("clickhouse-ro")
    (data_dir / "users.d").mkdir()
    (data_dir / "users.d" / "grafana.xml").write_text(users_d_for_18_16("finsentry"),
                                                      encoding="utf-8")
    server = ClickHouseServer("127.0.0.1", free_port_pair(), data_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLICKHOUSE_GRAFANA_PASSWORD", PASSWORD)  # read by from_env at start
        server.start()
    try:
        with open_store(ch_settings(host=server.host, port=server.port, database="finsentry",
                                    retry_attempts=1)) as writer:
            migrate(writer)
            ScoredSink(writer).write(documents(20))
        yield server
    finally:
        server.stop()


def grafana(server: ClickHouseServer, password: str = PASSWORD) -> Client:
    return Client(host=server.host, port=server.port, user="grafana", password=password,
                  database="finsentry", connect_timeout=5)


def test_reads_the_dashboards_tables(server: ClickHouseServer) -> None:
    client = grafana(server)
    assert client.execute("SELECT count() FROM scored_documents")[0][0] == 21
    assert client.execute("SELECT sum(docs) FROM sentiment_rollup")[0][0] >= 21
    client.disconnect()


@pytest.mark.parametrize("statement", [
    "INSERT INTO ingest_runs (source) VALUES ('x')",
    "DROP TABLE scored_documents",
    "CREATE TABLE evil (x UInt8) ENGINE = Memory",
    "ALTER TABLE scored_documents DELETE WHERE 1",
])
def test_cannot_write_or_drop(server: ClickHouseServer, statement: str) -> None:
    client = grafana(server)
    with pytest.raises(ServerException) as refused:
        client.execute(statement)
    assert "readonly" in refused.value.message.lower() or refused.value.code == 164
    client.disconnect()
    writer = Client(host=server.host, port=server.port, database="finsentry")
    assert writer.execute("SELECT count() FROM scored_documents")[0][0] == 21  # intact
    writer.disconnect()


def test_other_databases_and_wrong_password_are_refused(server: ClickHouseServer) -> None:
    with pytest.raises(ServerException):
        grafana(server, "wrong").execute("SELECT 1")
    client = grafana(server)
    with pytest.raises(ServerException):
        client.execute("SELECT count() FROM default.nonexistent_or_not_allowed")
    client.disconnect()
