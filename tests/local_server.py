"""A server binary of the Prometheus family run for a test: on 127.0.0.1 and a free port, in a
temporary folder, ready before use, and stopped (terminate, then kill) with its folder removed.

Subclasses say what to write in the folder and how to start the binary; `name` names the folder,
the log file and the messages.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    name = "server"
    error = RuntimeError

    def __init__(self, startup_timeout: float = 30.0):
        self.startup_timeout = startup_timeout
        self.port = None
        self.url = None
        self._proc = None
        self._dir = None
        self._log = None

    def prepare(self, folder: Path) -> None:
        """Write the configuration files into `folder`."""

    def command(self, folder: Path) -> list:
        raise NotImplementedError

    def __enter__(self):
        self._dir = Path(tempfile.mkdtemp(prefix=f"cilium-day2-{self.name}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prepare(self._dir)
        self._log = open(self._dir / f"{self.name}.log", "wb")
        self._proc = subprocess.Popen(self.command(self._dir), stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self.error(f"{self.name} exited with {self._proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise self.error(f"{self.name} not ready after {self.startup_timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return (self._dir / f"{self.name}.log").read_text(errors="replace")[-4000:]
        except (OSError, TypeError):
            return ""

    def __exit__(self, *exc):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        return False


class BackgroundHTTPServer:
    """An in-process HTTP server on 127.0.0.1 and a free port, serving `handler` from a
    background thread between `__enter__` and `__exit__`."""

    def __init__(self, handler):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        return False
