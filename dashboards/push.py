"""`finsentry dashboards push`: the folder, data source and dashboards into a running Grafana.

Through Grafana's HTTP API with the grafana-api client. Idempotent: each object is read first and
written only when missing or different, so a second push changes nothing (and says so). The data
source is the provisioned one (dashboards/provisioning/datasources), its password taken from the
environment variable the provisioning file names, never from a file. Failures are one line
naming the URL: 401 (token rejected), 403 (token lacks the permission), 404 (no Grafana API at
that URL) or unreachable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from finsentry.dashboards.catalog import DASHBOARDS
from finsentry.dashboards.grafana import build
from finsentry.dashboards.spec import FOLDER_TITLE, FOLDER_UID, Dashboard
from finsentry.errors import DashboardError

DATASOURCES = Path(__file__).resolve().parent / "provisioning" / "datasources"
DATASOURCE_FIELDS = ("name", "type", "access", "isDefault", "jsonData")


def _client(url: str, token: str, timeout_s: float) -> Any:
    from grafana_api.grafana_face import GrafanaFace

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DashboardError(f"Grafana URL {url!r} must look like http(s)://host[:port][/path]")
    prefix = parts.path.strip("/")
    return GrafanaFace(auth=token, host=parts.hostname, port=parts.port,
                       url_path_prefix=f"{prefix}/" if prefix else "", protocol=parts.scheme,
                       timeout=timeout_s)


def provisioned_datasource() -> dict[str, Any]:
    """The provisioned data source as an API body (password from its environment variable)."""
    (path,) = sorted(DATASOURCES.glob("*.y*ml"))
    (source,) = yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    body = {k: source[k] for k in ("uid", *DATASOURCE_FIELDS) if k in source}
    reference = str(source.get("secureJsonData", {}).get("password", ""))
    match = re.fullmatch(r"\$\{?([A-Z][A-Z0-9_]*)\}?", reference)
    if match and os.environ.get(match.group(1)):
        body["secureJsonData"] = {"password": os.environ[match.group(1)]}
    return body


class Pusher:
    def __init__(self, url: str, token: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.face = _client(url, token, timeout_s)

    def call(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> Any:
        """One API call; None when `missing_ok` and Grafana answers 404; else one-line errors."""
        from grafana_api.grafana_api import GrafanaException
        from requests import RequestException
        from requests.exceptions import JSONDecodeError

        try:
            return getattr(self.face.api, method)(path, json=body)
        except GrafanaException as exc:
            status = exc.status_code
            if status == 404 and missing_ok:
                return None
            if status == 401:
                raise DashboardError(f"Grafana at {self.url} rejected the token (401 "
                                     "Unauthorized): check --token") from None
            if status == 403:
                raise DashboardError(f"Grafana at {self.url} refused {method} /api{path} (403 "
                                     "Forbidden): the token needs the Editor or Admin role") \
                    from None
            if status == 404:
                raise DashboardError(f"no Grafana API at {self.url} (404 on {method} /api{path}):"
                                     " check --url") from None
            raise DashboardError(f"Grafana at {self.url}: {method} /api{path} failed "
                                 f"({status}): {str(exc.message)[:200]}") from None
        except JSONDecodeError:  # an answer that is not JSON: not Grafana's API
            raise DashboardError(f"no Grafana API at {self.url} ({method} /api{path} did not "
                                 "answer JSON): check --url") from None
        except RequestException as exc:
            raise DashboardError(f"cannot reach Grafana at {self.url}: "
                                 f"{type(exc).__name__}") from None

    def folder(self) -> str:
        found = self.call("GET", f"/folders/{FOLDER_UID}", missing_ok=True)
        if found is None:
            self.call("POST", "/folders", {"uid": FOLDER_UID, "title": FOLDER_TITLE})
            return f"folder {FOLDER_UID}: created"
        if found.get("title") != FOLDER_TITLE:
            self.call("PUT", f"/folders/{FOLDER_UID}",
                      {"title": FOLDER_TITLE, "version": found.get("version"), "overwrite": True})
            return f"folder {FOLDER_UID}: updated"
        return f"folder {FOLDER_UID}: unchanged"

    def datasource(self) -> str:
        body = provisioned_datasource()
        uid = body["uid"]
        found = self.call("GET", f"/datasources/uid/{uid}", missing_ok=True)
        if found is None:
            self.call("POST", "/datasources", body)
            return f"datasource {uid}: created"
        same = all(found.get(k) == body.get(k) for k in DATASOURCE_FIELDS if k in body)
        if same and "secureJsonData" not in body:
            return f"datasource {uid}: unchanged"
        if same and found.get("secureJsonFields", {}).get("password"):
            return f"datasource {uid}: unchanged"
        self.call("PUT", f"/datasources/uid/{uid}", body)
        return f"datasource {uid}: updated"

    def dashboard(self, spec: Dashboard) -> str:
        model = build(spec)
        found = self.call("GET", f"/dashboards/uid/{spec.uid}", missing_ok=True)
        if found is not None:
            current = {k: v for k, v in found.get("dashboard", {}).items()
                       if k not in ("id", "version")}
            if current == model and found.get("meta", {}).get("folderUid") == FOLDER_UID:
                return f"dashboard {spec.uid}: unchanged"
        self.call("POST", "/dashboards/db", {
            "dashboard": {**model, "id": None}, "folderUid": FOLDER_UID, "overwrite": True,
            "message": "finsentry dashboards push"})
        return f"dashboard {spec.uid}: {'created' if found is None else 'updated'}"


def push(url: str, token: str, timeout_s: float = 10.0,
         dashboards: tuple[Dashboard, ...] = DASHBOARDS) -> Iterator[str]:
    """Yield one line per object as it is pushed (health check first: fail fast on a bad URL)."""
    pusher = Pusher(url, token, timeout_s)
    health = pusher.call("GET", "/health")
    if not isinstance(health, dict) or "database" not in health:
        raise DashboardError(f"no Grafana API at {pusher.url} (/api/health answered {health!r})")
    yield pusher.folder()
    yield pusher.datasource()
    for spec in dashboards:
        yield pusher.dashboard(spec)
