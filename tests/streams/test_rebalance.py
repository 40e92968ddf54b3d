"""Rebalances never wedge a worker.

The unit tests drive aiokafka's own GroupCoordinator methods (as patched by
finsentry.streams.rebalance) on a minimal stand-in for the coordinator object: an empty SyncGroup
assignment from a broker cannot be produced on demand (noida-db sends one only under load). The
end-to-end test runs real workers joining and leaving a group during steady traffic.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import errors as kerrors
from aiokafka.consumer import group_coordinator as gc

from finsentry.config import ClickHouseSettings, KafkaSettings
from finsentry.streams.rebalance import patch_aiokafka
from tests.streams.helpers import (
    health_url,
    make_documents,
    prepare_pipeline,
    produce,
    start_worker,
    worker_messages,
    write_config,
)
from tests.streams.test_pipeline import _stored


class _Subscription:
    def __init__(self) -> None:
        self.assigned: set[Any] | None = None

    def assign_from_subscribed(self, partitions: set[Any]) -> None:
        self.assigned = set(partitions)


def _coordinator() -> Any:
    rejoin = threading.Event()
    return SimpleNamespace(group_id="g", member_id="member-1", generation=7,
                           _subscription=_Subscription(), request_rejoin=rejoin.set,
                           rejoined=rejoin)


@pytest.mark.parametrize("assignment", [b"", b"\x00", b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"])
def test_empty_or_undecodable_assignment_means_no_partitions(assignment: bytes) -> None:
    patch_aiokafka()
    coordinator = _coordinator()

    async def join() -> None:
        await gc.GroupCoordinator._on_join_complete(coordinator, 8, "member-1", "faust",
                                                    assignment)
        await asyncio.sleep(1.3)  # the rejoin is scheduled a second later

    asyncio.run(join())
    assert coordinator._subscription.assigned == set()
    assert coordinator.rejoined.is_set()


def test_illegal_generation_keeps_the_member_id() -> None:
    patch_aiokafka()
    coordinator = _coordinator()

    def commit_response_handler(error_type: type) -> None:  # the shape of aiokafka's handlers
        gc.GroupCoordinator.reset_generation(coordinator)

    commit_response_handler(kerrors.IllegalGenerationError)
    assert coordinator.member_id == "member-1"  # KAFKA-13419
    assert coordinator.generation == gc.OffsetCommitRequest.DEFAULT_GENERATION_ID
    assert coordinator.rejoined.is_set()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("store_settings", ["server"], indirect=True)
def test_worker_joining_and_leaving_during_traffic(kafka_settings: KafkaSettings,
                                                   store_settings: ClickHouseSettings,
                                                   tmp_path: Path) -> None:
    settings = prepare_pipeline(kafka_settings, store_settings, batch_size=16)
    config = write_config(settings, tmp_path / "finsentry.toml")
    docs = make_documents(1500, "rebalance")
    stop = threading.Event()

    def feed() -> None:  # steady traffic: 100 documents every 2 s
        for start in range(0, len(docs), 100):
            if stop.is_set():
                return
            chunk = docs[start:start + 100]
            produce(settings.kafka, (d.to_json() for d in chunk), keys=(d.id.encode()
                                                                        for d in chunk))
            time.sleep(2)

    feeder = threading.Thread(target=feed, daemon=True)
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    first = start_worker(config, "--idle-exit", "30", "--max-seconds", "500", log=logs[0])
    started = time.monotonic()
    try:
        feeder.start()
        time.sleep(12)
        second = start_worker(config, "--max-seconds", "500", log=logs[1])  # joins mid-stream
        health_url(logs[1])  # it loaded its model and is joining the group
        time.sleep(20)
        second.send_signal(signal.SIGTERM)  # and leaves
        assert second.wait(60) == 0, logs[1].read_text()[-3000:]
        feeder.join(120)
        assert first.wait(400) == 0, logs[0].read_text()[-3000:]
    finally:
        stop.set()
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
    got = _stored(settings)
    per_worker = [worker_messages(lg) for lg in logs]
    print(f"FIGURES rebalance: lost={1500 - int(str(got['ids']))}, "
          f"duplicated={int(str(got['n'])) - int(str(got['ids']))}, dead_lettered=0, "
          f"messages_per_worker={per_worker}, seconds={time.monotonic() - started:.0f}")
    assert got["n"] == 1500 and got["ids"] == 1500, got
