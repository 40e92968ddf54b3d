"""End to end on the real parts: the demo's sample stream (with its negative burst) produced to
the noida-db broker, a real `finsentry worker` process scoring it with the shipped classifier
into ClickHouse (chdb and the 18.16 server), then `finsentry alerts` processes: live cycles
(the second catches up over the minutes since the first) mail exactly one alert, for the burst
ticker, to a real SMTP server; `test-rule` over the whole stream finds the same alert."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import tomli_w

from finsentry.config import ClickHouseSettings, KafkaSettings
from finsentry.streams.sample import generate
from tests.alerts.conftest import SmtpServer
from tests.streams.helpers import prepare_pipeline, produce, start_worker, write_config

RULE = {"type": "significance", "name": "neg", "warmup_minutes": 60, "baseline_hours": 24,
        "realert_minutes": 600}


def _alerts(config: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    done = subprocess.run([sys.executable, "-m", "finsentry", "--config", str(config), "alerts",
                           *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_pipeline_burst_mails_one_alert(kafka_settings: KafkaSettings,
                                        store_settings: ClickHouseSettings, smtp: SmtpServer,
                                        tmp_path: Path) -> None:
    settings = prepare_pipeline(kafka_settings, store_settings)
    config = write_config(settings, tmp_path / "finsentry.toml")
    data = tomllib.loads(config.read_text())
    data["alerts"] = {"smtp_port": smtp.port, "mail_to": ["risk@example.com"],
                      "notifiers": ["email"], "allowed_lateness_s": 0, "chart": False,
                      "rules": [RULE]}
    config.write_text(tomli_w.dumps(data))

    sample = generate(300, seed=11)
    produce(settings.kafka, (d.to_json() for d in sample.documents),
            keys=(d.primary_ticker.encode() for d in sample.documents))
    log = tmp_path / "worker.log"
    worker = start_worker(config, "--expect", "300", "--max-seconds", "400", log=log)
    assert worker.wait(420) == 0, log.read_text()[-3000:]

    start = sample.documents[0].published_at.replace(second=0)
    first = _alerts(config, "check", "--notify", "--as-of", start.isoformat())
    assert "0 fired" in first, first
    later = sample.burst_end + timedelta(minutes=10)
    second = _alerts(config, "check", "--notify", "--as-of", later.isoformat())
    assert "1 fired" in second and f"ticker={sample.burst_ticker}" in second, second
    (msg,) = smtp.inbox.wait_for(1)
    assert f"neg: {sample.burst_ticker} negative share" in msg["Subject"]
    assert msg["To"] == "risk@example.com"

    end = sample.documents[-1].published_at
    history = _alerts(config, "test-rule", "neg", "--from", start.isoformat(), "--to",
                      end.isoformat())
    fired = [line for line in history.splitlines() if " firing " in line]
    assert len(fired) == 1 and f"ticker={sample.burst_ticker}" in fired[0], history
    assert len(smtp.inbox.messages) == 1
