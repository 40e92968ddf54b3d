"""The notifier seam: base class and the `log` notifier (registry: finsentry.alerts.registry).

A notifier raises AlertError (naming the rule) when a delivery failed after its own retries; the
engine then leaves the alert un-notified so the next cycle tries again.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from finsentry.alerts.base import Match

if TYPE_CHECKING:
    from finsentry.config import AlertSettings

log = logging.getLogger("finsentry.alerts")


class Notifier(ABC):
    name: str

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings

    @abstractmethod
    def send(self, match: Match) -> None:
        """Deliver one alert; raise AlertError naming the rule on failure."""


class LogNotifier(Notifier):
    """Writes the alert to the log (always works; handy for ops and tests)."""

    name = "log"

    def send(self, match: Match) -> None:
        log.warning("ALERT %s (%s, id %s)", match.summary, match.severity, match.alert_id)
