"""A real Alertmanager and a webhook receiver for tests, both on 127.0.0.1 and free ports.

    with WebhookReceiver() as hook, AlertmanagerServer(config) as am:
        am.url                 # http://127.0.0.1:<port>, for Prometheus' `alerting` section
        hook.url("critical")   # http://127.0.0.1:<port>/critical, for a receiver's webhook_configs
        hook.alerts("critical")  # every alert notified to that path so far (label/annotation dicts)

Alertmanager runs without clustering (`--cluster.listen-address=`: no gossip port at all) and
is stopped (terminate, then kill) with its folder removed on exit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from .prometheus_server import free_port

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


class WebhookReceiver:
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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def alerts(self, path: str, status: str = "firing"):
        with self._lock:
            return [a for p, payload in self.notifications if p == path for a in payload["alerts"]
                    if a["status"] == status]

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        return False


class AlertmanagerServer:
    def __init__(self, config: dict, startup_timeout: float = 30.0):
        self.config = config
        self.startup_timeout = startup_timeout
        self.port = None
        self.url = None
        self._proc = None
        self._dir = None

    def __enter__(self):
        self._dir = Path(tempfile.mkdtemp(prefix="cilium-day2-am-"))
        (self._dir / "alertmanager.yml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(self._dir / "alertmanager.log", "wb")
        self._proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={self._dir / 'alertmanager.yml'}",
             f"--storage.path={self._dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address="],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + self.startup_timeout
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"alertmanager exited with {self._proc.returncode}:\n{self.log()}")
                try:
                    with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"alertmanager not ready after {self.startup_timeout}s:\n{self.log()}")
                time.sleep(0.2)
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def log(self) -> str:
        try:
            return (self._dir / "alertmanager.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if getattr(self, "_log", None):
            self._log.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        return False
