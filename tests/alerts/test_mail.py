"""Email rendering and delivery against a real SMTP server (aiosmtpd on loopback): hostile text
stays inert (no HTML, no headers, no links of its own), and a server that accepts but answers
too late gets the re-send under the same Message-ID."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from finsentry.alerts.base import AlertEvent
from finsentry.alerts.mail import EmailNotifier, subject_line
from finsentry.alerts.notify import Example, Notice
from finsentry.config import AlertSettings
from finsentry.store import ScoredSink, Store
from tests.alerts.conftest import AS_OF, SmtpServer, burst_docs, free_port

EVIL = "<script>alert(1)</script>\r\nBcc: evil@example.com\r\n\r\n<a href='http://x'>x</a>"


def event(ticker: str = "AAPL") -> AlertEvent:
    t = datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    return AlertEvent(rule="neg", alert_id="a" * 32, group_key=f"ticker={ticker}",
                      key={"ticker": ticker}, state="firing", event_time=t, fired_time=t,
                      metric="negative_share", value=0.47, baseline=0.12, threshold=2e-6,
                      p_value=3e-7, doc_count=30, window_minutes=15, severity="warning",
                      kind="significance")


def test_subject_format() -> None:
    assert subject_line(event()) == "AAPL negative share 12% → 47%, p < 3e-07, 15 min"


def test_hostile_text_arrives_inert(smtp: SmtpServer) -> None:
    settings = AlertSettings.model_validate({"smtp_port": smtp.port,
                                             "mail_to": ["ops@example.com"]})
    e = event(ticker="AAPL\r\nBcc: evil@example.com")
    notice = Notice(event=e, run_id="live", subject=subject_line(e), examples=[Example(
        title=EVIL, url="javascript:alert(1)", source="wire\r\nX-Evil: 1",
        published_at=e.event_time, score=-0.9)], dashboard_url="http://grafana/d/x")
    EmailNotifier(settings).send([notice], "<m1@finsentry>", ["ops@example.com"])
    (msg,) = smtp.inbox.wait_for(1)
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert smtp.inbox.envelopes == [["ops@example.com"]]
    assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"]  # one line, no header
    html = str(msg.get_body(("html",)).get_content())  # type: ignore[union-attr]
    text = str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "href='http://x'" not in html and 'href="javascript' not in html
    assert all(not line.startswith("Bcc:") for line in text.splitlines())


class _SlowOnce:
    """Accepts every message but answers the first DATA after the client's timeout."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        if len(self.messages) == 1:
            await asyncio.sleep(self.delay)
        return "250 OK"


def test_accepted_but_late_reply_resends_same_message_id(store: Store) -> None:
    from finsentry.alerts.engine import AlertEngine

    ScoredSink(store).write(burst_docs())
    handler = _SlowOnce(delay=3.0)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings = AlertSettings.model_validate({
            "smtp_port": controller.port, "mail_to": ["ops@example.com"],
            "notifiers": ["email"], "smtp_timeout_s": 1, "smtp_retry_attempts": 1,
            "chart": False, "rules": [{"type": "significance", "name": "neg",
                                       "baseline_hours": 24, "warmup_minutes": 60,
                                       "p_value": 1e-4, "realert_minutes": 600}]})
        now = AS_OF + timedelta(seconds=61)
        first = AlertEngine(settings, store, "live").cycle(now)
        assert first.failed == 1 and len(handler.messages) == 1  # accepted, reply too late
        second = AlertEngine(settings, store, "live").cycle(now + timedelta(minutes=5))
        assert second.sent == 1
        third = AlertEngine(settings, store, "live").cycle(now + timedelta(minutes=10))
        assert third.sent == 0 and third.failed == 0
    finally:
        controller.stop()
    assert len(handler.messages) == 2  # at most once per acceptance: the one re-send ...
    assert handler.messages[0]["Message-ID"] == handler.messages[1]["Message-ID"]  # ... same id


def test_smtp_login(tmp_path: Any) -> None:
    """AUTH against aiosmtpd (plain connection here; STARTTLS needs a CA the test cannot make
    the client trust without a setting, so it is not covered)."""
    from aiosmtpd.smtp import AuthResult

    seen: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      data: Any) -> AuthResult:
        seen.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret")

    inbox = SmtpServer(free_port())
    controller = Controller(inbox.inbox, hostname="127.0.0.1", port=inbox.port,
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        settings = AlertSettings.model_validate({
            "smtp_port": inbox.port, "mail_to": ["ops@example.com"], "smtp_user": "bot",
            "smtp_password": "s3cret"})
        e = event()
        EmailNotifier(settings).send([Notice(event=e, run_id="live", subject=subject_line(e))],
                                     "<m2@finsentry>", [])
        assert len(inbox.inbox.wait_for(1)) == 1 and seen == [(b"bot", b"s3cret")]
    finally:
        controller.stop()
