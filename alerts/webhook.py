"""The `webhook` notifier: one JSON POST per group of alerts, with retries.

Shapes (alerts.webhook_format): `json` (finsentry's own: message_id + alerts), `slack` (an
incoming-webhook `text` + blocks; Slack's mrkdwn control characters &, <, > escaped so crawled
text cannot forge links or mentions) and `alertmanager` (the Alertmanager webhook payload,
version 4, so existing receivers work). The `X-Finsentry-Message-Id` header and the payload's
`groupKey`/`message_id` stay the same on every re-send, so a receiver can drop duplicates.
"""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from finsentry.alerts.notify import Notice, Notifier
from finsentry.errors import AlertError


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _alert(n: Notice) -> dict[str, Any]:
    e = n.event
    return {"alert_id": e.alert_id, "rule": e.rule, "key": e.key, "group_key": e.group_key,
            "state": e.state, "event_time": e.event_time.isoformat(),
            "fired_time": e.fired_time.isoformat(), "metric": e.metric, "value": e.value,
            "baseline": e.baseline, "threshold": e.threshold, "p_value": e.p_value,
            "doc_count": e.doc_count, "window_minutes": e.window_minutes,
            "severity": e.severity, "kind": e.kind, "run_id": n.run_id, "summary": n.subject,
            "dashboard_url": n.dashboard_url,
            "examples": [{"title": x.title, "url": x.url, "source": x.source,
                          "published_at": x.published_at.isoformat(), "score": x.score}
                         for x in n.examples]}


def payload(fmt: str, notices: list[Notice], message_id: str) -> dict[str, Any]:
    """The JSON body for one group in the configured shape."""
    if fmt == "slack":
        lines = [f"*{_slack_escape(n.event.state.upper())}* {_slack_escape(n.subject)}"
                 for n in notices]
        blocks = []
        for n, line in zip(notices, lines, strict=True):
            text = f"{line}\nrule `{_slack_escape(n.event.rule)}`, key " \
                   f"`{_slack_escape(n.event.group_key)}`"
            if n.dashboard_url.startswith(("https://", "http://")):
                text += f"\n<{_slack_escape(n.dashboard_url)}|Open the dashboard>"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        return {"text": "\n".join(lines), "blocks": blocks}
    if fmt == "alertmanager":
        status = "firing" if any(n.event.state == "firing" for n in notices) else "resolved"
        return {
            "version": "4", "groupKey": message_id, "status": status, "receiver": "finsentry",
            "groupLabels": {"alertname": notices[0].event.rule},
            "commonLabels": {"alertname": notices[0].event.rule},
            "commonAnnotations": {}, "externalURL": notices[0].dashboard_url,
            "truncatedAlerts": 0,
            "alerts": [{
                "status": n.event.state,
                "labels": {"alertname": n.event.rule, "severity": n.event.severity,
                           **n.event.key},
                "annotations": {"summary": n.subject},
                "startsAt": n.event.fired_time.isoformat(),
                "endsAt": (n.event.event_time.isoformat() if n.event.state == "resolved"
                           else "0001-01-01T00:00:00Z"),
                "generatorURL": n.dashboard_url, "fingerprint": n.event.alert_id[:16],
            } for n in notices]}
    return {"message_id": message_id, "alerts": [_alert(n) for n in notices]}


class WebhookNotifier(Notifier):
    """POST to alerts.webhook_url (httpx) with retries on connection errors and 5xx."""

    name = "webhook"

    def send(self, notices: list[Notice], message_id: str, recipients: list[str]) -> None:
        s = self.settings
        url = s.webhook_url
        if not url:
            raise AlertError(f"rule {notices[0].event.rule}: webhook notifier: "
                             "alerts.webhook_url is empty")
        body = payload(s.webhook_format, notices, message_id)
        retryer = Retrying(stop=stop_after_attempt(s.smtp_retry_attempts),
                           wait=wait_exponential(multiplier=0.5, max=s.smtp_retry_max_wait_s),
                           retry=retry_if_exception_type(httpx.HTTPError), reraise=True)

        def post() -> None:
            response = httpx.post(url, json=body, timeout=s.smtp_timeout_s,
                                  headers={"X-Finsentry-Message-Id": message_id})
            response.raise_for_status()

        try:
            retryer(post)
        except httpx.HTTPError as exc:
            raise AlertError(f"rule {notices[0].event.rule}: webhook {url} failed: "
                             f"{type(exc).__name__}: {exc}") from exc
