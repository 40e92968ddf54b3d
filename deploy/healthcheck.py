"""Container health probe for the finsentry services (stdlib only, no finsentry import).

    python healthcheck.py tcp HOST:PORT [HOST:PORT ...]   every endpoint accepts a connection
    python healthcheck.py http URL                        the URL answers with a status below 500
    python healthcheck.py healthz URL                     a finsentry /healthz answers 200 (a 503
                                                          lists the failing checks on stderr)

Why a separate script: importing finsentry would load pydantic and friends on every probe, and the
probe must say "this process can reach what it needs" without depending on the code it checks.
Exit status 0 = healthy, 1 = unhealthy (the reason on stderr), as Docker expects.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 3.0


def check_tcp(endpoint: str) -> str | None:
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        return f"bad endpoint {endpoint!r}: expected HOST:PORT"
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{endpoint}: {exc}"


def check_http(url: str) -> str | None:
    if not url.startswith(("http://", "https://")):
        return f"bad url {url!r}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S):  # noqa: S310 - scheme checked above
            return None
    except urllib.error.HTTPError as exc:  # the server answered: only 5xx means unhealthy
        return None if exc.code < 500 else f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


def check_healthz(url: str) -> str | None:
    """A finsentry service's own verdict: only 200 is healthy."""
    if not url.startswith(("http://", "https://")):
        return f"bad url {url!r}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310 - checked
            return None if resp.status == 200 else f"{url}: HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        try:
            reasons = json.loads(exc.read() or b"{}").get("reasons", {})
        except ValueError:
            reasons = {}
        detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        return f"{url}: HTTP {exc.code}" + (f" ({detail})" if detail else "")
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


CHECKS = {"tcp": check_tcp, "http": check_http, "healthz": check_healthz}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in CHECKS:
        print(__doc__, file=sys.stderr)
        return 2
    check = CHECKS[argv[0]]
    problems = [p for p in (check(target) for target in argv[1:]) if p]
    for problem in problems:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
