"""How a worker stops without losing or committing what it has not stored.

A stop (SIGTERM, SIGINT, a StopPolicy reason) first stops the agent taking new batches; the
batch in flight may finish (then it is acked and committed) within `worker.shutdown_grace_s`;
after that `abort` is set, every retry loop (store and broker) ends at its next wait, and the
batch is abandoned unacked, so the consumer never commits its offsets and a restart re-delivers
it. A second signal aborts at once. A fatal error (a bug, a dead consumer coordinator) stops the
worker the same way and makes the process exit non-zero so its supervisor restarts it.

The blocking half of a batch runs on a daemon thread (`DaemonExecutor`): an abandoned retry
must never keep the interpreter from exiting (ThreadPoolExecutor joins its threads at exit).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Lifecycle:
    """Stop requests, the grace period and the abort flag, shared by the loop and the thread."""

    def __init__(self, grace_s: float, abort: threading.Event | None = None) -> None:
        self.grace_s = grace_s
        self.abort = abort if abort is not None else threading.Event()
        self.stop_reason: str | None = None
        self.fatal: str | None = None
        self.in_flight = 0
        self._requested_at: float | None = None
        self.abandoned = 0  # batches left unacked at shutdown

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self._requested_at = time.monotonic()
            log.warning("worker stopping: %s (in-flight batch gets %.0fs to finish)", reason,
                        self.grace_s)
        elif not self.abort.is_set() and reason.startswith("second"):
            log.warning("worker stopping now: %s; the in-flight batch is abandoned", reason)
            self.abort.set()

    def fail(self, reason: str) -> None:
        """A fatal condition: stop now, exit non-zero, commit nothing more."""
        if self.fatal is None:
            self.fatal = reason
            log.error("worker failed: %s", reason)
        self.request_stop(f"fatal: {reason}")
        self.abort.set()

    def ready_to_stop(self) -> bool:
        """True once nothing is in flight, or the grace period is over (then abort)."""
        if self._requested_at is None:
            return False
        if self.in_flight == 0:
            return True
        if time.monotonic() - self._requested_at >= self.grace_s:
            if not self.abort.is_set():
                log.warning("grace period of %.0fs over: abandoning the in-flight batch "
                            "(not committed; it is re-delivered after a restart)", self.grace_s)
                self.abort.set()
            return True
        return False


class DaemonExecutor(Executor):
    """One daemon thread running submitted calls in order (see the module docstring)."""

    def __init__(self, name: str = "finsentry-score") -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._shutdown = False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._shutdown:
            raise RuntimeError("executor is shut down")
        future: Future[T] = Future()
        self._queue.put((future, lambda: fn(*args, **kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False,
                 timeout: float | None = None) -> None:
        """Stop after the current call; wait at most `timeout` seconds for it (None = forever)."""
        self._shutdown = True
        self._queue.put(None)
        if wait:
            self._thread.join(timeout)

    @property
    def busy(self) -> bool:
        return self._thread.is_alive()
