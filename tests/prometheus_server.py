"""A real Prometheus for tests: started on 127.0.0.1, on a free port, in a temp folder.

    from tests.prometheus_server import PrometheusServer, require_prometheus

    require_prometheus()                       # pytest.skip with a clear reason if absent
    config = {"scrape_configs": [{"job_name": "cilium-agent",
                                  "static_configs": [{"targets": ["127.0.0.1:9962"]}]}]}
    with PrometheusServer(config, rule_files=["assets/prometheus/cilium-day2.rules.yml"],
                          interval="1s") as prom:
        prom.url                               # http://127.0.0.1:<port>
        prom.query("up")                       # the `data` of /api/v1/query (raises on error)
        prom.wait_for(lambda: prom.alerts(), timeout=30)
        prom.alerts()                          # active alerts (list of dicts)
        prom.rules()                           # rule groups with health and last errors

`config` is the prometheus.yml content as a dict; `global.scrape_interval` and
`global.evaluation_interval` default to `interval`. The process is stopped (terminate, then
kill) and its folder removed on exit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional

import yaml

from .local_server import LocalServer

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def have(binary: str) -> bool:
    return Path(binary).exists()


def require_prometheus():
    import pytest

    if not have(PROMETHEUS):
        pytest.skip("needs the `prometheus` binary (Debian package `prometheus`): not installed")


def require_promtool():
    import pytest

    if not have(PROMTOOL):
        pytest.skip("needs the `promtool` binary (Debian package `prometheus`): not installed")


def promtool(*args, cwd=None, timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run promtool (skipping the test when it is not installed). The timeout is generous:
    `promtool test rules` over every case of a sharded pack takes minutes on 2 cores."""
    require_promtool()
    return subprocess.run([PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


class PrometheusError(RuntimeError):
    pass


class PrometheusServer(LocalServer):
    name = "prometheus"
    error = PrometheusError

    def __init__(self, config: Optional[dict] = None, rule_files: Iterable = (), interval: str = "1s",
                 startup_timeout: float = 30.0, extra_args: Iterable[str] = ()):
        super().__init__(startup_timeout)
        self.config = dict(config or {})
        self.rule_files = [str(Path(p).resolve()) for p in rule_files]
        self.interval = interval
        self.extra_args = list(extra_args)

    def prepare(self, folder):
        config = dict(self.config)
        glob = dict(config.get("global") or {})
        glob.setdefault("scrape_interval", self.interval)
        glob.setdefault("evaluation_interval", self.interval)
        config["global"] = glob
        if self.rule_files:
            config["rule_files"] = list(config.get("rule_files") or []) + self.rule_files
        config.setdefault("scrape_configs", [])
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self, folder):
        return [PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle", *self.extra_args]

    # -- API ------------------------------------------------------------------------------------
    def api(self, path: str, **params):
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, time_: Optional[float] = None):
        params = {"query": expr}
        if time_ is not None:
            params["time"] = str(time_)
        return self.api("query", **params)

    def alerts(self):
        return self.api("alerts")["alerts"]

    def rules(self):
        return self.api("rules")["groups"]

    def targets(self):
        return self.api("targets")["activeTargets"]

    def wait_for(self, condition: Callable[[], object], timeout: float = 30.0, every: float = 0.5):
        """Poll `condition` until it returns something truthy (returned) or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(every)
