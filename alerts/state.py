"""What the alert engine keeps in ClickHouse (migrations 10-14), one function per read/write.

Tables: `alerts` (one row per alert, new version on notify/resolve), `alert_state` (per run and
rule: evaluated-through minute and each key's lifecycle, JSON), `alert_silences`,
`alert_deliveries` (per alert event and notifier), `alert_cycles` (one row per rule per cycle).
All ReplacingMergeTree tables are read with FINAL. Untrusted values only ever travel as bound
parameters or inserted values.
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from finsentry.alerts.base import AlertEvent
from finsentry.alerts.lifecycle import RuleState

if TYPE_CHECKING:
    from finsentry.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def version(previous: int = 0) -> int:
    """Row versions: wall-clock microseconds, always above the previous version."""
    return max(time.time_ns() // 1000, previous + 1)


def _finite(value: float, default: float = 0.0) -> float:
    return default if value is None or math.isnan(value) or math.isinf(value) else float(value)


# -- rule state ---------------------------------------------------------------------------------
def load_state(store: Store, run_id: str, rule: str) -> RuleState | None:
    rows = store.query("SELECT state FROM alert_state FINAL WHERE run_id = %(run)s AND "
                       "rule = %(rule)s", {"run": run_id, "rule": rule})
    return RuleState.from_json(json.loads(str(rows[0]["state"]))) if rows else None


def save_state(store: Store, run_id: str, rule: str, state: RuleState) -> None:
    through = datetime.fromtimestamp((state.through or 0) * 60, UTC)
    store.insert("alert_state", [{"run_id": run_id, "rule": rule, "through": through,
                                  "state": json.dumps(state.to_json()), "version": version()}])


def reset_state(store: Store, run_id: str) -> int:
    """Forget a run's rule state and alerts (a history run evaluated again from scratch)."""
    n = len(store.query("SELECT rule FROM alert_state FINAL WHERE run_id = %(run)s",
                        {"run": run_id}))
    for table in ("alert_state", "alerts", "alert_deliveries"):
        store.execute(f"ALTER TABLE {table} DELETE WHERE run_id = %(run)s", {"run": run_id})
    return n


# -- alerts -------------------------------------------------------------------------------------
def alert_row(run_id: str, e: AlertEvent, subject: str, silenced: bool) -> dict[str, Any]:
    return {
        "run_id": run_id, "alert_id": e.alert_id, "rule": e.rule, "group_key": e.group_key,
        "ticker": e.key.get("ticker", ""), "topic": e.key.get("topic", ""),
        "source": e.key.get("source", ""), "language": e.key.get("language", ""),
        "state": e.state, "kind": e.kind, "metric": e.metric, "event_time": e.fired_time,
        "fired_at": datetime.now(UTC),
        "resolved_at": e.event_time if e.state == "resolved" else EPOCH,
        "window_start": e.fired_time - timedelta(minutes=e.window_minutes - 1),
        "window_end": e.fired_time + timedelta(minutes=1),
        "value": _finite(e.value), "baseline": _finite(e.baseline),
        "threshold": _finite(e.threshold), "p_value": _finite(e.p_value, -1.0),
        "doc_count": int(e.doc_count), "severity": e.severity, "message": subject,
        "notified": 0, "notify_status": "{}", "silenced": int(silenced), "version": version(),
    }


def alerts_by_id(store: Store, run_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = store.query("SELECT * FROM alerts FINAL WHERE run_id = %(run)s AND alert_id IN "
                       "%(ids)s", {"run": run_id, "ids": tuple(ids)})
    return {str(r["alert_id"]): r for r in rows}


def list_alerts(store: Store, run_id: str, *, firing: bool = False,
                limit: int = 100) -> list[dict[str, Any]]:
    where = " AND state = 'firing'" if firing else ""
    return store.query(f"SELECT * FROM alerts FINAL WHERE run_id = %(run)s{where} "
                       "ORDER BY event_time DESC, alert_id LIMIT %(limit)s",
                       {"run": run_id, "limit": limit})


def update_alert(store: Store, row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    new = {**row, **changes, "version": version(int(row["version"]))}
    store.insert("alerts", [new])
    return new


# -- silences -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Silence:
    silence_id: str
    rule: str  # '' = any; shell-style pattern
    group_key: str  # '' = any; e.g. "ticker=AAPL" or "ticker=A*"
    until: datetime
    comment: str

    def matches(self, rule: str, group_key: str, at: datetime) -> bool:
        return at < self.until and (not self.rule or fnmatch.fnmatchcase(rule, self.rule)) \
            and (not self.group_key or fnmatch.fnmatchcase(group_key, self.group_key))


def add_silence(store: Store, rule: str, group_key: str, until: datetime, comment: str) -> str:
    silence_id = uuid.uuid4().hex[:12]
    store.insert("alert_silences", [{
        "silence_id": silence_id, "rule": rule, "group_key": group_key, "until": until,
        "comment": comment, "created_at": datetime.now(UTC), "removed": 0,
        "version": version()}])
    return silence_id


def silences(store: Store, *, active_at: datetime | None = None) -> list[Silence]:
    rows = store.query("SELECT * FROM alert_silences FINAL WHERE removed = 0 ORDER BY until")
    out = [Silence(str(r["silence_id"]), str(r["rule"]), str(r["group_key"]), r["until"],
                   str(r["comment"])) for r in rows]
    return [s for s in out if active_at is None or s.until > active_at]


def remove_silence(store: Store, silence_id: str) -> bool:
    rows = store.query("SELECT * FROM alert_silences FINAL WHERE silence_id = %(id)s",
                       {"id": silence_id})
    if not rows or rows[0]["removed"]:
        return False
    store.insert("alert_silences", [{**rows[0], "removed": 1,
                                     "version": version(int(rows[0]["version"]))}])
    return True


# -- deliveries ---------------------------------------------------------------------------------
def existing_deliveries(store: Store, run_id: str, ids: list[str]) -> set[tuple[str, str, str]]:
    if not ids:
        return set()
    rows = store.query("SELECT alert_id, event, notifier FROM alert_deliveries FINAL "
                       "WHERE run_id = %(run)s AND alert_id IN %(ids)s",
                       {"run": run_id, "ids": tuple(ids)})
    return {(str(r["alert_id"]), str(r["event"]), str(r["notifier"])) for r in rows}


def due_deliveries(store: Store, run_id: str, now: datetime,
                   limit: int = 500) -> list[dict[str, Any]]:
    return store.query(
        "SELECT * FROM alert_deliveries FINAL WHERE run_id = %(run)s AND status != 'sent' "
        "AND next_attempt_at <= toDateTime(%(now)s, 'UTC') ORDER BY updated_at, alert_id "
        "LIMIT %(limit)s", {"run": run_id, "now": now, "limit": limit})


def deliveries_of(store: Store, run_id: str, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return store.query("SELECT * FROM alert_deliveries FINAL WHERE run_id = %(run)s AND "
                       "alert_id IN %(ids)s", {"run": run_id, "ids": tuple(ids)})


def write_deliveries(store: Store, rows: list[dict[str, Any]], **changes: Any) -> None:
    if rows:
        now = datetime.now(UTC)
        store.insert("alert_deliveries", [
            {**r, **changes, "updated_at": now, "version": version(int(r["version"]))}
            for r in rows])


def record_cycles(store: Store, rows: list[dict[str, Any]]) -> None:
    if rows:
        store.insert("alert_cycles", rows)
