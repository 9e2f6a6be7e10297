"""`cilium-day2 simulate` run as its own process, the way a user runs it, for tests that need
many simulated endpoints next to other work in the test process.

    with SimulatorProcess(["--scenario", "all", "--speed", "30", "--start", "steady"], tmp_path) as sim:
        sim.targets            # [{"cluster", "component", "node", "url"}], as `--format json` prints them
        sim.scrape_configs     # the `--write-scrape-config` file's `scrape_configs`

A separate process has its own interpreter lock: a few hundred endpoints answering every second
do not compete with the test's own threads (doctors, webhooks, polling), and those threads do not
delay the answers. It is stopped with SIGINT (then killed) on exit.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


class SimulatorProcess:
    def __init__(self, args, folder: Path, scrape_interval: str = "15s", startup_timeout: float = 60.0):
        self.args = list(args)
        self.folder = Path(folder)
        self.scrape_interval = scrape_interval
        self.startup_timeout = startup_timeout
        self.targets = []
        self.scrape_configs = []
        self._proc = None
        self._stderr = None

    def __enter__(self):
        config = self.folder / "scrape_configs.yml"
        self._stderr = open(self.folder / "simulate.stderr", "w+")
        cmd = [sys.executable, "-m", "cilium_day2", "simulate", *self.args, "--format", "json",
               "--write-scrape-config", str(config), "--scrape-interval", self.scrape_interval]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        try:
            self.targets = self._read_targets()
            self.scrape_configs = yaml.safe_load(config.read_text())["scrape_configs"]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _read_targets(self):
        deadline = time.monotonic() + self.startup_timeout
        text = ""
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                raise RuntimeError(f"cilium-day2 simulate exited with {self._proc.wait()}: {self.log()}")
            text += line
            if line.rstrip() == "]":  # the end of the JSON list of targets
                return json.loads(text)
        raise RuntimeError(f"cilium-day2 simulate printed no targets within {self.startup_timeout}s: {self.log()}")

    def log(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def __exit__(self, *exc):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
        return False
