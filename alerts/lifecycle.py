"""Alertmanager-style lifecycle per key: pending -> firing -> resolved, with `for` and realert.

State is plain data (JSON in the `alert_state` table), so a live cycle continues exactly where the
previous one stopped, across restarts, and `advance` over a long range equals advancing minute by
minute. Only the runs of minutes where the condition holds are visited (sparse), never every
key-minute.

* `for` = N: the condition must hold N consecutive evaluated minutes; the alert fires at the Nth.
* An episode ends at the first minute the condition no longer holds: `resolved` event (only for
  an episode that fired).
* realert: an episode starting less than realert minutes after the key's last alert is
  suppressed (tracked, never emitted); with `realert_exponential` each suppression doubles the
  interval up to realert_max_minutes, and it resets after a quiet 2 x interval.
* keep_firing_minutes: a condition that stops holding for fewer minutes than this does not end
  the episode (noisy evidence does not flap an ongoing incident).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class KeyState:
    pending: int = 0  # consecutive held minutes not yet fired (only while < for)
    firing: bool = False  # inside an episode that reached `for`
    suppressed: bool = False  # ... whose alert realert suppressed
    fired_minute: int | None = None  # epoch minute the current/last emitted alert fired
    last_fire: int | None = None  # epoch minute of the key's last emitted alert
    mult: float = 1.0  # exponential realert multiplier
    last_held: int | None = None  # epoch minute the condition last held (keep_firing)

    def idle(self) -> bool:
        return not self.pending and not self.firing


@dataclass
class RuleState:
    """Where a rule's evaluation stands for one run: `through` = first minute not evaluated."""

    through: int | None = None
    spec_hash: str = ""
    keys: dict[str, KeyState] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        keys = {k: asdict(v) for k, v in self.keys.items() if not _forgettable(v)}
        return {"through": self.through, "spec_hash": self.spec_hash, "keys": keys}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleState:
        return cls(through=data.get("through"), spec_hash=str(data.get("spec_hash", "")),
                   keys={k: KeyState(**v) for k, v in dict(data.get("keys", {})).items()})


def _forgettable(s: KeyState) -> bool:
    return s.idle() and s.last_fire is None and s.mult == 1.0 and s.last_held is None


@dataclass(frozen=True)
class Transition:
    state: str  # "firing" | "resolved"
    index: int  # position in the evaluated minutes
    fired_minute: int


@dataclass(frozen=True)
class Lifecycle:
    for_evaluations: int
    realert_minutes: float
    exponential: bool = False
    realert_max_minutes: float = 1440.0
    keep_firing_minutes: int = 0

    def _runs(self, held: np.ndarray, first_minute: int,
              st: KeyState) -> tuple[np.ndarray, np.ndarray]:
        """[start, end) of each run of minutes where the condition counts as holding: where it
        holds, and up to keep_firing minutes after it last held (also before this range)."""
        n = len(held)
        true_idx = np.flatnonzero(held)
        breaks = np.flatnonzero(np.diff(true_idx) > 1)
        starts = np.concatenate((true_idx[:1], true_idx[breaks + 1]))
        ends = np.concatenate((true_idx[breaks], true_idx[-1:])) + 1
        keep = self.keep_firing_minutes
        if not keep:
            return starts, ends
        ends = np.minimum(ends + keep, n)
        if st.last_held is not None:
            tail = min(n, st.last_held - first_minute + keep + 1)
            if tail > 0:
                starts, ends = np.append(0, starts), np.append(tail, ends)
        if true_idx.size:
            st.last_held = first_minute + int(true_idx[-1])
        elif st.last_held is not None and first_minute + n - st.last_held > keep:
            st.last_held = None
        if len(starts) > 1:  # merge runs the extension made touch
            reach = np.maximum.accumulate(ends)
            new = np.concatenate(([True], starts[1:] > reach[:-1]))
            last = np.append(np.flatnonzero(new)[1:] - 1, len(ends) - 1)
            starts, ends = starts[new], reach[last]
        return starts, ends

    def advance(self, held: np.ndarray, first_minute: int, st: KeyState) -> list[Transition]:
        """Consume one key's conditions for minutes first_minute.. ; mutate `st`; transitions."""
        n = len(held)
        out: list[Transition] = []
        starts, ends = self._runs(held, first_minute, st)
        if not starts.size:
            if not st.idle() and n:
                self._close(st, 0, first_minute, out)
            return out
        pos = 0
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            if a > pos:
                self._close(st, pos, first_minute, out)
            pos = b
            if st.firing:
                continue  # the episode goes on
            need = self.for_evaluations - st.pending
            if b - a < need:
                st.pending += b - a
                continue
            f = a + need - 1
            st.pending = 0
            st.firing = True
            self._fire(st, f, first_minute + f, out)
        if pos < n:
            self._close(st, pos, first_minute, out)
        return out

    def _interval(self, st: KeyState) -> float:
        return min(self.realert_minutes * st.mult, max(self.realert_max_minutes,
                                                      self.realert_minutes))

    def _fire(self, st: KeyState, index: int, minute: int, out: list[Transition]) -> None:
        interval = self._interval(st)
        if st.last_fire is not None and interval > 0 and minute - st.last_fire < interval:
            st.suppressed = True
            if self.exponential:
                st.mult *= 2
            return
        if self.exponential and st.last_fire is not None and \
                minute - st.last_fire >= 2 * interval:
            st.mult = 1.0
        st.suppressed = False
        st.fired_minute = st.last_fire = minute
        out.append(Transition("firing", index, minute))

    def _close(self, st: KeyState, index: int, first_minute: int,
               out: list[Transition]) -> None:
        if st.firing and not st.suppressed and st.fired_minute is not None:
            out.append(Transition("resolved", index, st.fired_minute))
        st.pending, st.firing, st.suppressed = 0, False, False
