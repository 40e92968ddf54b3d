"""An embedded Kafka-protocol broker (PyPI noida-db) run as a child process.

Used by `finsentry demo` (no external services) and by the test fixtures. Production uses a real
Kafka cluster (docker-compose.yml); nothing here is on the production path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from finsentry.errors import KafkaAdminError


def broker_binary() -> Path:
    spec = importlib.util.find_spec("noida_db")
    if spec is None or not spec.submodule_search_locations:
        raise KafkaAdminError("embedded broker: PyPI package noida-db is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "noida-db"
    if not path.is_file():
        raise KafkaAdminError(f"embedded broker: binary missing at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


class EmbeddedBroker:
    """Start/stop a local broker; use as a context manager. `bootstrap` is host:port."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1",
                 log_path: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path or self.data_dir / "broker.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker child's process id while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(broker_binary()), "start", "--only", "kafka", "--kafka-port", str(self.port),
               "--host", self.host, "--data-dir", str(self.data_dir)]
        log = self.log_path.open("ab")
        # own process group: Ctrl-C in a terminal reaches us, and we stop the broker ourselves
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        if not wait_for_port(self.host, self.port, timeout):
            self.stop()
            raise KafkaAdminError(
                f"embedded broker did not listen on {self.bootstrap} within {timeout}s "
                f"(log: {self.log_path})"
            )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

