"""The demo's alert step: the default rules over the demo run, the burst check, the email.

`finsentry demo` calls `evaluate_demo` once after its worker stored the run, with the
configured rules, or the shipped defaults (alerts/defaults.py) when none are configured. The
demo stream is a few hours long, so warm-up is capped at DEMO_WARMUP_MINUTES (the prior covers
the short history); every other rule setting is the configured one. Writes the rendered
alert email next to the report (`alert-<run>.eml` and `alert-<run>.html`, chart inline) and
returns the lines to print: the alert's subject and where its email is, or what differed from
"exactly one alert, for the burst ticker".
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from finsentry.alerts.defaults import DEFAULT_RULES
from finsentry.alerts.evaluate import build_rule, evaluate_range
from finsentry.alerts.evidence import notice_for
from finsentry.alerts.mail import render
from finsentry.alerts.rulefiles import load_rules, parse_rule
from finsentry.alerts.state import alert_row
from finsentry.sanitize import inert

if TYPE_CHECKING:
    from finsentry.alerts.base import AlertEvent, Rule
    from finsentry.config import Settings
    from finsentry.store import Store

DEMO_WARMUP_MINUTES = 60


def evaluate_demo(store: Store, settings: Settings, run_id: str, start: datetime,
                  end: datetime, burst_ticker: str, burst_start: datetime,
                  burst_end: datetime, out_dir: Path) -> str:
    """Evaluate, check and render; returns the line the demo prints."""
    specs = load_rules(settings.alerts) or [parse_rule(r, f"default rule {r['name']}")
                                            for r in DEFAULT_RULES]
    rules = [build_rule(s.model_copy(update={
        "warmup_minutes": min(s.warmup_minutes, DEMO_WARMUP_MINUTES)}))
        for s in specs if s.enabled]
    fired: list[tuple[AlertEvent, Rule]] = []
    for rule in rules:
        fired += [(e, rule) for e in evaluate_range(store, rule, run_id, start, end)
                  if e.state == "firing"]
    expected = f"ticker={burst_ticker}"
    hits = [e for e, _ in fired if e.group_key == expected
            and burst_start <= e.event_time <= burst_end + timedelta(minutes=30)]
    if not fired:
        return f"alert check FAILED: no rule fired (expected one for {burst_ticker})"
    event, rule = next(((e, r) for e, r in fired if e in hits), fired[0])
    row = alert_row(run_id, event, "", False)
    notice = notice_for(store, settings.alerts, run_id, row, "firing", rule)
    msg = render([notice], mail_from=settings.alerts.mail_from,
                 mail_to=settings.alerts.mail_to or ["ops@example.com"],
                 message_id=f"<{event.alert_id}.firing@finsentry>",
                 subject_prefix=settings.alerts.subject_prefix)
    out_dir.mkdir(parents=True, exist_ok=True)
    eml_path, html_path = out_dir / f"alert-{run_id}.eml", out_dir / f"alert-{run_id}.html"
    eml_path.write_bytes(bytes(msg))
    html_part = msg.get_body(("html",))
    html = str(html_part.get_content()) if html_part is not None else ""
    if notice.chart_png:  # the .html file has no MIME parts: inline the chart as a data URI
        data = base64.b64encode(notice.chart_png).decode("ascii")
        html = html.replace('src="cid:', 'data-cid="', 1).replace(
            "<img ", f'<img src="data:image/png;base64,{data}" ', 1)
    html_path.write_text(html, encoding="utf-8")
    subject = inert(str(msg["Subject"]))
    # The demo's run is its own: its alerts are stored so the report's alert panels show them.
    store.insert("alerts", [alert_row(run_id, e, subject if e is event else "", False)
                            for e, _ in fired])
    if len(fired) != 1 or not hits:
        others = ", ".join(inert(f"{e.rule} {e.group_key} {e.event_time:%H:%M}")
                           for e, _ in fired)
        return f"alert check FAILED: expected one alert for {burst_ticker}, got: {others}"
    return f"alert: {subject}\nalert email: {eml_path} (HTML: {html_path.name})"
