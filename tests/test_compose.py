"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here).

The compose file is validated against the Compose Specification JSON schema bundled with
check-jsonschema (offline), then every reference in it is checked against the repository: each
finsentry command must resolve to a real click command of `finsentry.cli.cli` (and parse), each
bind-mounted path and each in-image path a health check runs must exist, and each FINSENTRY_*
variable must name a real setting and, with the mounted config file, load as valid settings.

Compose `${VAR...}` interpolation is reproduced by `interpolate` below for the forms the file
uses (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `$$`); the file is
asserted to use no other form, so the helper cannot silently misread it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from finsentry.cli import cli
from finsentry.config import KafkaSettings, Settings, load_settings
from finsentry.kafka_admin import existing_partitions
from finsentry.store import open_store
from tests.fixtures.clickhouse import ClickHouseServer

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"

# The finsentry commands the deployment must run (issue spec), as click command paths.
REQUIRED_COMMANDS = {
    ("ingest", "run"), ("worker",), ("alerts", "run"), ("topics", "create"), ("db", "migrate"),
}
# Host-published ports: only what a person opens in a browser (or queries from the host).
EXPECTED_PUBLISHED = {
    "grafana": {"3000:3000"},
    "mailpit": {"127.0.0.1:8025:8025"},
    "clickhouse": {"127.0.0.1:8123:8123"},
}
IMAGE_WORKDIR = "/opt/finsentry"  # where the Dockerfile copies the repository's folders
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)
REQUIRED_VAR = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")
_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
# Stand-ins for the variables compose requires (`${VAR:?}`) when the tests interpolate the file.
TEST_SECRET = "test-only-secret"


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose variable interpolation for the forms listed in the module docstring."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        have = env.get(name)
        if op == ":?":
            return have if have else TEST_SECRET
        if op == ":-":
            return have if have else arg
        if op == "-":
            return have if have is not None else arg
        return have or ""

    leftover = _VAR.sub("", value)
    assert "$" not in leftover, f"unsupported interpolation form in {value!r}"
    return _VAR.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def finsentry_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services running the image built from this repository's Dockerfile."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command_words(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def finsentry_invocations(words: list[str]) -> list[list[str]]:
    """The `finsentry ...` argument lists in a command (also inside `sh -c "a && b"`)."""
    if words[:2] in (["sh", "-c"], ["bash", "-c"], ["sh", "-ec"], ["bash", "-ec"]):
        script = words[2]
        words = shlex.split(script.replace("&&", " ; "))
    found: list[list[str]] = []
    current: list[str] | None = None
    for word in words:
        if word == ";":
            current = None
        elif word == "finsentry" and current is None:
            current = []
            found.append(current)
        elif current is not None:
            current.append(word)
    return found


def resolve_command(args: list[str]) -> tuple[click.Command, click.Context, list[str], str]:
    """Walk `cli`'s command tree along `args`; return the leaf, its parent context, the rest."""
    ctx = click.Context(cli, info_name="finsentry")
    command: click.Command = cli
    path = ["finsentry"]
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            known = ", ".join(sorted(command.list_commands(ctx)))
            raise AssertionError(f"`{' '.join(path)}` has no subcommand {rest[0]!r} "
                                 f"(it has: {known})")
        path.append(rest.pop(0))
        ctx = click.Context(sub, parent=ctx, info_name=path[-1])
        command = sub
    return command, ctx.parent or ctx, rest, " ".join(path)


def published_ports(service: dict[str, Any]) -> set[str]:
    ports = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):  # long syntax
            host_ip = f"{port['host_ip']}:" if port.get("host_ip") else ""
            ports.add(f"{host_ip}{port['published']}:{port['target']}")
        else:
            ports.add(str(port))
    return ports


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host source, container target) of the service's bind mounts (sources start . or /)."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):
            mounts.append((source, target))
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "volume":
                names.append(volume["source"])
            continue
        source = volume.split(":")[0]
        if not source.startswith((".", "/", "~")) and ":" in volume:
            names.append(source)
    return names


def image_path_to_repo(path: str) -> Path | None:
    """The repository file the Dockerfile copies to `path` in the image, if it is one of ours."""
    if path.startswith(IMAGE_WORKDIR + "/"):
        return ROOT / path[len(IMAGE_WORKDIR) + 1:]
    return None


# -- the file as a whole ---------------------------------------------------------------------------

def test_compose_file_matches_the_compose_specification_schema() -> None:
    # check-jsonschema ships the Compose Specification schema ("vendor.compose-spec"): no network.
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE_FILE)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, f"compose schema validation failed:\n{done.stdout}{done.stderr}"


def test_schema_check_catches_a_misspelt_key(tmp_path: Path) -> None:
    """Guards the check above: a typo in a service key must fail validation."""
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE_FILE.read_text(encoding="utf-8").replace(
        "stop_grace_period:", "stop_grace_periods:"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(bad)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "stop_grace_periods" in done.stdout + done.stderr


def test_expected_services_are_defined(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "clickhouse", "grafana", "mailpit", "topics", "ingest", "worker",
            "alerts"} <= set(services)


# -- finsentry services: commands, config, dependencies --------------------------------------------

def test_every_finsentry_command_resolves_to_a_real_cli_command(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Walks `finsentry.cli.cli` for each command and parses its options as click would."""
    seen: set[tuple[str, ...]] = set()
    problems = []
    for name, service in services.items():
        invocations = finsentry_invocations(command_words(service))
        if "build" in service:
            assert invocations, f"{name!r} runs the finsentry image but no finsentry command"
        env = {k: interpolate(v, {}) for k, v in environment(service).items()}
        for args in invocations:
            try:
                command, parent, rest, path = resolve_command(args)
            except AssertionError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if isinstance(command, click.Group):
                problems.append(f"{name}: `{path}` is a command group, not a command")
                continue
            seen.add(tuple(path.split()[1:]))
            with monkeypatch.context() as patched:  # options may read the service's env vars
                for key, value in env.items():
                    patched.setenv(key, value)
                try:
                    command.make_context(path.split()[-1], list(rest), parent=parent)
                except click.ClickException as exc:
                    problems.append(f"{name}: `{path} {' '.join(rest)}`: {exc.format_message()}")
    assert not problems, "compose commands that the finsentry CLI rejects:\n" + "\n".join(problems)
    assert REQUIRED_COMMANDS <= seen, f"missing commands: {REQUIRED_COMMANDS - seen}"


def test_topics_init_creates_topics_and_migrates_then_exits(
    services: dict[str, dict[str, Any]],
) -> None:
    topics = services["topics"]
    assert finsentry_invocations(command_words(topics)) == [["topics", "create"],
                                                            ["db", "migrate"]]
    assert topics.get("restart") == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    for name in ("worker", "ingest", "alerts"):
        condition = services[name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully", name


def test_topics_init_command_runs_against_real_services(
    services: dict[str, dict[str, Any]], kafka_bootstrap: str,
    clickhouse_server: ClickHouseServer,
) -> None:
    """The `topics` service's command, exactly as written, with its env and mounted config, on a
    real broker and a real ClickHouse server; only addresses and names are swapped for the test's
    own. It runs twice: every `docker compose up` reruns the init service."""
    topics = services["topics"]
    config = dict((t, s) for s, t in bind_mounts(topics))["/etc/finsentry/finsentry.toml"]
    tag = uuid.uuid4().hex[:8]
    env = {k: interpolate(v, {}) for k, v in environment(topics).items()}
    env.update({
        "FINSENTRY_CONFIG": str((COMPOSE_FILE.parent / config).resolve()),
        "FINSENTRY_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "FINSENTRY_KAFKA__RAW_TOPIC": f"c{tag}.raw",
        "FINSENTRY_KAFKA__SCORED_TOPIC": f"c{tag}.scored",
        "FINSENTRY_KAFKA__DEAD_LETTER_TOPIC": f"c{tag}.dlq",
        "FINSENTRY_CLICKHOUSE__HOST": clickhouse_server.host,
        "FINSENTRY_CLICKHOUSE__PORT": str(clickhouse_server.port),
        "FINSENTRY_CLICKHOUSE__USER": "default",
        "FINSENTRY_CLICKHOUSE__PASSWORD": "",
        "FINSENTRY_CLICKHOUSE__DATABASE": f"c_{tag}",
    })
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    child_env.update(env)
    child_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{child_env.get('PATH', '')}"
    settings = load_settings(env["FINSENTRY_CONFIG"], kafka={
        "bootstrap_servers": kafka_bootstrap, "raw_topic": f"c{tag}.raw",
        "scored_topic": f"c{tag}.scored", "dead_letter_topic": f"c{tag}.dlq"})
    try:
        for attempt in (1, 2):
            done = subprocess.run(command_words(topics), env=child_env, capture_output=True,
                                  text=True, timeout=180, check=False)
            assert done.returncode == 0, f"run {attempt}:\n{done.stdout}\n{done.stderr}"
        kafka: KafkaSettings = settings.kafka
        assert existing_partitions(kafka, [kafka.raw_topic, kafka.scored_topic,
                                           kafka.dead_letter_topic]) == {
            kafka.raw_topic: kafka.partitions, kafka.scored_topic: kafka.partitions,
            kafka.dead_letter_topic: kafka.dead_letter_partitions}
        with open_store(settings.clickhouse.model_copy(update={
                "host": clickhouse_server.host, "port": clickhouse_server.port,
                "user": "default", "database": f"c_{tag}"})) as store:
            tables = {row["name"] for row in store.query(
                "SELECT name FROM system.tables WHERE database = %(db)s", {"db": f"c_{tag}"})}
            assert {"scored_documents", "sentiment_minute", "alerts"} <= tables
    finally:
        with open_store(settings.clickhouse.model_copy(update={
                "host": clickhouse_server.host, "port": clickhouse_server.port,
                "user": "default", "database": "default"})) as store:
            store.execute(f"DROP DATABASE IF EXISTS c_{tag}")


def test_workers_can_scale(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports"), "fixed host ports would break --scale worker=N"
    for name, service in finsentry_services(services).items():
        assert "container_name" not in service, name


def test_finsentry_environment_names_real_settings(services: dict[str, dict[str, Any]]) -> None:
    for name, service in finsentry_services(services).items():
        env = environment(service)
        assert env.get("FINSENTRY_CONFIG") == "/etc/finsentry/finsentry.toml", name
        for key in env:
            if not key.startswith("FINSENTRY_") or key == "FINSENTRY_CONFIG":
                continue
            section, sep, field = key[len("FINSENTRY_"):].lower().partition("__")
            assert sep, f"{name}: {key} is not FINSENTRY_<SECTION>__<KEY>"
            assert section in Settings.model_fields, f"{name}: {key}: no section {section!r}"
            model = Settings.model_fields[section].annotation
            assert model is not None and field in model.model_fields, \
                f"{name}: {key}: no setting {section}.{field}"


def test_finsentry_environment_and_mounted_config_load(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What each container would load: deploy/finsentry.toml under the service's env vars."""
    for name, service in finsentry_services(services).items():
        mounts = dict((target, source) for source, target in bind_mounts(service))
        config_source = mounts.get("/etc/finsentry/finsentry.toml")
        assert config_source is not None, f"{name}: config file not mounted"
        env = {k: interpolate(v, {}) for k, v in environment(service).items()}
        with monkeypatch.context() as patched:
            for key in [k for k in os.environ if k.startswith("FINSENTRY_")]:
                patched.delenv(key)
            for key, value in env.items():
                if key != "FINSENTRY_CONFIG":
                    patched.setenv(key, value)
            settings = load_settings((COMPOSE_FILE.parent / config_source).resolve())
        assert settings.kafka.bootstrap_servers == "kafka:9092", name
        assert settings.clickhouse.host == "clickhouse", name
        assert settings.clickhouse.port == 9000, name
        assert settings.clickhouse.database == "finsentry", name
        assert settings.clickhouse.password.get_secret_value() == TEST_SECRET, name
    alerts_env = {k: interpolate(v, {}) for k, v in environment(services["alerts"]).items()}
    assert alerts_env["FINSENTRY_ALERTS__SMTP_HOST"] == "mailpit"
    assert alerts_env["FINSENTRY_ALERTS__SMTP_PORT"] == "1025"


def test_every_long_running_service_has_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name == "topics":  # one-shot: its exit status is its health
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"


def test_health_check_scripts_exist_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    for name, service in finsentry_services(services).items():
        if name == "topics":  # one-shot, no health check
            continue
        words = [str(w) for w in service["healthcheck"]["test"]]
        paths = [w for w in words if w.startswith(IMAGE_WORKDIR + "/")]
        assert paths, f"{name}: health check runs nothing from the image"
        for path in paths:
            repo_file = image_path_to_repo(path)
            assert repo_file is not None and repo_file.is_file(), f"{name}: {path} not in repo"
            relative = repo_file.relative_to(ROOT).as_posix()
            assert re.search(rf"^COPY\s+{re.escape(relative)}\s", dockerfile, re.M), \
                f"{name}: the Dockerfile does not copy {relative}"
        endpoints = words[words.index("tcp") + 1:] if "tcp" in words else []
        for endpoint in endpoints:
            host, _, port = endpoint.rpartition(":")
            assert host in services and port.isdigit(), f"{name}: bad health target {endpoint}"


# -- ports and mounts ------------------------------------------------------------------------------

def test_ports_are_published_only_where_a_person_needs_them(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {name: published_ports(svc) for name, svc in services.items()
                 if svc.get("ports")}
    assert published == EXPECTED_PUBLISHED
    for name, service in services.items():
        assert not service.get("network_mode"), f"{name}: host networking publishes everything"


def test_bind_mounted_paths_exist_in_the_repository(
    compose: dict[str, Any], services: dict[str, dict[str, Any]],
) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        for source, target in bind_mounts(service):
            assert source.startswith("./"), f"{name}: {source} is outside the repository"
            path = (COMPOSE_FILE.parent / source).resolve()
            assert path.exists(), f"{name}: mounted path {source} does not exist"
            assert target.startswith("/"), f"{name}: mount target {target} is not absolute"
        for volume in named_volumes(service):
            assert volume in declared, f"{name}: named volume {volume!r} is not declared"


def test_container_paths_named_in_environment_are_mounted(
    services: dict[str, dict[str, Any]],
) -> None:
    """An env var naming a file under a bind mount must point at a file that exists."""
    for name, service in services.items():
        mounts = bind_mounts(service)
        for key, value in environment(service).items():
            for source, target in mounts:
                if value.startswith(target.rstrip("/") + "/") or value == target:
                    relative = value[len(target):].lstrip("/")
                    path = (COMPOSE_FILE.parent / source / relative).resolve()
                    assert path.exists(), f"{name}: {key}={value} is not in {source}"


def test_grafana_gets_the_plugin_and_the_provisioning_folder(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    plugins = environment(grafana)["GF_PLUGINS_PREINSTALL_SYNC"].split(",")
    assert any(p.split("@")[0] == "grafana-clickhouse-datasource" and "@" in p for p in plugins)
    assert ("./dashboards/provisioning", "/etc/grafana/provisioning") in bind_mounts(grafana)
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith("/etc/grafana/provisioning/")


def test_kafka_runs_kraft_without_topic_auto_creation(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert not any(k.startswith("KAFKA_ZOOKEEPER") for k in env)


# -- secrets ---------------------------------------------------------------------------------------

def test_no_hard_coded_secrets(services: dict[str, dict[str, Any]]) -> None:
    """Secret-looking variables must be `${VAR:?message}`: required, never a baked-in default."""
    required: set[str] = set()
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_VAR.match(value), \
                    f"{name}: {key} must come from the environment as ${{VAR:?...}}, got {value!r}"
                required.add(value[2:].split(":", 1)[0])
    documented = ENV_EXAMPLE.read_text(encoding="utf-8")
    for var in required:
        assert re.search(rf"^{var}=", documented, re.M), f"{var} is not in deploy/env.example"


def test_interpolation_helper_follows_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${EMPTY-d}/${UNSET-d}", env) == "x/d//d"
    assert interpolate("${UNSET:?need it}", env) == TEST_SECRET
    assert interpolate("a$$b", env) == "a$b"
    with pytest.raises(AssertionError):
        interpolate("$BARE", env)


# -- Dockerfile ------------------------------------------------------------------------------------

def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    assert "FROM python:3.11-slim" in lines
    torch = next(i for i, line in enumerate(lines) if "torch==2.13.0" in line)
    assert "https://download.pytorch.org/whl/cpu" in lines[torch]
    project = next(i for i, line in enumerate(lines) if re.match(r"RUN pip install \.", line))
    assert torch < project, "torch must be installed (CPU build) before the project"
    assert any(line.startswith("USER ") and "root" not in line for line in lines)


def test_compose_builds_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name, service in finsentry_services(services).items():
        build = service["build"]
        context = COMPOSE_FILE.parent / build.get("context", ".")
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_dockerfile_copies_only_existing_unignored_paths() -> None:
    ignored = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words[1:-1] if not w.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies missing path {source}"
            for pattern in ignored:
                assert not fnmatch.fnmatch(source, pattern.lstrip("/")), \
                    f"Dockerfile copies {source}, which .dockerignore excludes ({pattern})"


# -- the health probe the finsentry services run ------------------------------------------------

def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py"), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_health_probe_tcp_and_http() -> None:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response({"/ok": 200, "/missing": 404}.get(self.path, 500))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert _probe("tcp", f"127.0.0.1:{port}").returncode == 0
        assert _probe("http", f"http://127.0.0.1:{port}/ok").returncode == 0
        # any answer below 500 means the process is serving (faust's web root may 404)
        assert _probe("http", f"http://127.0.0.1:{port}/missing").returncode == 0
        failed = _probe("http", f"http://127.0.0.1:{port}/broken")
        assert failed.returncode == 1 and "HTTP 500" in failed.stderr
    finally:
        server.shutdown()
        server.server_close()
    closed = _probe("tcp", f"127.0.0.1:{port}")
    assert closed.returncode == 1 and f"127.0.0.1:{port}" in closed.stderr
    assert _probe("tcp", "no-port").returncode == 1
    assert _probe("ftp", "x").returncode == 2
