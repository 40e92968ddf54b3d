"""AlertSettings: typed rule entries, unknown keys rejected, the SMTP password kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from finsentry.alerts.negative_spike import NegativeSpikeSpec
from finsentry.config import AlertSettings, load_settings
from finsentry.errors import ConfigError


def write(tmp_path: Path, alerts: dict[str, object]) -> Path:
    path = tmp_path / "finsentry.toml"
    path.write_text(tomli_w.dumps({"alerts": alerts}))
    return path


def test_rules_are_typed_entries(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, {
        "mail_to": ["ops@example.com"], "smtp_password": "hunter2",
        "rules": [{"type": "negative_spike", "name": "spike", "group_by": ["ticker", "topic"],
                   "metric": "mean_score", "threshold": 0.3}]}))
    (rule,) = settings.alerts.rules
    assert isinstance(rule, NegativeSpikeSpec)
    assert (rule.group_by, rule.window_minutes, rule.baseline_minutes) == (
        ["ticker", "topic"], 15, 1440)
    assert "hunter2" not in str(settings.redacted()) and "hunter2" not in repr(settings)
    assert settings.alerts.smtp_password.get_secret_value() == "hunter2"


@pytest.mark.parametrize(("alerts", "named"), [
    ({"smtp_hots": "x"}, "alerts.smtp_hots"),
    ({"rules": [{"type": "negative_spike", "name": "a", "windw_minutes": 5}]}, "windw_minutes"),
    ({"rules": [{"type": "positive_spike", "name": "a"}]}, "positive_spike"),
    ({"rules": [{"type": "negative_spike", "name": "a", "group_by": ["url"]}]}, "group_by"),
    ({"rules": [{"type": "negative_spike", "name": "a"}] * 2}, "duplicate rule names: a"),
    ({"notifiers": ["pager"]}, "unknown notifiers"),
])
def test_bad_config_names_the_key(tmp_path: Path, alerts: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(write(tmp_path, alerts))


def test_email_needs_recipients() -> None:
    from finsentry.alerts.engine import AlertEngine
    from finsentry.errors import AlertError

    settings = AlertSettings.model_validate(
        {"rules": [{"type": "negative_spike", "name": "spike"}]})
    engine = AlertEngine(settings, store=None, run_id="live")
    with pytest.raises(AlertError, match="rule spike: .*mail_to is empty"):
        engine.check_notifiers()
