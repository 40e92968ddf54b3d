"""Back off after an empty fetch from a broker that answers at once (noida-db).

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` (hard-coded, no setting): a real
Kafka broker holds an empty fetch that long, so an idle consumer waits inside the broker. noida-db,
the embedded broker of the demo and tests, answers an empty fetch immediately, and aiokafka's
fetch routine then re-sends at once: an idle worker burned 85% of a core (py-spy: all in
`Fetcher._proc_fetch_request` -> `AIOKafkaClient.send`), taken from the classifier it shares
the machine with.

aiokafka has no knob for this, so this is the one documented patch: `Fetcher._proc_fetch_request`
is wrapped (once per process) so that a fetch that brought no records and came back sooner than
`worker.empty_fetch_backoff_s` waits out the rest before that broker is fetched again. A fetch
that brought records is never delayed, and a broker that honours fetch_max_wait_ms (Kafka) never
returns an empty fetch that fast, so production consumers behave as before. New data waits at
most the backoff (50 ms by default) longer to be fetched.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)
_MARK = "_finsentry_empty_fetch_backoff"
_STATE: dict[str, float] = {"seconds": 0.0}


def install(seconds: float) -> bool:
    """Set the backoff (0 disables it); returns False when aiokafka's fetcher has changed shape."""
    _STATE["seconds"] = max(0.0, seconds)
    try:
        from aiokafka.consumer.fetcher import Fetcher
    except ImportError:  # pragma: no cover - aiokafka comes with faust-streaming
        return False
    original = getattr(Fetcher, "_proc_fetch_request", None)
    if original is None or not asyncio.iscoroutinefunction(original):
        log.warning("aiokafka Fetcher._proc_fetch_request not found: empty-fetch backoff off")
        return False
    if getattr(original, _MARK, False):
        return True
    Fetcher._proc_fetch_request = with_backoff(original)
    return True


def with_backoff(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[bool]]:
    """`original` (a fetch that returns True when it brought records), pausing after empty ones."""

    @functools.wraps(original)
    async def proc_fetch_request(self: Any, *args: Any) -> bool:
        started = time.monotonic()
        got_records = bool(await original(self, *args))
        if not got_records:
            rest = _STATE["seconds"] - (time.monotonic() - started)
            if rest > 0:
                try:
                    await asyncio.sleep(rest)
                except asyncio.CancelledError:
                    # unassignment or close() cancels fetch tasks and awaits them: like the
                    # original on cancel, end quietly ("the result is no longer of interest")
                    return got_records
        return got_records

    setattr(proc_fetch_request, _MARK, True)
    return proc_fetch_request
