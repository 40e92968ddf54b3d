"""The `email` notifier: one multipart message (plain text + HTML + inline chart) per group.

Crawled text (titles, sources, URLs, even tickers) is untrusted: the HTML part is rendered by a
Jinja2 environment with autoescape on (links only for http(s) URLs), the plain-text part and the
subject pass every value through `finsentry.sanitize.inert` (one visible line, no CR/LF), so no
headline can add HTML, headers or links of its own. The Message-ID is the engine's: the same on
every re-send of the group. SMTP with STARTTLS / implicit TLS and login; transient failures are
retried with tenacity, then AlertError leaves the delivery queued for the next cycle.
"""

from __future__ import annotations

import math
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from functools import cache
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from finsentry.alerts.base import AlertEvent
from finsentry.alerts.notify import Notice, Notifier
from finsentry.errors import AlertError
from finsentry.sanitize import inert

if TYPE_CHECKING:
    import jinja2

    from finsentry.config import AlertSettings

TEXT_TEMPLATE = """\
{% for n in notices %}{{ n.event.state|upper }}: {{ clean(n.subject) }}
rule {{ clean(n.event.rule) }} ({{ n.event.kind }}, {{ n.event.severity }}), \
key {{ clean(n.event.group_key) }}, run {{ clean(n.run_id) }}
{{ n.event.metric }}: {{ num(n.event.value) }} (baseline {{ num(n.event.baseline) }}, \
{{ limit(n.event) }}{% if n.event.p_value == n.event.p_value %}, \
p = {{ "%.2g"|format(n.event.p_value) }}{% endif %}) over {{ n.event.doc_count }} documents, \
{{ n.event.window_minutes }} min to {{ n.event.event_time.strftime("%Y-%m-%d %H:%M") }} UTC
alert id: {{ n.event.alert_id }}
{% if n.dashboard_url %}dashboard: {{ clean(n.dashboard_url) }}
{% endif %}{% if n.examples %}Most negative documents:
{% for e in n.examples %}- [{{ "%+.2f"|format(e.score) }}] {{ clean(e.title, 300) }} \
({{ clean(e.source, 80) }}, {{ e.published_at.strftime("%H:%M") }}) {{ clean(e.url, 500) }}
{% endfor %}{% endif %}
{% endfor %}"""

HTML_TEMPLATE = """\
<!doctype html>
<html><body style="font-family: sans-serif">
{% for n in notices %}
<h2 style="color: {{ '#b00' if n.event.state == 'firing' else '#070' }}">\
{{ n.event.state|upper }}: {{ n.subject }}</h2>
<p>Rule <b>{{ n.event.rule }}</b> ({{ n.event.kind }}, {{ n.event.severity }}), key
<b>{{ n.event.group_key }}</b>: {{ n.event.metric }} <b>{{ num(n.event.value) }}</b>
(baseline {{ num(n.event.baseline) }}, {{ limit(n.event) }}\
{% if n.event.p_value == n.event.p_value %}, p = {{ "%.2g"|format(n.event.p_value) }}{% endif %})
over {{ n.event.doc_count }} documents in the {{ n.event.window_minutes }} minutes to
{{ n.event.event_time.strftime("%Y-%m-%d %H:%M") }} UTC.</p>
{% if n.chart_png %}<p><img src="cid:{{ cids[loop.index0] }}" alt="metric and baseline"></p>\
{% endif %}
{% if n.dashboard_url %}<p><a href="{{ n.dashboard_url }}">Open the dashboard for this key and \
time range</a></p>{% endif %}
{% if n.examples %}<table cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">score</th><th align="left">title</th><th align="left">source</th>\
<th align="left">time (UTC)</th></tr>
{% for e in n.examples %}<tr><td>{{ "%+.2f"|format(e.score) }}</td><td>\
{% if e.url.startswith(("https://", "http://")) %}<a href="{{ e.url }}">{{ e.title }}</a>\
{% else %}{{ e.title }}{% endif %}</td><td>{{ e.source }}</td>\
<td>{{ e.published_at.strftime("%H:%M") }}</td></tr>
{% endfor %}</table>{% endif %}
<p style="color: #888">alert id {{ n.event.alert_id }} &middot; run {{ n.run_id }}</p>
{% endfor %}
</body></html>
"""


def _num(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3g}"


def _limit(e: AlertEvent) -> str:
    """What the threshold is: the p-value limit of a significance rule, else the metric's."""
    return f"{'p limit' if e.kind == 'significance' else 'threshold'} {_num(e.threshold)}"


@cache
def _templates() -> tuple[jinja2.Template, jinja2.Template]:
    import jinja2

    html = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    text = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701
    for env in (html, text):
        env.globals.update(num=_num, clean=inert, limit=_limit)
    return text.from_string(TEXT_TEMPLATE), html.from_string(HTML_TEMPLATE)


def _key_label(e: AlertEvent) -> str:
    return "/".join(e.key.values()) or "all documents"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.0%}"


def p_text(p: float) -> str:
    """`p < 1e-6`: the next power of ten strictly above p (so the bound is true), floored at
    1e-12; `p = 0.03` from 0.01 up."""
    if p >= 0.01:
        return f"p = {p:.2f}"
    if p < 1e-12:
        return "p < 1e-12"
    exponent = math.ceil(math.log10(p))
    if 10.0 ** exponent <= p:
        exponent += 1
    return f"p < 1e{exponent}"


def subject_line(e: AlertEvent) -> str:
    """"AAPL negative share 12% → 47%, p < 1e-6, 15 min" (one inert line)."""
    label = {"negative_share": "negative share", "negative_count": "negative documents",
             "mean_score": "mean score", "volume": "volume"}.get(e.metric, e.metric)
    if e.metric == "negative_share":
        change = f"{_pct(e.baseline)} → {_pct(e.value)}"
    elif math.isnan(e.baseline):
        change = f"{_num(e.value)} (limit {_num(e.threshold)})"
    else:
        change = f"{_num(e.baseline)} → {_num(e.value)}"
    parts = [f"{_key_label(e)} {label} {change}"]
    if not math.isnan(e.p_value):
        parts.append(p_text(e.p_value))
    parts.append(f"{e.window_minutes} min")
    text = ", ".join(parts)
    if e.state == "resolved":
        text = f"resolved: {text}"
    return inert(" ".join(text.split()), 200)


def render(notices: list[Notice], *, mail_from: str, mail_to: list[str], message_id: str,
           subject_prefix: str = "[finsentry]") -> EmailMessage:
    """The message for one group of alerts (text, HTML, one inline PNG per chart)."""
    from email.utils import make_msgid

    text_tpl, html_tpl = _templates()
    msg = EmailMessage()
    first = notices[0]
    more = f" (+{len(notices) - 1} more)" if len(notices) > 1 else ""
    msg["Subject"] = inert(f"{subject_prefix} {first.event.rule}: {first.subject}{more}", 300)
    msg["From"] = mail_from
    msg["To"] = ", ".join(mail_to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id
    msg["X-Finsentry-Alert-Ids"] = ", ".join(n.event.alert_id for n in notices)
    cids = [make_msgid(domain="finsentry")[1:-1] for _ in notices]
    msg.set_content(text_tpl.render(notices=notices))
    msg.add_alternative(html_tpl.render(notices=notices, cids=cids), subtype="html")
    html_part = msg.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    for n, cid in zip(notices, cids, strict=True):
        if n.chart_png:
            html_part.add_related(n.chart_png, maintype="image", subtype="png",
                                  cid=f"<{cid}>", filename="chart.png")
    return msg


_TRANSIENT = (OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError,
              smtplib.SMTPHeloError, smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused)


def _transient(exc: BaseException) -> bool:
    """Worth another try within the cycle: not a certificate the CA does not vouch for."""
    return isinstance(exc, _TRANSIENT) and not isinstance(exc, ssl.SSLCertVerificationError)


class EmailNotifier(Notifier):
    """SMTP delivery (plain, STARTTLS or implicit TLS; optional login) with retries.

    TLS verifies the server's certificate (system CAs or alerts.smtp_ca_file) and host name.
    With smtp_starttls a server that does not offer STARTTLS is refused, never used in clear;
    credentials are only ever sent over TLS (a login without TLS is a setup error).
    """

    name = "email"

    def __init__(self, settings: AlertSettings) -> None:
        super().__init__(settings)
        s = settings
        where = f"{s.smtp_host}:{s.smtp_port}"
        if not s.mail_to:
            raise AlertError("email notifier: alerts.mail_to is empty (no recipients)")
        if s.smtp_starttls and s.smtp_ssl:
            raise AlertError(f"email notifier: alerts.smtp_starttls and smtp_ssl are both on "
                             f"for {where}: choose STARTTLS (usually port 587) or implicit TLS "
                             "(usually 465)")
        if s.smtp_user and not (s.smtp_starttls or s.smtp_ssl):
            raise AlertError(f"email notifier: alerts.smtp_user is set but neither "
                             f"smtp_starttls nor smtp_ssl: refusing to send the password to "
                             f"{where} in clear")
        try:
            self._context = ssl.create_default_context(
                cafile=str(s.smtp_ca_file) if s.smtp_ca_file is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise AlertError(f"email notifier: alerts.smtp_ca_file {s.smtp_ca_file}: "
                             f"{exc}") from None

    def send(self, notices: list[Notice], message_id: str, recipients: list[str]) -> None:
        s = self.settings
        to = recipients or s.mail_to
        msg = render(notices, mail_from=s.mail_from, mail_to=to, message_id=message_id,
                     subject_prefix=s.subject_prefix)
        retryer = Retrying(
            stop=stop_after_attempt(s.smtp_retry_attempts),
            wait=wait_exponential(multiplier=0.5, max=s.smtp_retry_max_wait_s),
            retry=retry_if_exception(_transient), reraise=True)
        try:
            retryer(self._deliver, msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertError(f"rule {notices[0].event.rule}: email to {', '.join(to)} via "
                             f"{s.smtp_host}:{s.smtp_port} failed: {exc!r}") from exc

    def _deliver(self, msg: EmailMessage) -> None:
        s = self.settings
        smtp_cls = smtplib.SMTP_SSL if s.smtp_ssl else smtplib.SMTP
        kwargs: dict[str, Any] = {"timeout": s.smtp_timeout_s}
        if s.smtp_ssl:
            kwargs["context"] = self._context
        with smtp_cls(s.smtp_host, s.smtp_port, **kwargs) as smtp:
            if s.smtp_starttls and not s.smtp_ssl:
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        f"SMTP server {s.smtp_host}:{s.smtp_port} does not offer STARTTLS "
                        "(alerts.smtp_starttls is on): not sending in clear")
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(msg)
