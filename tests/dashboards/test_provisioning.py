"""Grafana provisioning under dashboards/provisioning/, checked offline and against real SQL.

Every dashboard JSON is parsed, its datasource references are matched to the provisioned
datasource, and every panel and template-variable query is RUN on a real embedded ClickHouse
(chdb) store with the finsentry schema migrated and documents written through ScoredSink (the
workers' write path, which also feeds the sentiment_minute materialized view).

No Grafana runs here, so `expand` below does what Grafana and the ClickHouse plugin would do to a
query before it reaches ClickHouse, in their order:
  1. `$__conditionalAll(condition, $var)` -> `1=1` when $var is "All", else `condition`
     (the plugin's frontend applyConditionalAll, including its bracket-aware argument split);
  2. `${var:sqlstring}` -> each selected value quoted with `'` doubled, joined by commas; "All"
     means every option the variable's own query returned (Grafana's sqlstring format);
  3. `$__timeFilter(col)` -> `col >= toDateTime(FROM) AND col <= toDateTime(TO)`,
     `$__timeInterval(col)` -> `toStartOfInterval(toDateTime(col), INTERVAL S second)` and
     `$__interval_s` -> `S` (the plugin's backend, pkg/macros/macros.go).
Anything else starting with `$` left in a query fails the test, so a dashboard cannot use a
variable form this expansion (and the escaping it checks) does not cover.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # noqa: S405 - parses this repository's own config file
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from finsentry.config import ClickHouseSettings
from finsentry.records import Document, ScoredDocument, SentimentProbs, TickerMention
from finsentry.store import ScoredSink, Store, migrate, open_store

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"
COMPOSE_FILE = ROOT / "docker-compose.yml"
GRAFANA_USERS = ROOT / "deploy" / "clickhouse" / "users.d" / "grafana.xml"
PLUGIN = "grafana-clickhouse-datasource"
STARTER_TITLE = "finsentry — sentiment overview"
ALL = "$__all"
INTERVAL_S = 60
NOW = datetime.now(UTC).replace(microsecond=0)


# -- provisioning files ----------------------------------------------------------------------------

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
    """(repository folder, container path) of the provisioning folder mounted into Grafana."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    for volume in compose["services"]["grafana"]["volumes"]:
        source, target = str(volume).split(":")[:2]
        if target == "/etc/grafana/provisioning":
            return (COMPOSE_FILE.parent / source).resolve(), target
    raise AssertionError("docker-compose.yml does not mount provisioning into Grafana")


def dashboard_folders() -> list[Path]:
    """The repository folders the dashboard providers load JSON from (via the compose mount)."""
    repo_folder, container_folder = grafana_mount()
    folders = []
    for path in yaml_files("dashboards"):
        for provider in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]:
            assert provider["type"] == "file"
            target = provider["options"]["path"]
            assert target.startswith(container_folder + "/"), f"{target} is not mounted"
            folders.append(repo_folder / target[len(container_folder) + 1:])
    return folders


def dashboards() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, json.loads(path.read_text(encoding="utf-8")))
            for folder in dashboard_folders() for path in sorted(folder.rglob("*.json"))]


def panel_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard.get("panels", []):
        for nested in [panel, *panel.get("panels", [])]:  # rows may hold panels
            for target in nested.get("targets", []):
                yield nested, target


def test_datasource_is_the_clickhouse_plugin_with_no_literal_password() -> None:
    datasources = provisioned_datasources()
    assert len(datasources) == 1
    (datasource,) = datasources.values()
    assert datasource["type"] == PLUGIN
    assert datasource["jsonData"]["protocol"] in {"native", "http"}
    assert datasource["jsonData"]["defaultDatabase"] == "finsentry"
    password = datasource["secureJsonData"]["password"]
    match = re.fullmatch(r"\$\{?([A-Z][A-Z0-9_]*)\}?", password)
    assert match, "the datasource password must be an environment reference"
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    grafana_env = compose["services"]["grafana"]["environment"]
    assert match.group(1) in grafana_env, f"Grafana's container does not get ${match.group(1)}"
    # ...and the user it logs in as exists, read-only, with that same password variable.
    users = ET.parse(GRAFANA_USERS).getroot()  # noqa: S314 - our own file, not untrusted input
    user = users.find(f"users/{datasource['jsonData']['username']}")
    assert user is not None, "datasource user is not defined in deploy/clickhouse/users.d"
    user_password = user.find("password")
    assert user_password is not None and user_password.get("from_env") == match.group(1)
    profile = users.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") in {"1", "2"}


def test_providers_point_at_existing_json_folders() -> None:
    folders = dashboard_folders()
    assert folders
    for folder in folders:
        assert folder.is_dir() and list(folder.rglob("*.json")), f"no dashboards in {folder}"


def test_dashboards_parse_and_reference_the_provisioned_datasource() -> None:
    datasources = provisioned_datasources()
    found = dashboards()
    assert found
    uids = [dashboard["uid"] for _, dashboard in found]
    assert len(uids) == len(set(uids)), "dashboard uids must be unique"
    for path, dashboard in found:
        assert dashboard.get("title") and dashboard.get("uid"), path.name
        refs = [panel.get("datasource") for panel in dashboard.get("panels", [])]
        refs += [target.get("datasource") for _, target in panel_targets(dashboard)]
        refs += [v.get("datasource") for v in dashboard.get("templating", {}).get("list", [])
                 if v.get("type") == "query"]
        for ref in refs:
            assert isinstance(ref, dict), f"{path.name}: datasource given by name, not uid"
            assert ref.get("uid") in datasources, f"{path.name}: unknown datasource {ref}"
            assert ref.get("type") == datasources[ref["uid"]]["type"], path.name
        for panel, target in panel_targets(dashboard):
            assert target.get("editorType") == "sql" and target.get("rawSql"), \
                f"{path.name}: panel {panel.get('title')!r} has no SQL"


def starter() -> dict[str, Any]:
    matches = [d for _, d in dashboards() if d["title"] == STARTER_TITLE]
    assert len(matches) == 1, f"exactly one dashboard titled {STARTER_TITLE!r}"
    return matches[0]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_starter_dashboard_has_the_panels_and_variables() -> None:
    dashboard = starter()
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert titles == {"Sentiment over time per topic", "Negative share by ticker",
                      "Latest negative headlines", "Documents per minute by source"}
    found = variables(dashboard)
    assert set(found) == {"run_id", "ticker", "topic"}
    assert found["run_id"]["current"]["value"] == "live"
    for name in ("ticker", "topic"):
        assert found[name]["multi"] and found[name]["includeAll"], name
    for variable in found.values():
        # Values come only from the database, never typed in: the read-only SQL user is the
        # second line of defence (Grafana's sqlstring does not escape backslashes).
        assert variable["type"] == "query" and variable["allowCustomValue"] is False


def test_queries_use_only_escaped_variable_forms() -> None:
    for path, dashboard in dashboards():
        names = set(variables(dashboard))
        sqls = [target["rawSql"] for _, target in panel_targets(dashboard)]
        sqls += [v["query"]["rawSql"] for v in variables(dashboard).values()]
        for sql in sqls:
            stripped = re.sub(r"\$__conditionalAll\(|, \$(\w+)\)", "", sql)
            refs = re.findall(r"\$\{?(\w+)", stripped)
            for ref in refs:
                if ref.startswith("__"):
                    continue  # macros and Grafana built-ins
                assert ref in names, f"{path.name}: unknown variable ${ref}"
                assert f"${{{ref}:sqlstring}}" in sql, f"{path.name}: ${ref} not :sqlstring"
            assert not re.search(r"\$(?!\{)(?!__)\w+", stripped), \
                f"{path.name}: bare $variable outside $__conditionalAll"


# -- the SQL, run for real -------------------------------------------------------------------------

def _conditional_all_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Split the macro's arguments at depth-1 commas (as the plugin's getMacroArgs does)."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        char = sql[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args, i
        elif char == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise AssertionError(f"unbalanced $__conditionalAll in {sql!r}")


def sqlstring(values: list[str]) -> str:
    return ",".join("'" + value.replace("'", "''") + "'" for value in values)


def expand(sql: str, selected: dict[str, list[str]], options: dict[str, list[str]],
           start: datetime, end: datetime, interval_s: int = INTERVAL_S) -> str:
    """A query as ClickHouse would receive it from Grafana (see the module docstring)."""
    macro = "$__conditionalAll("
    while (at := sql.rfind(macro)) != -1:
        args, close = _conditional_all_args(sql, at + len(macro) - 1)
        assert len(args) == 2, f"$__conditionalAll takes 2 arguments: {args}"
        name = re.search(r"\$\{?(\w+)", args[1].strip())
        assert name, f"$__conditionalAll's second argument is not a variable: {args[1]!r}"
        value = selected.get(name.group(1), [])
        sql = sql[:at] + ("1=1" if value in ([], [ALL]) else args[0]) + sql[close + 1:]

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = selected[name]
        return sqlstring(options[name] if value == [ALL] else value)

    sql = re.sub(r"\$\{(\w+):sqlstring\}", substitute, sql)
    frm, to = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^()]+)\)",
                 lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})", sql)
    sql = re.sub(r"\$__timeInterval\(([^()]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)",
                 sql)
    sql = sql.replace("$__interval_s", str(interval_s))
    assert "$" not in sql, f"unexpanded macro or variable left in:\n{sql}"
    return sql


def scored(i: int, *, tickers: list[str], sentiment: str, topic: str, source: str,
           minutes_ago: int, run_id: str = "live", title: str | None = None,
           duplicate_of: str | None = None) -> ScoredDocument:
    document = Document.create(
        source=source, title=title or f"headline {i}", text=f"body of story {i}",
        url=f"https://news.example.com/{run_id}/{i}",
        published_at=NOW - timedelta(minutes=minutes_ago),
        tickers=[TickerMention.model_validate({"symbol": t}) for t in tickers],
        duplicate_of=duplicate_of,
    )
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    probs[sentiment] = 0.8
    return ScoredDocument(
        document=document, sentiment=sentiment, sentiment_probs=SentimentProbs(**probs),
        score=round(probs["positive"] - probs["negative"], 6), topic=topic,
        topic_probs={topic: 0.9}, model_name="test-model", model_version="1", run_id=run_id,
    )


# (tickers, sentiment, topic, source, minutes ago): 'live' run, all inside the last hour.
LIVE = [
    (["AAPL"], "negative", "earnings", "rss-a", 5),
    (["AAPL", "MSFT"], "positive", "earnings", "rss-a", 6),
    (["AAPL"], "negative", "legal", "rss-b", 7),
    (["MSFT"], "neutral", "macro", "rss-b", 8),
    ([], "negative", "macro", "rss-b", 9),
    (["O'NEIL"], "negative", "legal", "rss-a", 10),  # a quote in a value must stay data
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A real chdb store, schema migrated, holding LIVE, a replay run and an old document."""
    settings = ClickHouseSettings.model_validate({
        "chdb_path": tmp_path_factory.mktemp("chdb") / "data", "database": "finsentry",
        "retry_attempts": 1,
    })
    with open_store(settings) as opened:
        migrate(opened)
        docs = [scored(i, tickers=t, sentiment=s, topic=tp, source=src, minutes_ago=m)
                for i, (t, s, tp, src, m) in enumerate(LIVE)]
        docs.append(scored(90, tickers=["AAPL"], sentiment="negative", topic="earnings",
                           source="rss-a", minutes_ago=4, title="near-duplicate",
                           duplicate_of=docs[0].document.id))
        docs.append(scored(91, tickers=["TSLA"], sentiment="negative", topic="earnings",
                           source="rss-a", minutes_ago=5, run_id="replay-1"))
        docs.append(scored(92, tickers=["AAPL"], sentiment="negative", topic="earnings",
                           source="rss-a", minutes_ago=60 * 24 * 3))  # outside the range
        assert ScoredSink(opened).write(docs) == len(docs)
        yield opened


WINDOW = (NOW - timedelta(hours=6), NOW + timedelta(minutes=1))


def variable_options(store: Store, dashboard: dict[str, Any],
                     selected: dict[str, list[str]]) -> dict[str, list[str]]:
    """Run each variable's query in dashboard order, as Grafana refreshes them."""
    options: dict[str, list[str]] = {}
    for name, variable in variables(dashboard).items():
        sql = expand(variable["query"]["rawSql"], selected, options, *WINDOW)
        rows = store.query(sql)
        options[name] = [str(next(iter(row.values()))) for row in rows]
    return options


def run_panels(store: Store, dashboard: dict[str, Any],
               selected: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    options = variable_options(store, dashboard, selected)
    results = {}
    for panel, target in panel_targets(dashboard):
        sql = expand(target["rawSql"], selected, options, *WINDOW)
        results[panel["title"]] = store.query(sql)
    return results


def test_variable_queries_list_what_is_stored(store: Store) -> None:
    dashboard = starter()
    options = variable_options(store, dashboard, {"run_id": ["live"], "topic": [ALL],
                                                  "ticker": [ALL]})
    assert options["run_id"] == ["live", "replay-1"]
    assert options["topic"] == ["earnings", "legal", "macro"]
    assert options["ticker"] == ["AAPL", "MSFT", "O'NEIL"]


def test_every_panel_query_runs_with_all_selected(store: Store) -> None:
    results = run_panels(store, starter(), {"run_id": ["live"], "topic": [ALL],
                                            "ticker": [ALL]})

    per_topic = results["Sentiment over time per topic"]
    assert {row["topic"] for row in per_topic} == {"earnings", "legal", "macro"}
    assert all(-1 <= row["mean_score"] <= 1 for row in per_topic)
    assert [row["time"] for row in per_topic] == sorted(row["time"] for row in per_topic)

    share = {row["ticker"]: row for row in results["Negative share by ticker"]}
    # AAPL: docs 0 (neg), 1 (pos), 2 (neg), 90 (neg, near-duplicate still counts) -> 3/4
    assert share["AAPL"]["negative_share"] == pytest.approx(0.75)
    assert share["AAPL"]["documents"] == 4
    assert share["MSFT"]["negative_share"] == pytest.approx(0.0)
    assert share["O'NEIL"]["negative_share"] == pytest.approx(1.0)
    assert "TSLA" not in share, "another run's rows leaked in"

    headlines = results["Latest negative headlines"]
    titles = [row["title"] for row in headlines]
    assert titles == ["headline 0", "headline 2", "headline 4", "headline 5"]
    assert "near-duplicate" not in titles

    per_minute = results["Documents per minute by source"]
    total = sum(row["docs_per_min"] * INTERVAL_S / 60 for row in per_minute)
    assert total == pytest.approx(len(LIVE) + 1)  # LIVE plus the near-duplicate
    assert {row["source"] for row in per_minute} == {"rss-a", "rss-b"}


def test_every_panel_query_applies_ticker_and_topic_filters(store: Store) -> None:
    results = run_panels(store, starter(), {"run_id": ["live"], "topic": ["earnings"],
                                            "ticker": ["AAPL"]})
    assert {row["topic"] for row in results["Sentiment over time per topic"]} == {"earnings"}
    share = results["Negative share by ticker"]
    assert [row["ticker"] for row in share] == ["AAPL"]
    assert share[0]["negative_share"] == pytest.approx(2 / 3)  # earnings only: 0, 1, 90
    assert [row["title"] for row in results["Latest negative headlines"]] == ["headline 0"]
    assert sum(row["docs_per_min"] for row in results["Documents per minute by source"]) == 3


def test_quoted_values_stay_data(store: Store) -> None:
    """A selected value with a quote is escaped into a literal, not spliced into the SQL."""
    results = run_panels(store, starter(), {"run_id": ["live"], "topic": [ALL],
                                            "ticker": ["O'NEIL"]})
    assert [row["ticker"] for row in results["Negative share by ticker"]] == ["O'NEIL"]
    hostile = run_panels(store, starter(), {"run_id": ["live' OR '1'='1"], "topic": [ALL],
                                            "ticker": ["x') OR (1=1"]})
    assert all(rows == [] for rows in hostile.values())


def test_the_replay_run_is_selectable(store: Store) -> None:
    results = run_panels(store, starter(), {"run_id": ["replay-1"], "topic": [ALL],
                                            "ticker": [ALL]})
    assert [row["ticker"] for row in results["Negative share by ticker"]] == ["TSLA"]
