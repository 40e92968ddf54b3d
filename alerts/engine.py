"""One evaluation cycle: pending retries, rules -> matches, the alerts table, notifiers.

State lives in the ClickHouse `alerts` table (ReplacingMergeTree(version), read with FINAL), so it
survives restarts: a match whose deterministic alert_id is already stored is a duplicate (re-runs
never write it twice); a match whose rule+scope already alerted for a window ending within
`realert_minutes` is suppressed (not stored, not sent); a stored alert stays `notified = 0` until
every notifier succeeded, and each cycle first retries those (never dropped). Realert compares
window ends, not wall clock, so backtests at an `as_of` behave like the live run did.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from finsentry.alerts.base import SCOPE_KEYS, Match, Rule, fetch_examples, window_end_for
from finsentry.alerts.notify import Notifier
from finsentry.alerts.registry import NOTIFIERS, build_rule
from finsentry.errors import AlertError

if TYPE_CHECKING:
    from finsentry.config import AlertSettings
    from finsentry.store import Store

log = logging.getLogger("finsentry.alerts")
TABLE = "alerts"
PENDING_LIMIT = 100  # oldest first; the rest wait for the next cycle

Status = Literal["new", "duplicate", "suppressed"]


@dataclass
class Outcome:
    match: Match
    status: Status
    notified: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class CycleReport:
    run_id: str
    as_of: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    retried: int = 0  # earlier alerts whose notification was retried
    retried_ok: int = 0

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def sent(self) -> int:
        return sum(1 for o in self.outcomes if o.notified) + self.retried_ok

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "new" and not o.notified) + \
            self.retried - self.retried_ok


def _version(previous: int = 0) -> int:
    return max(time.time_ns() // 1000, previous + 1)


def _scope_of(row: dict[str, Any]) -> dict[str, str]:
    return {k: str(row[k]) for k in SCOPE_KEYS if row.get(k)}


class AlertEngine:
    """Rules of `settings` over the rows of `run_id` in `store`."""

    def __init__(self, settings: AlertSettings, store: Store, run_id: str,
                 notifiers: dict[str, Notifier] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.run_id = run_id
        self.rules: list[Rule] = [build_rule(spec) for spec in settings.rules if spec.enabled]
        self._notifiers: dict[str, Notifier] = dict(notifiers or {})

    # -- notifiers -------------------------------------------------------------------------------
    def notifier_names(self, rule: str) -> list[str]:
        for r in self.rules:
            if r.name == rule and r.spec.notifiers is not None:
                return list(r.spec.notifiers)
        return list(self.settings.notifiers)

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
    def evaluate(self, as_of: datetime | None = None) -> list[Outcome]:
        """Matches of every rule, classified new / duplicate / suppressed; writes nothing."""
        as_of = as_of or datetime.now(UTC)
        outcomes: list[Outcome] = []
        for rule in self.rules:
            try:
                matches = rule.evaluate(self.store, self.run_id, as_of, self.settings.examples)
            except AlertError:
                raise
            except Exception as exc:
                raise AlertError(f"rule {rule.name}: evaluation failed: {exc}") from exc
            outcomes.extend(self._classify(rule, matches, window_end_for(as_of)))
        return outcomes

    def _classify(self, rule: Rule, matches: list[Match], end: datetime) -> list[Outcome]:
        if not matches:
            return []
        realert = timedelta(minutes=rule.spec.realert_minutes)
        rows = self.store.query(
            f"SELECT alert_id, ticker, topic, source, window_end FROM {TABLE} FINAL "
            "WHERE run_id = %(run_id)s AND rule = %(rule)s AND (alert_id IN %(ids)s OR "
            "(window_end > toDateTime(%(since)s, 'UTC') AND window_end <= toDateTime(%(end)s, "
            "'UTC')))",
            {"run_id": self.run_id, "rule": rule.name, "ids": tuple(m.alert_id for m in matches),
             "since": end - realert, "end": end})
        stored = {str(r["alert_id"]) for r in rows}
        outcomes = []
        for m in matches:
            if m.alert_id in stored:
                status: Status = "duplicate"
            elif realert and any(_scope_of(r) == m.scope and end - realert < r["window_end"] <= end
                                 for r in rows):
                status = "suppressed"
            else:
                status = "new"
            outcomes.append(Outcome(m, status))
        return outcomes

    # -- one cycle -------------------------------------------------------------------------------
    def cycle(self, as_of: datetime | None = None) -> CycleReport:
        """Retry pending notifications, then evaluate, store and notify new matches."""
        as_of = as_of or datetime.now(UTC)
        report = CycleReport(self.run_id, as_of)
        for row in self._pending():
            match = Match.from_row(row)
            match.examples = fetch_examples(self.store, self.run_id, match,
                                            self.settings.examples)
            report.retried += 1
            report.retried_ok += self._notify(match, row, [])
        report.outcomes = self.evaluate(as_of)
        for outcome in report.outcomes:
            if outcome.status != "new":
                log.info("%s %s", outcome.status, outcome.match.summary)
                continue
            row = outcome.match.to_row(self.run_id, _version())
            self.store.insert(TABLE, [row])
            outcome.notified = self._notify(outcome.match, row, outcome.errors)
        return report

    def _pending(self) -> list[dict[str, Any]]:
        return self.store.query(
            f"SELECT * FROM {TABLE} FINAL WHERE run_id = %(run_id)s AND notified = 0 "
            "ORDER BY fired_at, alert_id LIMIT %(limit)s",
            {"run_id": self.run_id, "limit": PENDING_LIMIT})

    def _notify(self, match: Match, row: dict[str, Any], errors: list[str]) -> bool:
        """Send through each notifier not yet done; store the outcome as a new row version."""
        try:
            status: dict[str, str] = json.loads(str(row.get("notify_status") or "{}"))
        except ValueError:
            status = {}
        names = self.notifier_names(match.rule)
        for name in names:
            if status.get(name) == "ok":
                continue
            try:
                self.notifier(name).send(match)
                status[name] = "ok"
            except Exception as exc:  # one broken notifier must not stop the others
                message = str(exc) if isinstance(exc, AlertError) else \
                    f"rule {match.rule}: notifier {name} failed: {exc!r}"
                log.warning("alert %s not delivered (retried next cycle): %s",
                            match.alert_id, message)
                status[name] = f"error: {message}"[:500]
                errors.append(message)
        done = all(status.get(n) == "ok" for n in names)
        updated = {**row, "notified": int(done), "notify_status": json.dumps(status),
                   "version": _version(int(row["version"]))}
        self.store.insert(TABLE, [updated])
        return done
