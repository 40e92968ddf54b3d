"""The typed configuration: file + environment, unknown keys named, secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from finsentry.cli import cli
from finsentry.config import load_settings
from finsentry.errors import ConfigError


def test_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text('[kafka]\npartitions = 6\nraw_topic = "from-file"\n'
                   '[clickhouse]\nhost = "ch.internal"\npassword = "s3cret"\n')
    monkeypatch.setenv("FINSENTRY_KAFKA__PARTITIONS", "12")
    settings = load_settings(cfg)
    assert settings.kafka.partitions == 12  # environment wins over the file
    assert settings.kafka.raw_topic == "from-file"
    assert settings.clickhouse.password.get_secret_value() == "s3cret"
    assert not settings.clickhouse.embedded


def test_unknown_keys_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[kafka]\npartitons = 3\n")
    with pytest.raises(ConfigError, match=r"kafka\.partitons"):
        load_settings(cfg)
    monkeypatch.setenv("FINSENTRY_WORKER__BATCH_SIZ", "3")
    with pytest.raises(ConfigError, match=r"worker\.batch_siz"):
        load_settings()


def test_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_KAFKA__PARTITIONS", "0")
    with pytest.raises(ConfigError, match=r"kafka\.partitions"):
        load_settings()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_config_show_redacts_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_CLICKHOUSE__PASSWORD", "hunter2")
    monkeypatch.setenv("FINSENTRY_ALERTS__SMTP_PASSWORD", "mailpass")
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "mailpass" not in result.output
    shown = json.loads(result.output)
    assert shown["clickhouse"]["password"] == "**********"


def test_help_names_environment_variables() -> None:
    result = CliRunner().invoke(cli, ["worker", "--help"])
    assert result.exit_code == 0
    assert "FINSENTRY_WORKER__BATCH_SIZE" in result.output
    assert "FINSENTRY_CONFIG" in CliRunner().invoke(cli, ["--help"]).output


def test_readme_documents_every_setting() -> None:
    from finsentry.config import reference_rows

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    missing = [env for _, env, _, _ in reference_rows() if f"`{env}`" not in readme]
    assert not missing, f"README configuration reference is stale (run `finsentry config " \
        f"reference`): {missing}"
