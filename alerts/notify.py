"""The notifier seam: what a notifier receives (Notice) and the `log` notifier.

A notifier gets the alerts of one evaluation round that share notifier and recipients (one
email / one webhook call), with a Message-ID that stays the same on every re-send of that group,
so a receiver can recognise a duplicate. It raises AlertError (naming the rule) when delivery
failed after its own retries; the engine keeps the delivery queued and retries with backoff.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from finsentry.alerts.base import AlertEvent
from finsentry.sanitize import inert

if TYPE_CHECKING:
    from finsentry.config import AlertSettings

log = logging.getLogger("finsentry.alerts")


@dataclass(frozen=True)
class Example:
    """One stored document behind an alert (untrusted text: escape before display)."""

    title: str
    url: str
    source: str
    published_at: datetime
    score: float


@dataclass
class Notice:
    """One alert event to deliver, with its evidence."""

    event: AlertEvent
    run_id: str
    subject: str
    examples: list[Example] = field(default_factory=list)
    chart_png: bytes | None = None
    dashboard_url: str = ""


class Notifier(ABC):
    name: str

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings

    @abstractmethod
    def send(self, notices: list[Notice], message_id: str, recipients: list[str]) -> None:
        """Deliver one group of alerts; raise AlertError naming the rule on failure."""


class LogNotifier(Notifier):
    """Writes each alert to the log (always works; handy for ops and tests)."""

    name = "log"

    def send(self, notices: list[Notice], message_id: str, recipients: list[str]) -> None:
        for n in notices:
            log.warning("ALERT %s %s (%s, id %s)", n.event.state, inert(n.subject),
                        n.event.severity, n.event.alert_id)
