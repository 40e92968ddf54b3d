"""Every bad config file, environment value, option or unreachable service: one line, exit != 0.

Tracebacks only with `--debug`. Real subprocesses of the console script, as an operator runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finsentry.broker import free_port


def _run(*args: str, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    return subprocess.run([sys.executable, "-m", "finsentry", *args], capture_output=True,
                          text=True, timeout=timeout, env={**clean, **(env or {})}, check=False)


def _one_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode != 0, done.stdout
    err = done.stderr.strip()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 3, err  # click usage errors add "Usage:" and "Try --help" lines
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[kafka\npartitions = 3\n")
    err = _one_line(_run("--config", str(cfg), "config", "show"), "broken.toml", "TOML")
    assert err.startswith("error:")


def test_malformed_json_environment_value() -> None:
    _one_line(_run("config", "show", env={"FINSENTRY_INGEST__SOURCES": "[{bad"}), "ingest")


def test_unknown_environment_section_is_an_error() -> None:
    _one_line(_run("config", "show", env={"FINSENTRY_KAFAK__PARTITIONS": "3"}),
              "FINSENTRY_KAFAK__PARTITIONS")


@pytest.mark.parametrize(("args", "needle"), [
    (["worker", "--batch-size", "0"], "--batch-size"),
    (["worker", "--run-id", "it's"], "--run-id"),
    (["worker", "--log-level", "LOUD"], "--log-level"),
    (["topics", "create", "--partitions", "0"], "--partitions"),
    (["alerts", "run", "--interval", "-5"], "--interval"),
])
def test_invalid_options_name_the_option(args: list[str], needle: str) -> None:
    _one_line(_run(*args), needle)


def test_unreachable_clickhouse_is_one_line() -> None:
    port = free_port()
    started = time.monotonic()
    done = _run("db", "migrate", env={"FINSENTRY_CLICKHOUSE__HOST": "127.0.0.1",
                                      "FINSENTRY_CLICKHOUSE__PORT": str(port),
                                      "FINSENTRY_CLICKHOUSE__RETRY_ATTEMPTS": "2",
                                      "FINSENTRY_CLICKHOUSE__CONNECT_TIMEOUT_S": "1"})
    _one_line(done, f"127.0.0.1:{port}")
    assert time.monotonic() - started < 30


def test_unreachable_kafka_is_one_line() -> None:
    port = free_port()
    _one_line(_run("topics", "create",
                   env={"FINSENTRY_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"},
                   timeout=120), f"127.0.0.1:{port}")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[kafka\n")
    done = _run("--debug", "--config", str(cfg), "config", "show")
    assert done.returncode != 0 and "Traceback" in done.stderr
