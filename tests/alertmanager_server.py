"""A real Alertmanager and a webhook receiver for tests, both on 127.0.0.1 and free ports.

    with WebhookReceiver() as hook, AlertmanagerServer(config) as am:
        am.url                 # http://127.0.0.1:<port>, for Prometheus' `alerting` section
        hook.url("critical")   # http://127.0.0.1:<port>/critical, for a receiver's webhook_configs
        hook.alerts("critical")  # every alert notified to that path so far (label/annotation dicts)

Alertmanager runs without clustering (`--cluster.listen-address=`: no gossip port at all) and
is stopped (terminate, then kill) with its folder removed on exit.
"""

from __future__ import annotations

import copy
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import yaml

from .local_server import BackgroundHTTPServer, LocalServer

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "/usr/bin/prometheus-alertmanager"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


def require_alertmanager():
    import pytest

    if not Path(ALERTMANAGER).exists():
        pytest.skip("needs the Alertmanager server (Debian package `prometheus-alertmanager`): not installed")


def require_amtool():
    import pytest

    if not Path(AMTOOL).exists():
        pytest.skip("needs `amtool` (Debian package `prometheus-alertmanager`): not installed")


def webhook_config(base: dict, hook: "WebhookReceiver", prefix: str, inhibit=None, group_wait: str = "3s",
                   group_interval: str = "1s") -> dict:
    """The rendered Alertmanager configuration `base`, its webhooks pointed at `hook` under `prefix/`
    (so several Alertmanagers can share one receiver) and its cilium-day2 route made quick; with
    `inhibit`, those inhibit rules replace the rendered ones."""
    config = copy.deepcopy(base)
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = hook.url(f"{prefix}/{receiver['name']}")
    config["route"]["routes"][0].update({"group_wait": group_wait, "group_interval": group_interval})
    if inhibit is not None:
        config["inhibit_rules"] = inhibit
    return config


class WebhookReceiver(BackgroundHTTPServer):
    """Collects Alertmanager webhook notifications, by request path."""

    def __init__(self):
        self.notifications = []  # (path, payload)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.notifications.append((self.path.strip("/"), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def alerts(self, path: str, status: str = "firing"):
        with self._lock:
            return [a for p, payload in self.notifications if p == path for a in payload["alerts"]
                    if a["status"] == status]


class AlertmanagerServer(LocalServer):
    name = "alertmanager"

    def __init__(self, config: dict, startup_timeout: float = 30.0):
        super().__init__(startup_timeout)
        self.config = config

    def prepare(self, folder):
        (folder / "alertmanager.yml").write_text(yaml.safe_dump(self.config, sort_keys=False))

    def command(self, folder):
        # No clustering (`--cluster.listen-address=`): no gossip port at all.
        return [ALERTMANAGER, f"--config.file={folder / 'alertmanager.yml'}", f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="]

