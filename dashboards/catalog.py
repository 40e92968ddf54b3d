"""The dashboards finsentry ships (a new one = one module + one line here)."""

from __future__ import annotations

from finsentry.dashboards.alerts import ALERTS
from finsentry.dashboards.health import HEALTH
from finsentry.dashboards.market import MARKET_MOOD
from finsentry.dashboards.spec import Dashboard
from finsentry.dashboards.ticker import TICKER

DASHBOARDS: tuple[Dashboard, ...] = (MARKET_MOOD, TICKER, ALERTS, HEALTH)
