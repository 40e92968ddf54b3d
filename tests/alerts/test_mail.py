"""Email rendering and delivery against a real SMTP server (aiosmtpd on loopback): hostile text
stays inert (no HTML, no headers, no links of its own), a server that accepts but answers too
late gets the re-send under the same Message-ID, and STARTTLS / implicit TLS with AUTH PLAIN and
LOGIN against a certificate from a throwaway CA (trustme) made in the test."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from finsentry.alerts.base import AlertEvent
from finsentry.alerts.mail import EmailNotifier, p_text, subject_line
from finsentry.alerts.notify import Example, Notice
from finsentry.config import AlertSettings
from finsentry.errors import AlertError
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
    """The issue's example verbatim; the p bound is always true (next power of ten above)."""
    assert subject_line(event()) == "AAPL negative share 12% → 47%, p < 1e-6, 15 min"
    assert [p_text(p) for p in (1e-6, 9.9e-5, 0.004, 0.03, 1e-15)] == [
        "p < 1e-5", "p < 1e-4", "p < 1e-2", "p = 0.03", "p < 1e-12"]


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


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A throwaway CA (trustme) and the server context of a certificate for 127.0.0.1; the
    CA's PEM file is what alerts.smtp_ca_file points at."""
    import trustme

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return server, pem


class _Auth:
    """aiosmtpd authenticator: records mechanism, credentials and whether TLS was on."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, bytes, bool]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        on_tls = server.transport.get_extra_info("ssl_object") is not None
        self.seen.append((mechanism, data.login, data.password, on_tls))
        return AuthResult(success=(data.login, data.password) == (b"bot", b"s3cret"))


def _send(settings: AlertSettings) -> None:
    e = event()
    EmailNotifier(settings).send([Notice(event=e, run_id="live", subject=subject_line(e))],
                                 "<m2@finsentry>", [])


def _tls_settings(port: int, **extra: Any) -> AlertSettings:
    return AlertSettings.model_validate({
        "smtp_port": port, "mail_to": ["ops@example.com"], "smtp_user": "bot",
        "smtp_password": "s3cret", "smtp_starttls": True, "smtp_retry_attempts": 2,
        "smtp_retry_max_wait_s": 0.1, "smtp_timeout_s": 5, **extra})


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_then_auth(tls: tuple[ssl.SSLContext, Path], mechanism: str) -> None:
    """A server that offers AUTH only after STARTTLS (auth_require_tls), its certificate from a
    CA the client trusts only through alerts.smtp_ca_file; PLAIN and LOGIN both work."""
    server_ctx, ca_file = tls
    auth, inbox = _Auth(), SmtpServer(free_port())
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    controller = Controller(inbox.inbox, hostname="127.0.0.1", port=inbox.port,
                            tls_context=server_ctx, require_starttls=True, authenticator=auth,
                            auth_require_tls=True, auth_exclude_mechanism=[other])
    controller.start()
    try:
        settings = _tls_settings(inbox.port, smtp_ca_file=str(ca_file))
        assert "s3cret" not in repr(settings)  # SecretStr
        _send(settings)
        (msg,) = inbox.inbox.wait_for(1)
    finally:
        controller.stop()
    assert auth.seen == [(mechanism, b"bot", b"s3cret", True)]  # credentials only over TLS
    assert "AAPL negative share" in msg["Subject"]


def test_starttls_rejects_an_untrusted_certificate(tls: tuple[ssl.SSLContext, Path]) -> None:
    """Without the CA file the self-signed chain is not trusted: nothing sent, no login, and
    the failure is not retried (a certificate does not fix itself)."""
    server_ctx, _ = tls
    auth, inbox = _Auth(), SmtpServer(free_port())
    controller = Controller(inbox.inbox, hostname="127.0.0.1", port=inbox.port,
                            tls_context=server_ctx, require_starttls=True, authenticator=auth,
                            auth_require_tls=True)
    controller.start()
    try:
        with pytest.raises(AlertError, match=rf"127\.0\.0\.1:{inbox.port}.*CERTIFICATE_VERIFY"):
            _send(_tls_settings(inbox.port, smtp_retry_attempts=3, smtp_retry_max_wait_s=5))
    finally:
        controller.stop()
    assert inbox.inbox.messages == [] and auth.seen == []


def test_starttls_required_but_not_offered(tls: tuple[ssl.SSLContext, Path]) -> None:
    """A server without STARTTLS (but happy to take AUTH in clear) is refused: the password
    and the alert never travel in clear."""
    _, ca_file = tls
    auth, inbox = _Auth(), SmtpServer(free_port())
    controller = Controller(inbox.inbox, hostname="127.0.0.1", port=inbox.port,
                            authenticator=auth, auth_require_tls=False)
    controller.start()
    try:
        with pytest.raises(AlertError, match=rf"127\.0\.0\.1:{inbox.port} does not offer "
                                             "STARTTLS"):
            _send(_tls_settings(inbox.port, smtp_ca_file=str(ca_file)))
    finally:
        controller.stop()
    assert inbox.inbox.messages == [] and auth.seen == []


def test_implicit_tls_with_auth(tls: tuple[ssl.SSLContext, Path]) -> None:
    """SMTPS (smtp_ssl): TLS from the first byte, certificate checked against the CA file.
    (aiosmtpd's auth_require_tls only knows STARTTLS, so the authenticator checks the
    transport itself.)"""
    server_ctx, ca_file = tls
    auth, inbox = _Auth(), SmtpServer(free_port())
    controller = Controller(inbox.inbox, hostname="127.0.0.1", port=inbox.port,
                            ssl_context=server_ctx, authenticator=auth, auth_require_tls=False)
    controller.start()
    try:
        _send(_tls_settings(inbox.port, smtp_starttls=False, smtp_ssl=True,
                            smtp_ca_file=str(ca_file)))
        assert len(inbox.inbox.wait_for(1)) == 1
    finally:
        controller.stop()
    assert [(login, tls_on) for _, login, _, tls_on in auth.seen] == [(b"bot", True)]


def test_login_without_tls_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(AlertError, match="refusing to send the password to 127.0.0.1:25 in "
                                         "clear"):
        EmailNotifier(AlertSettings.model_validate({
            "smtp_port": 25, "mail_to": ["ops@example.com"], "smtp_user": "bot",
            "smtp_password": "s3cret"}))
    with pytest.raises(AlertError, match="smtp_starttls and smtp_ssl are both on"):
        EmailNotifier(AlertSettings.model_validate({
            "mail_to": ["ops@example.com"], "smtp_starttls": True, "smtp_ssl": True}))
    with pytest.raises(AlertError, match="smtp_ca_file"):
        EmailNotifier(AlertSettings.model_validate({
            "mail_to": ["ops@example.com"], "smtp_ca_file": str(tmp_path / "missing.pem")}))
