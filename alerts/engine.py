"""The live cycle: evaluate the minutes closed since the last cycle, store, notify.

Per rule: load its state for this run (alert_state), `run_range` over the closed minutes not yet
evaluated (a minute counts as closed `allowed_lateness_s` after it ends, so late documents still
count and live equals history), write each new alert row BEFORE any delivery, queue one delivery
per notifier, save the state. Then deliver what is due, grouped per notifier and recipients
(one email for the alerts of one round), each group with a Message-ID that stays the same on
every re-send. A delivery is recorded `sending` before the attempt and `sent` right after the
peer accepted, before anything else can fail; a `sending` row found later (the process died in
between) is re-sent with the same Message-ID. Failed deliveries stay queued with backoff.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from finsentry.alerts import state as db
from finsentry.alerts.base import AlertEvent, Rule, epoch_minute, minute_dt
from finsentry.alerts.evaluate import run_range, spec_hash
from finsentry.alerts.evidence import notice_for
from finsentry.alerts.lifecycle import RuleState
from finsentry.alerts.mail import subject_line
from finsentry.alerts.notify import Notice, Notifier
from finsentry.alerts.registry import NOTIFIERS, build_rule
from finsentry.alerts.rulefiles import load_rules
from finsentry.errors import AlertError
from finsentry.sanitize import inert

if TYPE_CHECKING:
    from finsentry.config import AlertSettings
    from finsentry.store import Store

log = logging.getLogger("finsentry.alerts")


@dataclass
class RuleReport:
    rule: str
    keys: int = 0
    events: list[AlertEvent] = field(default_factory=list)
    silenced: int = 0
    notified: int = 0
    failed: int = 0
    seconds: float = 0.0

    def count(self, state: str) -> int:
        return sum(1 for e in self.events if e.state == state)


@dataclass
class CycleReport:
    run_id: str
    now: datetime
    through: datetime | None = None
    rules: list[RuleReport] = field(default_factory=list)
    sent: int = 0  # deliveries that succeeded this cycle
    failed: int = 0  # deliveries that failed this cycle (queued for retry)
    errors: list[str] = field(default_factory=list)

    @property
    def events(self) -> list[AlertEvent]:
        return [e for r in self.rules for e in r.events]

    def line(self) -> str:
        fired = sum(r.count("firing") for r in self.rules)
        resolved = sum(r.count("resolved") for r in self.rules)
        through = f" through {self.through:%Y-%m-%d %H:%M}" if self.through else ""
        return (f"cycle run {self.run_id}{through}: {fired} fired, {resolved} resolved, "
                f"{sum(r.silenced for r in self.rules)} silenced, {self.sent} sent, "
                f"{self.failed} failed (retried with backoff)")


def _message_id(key: str) -> str:
    return f"<{key}@finsentry>"


class AlertEngine:
    """Rules of `settings` over the rows of `run_id` in `store`."""

    def __init__(self, settings: AlertSettings, store: Store, run_id: str,
                 notifiers: dict[str, Notifier] | None = None,
                 service_id: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self.run_id = run_id
        self.rules: list[Rule] = [build_rule(s) for s in load_rules(settings) if s.enabled]
        self._by_name = {r.name: r for r in self.rules}
        self._notifiers: dict[str, Notifier] = dict(notifiers or {})
        self.service_id = service_id or f"{socket.gethostname()}:{os.getpid()}"
        self._unrecorded: list[dict[str, Any]] = []  # sent, but the store write failed

    # -- notifiers -------------------------------------------------------------------------------
    def notifier_names(self, rule: str) -> list[str]:
        r = self._by_name.get(rule)
        if r is not None and r.spec.notifiers is not None:
            return list(r.spec.notifiers)
        return list(self.settings.notifiers)

    def recipients(self, rule: str) -> list[str]:
        r = self._by_name.get(rule)
        return list(r.spec.mail_to) if r is not None and r.spec.mail_to else \
            list(self.settings.mail_to)

    def notifier(self, name: str) -> Notifier:
        if name not in self._notifiers:
            if name not in NOTIFIERS:
                raise AlertError(f"unknown notifier {name!r}; known: {sorted(NOTIFIERS)}")
            self._notifiers[name] = NOTIFIERS[name](self.settings)
        return self._notifiers[name]

    def check_notifiers(self) -> None:
        """Build every notifier the rules use now, so a bad setup fails at start, not at 3 am."""
        for rule in self.rules:
            for name in self.notifier_names(rule.name):
                try:
                    self.notifier(name)
                except AlertError as exc:
                    raise AlertError(f"rule {rule.name}: {exc}") from exc

    # -- evaluation ------------------------------------------------------------------------------
    def closed_through(self, now: datetime) -> int:
        """First epoch minute NOT yet closed at `now` (minutes before it may be evaluated)."""
        return epoch_minute(now - timedelta(seconds=self.settings.allowed_lateness_s))

    def evaluate(self, rule: Rule, now: datetime) -> tuple[list[AlertEvent], RuleState, int]:
        """Events since the rule's stored state up to the closed minutes; writes nothing."""
        end = self.closed_through(now)
        stored = db.load_state(self.store, self.run_id, rule.name)
        if stored is None or stored.spec_hash != spec_hash(rule) or stored.through is None:
            stored = RuleState(through=end - 1, spec_hash=spec_hash(rule))
        start = max(int(stored.through or end - 1), end - self.settings.max_catchup_minutes)
        result = run_range(self.store, rule, self.run_id, minute_dt(start), minute_dt(end),
                           state=stored)
        return result.events, result.state, result.keys

    # -- one cycle -------------------------------------------------------------------------------
    def cycle(self, now: datetime | None = None, *, notify: bool = True) -> CycleReport:
        """Evaluate every rule, store new alerts, queue and send their deliveries."""
        now = now or datetime.now(UTC)
        report = CycleReport(self.run_id, now, minute_dt(self.closed_through(now) - 1))
        self._flush_unrecorded()
        active = db.silences(self.store, active_at=now)
        queued: dict[tuple[str, str], list[tuple[AlertEvent, dict[str, Any]]]] = \
            defaultdict(list)
        for rule in self.rules:
            t0 = time.monotonic()
            rr = RuleReport(rule.name)
            try:
                events, new_state, rr.keys = self.evaluate(rule, now)
            except Exception as exc:  # one broken rule must not stop the others
                message = str(exc) if isinstance(exc, AlertError) else \
                    f"rule {rule.name}: evaluation failed: {exc!r}"
                log.error("%s", inert(message))
                report.errors.append(message)
                continue
            rr.events = events
            for event, row, silenced in self._store_events(events, active, now):
                if silenced:
                    rr.silenced += 1
                    continue
                if event.state == "resolved" and not rule.spec.notify_resolved:
                    continue
                for name in self.notifier_names(rule.name):
                    recipients = ",".join(self.recipients(rule.name)) if name == "email" else ""
                    queued[(name, recipients)].append((event, row))
            db.save_state(self.store, self.run_id, rule.name, new_state)
            rr.seconds = time.monotonic() - t0
            report.rules.append(rr)
        self._queue(queued)
        if notify:
            self.deliver(now, report)
        db.record_cycles(self.store, [{
            "run_id": self.run_id, "cycle_at": now, "rule": r.rule, "keys": r.keys,
            "fired": r.count("firing"), "resolved": r.count("resolved"), "notified": r.notified,
            "failed": r.failed, "seconds": r.seconds, "service_id": self.service_id}
            for r in report.rules])
        return report

    def _store_events(self, events: list[AlertEvent], active: list[db.Silence],
                      now: datetime) -> list[tuple[AlertEvent, dict[str, Any], bool]]:
        """Alert rows for new events (idempotent: a re-evaluated event changes nothing);
        with whether a silence holds the event back (a silenced alert's resolution too)."""
        stored = db.alerts_by_id(self.store, self.run_id, [e.alert_id for e in events])
        out = []
        for e in events:
            row = stored.get(e.alert_id)
            silenced = any(s.matches(e.rule, e.group_key, now) for s in active)
            if e.state == "firing":
                if row is not None:
                    continue  # already stored (a cycle re-evaluated after a crash)
                row = db.alert_row(self.run_id, e, subject_line(e), silenced)
                self.store.insert("alerts", [row])
            else:
                if row is None:
                    row = db.alert_row(self.run_id, e, subject_line(e), False)
                elif row["state"] == "resolved":
                    continue
                silenced = silenced or bool(row["silenced"])
                row = db.update_alert(self.store, row, state="resolved",
                                      resolved_at=e.event_time)
            stored[e.alert_id] = row
            out.append((e, row, silenced))
        return out

    def _queue(self, queued: dict[tuple[str, str], list[tuple[AlertEvent, dict[str, Any]]]],
               ) -> None:
        """One delivery row per event and notifier; one Message-ID per group of this round."""
        ids = [e.alert_id for items in queued.values() for e, _ in items]
        have = db.existing_deliveries(self.store, self.run_id, ids)
        rows = []
        for (name, recipients), items in queued.items():
            fresh = [(e, r) for e, r in items if (e.alert_id, e.state, name) not in have]
            if not fresh:
                continue
            if len(fresh) == 1:
                key = f"{fresh[0][0].alert_id}.{fresh[0][0].state}"
            else:
                basis = "|".join(sorted(f"{e.alert_id}.{e.state}" for e, _ in fresh))
                key = "g" + hashlib.sha256(f"{name}|{basis}".encode()).hexdigest()[:31]
            for e, _ in fresh:
                rows.append({"run_id": self.run_id, "alert_id": e.alert_id, "event": e.state,
                             "notifier": name, "recipients": recipients,
                             "message_id": _message_id(key), "status": "pending",
                             "attempts": 0, "last_error": "", "next_attempt_at": db.EPOCH,
                             "updated_at": datetime.now(UTC), "version": db.version()})
        if rows:
            self.store.insert("alert_deliveries", rows)

    # -- delivery --------------------------------------------------------------------------------
    def deliver(self, now: datetime, report: CycleReport) -> None:
        """Send every due delivery, one call per Message-ID group."""
        due = db.due_deliveries(self.store, self.run_id, now)
        done = {(r["alert_id"], r["event"], r["notifier"]) for r in self._unrecorded}
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for d in due:
            if (d["alert_id"], d["event"], d["notifier"]) not in done:
                groups[(str(d["notifier"]), str(d["message_id"]))].append(d)
        if not groups:
            return
        alerts = db.alerts_by_id(self.store, self.run_id,
                                 sorted({str(d["alert_id"]) for d in due}))
        by_rule = {r.rule: r for r in report.rules}
        for (name, message_id), rows in groups.items():
            rows = [d for d in rows if str(d["alert_id"]) in alerts]
            if not rows:
                continue
            notices = [self._notice(alerts[str(d["alert_id"])], str(d["event"])) for d in rows]
            recipients = [r for r in str(rows[0]["recipients"]).split(",") if r]
            db.write_deliveries(self.store, rows, status="sending")
            rows = [{**d, "version": db.version(int(d["version"]))} for d in rows]
            try:
                self.notifier(name).send(notices, message_id, recipients)
            except Exception as exc:  # one broken notifier must not stop the others
                message = str(exc) if isinstance(exc, AlertError) else \
                    f"rule {notices[0].event.rule}: notifier {name} failed: {exc!r}"
                log.warning("delivery %s not done (queued for retry): %s", message_id,
                            inert(message, 500))
                report.failed += len(rows)
                report.errors.append(message)
                for d in rows:
                    attempts = int(d["attempts"]) + 1
                    wait = min(self.settings.retry_backoff_s * 2 ** (attempts - 1), 3600.0)
                    db.write_deliveries(self.store, [d], status="failed", attempts=attempts,
                                        last_error=message[:500],
                                        next_attempt_at=now + timedelta(seconds=wait))
                    self._count(by_rule, notices[0].event.rule, failed=1)
                continue
            sent = [{**d, "status": "sent", "attempts": int(d["attempts"]) + 1,
                     "last_error": ""} for d in rows]
            self._record_sent(sent)
            report.sent += len(rows)
            for n in notices:
                self._count(by_rule, n.event.rule, notified=1)
        self._mark_notified(sorted(alerts))

    def _notice(self, row: dict[str, Any], event: str) -> Notice:
        rule = self._by_name.get(str(row["rule"]))
        return notice_for(self.store, self.settings, self.run_id, row, event, rule)

    @staticmethod
    def _count(by_rule: dict[str, RuleReport], rule: str, **add: int) -> None:
        r = by_rule.get(rule)
        if r is not None:
            for k, v in add.items():
                setattr(r, k, getattr(r, k) + v)

    def _record_sent(self, rows: list[dict[str, Any]]) -> None:
        """First thing after the peer accepted; kept in memory (never re-sent by this process)
        until the store takes it."""
        try:
            db.write_deliveries(self.store, rows)
        except Exception as exc:
            log.warning("delivery sent but not recorded (kept, recorded later): %s",
                        inert(str(exc), 300))
            self._unrecorded.extend(rows)

    def _flush_unrecorded(self) -> None:
        if self._unrecorded:
            db.write_deliveries(self.store, self._unrecorded)
            self._unrecorded = []

    def _mark_notified(self, ids: list[str]) -> None:
        """alerts.notified = 1 once every delivery of the alert's firing event was sent."""
        deliveries = db.deliveries_of(self.store, self.run_id, ids)
        pending = {str(d["alert_id"]) for d in deliveries if d["status"] != "sent"}
        sent = {str(d["alert_id"]) for d in deliveries if d["status"] == "sent"}
        rows = db.alerts_by_id(self.store, self.run_id, sorted(sent - pending))
        for row in rows.values():
            if not row["notified"]:
                status = {str(d["notifier"]): str(d["status"]) for d in deliveries
                          if d["alert_id"] == row["alert_id"]}
                db.update_alert(self.store, row, notified=1,
                                notify_status=_json(status))


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)
