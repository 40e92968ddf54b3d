"""Rules from files: a folder of *.toml / *.yaml / *.yml files, each one rule (a table with
`type` and `name`) or a list under `rules`. Validated on load; errors name the file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from finsentry.alerts.base import RuleSpec
from finsentry.alerts.registry import RuleConfig
from finsentry.errors import ConfigError

if TYPE_CHECKING:
    from finsentry.config import AlertSettings

_ADAPTER: TypeAdapter[Any] = TypeAdapter(RuleConfig)
SUFFIXES = (".toml", ".yaml", ".yml")


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        import yaml

        return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"rule file {path}: {' '.join(str(exc).split())}") from None
    except Exception as exc:  # yaml.YAMLError
        raise ConfigError(f"rule file {path}: {' '.join(str(exc).split())}") from None


def parse_rule(entry: Any, where: str) -> RuleSpec:
    """One rule entry (dict) validated; ConfigError naming `where` and the bad key."""
    try:
        spec: RuleSpec = _ADAPTER.validate_python(entry)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}{'.' + loc if loc else ''}: {err['msg']}") from None
    return spec


def load_rule_file(path: Path) -> list[RuleSpec]:
    data = _read(path)
    if isinstance(data, dict) and "rules" in data and "type" not in data:
        entries = data["rules"]
        if not isinstance(entries, list):
            raise ConfigError(f"rule file {path}: `rules` must be a list")
        return [parse_rule(e, f"rule file {path}: rules[{i}]") for i, e in enumerate(entries)]
    return [parse_rule(data, f"rule file {path}")]


def load_rules(settings: AlertSettings) -> list[RuleSpec]:
    """The config's rules plus every file of alerts.rules_dir (sorted); names must be unique."""
    rules: list[RuleSpec] = list(settings.rules)
    folder = settings.rules_dir
    if folder is not None:
        if not folder.is_dir():
            raise ConfigError(f"alerts.rules_dir {folder}: not a folder")
        for path in sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES):
            rules.extend(load_rule_file(path))
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"duplicate rule names: {', '.join(dupes)}")
    return rules
