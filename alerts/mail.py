"""The `email` notifier: one multipart (plain text + HTML) message per alert over SMTP.

Headlines are untrusted text: the HTML part is rendered by jinja2 with autoescape on, and header
values are collapsed to one line (no header injection). Transient SMTP failures are retried with
tenacity; when they persist, AlertError (naming the rule) leaves the alert un-notified for the
next cycle. jinja2 loads on first send so `finsentry --help` stays fast.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import cache
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from finsentry.alerts.base import Match
from finsentry.alerts.notify import Notifier
from finsentry.errors import AlertError

if TYPE_CHECKING:
    import jinja2

    from finsentry.config import AlertSettings

TEXT_TEMPLATE = """\
{{ m.rule }} fired for {{ m.scope_text }} ({{ m.severity }})

{{ m.metric }}: {{ "%.2f"|format(m.value) }} (threshold {{ "%.2f"|format(m.threshold) }}, \
baseline {{ "%.2f"|format(m.baseline) }})
documents: {{ m.doc_count }}
window: {{ m.window_start.strftime("%Y-%m-%d %H:%M") }} - {{ m.window_end.strftime("%H:%M") }} UTC
alert id: {{ m.alert_id }}
{% if m.examples %}
Most negative headlines:
{% for e in m.examples %}- [{{ "%+.2f"|format(e.score) }}] {{ e.title }} ({{ e.source }})\
{% if e.url %} {{ e.url }}{% endif %}
{% endfor %}{% endif %}"""

HTML_TEMPLATE = """\
<!doctype html>
<html><body style="font-family: sans-serif">
<h2>{{ m.rule }}: {{ m.scope_text }}</h2>
<p><b>{{ m.severity }}</b> &mdash; {{ m.metric }} <b>{{ "%.2f"|format(m.value) }}</b>
(threshold {{ "%.2f"|format(m.threshold) }}, baseline {{ "%.2f"|format(m.baseline) }})
over {{ m.doc_count }} documents,
{{ m.window_start.strftime("%Y-%m-%d %H:%M") }}&ndash;{{ m.window_end.strftime("%H:%M") }} UTC.</p>
{% if m.examples %}<h3>Most negative headlines</h3>
<ul>{% for e in m.examples %}
<li>[{{ "%+.2f"|format(e.score) }}] {% if e.url.startswith(("https://", "http://")) %}\
<a href="{{ e.url }}">{{ e.title }}</a>{% else %}{{ e.title }}{% endif %} ({{ e.source }})</li>\
{% endfor %}
</ul>{% endif %}
<p style="color: #888">alert id {{ m.alert_id }}</p>
</body></html>
"""


@cache
def _templates() -> tuple[jinja2.Template, jinja2.Template]:
    import jinja2

    html = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    text = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701
    return text.from_string(TEXT_TEMPLATE), html.from_string(HTML_TEMPLATE)


def _one_line(value: str, limit: int = 200) -> str:
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(match: Match, *, mail_from: str, mail_to: list[str],
           subject_prefix: str = "[finsentry]") -> EmailMessage:
    """The message for one alert: subject names the rule and scope; text and HTML parts."""
    text_tpl, html_tpl = _templates()
    msg = EmailMessage()
    pct = f"{match.value:.0%}" if match.metric == "negative_share" else f"{match.value:.2f}"
    msg["Subject"] = _one_line(f"{subject_prefix} {match.rule} {match.scope_text}: "
                               f"{match.metric} {pct} over {match.doc_count} docs")
    msg["From"] = mail_from
    msg["To"] = ", ".join(mail_to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=match.alert_id[:16], domain="finsentry")
    msg["X-Finsentry-Alert-Id"] = match.alert_id
    msg.set_content(text_tpl.render(m=match))
    msg.add_alternative(html_tpl.render(m=match), subtype="html")
    return msg


_TRANSIENT = (OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError,
              smtplib.SMTPHeloError, smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused)


class EmailNotifier(Notifier):
    """SMTP delivery (plain, STARTTLS or implicit TLS; optional login) with retries."""

    name = "email"

    def __init__(self, settings: AlertSettings) -> None:
        super().__init__(settings)
        if not settings.mail_to:
            raise AlertError("email notifier: alerts.mail_to is empty (no recipients)")

    def send(self, match: Match) -> None:
        s = self.settings
        msg = render(match, mail_from=s.mail_from, mail_to=s.mail_to,
                     subject_prefix=s.subject_prefix)
        retryer = Retrying(
            stop=stop_after_attempt(s.smtp_retry_attempts),
            wait=wait_exponential(multiplier=0.5, max=s.smtp_retry_max_wait_s),
            retry=retry_if_exception_type(_TRANSIENT), reraise=True)
        try:
            retryer(self._deliver, msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertError(f"rule {match.rule}: email to {', '.join(s.mail_to)} via "
                             f"{s.smtp_host}:{s.smtp_port} failed: {exc!r}") from exc

    def _deliver(self, msg: EmailMessage) -> None:
        s = self.settings
        context = ssl.create_default_context()
        smtp_cls = smtplib.SMTP_SSL if s.smtp_ssl else smtplib.SMTP
        kwargs: dict[str, Any] = {"timeout": s.smtp_timeout_s}
        if s.smtp_ssl:
            kwargs["context"] = context
        with smtp_cls(s.smtp_host, s.smtp_port, **kwargs) as smtp:
            if s.smtp_starttls and not s.smtp_ssl:
                smtp.starttls(context=context)
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(msg)
