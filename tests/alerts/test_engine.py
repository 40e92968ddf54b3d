"""The alert engine end to end: real ClickHouse (chdb and the 18.16 server, via the parametrised
`store_settings` fixture), documents written through the real ScoredSink (so the rollup the
rules read is the materialized view's), a real SMTP server (aiosmtpd) and a real local HTTP
server for the webhook - nothing mocked."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from finsentry.alerts.engine import AlertEngine
from finsentry.alerts.state import add_silence
from finsentry.config import AlertSettings, ClickHouseSettings
from finsentry.store import ScoredSink, Store, migrate, open_store
from tests.alerts.conftest import (
    AS_OF,
    HOSTILE,
    SmtpServer,
    burst_docs,
    quiet_docs,
    scored,
    stream,
)

RULE = {"type": "significance", "name": "neg", "group_by": ["ticker"], "baseline_hours": 24,
        "warmup_minutes": 60, "history_minutes": 1440, "p_value": 1e-4, "realert_minutes": 360}
NOW = AS_OF + timedelta(seconds=61)  # minute 11:59 closed, lateness passed


def alert_settings(port: int, **extra: Any) -> AlertSettings:
    return AlertSettings.model_validate({
        "smtp_port": port, "mail_to": ["ops@example.com"], "notifiers": ["email"],
        "smtp_retry_attempts": 2, "smtp_retry_max_wait_s": 0.1, "smtp_timeout_s": 5,
        "retry_backoff_s": 30, "rules": [RULE], **extra})


@pytest.fixture
def db(store_settings: ClickHouseSettings) -> Iterator[Store]:
    with open_store(store_settings) as store:
        migrate(store)
        yield store


def part(msg: EmailMessage, subtype: str) -> str:
    body = msg.get_body((subtype,))
    assert body is not None, f"no text/{subtype} part"
    return str(body.get_content())


def rows(store: Store, table: str = "alerts") -> list[dict[str, Any]]:
    final = "" if table == "alert_cycles" else " FINAL"
    order = "cycle_at" if table == "alert_cycles" else "alert_id"
    return store.query(f"SELECT * FROM {table}{final} WHERE run_id = %(run)s ORDER BY {order}",
                       {"run": "live"})


def test_burst_mails_once_with_evidence(db: Store, smtp: SmtpServer) -> None:
    ScoredSink(db).write(burst_docs())
    engine = AlertEngine(alert_settings(smtp.port), db, "live")

    report = engine.cycle(NOW)
    assert [(e.state, e.group_key) for e in report.events] == [("firing", "ticker=AAPL")]
    assert report.sent == 1 and report.failed == 0
    (msg,) = smtp.inbox.wait_for(1)
    subject = msg["Subject"]
    assert subject.startswith("[finsentry] neg: AAPL negative share ") and "→ 80%" in subject
    assert "p < " in subject and "15 min" in subject
    html, text = part(msg, "html"), part(msg, "plain")
    assert "<script>" not in html and "<b>plunge" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; AAPL &amp; co" in html
    assert HOSTILE in text and "https://news.example.com/AAPL/" in html
    assert "/d/finsentry-ticker?var-run_id=live&amp;var-ticker=AAPL" in html
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_content()[:4] == b"\x89PNG"
    assert f'src="cid:{images[0]["Content-ID"][1:-1]}"' in html  # inline, in the HTML
    assert "test-wire" in html and "-0.85" in html and "11:5" in html  # source, score, time
    assert msg["Message-ID"] == f"<{report.events[0].alert_id}.firing@finsentry>"

    (row,) = rows(db)
    assert (row["rule"], row["group_key"], row["ticker"], row["state"]) == \
        ("neg", "ticker=AAPL", "AAPL", "firing")
    assert row["event_time"] == AS_OF - timedelta(minutes=1) and row["notified"] == 1
    assert row["fired_at"].year >= 2025  # wall clock, kept apart from the event time
    assert row["doc_count"] == 10 and row["value"] == pytest.approx(0.8)
    assert 0 < row["p_value"] < 1e-4 and row["silenced"] == 0
    (cycle,) = rows(db, "alert_cycles")
    assert (cycle["rule"], cycle["fired"], cycle["notified"], cycle["keys"]) == ("neg", 1, 1, 4)

    # the same minute again, then a restart: nothing new, nothing re-sent
    assert engine.cycle(NOW).events == []
    restarted = AlertEngine(alert_settings(smtp.port), db, "live")
    later = restarted.cycle(NOW + timedelta(hours=5))
    assert [e.state for e in later.events] == ["resolved"]  # even the 4 h window moved on
    assert len(smtp.inbox.messages) == 1  # notify_resolved is off
    assert rows(db)[0]["state"] == "resolved"


def test_open_minute_waits_for_allowed_lateness(db: Store, smtp: SmtpServer) -> None:
    """Minute 11:59 is evaluated only once allowed_lateness_s (60 s) passed after it ended, so
    documents that arrive late still count, and live fires what history fires."""
    from finsentry.alerts.evaluate import evaluate_range

    burst = [scored(900 + k, "AAPL", AS_OF - timedelta(seconds=55 - k), negative=k < 8)
             for k in range(10)]  # all published in minute 11:59
    ScoredSink(db).write(stream("AAPL", baseline_neg=0.1, window_docs=0, window_neg=0)
                         + burst[:5])
    engine = AlertEngine(alert_settings(smtp.port), db, "live")
    early = engine.cycle(AS_OF + timedelta(seconds=30))
    assert early.events == [] and early.through == AS_OF - timedelta(minutes=2)
    ScoredSink(db).write(burst[5:])  # late arrivals, within the allowed lateness
    on_time = engine.cycle(NOW)
    assert on_time.through == AS_OF - timedelta(minutes=1)
    (fired,) = on_time.events
    assert (fired.state, fired.event_time, fired.doc_count) == \
        ("firing", AS_OF - timedelta(minutes=1), 10)
    history = evaluate_range(db, engine.rules[0], "live", AS_OF - timedelta(hours=1), AS_OF)
    assert [(e.alert_id, e.doc_count) for e in history] == [(fired.alert_id, 10)]


def test_quiet_stream_fires_nothing(db: Store, smtp: SmtpServer) -> None:
    ScoredSink(db).write(quiet_docs())
    report = AlertEngine(alert_settings(smtp.port), db, "live").cycle(NOW)
    assert report.events == [] and rows(db) == [] and smtp.inbox.messages == []


def test_one_round_is_one_email_and_silences_hold(db: Store, smtp: SmtpServer) -> None:
    docs = burst_docs() + stream("GME", baseline_neg=0.1, window_docs=12, window_neg=10,
                                 start=5000)
    ScoredSink(db).write(docs)
    add_silence(db, "neg", "ticker=GME", AS_OF + timedelta(hours=1), "known: meme stock")
    settings = alert_settings(smtp.port, rules=[{**RULE, "notify_resolved": True}])
    engine = AlertEngine(settings, db, "live")
    report = engine.cycle(NOW)
    assert sorted(e.group_key for e in report.events) == ["ticker=AAPL", "ticker=GME"]
    assert report.rules[0].silenced == 1 and report.sent == 1
    by_key = {r["group_key"]: r for r in rows(db)}
    assert by_key["ticker=GME"]["silenced"] == 1 and by_key["ticker=AAPL"]["silenced"] == 0

    add_silence(db, "", "", AS_OF + timedelta(hours=6), "maintenance")  # all rules, all keys
    smtp.inbox.messages.clear()
    engine.cycle(NOW + timedelta(hours=5))  # both resolve: silenced, so not mailed
    assert smtp.inbox.messages == []


def test_grouped_round(db: Store, smtp: SmtpServer) -> None:
    docs = burst_docs() + stream("GME", baseline_neg=0.1, window_docs=12, window_neg=10,
                                 start=5000)
    ScoredSink(db).write(docs)
    report = AlertEngine(alert_settings(smtp.port), db, "live").cycle(NOW)
    assert report.sent == 2
    (msg,) = smtp.inbox.wait_for(1)
    assert "(+1 more)" in msg["Subject"] and msg["Message-ID"].startswith("<g")
    assert "AAPL" in part(msg, "plain") and "GME" in part(msg, "plain")


def test_one_email_per_recipient_set(db: Store, smtp: SmtpServer) -> None:
    """Three rules fire in one round: the two mailing ops@ share one email, risk@ gets its own."""
    ScoredSink(db).write(burst_docs())
    rules = [RULE, {**RULE, "name": "neg2"}, {**RULE, "name": "neg-risk",
                                               "mail_to": ["risk@example.com"]}]
    report = AlertEngine(alert_settings(smtp.port, rules=rules), db, "live").cycle(NOW)
    assert report.sent == 3 and len(report.events) == 3
    messages = smtp.inbox.wait_for(2)
    by_rcpt = {tuple(rcpt): msg for rcpt, msg in zip(smtp.inbox.envelopes, messages,
                                                        strict=True)}
    assert set(by_rcpt) == {("ops@example.com",), ("risk@example.com",)}
    ops, risk = by_rcpt[("ops@example.com",)], by_rcpt[("risk@example.com",)]
    assert "(+1 more)" in ops["Subject"] and ops["To"] == "ops@example.com"
    assert len(ops["X-Finsentry-Alert-Ids"].split(", ")) == 2
    assert "(+" not in risk["Subject"] and risk["Subject"].startswith("[finsentry] neg-risk:")
    assert risk["To"] == "risk@example.com"


def test_resolved_email_when_asked(db: Store, smtp: SmtpServer) -> None:
    ScoredSink(db).write(burst_docs())
    settings = alert_settings(smtp.port, rules=[{**RULE, "notify_resolved": True}])
    fired = AlertEngine(settings, db, "live").cycle(NOW)
    alert_id = fired.events[0].alert_id
    later = AlertEngine(settings, db, "live").cycle(NOW + timedelta(hours=5))
    assert [e.state for e in later.events] == ["resolved"] and later.sent == 1
    first, resolved = smtp.inbox.wait_for(2)
    assert resolved["Subject"].startswith("[finsentry] neg: resolved: AAPL negative share")
    assert resolved["Message-ID"] == f"<{alert_id}.resolved@finsentry>"
    assert "RESOLVED" in part(resolved, "plain") and first["Message-ID"] != \
        resolved["Message-ID"]


def test_smtp_down_then_up_delivers_once_across_restart(
        db: Store, smtp_down: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    ScoredSink(db).write(burst_docs())
    settings = alert_settings(smtp_down.port, notifiers=["log", "email"])
    caplog.set_level(logging.WARNING, logger="finsentry.alerts")
    first = AlertEngine(settings, db, "live").cycle(NOW)
    assert first.sent == 1 and first.failed == 1  # log ok, email refused
    assert any("neg" in e and str(smtp_down.port) in e for e in first.errors)
    (row,) = rows(db)
    assert row["notified"] == 0
    status = {d["notifier"]: d["status"] for d in rows(db, "alert_deliveries")}
    assert status == {"log": "sent", "email": "failed"}

    smtp_down.start()
    restarted = AlertEngine(settings, db, "live")  # a restart while SMTP was down
    early = restarted.cycle(NOW + timedelta(seconds=10))  # before the backoff ends
    assert early.sent == 0 and smtp_down.inbox.messages == []
    later = restarted.cycle(NOW + timedelta(minutes=1))
    assert later.sent == 1
    (msg,) = smtp_down.inbox.wait_for(1)
    assert "AAPL" in msg["Subject"] and "&lt;script&gt;" in part(msg, "html")
    assert rows(db)[0]["notified"] == 1
    AlertEngine(settings, db, "live").cycle(NOW + timedelta(minutes=2))
    assert len(smtp_down.inbox.messages) == 1
    assert sum("ALERT firing" in r.message for r in caplog.records) == 1  # log: once


class _Hook(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []
    headers_seen: list[str] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
        else:
            _Hook.bodies.append(json.loads(body))
            _Hook.headers_seen.append(str(self.headers["X-Finsentry-Message-Id"]))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_retried_then_delivered_once(db: Store) -> None:
    ScoredSink(db).write(burst_docs())
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.bodies, _Hook.headers_seen, _Hook.fail_first = [], [], 2  # both tries of cycle 1
    try:
        settings = AlertSettings.model_validate({
            "notifiers": ["webhook"], "webhook_format": "alertmanager",
            "webhook_url": f"http://127.0.0.1:{server.server_port}/hook",
            "smtp_retry_attempts": 2, "smtp_retry_max_wait_s": 0.1, "rules": [RULE]})
        assert AlertEngine(settings, db, "live").cycle(NOW).failed == 1
        assert AlertEngine(settings, db, "live").cycle(NOW + timedelta(minutes=1)).sent == 1
        AlertEngine(settings, db, "live").cycle(NOW + timedelta(minutes=2))
    finally:
        server.shutdown()
    (body,) = _Hook.bodies
    assert body["version"] == "4" and body["status"] == "firing"
    (alert,) = body["alerts"]
    assert alert["labels"] == {"alertname": "neg", "severity": "warning", "ticker": "AAPL"}
    assert _Hook.headers_seen == [body["groupKey"]]


def test_history_run_keeps_its_own_state_and_resets(db: Store, smtp: SmtpServer) -> None:
    import time

    from finsentry.alerts.state import reset_state

    docs = burst_docs()
    ScoredSink(db).write(docs)
    replay = [d.model_copy(update={"run_id": "replay-1"}) for d in docs]
    ScoredSink(db).write(replay)
    settings = alert_settings(smtp.port, notifiers=["log"])
    AlertEngine(settings, db, "live").cycle(NOW)
    AlertEngine(settings, db, "replay-1").cycle(NOW)

    def count(table: str, run: str) -> int:
        return int(db.query(f"SELECT count() AS n FROM {table} FINAL WHERE run_id = %(run)s",
                            {"run": run})[0]["n"])

    assert count("alerts", "live") == count("alerts", "replay-1") == 1
    assert reset_state(db, "replay-1") == 1
    deadline = time.monotonic() + 20  # mutations are asynchronous on the 18.16 server
    while count("alert_state", "replay-1") and time.monotonic() < deadline:
        time.sleep(0.2)
    while count("alerts", "replay-1") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert count("alert_state", "replay-1") == count("alerts", "replay-1") == 0
    assert count("alert_state", "live") == count("alerts", "live") == 1
