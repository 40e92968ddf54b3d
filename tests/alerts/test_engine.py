"""The alert engine end to end: real ClickHouse (chdb and the 18.16 server, via the parametrised
`store_settings` fixture) and a real SMTP server (aiosmtpd) - nothing mocked."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from finsentry.alerts.engine import AlertEngine
from finsentry.config import AlertSettings, ClickHouseSettings
from finsentry.store import ScoredSink, Store, migrate, open_store
from tests.alerts.conftest import AS_OF, HOSTILE, SmtpServer, burst_docs, quiet_docs

RULE = {"type": "negative_spike", "name": "aapl-spike", "group_by": ["ticker"],
        "window_minutes": 15, "baseline_minutes": 1440, "threshold": 0.5, "min_docs": 5,
        "baseline_factor": 2.0, "realert_minutes": 60}


def alert_settings(port: int, **extra: Any) -> AlertSettings:
    return AlertSettings.model_validate({
        "smtp_port": port, "mail_to": ["ops@example.com"], "notifiers": ["email"],
        "smtp_retry_attempts": 2, "smtp_retry_max_wait_s": 0.1, "smtp_timeout_s": 5,
        "rules": [RULE], **extra})


@pytest.fixture
def db(store_settings: ClickHouseSettings) -> Iterator[Store]:
    with open_store(store_settings) as store:
        migrate(store)
        yield store


def part(msg: EmailMessage, subtype: str) -> str:
    body = msg.get_body((subtype,))
    assert body is not None, f"no text/{subtype} part"
    return str(body.get_content())


def alert_rows(store: Store) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM alerts FINAL WHERE run_id = %(run)s ORDER BY alert_id",
                       {"run": "live"})


def test_burst_mails_once_with_escaped_headline(db: Store, smtp: SmtpServer) -> None:
    ScoredSink(db).write(burst_docs())
    engine = AlertEngine(alert_settings(smtp.port), db, "live")

    report = engine.cycle(AS_OF)
    assert [o.match.scope for o in report.outcomes] == [{"ticker": "AAPL"}]
    outcome = report.outcomes[0]
    assert outcome.status == "new" and outcome.notified, outcome.errors
    assert outcome.match.doc_count == 10
    assert outcome.match.value == pytest.approx(0.8)
    assert outcome.match.baseline == pytest.approx(0.1)

    (msg,) = smtp.inbox.wait_for(1)
    assert "aapl-spike" in msg["Subject"] and "AAPL" in msg["Subject"]
    assert msg["To"] == "ops@example.com"
    html, text = part(msg, "html"), part(msg, "plain")
    assert "<script>" not in html and "<b>plunge" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; AAPL &amp; co" in html
    assert HOSTILE in text  # the plain-text part carries the headline as it was written
    assert "https://news.example.com/AAPL/" in html

    # same window again (a re-run): duplicate; five minutes on: suppressed by realert
    again = engine.cycle(AS_OF)
    assert [o.status for o in again.outcomes] == ["duplicate"]
    later = engine.cycle(AS_OF + timedelta(minutes=5))
    assert [o.status for o in later.outcomes] == ["suppressed"]
    assert len(smtp.inbox.messages) == 1

    (row,) = alert_rows(db)
    assert (row["rule"], row["ticker"], row["notified"]) == ("aapl-spike", "AAPL", 1)
    assert row["alert_id"] == outcome.match.alert_id
    assert row["window_end"] == AS_OF and row["window_start"] == AS_OF - timedelta(minutes=15)

    # a fresh engine (a restart) reads its realert state from the table
    restarted = AlertEngine(alert_settings(smtp.port), db, "live")
    assert [o.status for o in restarted.evaluate(AS_OF + timedelta(minutes=3))] == ["suppressed"]


def test_smtp_down_is_retried_next_cycle(db: Store, smtp_down: SmtpServer,
                                         caplog: pytest.LogCaptureFixture) -> None:
    ScoredSink(db).write(burst_docs())
    engine = AlertEngine(alert_settings(smtp_down.port, notifiers=["log", "email"]), db, "live")
    caplog.set_level(logging.WARNING, logger="finsentry.alerts")

    first = engine.cycle(AS_OF)
    (outcome,) = first.outcomes
    assert outcome.status == "new" and not outcome.notified
    assert any("aapl-spike" in e and "email" in e for e in outcome.errors), outcome.errors
    (row,) = alert_rows(db)
    assert row["notified"] == 0 and '"log": "ok"' in row["notify_status"]
    assert sum("ALERT aapl-spike" in r.message for r in caplog.records) == 1

    smtp_down.start()
    second = engine.cycle(AS_OF + timedelta(minutes=1))
    assert (second.retried, second.retried_ok) == (1, 1)
    assert [o.status for o in second.outcomes] == ["suppressed"]
    (msg,) = smtp_down.inbox.wait_for(1)
    assert "AAPL" in msg["Subject"]
    assert "&lt;script&gt;" in part(msg, "html")  # examples re-read
    (row,) = alert_rows(db)
    assert row["notified"] == 1
    # the log notifier had already succeeded: the retry did not log the alert again
    assert sum("ALERT aapl-spike" in r.message for r in caplog.records) == 1

    third = engine.cycle(AS_OF + timedelta(minutes=2))
    assert third.retried == 0 and len(smtp_down.inbox.messages) == 1


def test_quiet_stream_fires_nothing(db: Store, smtp: SmtpServer) -> None:
    ScoredSink(db).write(quiet_docs())
    engine = AlertEngine(alert_settings(smtp.port), db, "live")
    report = engine.cycle(AS_OF)
    assert report.outcomes == [] and report.sent == 0
    assert alert_rows(db) == []
    assert smtp.inbox.messages == []


def test_other_run_and_scopes(db: Store, smtp: SmtpServer) -> None:
    """Rows of another run id are invisible; mean_score and topic+source scopes work too."""
    ScoredSink(db).write(burst_docs())
    assert AlertEngine(alert_settings(smtp.port), db, "replay-1").evaluate(AS_OF) == []

    rule = {**RULE, "name": "topic-mean", "metric": "mean_score", "group_by": ["topic", "source"],
            "threshold": 0.2, "baseline_factor": 1.5}
    engine = AlertEngine(alert_settings(smtp.port, rules=[rule]), db, "live")
    (outcome,) = engine.evaluate(AS_OF)
    assert outcome.match.scope == {"topic": "markets", "source": "test-wire"}
    # window: 19 of 33 negative (score -0.85), the rest +0.85 or 0
    assert outcome.match.value > 0.2 and outcome.match.doc_count == 33
    assert len(outcome.match.examples) == 5
    assert all(e.score < 0 for e in outcome.match.examples)
