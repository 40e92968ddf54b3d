"""The empty-fetch backoff: empty fetches pause, fetches with records never do (no broker needed:
the wrapper is exercised on a stand-in for aiokafka's fetch coroutine; the bench measures the
idle CPU it saves against the real noida-db broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from finsentry.streams import fetch_backoff


def _sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    calls: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        calls.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(fetch_backoff.asyncio, "sleep", fake_sleep)
    return calls


@pytest.mark.parametrize("got_records", [False, True])
def test_only_empty_fetches_pause(monkeypatch: pytest.MonkeyPatch, got_records: bool) -> None:
    monkeypatch.setitem(fetch_backoff._STATE, "seconds", 0.05)
    sleeps = _sleeps(monkeypatch)

    async def fetch(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        return got_records

    wrapped = fetch_backoff.with_backoff(fetch)
    assert asyncio.run(wrapped(object(), None, 0, None)) is got_records
    if got_records:
        assert sleeps == []
    else:
        assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.05


def test_zero_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fetch_backoff._STATE, "seconds", 0.0)
    sleeps = _sleeps(monkeypatch)

    async def fetch(self: Any, *args: Any) -> bool:
        return False

    asyncio.run(fetch_backoff.with_backoff(fetch)(object(), None, 0, None))
    assert sleeps == []


def test_install_wraps_aiokafka_once() -> None:
    from aiokafka.consumer.fetcher import Fetcher

    assert fetch_backoff.install(0.05)
    first = Fetcher._proc_fetch_request
    assert fetch_backoff.install(0.02)
    assert Fetcher._proc_fetch_request is first  # not wrapped twice
    assert fetch_backoff._STATE["seconds"] == 0.02
    fetch_backoff.install(0.05)


def test_cancelled_pause_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka's Fetcher.close() cancels its fetch tasks and awaits them: a cancelled pause
    must end like a cancelled fetch does (return, no CancelledError), or shutdown logs a
    traceback."""
    monkeypatch.setitem(fetch_backoff._STATE, "seconds", 5.0)

    async def fetch(self: Any, *args: Any) -> bool:
        return False

    async def main() -> bool:
        task = asyncio.ensure_future(fetch_backoff.with_backoff(fetch)(object(), None, 0, None))
        await asyncio.sleep(0.01)
        task.cancel()
        return await task

    assert asyncio.run(main()) is False
