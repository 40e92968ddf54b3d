"""Rules from the config and from a rules folder: typed, validated on load, errors naming the
file and key; the retired `negative_spike` fails with its replacement named."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from finsentry.alerts.kinds import SpikeSpec
from finsentry.alerts.rulefiles import load_rules
from finsentry.alerts.significance import SignificanceSpec
from finsentry.config import AlertSettings, load_settings
from finsentry.errors import ConfigError


def write(tmp_path: Path, alerts: dict[str, object]) -> Path:
    path = tmp_path / "finsentry.toml"
    path.write_text(tomli_w.dumps({"alerts": alerts}))
    return path


def test_rules_are_typed_entries(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, {
        "mail_to": ["ops@example.com"], "smtp_password": "hunter2",
        "rules": [{"type": "significance", "name": "neg", "group_by": ["ticker", "topic"],
                   "for": 2, "filter": {"min_novelty": 0.5, "sources": ["reuters"]}}]}))
    (rule,) = settings.alerts.rules
    assert isinstance(rule, SignificanceSpec)
    assert (rule.group_by, rule.window_minutes, rule.for_evaluations) == (
        ["ticker", "topic"], 15, 2)
    assert rule.filter.min_novelty == 0.5 and rule.filter.sources == ["reuters"]
    assert "hunter2" not in str(settings.redacted()) and "hunter2" not in repr(settings)


@pytest.mark.parametrize(("alerts", "named"), [
    ({"smtp_hots": "x"}, "alerts.smtp_hots"),
    ({"rules": [{"type": "spike", "name": "a", "windw_minutes": 5}]}, "windw_minutes"),
    ({"rules": [{"type": "positive_spike", "name": "a"}]}, "positive_spike"),
    ({"rules": [{"type": "spike", "name": "a", "group_by": ["url"]}]}, "group_by"),
    ({"rules": [{"type": "spike", "name": "a"}] * 2}, "duplicate rule names: a"),
    ({"rules": [{"type": "negative_spike", "name": "a", "threshold": 0.6}]},
     "use type = 'significance'"),
    ({"notifiers": ["pager"]}, "unknown notifiers"),
])
def test_bad_config_names_the_key(tmp_path: Path, alerts: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(write(tmp_path, alerts))


def test_rules_folder(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.toml").write_text('type = "spike"\nname = "vol"\nspike_height = 3\n')
    (folder / "b.yaml").write_text("rules:\n  - type: flatline\n    name: feed-silent\n"
                                   "  - type: threshold\n    name: gloom\n    value: 0.5\n")
    settings = AlertSettings.model_validate({"rules_dir": str(folder),
                                             "rules": [{"type": "significance", "name": "n"}]})
    rules = load_rules(settings)
    assert [r.name for r in rules] == ["n", "vol", "feed-silent", "gloom"]
    assert isinstance(rules[1], SpikeSpec) and rules[1].spike_height == 3

    (folder / "c.yml").write_text("type: spike\nname: x\nspike_height: 0.5\n")
    with pytest.raises(ConfigError, match=r"c\.yml.*spike_height"):
        load_rules(settings)
    (folder / "c.yml").write_text("rules:\n  - type: spike\n    name: vol\n")
    with pytest.raises(ConfigError, match="duplicate rule names: vol"):
        load_rules(settings)
    (folder / "c.yml").write_text("type: [unclosed\n")
    with pytest.raises(ConfigError, match=r"rule file .*c\.yml"):
        load_rules(settings)


def test_email_needs_recipients() -> None:
    from finsentry.alerts.engine import AlertEngine
    from finsentry.errors import AlertError

    settings = AlertSettings.model_validate({"rules": [{"type": "significance", "name": "s"}]})
    engine = AlertEngine(settings, store=None, run_id="live")
    with pytest.raises(AlertError, match="rule s: .*mail_to is empty"):
        engine.check_notifiers()


def test_shipped_rules_are_the_defaults() -> None:
    from finsentry.alerts.defaults import DEFAULT_RULES
    from finsentry.alerts.rulefiles import parse_rule

    root = Path(__file__).resolve().parents[2]
    shipped = load_settings(root / "deploy" / "finsentry.toml").alerts.rules
    assert shipped == [parse_rule(r, "default") for r in DEFAULT_RULES]
