"""Provisioning files and the dashboard JSON, checked offline (Grafana cannot run here).

The JSON under dashboards/provisioning/dashboards/json is generated: `finsentry dashboards
build` writes it from the Python definitions, and a test fails when the committed files differ.
Validity is checked the way Grafana would load the files: schema version, unique panel ids,
non-overlapping grid positions, every variable used defined, every datasource uid provisioned.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # noqa: S405 - parses this repository's own config file
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from finsentry.cli import cli
from finsentry.dashboards.catalog import DASHBOARDS
from finsentry.dashboards.grafana import dashboard_json

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"
JSON_DIR = PROVISIONING / "dashboards" / "json"
COMPOSE_FILE = ROOT / "docker-compose.yml"
GRAFANA_USERS = ROOT / "deploy" / "clickhouse" / "users.d" / "grafana.xml"
PLUGIN = "grafana-clickhouse-datasource"
BUILTIN = re.compile(r"^__")


def yaml_files(folder: str) -> list[Path]:
    return sorted((PROVISIONING / folder).glob("*.y*ml"))


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in yaml_files("datasources"):
        for datasource in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]:
            assert datasource["uid"] not in found, f"{path.name}: duplicate uid"
            found[datasource["uid"]] = datasource
    return found


def grafana_mount() -> tuple[Path, str]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    for volume in compose["services"]["grafana"]["volumes"]:
        source, target = str(volume).split(":")[:2]
        if target == "/etc/grafana/provisioning":
            return (COMPOSE_FILE.parent / source).resolve(), target
    raise AssertionError("docker-compose.yml does not mount provisioning into Grafana")


def dashboard_folders() -> list[Path]:
    repo_folder, container_folder = grafana_mount()
    folders = []
    for path in yaml_files("dashboards"):
        for provider in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]:
            assert provider["type"] == "file" and provider["folderUid"]
            target = provider["options"]["path"]
            assert target.startswith(container_folder + "/"), f"{target} is not mounted"
            folders.append(repo_folder / target[len(container_folder) + 1:])
    return folders


def dashboards() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, json.loads(path.read_text(encoding="utf-8")))
            for folder in dashboard_folders() for path in sorted(folder.rglob("*.json"))]


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, sql) of every panel target, variable and annotation."""
    found = [(f"panel {p['title']!r}", t["rawSql"]) for p in dashboard["panels"]
             for t in p["targets"]]
    found += [(f"variable {v['name']}", v["query"]["rawSql"])
              for v in dashboard["templating"]["list"]]
    found += [(f"annotation {a['name']}", a["target"]["rawSql"])
              for a in dashboard.get("annotations", {}).get("list", [])]
    return found


def test_committed_json_is_what_build_writes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboards", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    built = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text(encoding="utf-8") for p in JSON_DIR.glob("*.json")}
    assert built.keys() == committed.keys(), "run `finsentry dashboards build` and commit"
    for name, text in built.items():
        assert committed[name] == text, f"{name} differs: run `finsentry dashboards build`"
    assert built == {f"{d.slug}.json": dashboard_json(d) for d in DASHBOARDS}


def test_datasource_is_the_plugin_with_the_read_only_user_and_no_literal_password() -> None:
    datasources = provisioned_datasources()
    assert len(datasources) == 1
    (datasource,) = datasources.values()
    assert datasource["type"] == PLUGIN
    assert datasource["jsonData"]["defaultDatabase"] == "finsentry"
    match = re.fullmatch(r"\$\{?([A-Z][A-Z0-9_]*)\}?", datasource["secureJsonData"]["password"])
    assert match, "the datasource password must be an environment reference"
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert match.group(1) in compose["services"]["grafana"]["environment"]
    users = ET.parse(GRAFANA_USERS).getroot()  # noqa: S314 - our own file
    user = users.find(f"users/{datasource['jsonData']['username']}")
    assert user is not None
    password = user.find("password")
    assert password is not None and password.get("from_env") == match.group(1)
    profile = users.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") in {"1", "2"}


def test_providers_load_every_built_dashboard_into_the_folder() -> None:
    found = dashboards()
    assert sorted(d["uid"] for _, d in found) == sorted(d.uid for d in DASHBOARDS)
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    environment = compose["services"]["grafana"]["environment"]
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    repo_folder, container_folder = grafana_mount()
    assert (repo_folder / home[len(container_folder) + 1:]).is_file(), "home dashboard missing"


def test_dashboards_are_valid_grafana_json() -> None:
    datasources = provisioned_datasources()
    for path, dashboard in dashboards():
        name = path.name
        assert dashboard["schemaVersion"] >= 39, name
        assert dashboard["title"] and dashboard["uid"] and len(dashboard["uid"]) <= 40, name
        assert dashboard["time"]["from"] and dashboard["refresh"], name
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        cells: dict[tuple[int, int], str] = {}
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, \
                        f"{name}: {panel['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = panel["title"]
        refs = [p["datasource"] for p in dashboard["panels"]]
        refs += [t["datasource"] for p in dashboard["panels"] for t in p["targets"]]
        refs += [v["datasource"] for v in dashboard["templating"]["list"]]
        refs += [a["datasource"] for a in dashboard.get("annotations", {}).get("list", [])]
        for ref in refs:
            assert ref["uid"] in datasources, f"{name}: unknown datasource {ref}"
            assert ref["type"] == datasources[ref["uid"]]["type"], name
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert {"run_id", "topic", "ticker", "source", "language"} <= set(variables), name
        for variable in variables.values():
            assert variable["type"] == "query" and variable["allowCustomValue"] is False
        for where, sql in queries(dashboard):
            stripped = re.sub(r"\$__conditionalAll\(|, \$(\w+)\)", "", sql)
            for ref in re.findall(r"\$\{?(\w+)", stripped):
                if BUILTIN.match(ref):
                    continue
                assert ref in variables, f"{name} {where}: undefined variable ${ref}"
                assert f"${{{ref}:sqlstring}}" in sql, f"{name} {where}: ${ref} not :sqlstring"
            for ref in re.findall(r", \$(\w+)\)", sql):
                assert ref in variables, f"{name} {where}: undefined variable ${ref}"
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                assert target["editorType"] == "sql" and target["format"] in (0, 1)
                assert (target["format"] == 0) == (panel["type"] in ("timeseries", "heatmap"))
