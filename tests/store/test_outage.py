"""Outages of a real clickhouse-server 18.16: writes are retried and land, none are lost.

Each test starts its own private server (never the shared session one), kills or delays it,
and brings it back from a timer thread while the write is retrying.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from finsentry.config import ClickHouseSettings
from finsentry.errors import StoreError
from finsentry.store import ScoredSink, migrate, open_store
from tests.fixtures.clickhouse import ClickHouseServer, ch_settings, free_port_pair
from tests.store.factories import scored

pytestmark = pytest.mark.timeout(120)


def _settings(port: int, attempts: int = 12) -> ClickHouseSettings:
    return ch_settings(host="127.0.0.1", port=port, database="outage",
                       retry_attempts=attempts, retry_max_wait_s=1.0, connect_timeout_s=1.0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ClickHouseServer]:
    srv = ClickHouseServer("127.0.0.1", free_port_pair(), tmp_path / "ch")
    try:
        yield srv
    finally:
        srv.stop()


def _start_later(server: ClickHouseServer, delay_s: float) -> threading.Thread:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.start()
        except BaseException as exc:  # surfaced by the test via .errors
            errors.append(exc)

    timer = threading.Timer(delay_s, run)
    timer.errors = errors  # type: ignore[attr-defined]
    timer.start()
    return timer


def test_server_killed_mid_run_then_restarted(server: ClickHouseServer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    server.start()
    with open_store(_settings(server.port)) as store:
        migrate(store)
        sink = ScoredSink(store)
        assert sink.write([scored(i) for i in range(5)]) == 5

        caplog.set_level(logging.WARNING, logger="finsentry.store.base")
        server.kill()  # crash: the open connection is now dead
        restart = _start_later(server, 1.5)
        try:
            written = sink.write([scored(i) for i in range(3, 9)])  # retried until it is back
        finally:
            restart.join(timeout=60)
        assert not restart.errors  # type: ignore[attr-defined]
        assert written == 4  # 3 and 4 were stored before the crash
        assert any("ScoredSink.write" in r.message and "retrying" in r.message
                   for r in caplog.records)  # the write really failed and was retried
        assert sink.count_documents("run-1") == 9
        rows = store.query("SELECT sum(docs) AS n FROM sentiment_minute WHERE run_id = 'run-1'")
        assert rows[0]["n"] == 9


def test_server_not_up_yet(server: ClickHouseServer) -> None:
    later = _start_later(server, 1.0)  # nothing listens on the port until then
    try:
        with open_store(_settings(server.port)) as store:
            migrate(store)  # connects, creating the database, once the server is up
            assert ScoredSink(store).write([scored(1), scored(2)]) == 2
            assert ScoredSink(store).count_documents("run-1") == 2
    finally:
        later.join(timeout=60)
    assert not later.errors  # type: ignore[attr-defined]


def test_gives_up_with_store_error_naming_the_write() -> None:
    with open_store(_settings(free_port_pair(), attempts=2)) as store:
        with pytest.raises(StoreError, match=r"ScoredSink.write of 1 documents \(run run-1\)"):
            ScoredSink(store).write([scored(1)])
