"""Keep a rebalance from wedging a worker: two aiokafka fixes, applied once, here only.

1. An empty or undecodable member assignment in SyncGroup is legal Kafka (a member that joined
   after the leader computed the plan gets nothing), and the noida-db broker sends one. aiokafka
   0.14 decodes it unguarded (`ConsumerProtocol.ASSIGNMENT.decode` -> "unpack requires a buffer
   of 2 bytes"), its coordinator task dies and the worker hangs. Here such an assignment means
   "no partitions this generation" and the member asks to rejoin, so the next plan includes it.
2. After ILLEGAL_GENERATION aiokafka forgets its member id and rejoins as a new member, leaving
   the old id in the group until the broker expires it (noida-db never does), so the group waits
   on a ghost. Kafka's own client fixed this in KAFKA-13419: on ILLEGAL_GENERATION only the
   generation is reset, the member id is kept.

`coordinator_failure(app)` reports a coordinator task that died anyway; the worker then exits
non-zero so its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)
_PATCHED: dict[str, bool] = {}


def patch_aiokafka() -> None:
    """Install both fixes (idempotent)."""
    if _PATCHED.get("done"):
        return
    from aiokafka import errors as kerrors
    from aiokafka.consumer import group_coordinator as gc

    original_join = gc.GroupCoordinator._on_join_complete
    original_reset = gc.GroupCoordinator.reset_generation

    async def on_join_complete(self: Any, generation: int, member_id: str, protocol: str,
                               member_assignment_bytes: bytes) -> None:
        try:
            assignment = gc.ConsumerProtocol.ASSIGNMENT.decode(member_assignment_bytes)
            usable = bool(assignment.partitions()) or bool(assignment.user_data)
        except Exception:  # noqa: BLE001 - any undecodable assignment is "none"
            usable = False
        if not usable:
            log.warning("group %s generation %s: empty assignment (%d bytes) for member %s; "
                        "no partitions for now, asking to rejoin", self.group_id, generation,
                        len(member_assignment_bytes or b""), member_id)
            self._subscription.assign_from_subscribed(set())
            asyncio.get_running_loop().call_later(1.0, self.request_rejoin)
            return
        await original_join(self, generation, member_id, protocol, member_assignment_bytes)

    def reset_generation(self: Any) -> None:
        caller = sys._getframe(1).f_locals  # the response handler that saw the error
        if caller.get("error_type") is kerrors.IllegalGenerationError:
            log.warning("group %s: illegal generation; rejoining with member id %s kept "
                        "(KAFKA-13419)", self.group_id, self.member_id)
            self.generation = gc.OffsetCommitRequest.DEFAULT_GENERATION_ID
            self.request_rejoin()
            return
        original_reset(self)

    gc.GroupCoordinator._on_join_complete = on_join_complete
    gc.GroupCoordinator.reset_generation = reset_generation
    _PATCHED["done"] = True


def coordinator_failure(app: Any) -> str | None:
    """Why the Faust app's consumer-group coordinator task ended, if it did; else None."""
    try:
        consumer = app.consumer._thread._consumer
    except AttributeError:
        return None
    coordinator = getattr(consumer, "_coordinator", None)
    task = getattr(coordinator, "_coordination_task", None)
    if task is None or not task.done() or getattr(consumer, "_closed", False):
        return None
    if task.cancelled():
        return "consumer group coordinator was cancelled"
    exc = task.exception()
    return f"consumer group coordinator died: {exc!r}" if exc else \
        "consumer group coordinator stopped"
