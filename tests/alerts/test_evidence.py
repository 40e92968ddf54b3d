"""The alert's Grafana link points at a dashboard finsentry ships, with variables it has (the
dashboards themselves are tested in tests/dashboards; Grafana itself cannot run here)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from finsentry.alerts.base import AlertEvent
from finsentry.alerts.evidence import dashboard_url
from finsentry.config import AlertSettings
from finsentry.dashboards.catalog import DASHBOARDS

T = datetime(2024, 5, 1, 11, 59, tzinfo=UTC)


def _event(key: dict[str, str]) -> AlertEvent:
    gk = ",".join(f"{k}={v}" for k, v in key.items())
    return AlertEvent(rule="neg", alert_id="a" * 32, group_key=gk, key=key, state="firing",
                      event_time=T, fired_time=T, metric="negative_share", value=0.5,
                      baseline=0.1, threshold=0.2, p_value=1e-7, doc_count=20,
                      window_minutes=15, severity="warning", kind="significance")


@pytest.mark.parametrize(("key", "uid"), [
    ({"ticker": "AAPL"}, "finsentry-ticker"),
    ({"ticker": "BRK.B", "topic": "m&a"}, "finsentry-ticker"),
    ({"source": "reuters"}, "finsentry-market"),
    ({}, "finsentry-market"),
])
def test_dashboard_link_names_a_shipped_dashboard(key: dict[str, str], uid: str) -> None:
    url = dashboard_url(AlertSettings(grafana_url="https://grafana.example.com/"),
                        _event(key), "replay-7")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "grafana.example.com",
                                                        f"/d/{uid}")
    (dash,) = [d for d in DASHBOARDS if d.uid == uid]
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    variables = {k.removeprefix("var-") for k in query if k.startswith("var-")}
    assert variables <= {v.name for v in dash.variables}
    assert query["var-run_id"] == "replay-7"
    assert all(query[f"var-{k}"] == v for k, v in key.items())  # round-trips, escaped
    lo, hi = int(query["from"]), int(query["to"])
    assert lo < T.timestamp() * 1000 < hi
