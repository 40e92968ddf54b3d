"""The webhook notifier's three shapes against a real local HTTP server: finsentry's own JSON,
Slack incoming-webhook (text + blocks, crawled text cannot forge links or mentions) and
Alertmanager v4 (also end to end, with retries, in test_engine.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Literal

import pytest

from finsentry.alerts.base import AlertEvent
from finsentry.alerts.mail import subject_line
from finsentry.alerts.notify import Example, Notice
from finsentry.alerts.webhook import WebhookNotifier
from finsentry.config import AlertSettings
from finsentry.errors import AlertError

T = datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
EVIL = "<!channel> <https://evil.example|click> & more"


class _Sink(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Sink.received.append((self.path, body, dict(self.headers)))
        self.send_response(_Sink.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Sink)
    _Sink.received, _Sink.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def _notice(state: Literal["firing", "resolved"] = "firing") -> Notice:
    e = AlertEvent(rule="neg", alert_id="b" * 32, group_key="ticker=AAPL",
                   key={"ticker": "AAPL"}, state=state,
                   event_time=T, fired_time=T, metric="negative_share", value=0.47,
                   baseline=0.12, threshold=0.3, p_value=3e-7, doc_count=30,
                   window_minutes=15, severity="critical", kind="significance")
    return Notice(event=e, run_id="live", subject=subject_line(e),
                  dashboard_url="http://grafana.local/d/finsentry-ticker?var-ticker=AAPL",
                  examples=[Example(title=EVIL, url="https://news.example.com/1",
                                    source="wire", published_at=T, score=-0.9)])


def _send(url: str, fmt: str, notices: list[Notice]) -> dict[str, Any]:
    settings = AlertSettings(webhook_url=url, webhook_format=fmt, smtp_retry_attempts=1)
    WebhookNotifier(settings).send(notices, "<g1@finsentry>", [])
    ((path, body, headers),) = _Sink.received
    assert path == "/hook" and headers["X-Finsentry-Message-Id"] == "<g1@finsentry>"
    assert headers["Content-Type"] == "application/json"
    return body


def test_json_shape(hook: str) -> None:
    body = _send(hook, "json", [_notice()])
    assert body["message_id"] == "<g1@finsentry>"
    (alert,) = body["alerts"]
    assert (alert["rule"], alert["key"], alert["state"], alert["p_value"]) == \
        ("neg", {"ticker": "AAPL"}, "firing", 3e-7)
    assert alert["summary"] == "AAPL negative share 12% → 47%, p < 1e-6, 15 min"
    assert alert["examples"][0]["title"] == EVIL  # data, for the receiver to escape


def test_slack_shape_is_inert(hook: str) -> None:
    notice = _notice()
    notice.subject = f"AAPL {EVIL}"
    body = _send(hook, "slack", [notice, _notice("resolved")])
    assert set(body) == {"text", "blocks"}
    text = body["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; more" in text
    assert text.splitlines()[0].startswith("*FIRING* ") and "*RESOLVED* " in text
    first = body["blocks"][0]
    assert first["type"] == "section" and first["text"]["type"] == "mrkdwn"
    links = first["text"]["text"].split("<")[1:]
    assert links == ["http://grafana.local/d/finsentry-ticker?var-ticker=AAPL|Open the "
                     "dashboard>"]  # the only link is ours


def test_alertmanager_shape(hook: str) -> None:
    body = _send(hook, "alertmanager", [_notice(), _notice("resolved")])
    assert (body["version"], body["groupKey"], body["status"]) == ("4", "<g1@finsentry>",
                                                                   "firing")
    firing, resolved = body["alerts"]
    assert firing["labels"] == {"alertname": "neg", "severity": "critical", "ticker": "AAPL"}
    assert firing["startsAt"] == T.isoformat() and firing["endsAt"].startswith("0001-")
    assert resolved["status"] == "resolved" and resolved["endsAt"] == T.isoformat()


def test_http_error_names_the_rule_and_url(hook: str) -> None:
    _Sink.status = 404  # a client error: no point retrying within the cycle, queued
    with pytest.raises(AlertError, match=f"rule neg: webhook {hook} failed: HTTPStatusError"):
        WebhookNotifier(AlertSettings(webhook_url=hook, smtp_retry_attempts=1)).send(
            [_notice()], "<g1@finsentry>", [])
