"""What evaluating the Prometheus rule pack costs a real Prometheus watching a 10,000-node fleet.

    python benchmarks/rule_cost.py            # 10,000 agent nodes in 20 clusters (about 10 minutes on 2 cores)
    python benchmarks/rule_cost.py --quick    # 1,000 nodes (about 5 minutes)
    python benchmarks/rule_cost.py --quick --also reshaped.yml   # also measure another rule file
    python benchmarks/rule_cost.py --fleet --nodes 2000          # the whole pack at once (see whole_pack.py)

With --fleet, step 6 below is replaced: every group is loaded together at its own interval (15 s
by default) and watched for a few minutes, interleaved with phases without rules; the output is
rule CPU in cores (pack minus no rules), evaluation seconds per cycle, missed iterations,
recording series per node and the most expensive rules (whole_pack.py has the details).

Method
------
1. Families. The rule file (`assets/prometheus/cilium-day2.rules.yml`, rendered from the catalog)
   is scanned for vector selectors, and every stored family a rule reads is generated, shaped like
   Cilium's (label names and values, series per node, histogram buckets; see `fleet_tsdb.py`),
   for N agent nodes spread over C clusters (target labels `cluster`, `node`, `instance`, `job`)
   plus one operator per cluster (per-node IPAM series by `target_node`, EC2 API histograms).
   A few per cent of the nodes are in trouble, so that alerts fire as in a real fleet. A new
   signal in the catalog changes the data the next run generates.
2. Samples only where rules look. An evaluation costs per series it selects (index lookup,
   labels, chunk setup: microseconds) plus per sample it decodes (tens of nanoseconds): the
   samples inside the window, and those between the start of the head chunk and the window,
   because chunks are decoded from their start. So each series a rule reads gets a sample every
   `--step` seconds from `--minutes` before the start of its longest window (a range, or the 5m
   lookback of an instant selector) to the end of the measurement; series no rule reads get a
   sample every 4 steps over the last 5 minutes (they cost index space, not decoding). A 1h
   window thus holds 1h of samples, a 5m window 5m, plus `--minutes` before it. `--minutes` is
   where in its head chunk the window starts: 0 is the cheapest moment (a chunk was just cut);
   with 120-sample chunks a real server sweeps 0..60 minutes (at 30 s) every chunk, 30 on
   average. The default, 0, keeps the 10,000-node run near 10 minutes on 2 cores; what 30
   costs on a 500-node cluster is measured in docs/benchmark-rules.md.
3. Timestamps around "now". Prometheus evaluates rules at wall-clock time, so the data must
   cover [first measured evaluation - window - history, last measured evaluation]. The script
   estimates how long generation, backfill and compaction will take (from the sample counts and
   the reference machine's speeds) and how long the measurement will take (from the series each
   group reads), places the first measured evaluation ("anchor") that far ahead and waits for it
   if early. Being late only adds history; the output reports the lag, and warns if the
   measurement outlived the data.
4. Backfill. The OpenMetrics text is streamed to temp files in chunks of nodes (the whole
   10,000-node fleet would be ~20 GB of text), each turned into blocks by `promtool tsdb
   create-blocks-from openmetrics` (two at a time) and deleted at once. Prometheus is then
   started on the block directory without rules and left to merge the overlapping chunk blocks
   into one block per time range (its own vertical compaction, a minute after start), so that
   rules read blocks laid out like a real server's, not a merge of many.
5. Measurement. Prometheus runs with `out_of_order_time_window` set, because the backfilled
   blocks end in the "future" and rule results written at "now" would otherwise be out of
   bounds. Each rule group is loaded alone (`/-/reload`, plus any group whose recordings it
   reads) and evaluated every `--interval` seconds; after a warm-up evaluation, `--cycles`
   evaluations are read from Prometheus' own /metrics (`prometheus_rule_group_last_duration_seconds`,
   `prometheus_rule_group_last_evaluation_samples`) and per rule from /api/v1/rules. One group
   at a time, because groups run concurrently and on 2 cores would slow each other down; the
   total per cycle is the sum over groups, i.e. the single-core time one round of the whole
   pack needs. Next to the wall time, the table shows the CPU time the Prometheus process used
   during each evaluation (from /proc, minus its idle use), which other load on the machine
   does not inflate; the run reports how busy the other processes kept the CPUs.
   The same is then done with every recording rule's expression inlined into the alerts that
   read it and the recording rules removed (what the pack would cost without recording rules),
   and for each `--also` rule file (e.g. a reshaped pack), on the same data.
6. Checks. Before measuring, the series Prometheus sees per name at the anchor must match what
   was generated; afterwards the run reports recording rules that returned nothing, rule errors,
   the samples each window held for one node, and the active alerts.

Caveats: one Prometheus for the whole fleet (a per-cluster Prometheus would read 1/20 of it);
the data sits in a persisted block, not in the head (on this machine selecting 96k series cost
the same from both); no scraping competes for the CPU (a real server of this size ingests ~4M
series); Prometheus is the Debian 2.42 build. Temporary files go to `--workdir` (default: the
system temp dir) and are removed at the end, also on Ctrl-C or SIGTERM.
"""

import argparse
import concurrent.futures
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import whole_pack  # noqa: E402
from fleet_tsdb import Fleet, Plan, RulePack, scan_expr  # noqa: E402

DEFAULT_RULES = HERE.parent / "assets" / "prometheus" / "cilium-day2.rules.yml"
TARGET_SECONDS = 1.0
DEFAULT_MINUTES = 0
# Speeds measured on the 2-core reference machine, used only to place the anchor.
GEN_US_PER_LINE = 0.6
BACKFILL_US_PER_LINE = 1.9
BACKFILL_US_PER_SERIES = 25.0
COMPACT_US_PER_SERIES = 12.0
COMPACTION_DELAY = 60  # Prometheus checks for compactable blocks once a minute
COMPACTION_TIMEOUT = 900
EVAL_US_PER_SERIES = 6.0
EVAL_NS_PER_SAMPLE = 50.0
OTHER_LOAD_LIMIT = 0.5  # cores other processes may use during a measured evaluation


# -- rule variants -------------------------------------------------------------------------------


def inline_recordings(pack: RulePack) -> dict:
    """The pack as a rule-file document with recording rules inlined into alerts and removed."""
    records = pack.records
    if not records:
        return None
    names = sorted(records, key=len, reverse=True)
    pattern = re.compile(r"(?<![A-Za-z0-9_:])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9_:])(\s*[\[{])?")

    def expand(expr, depth=0):
        if depth > 10:
            raise ValueError("recording rules reference each other too deeply")

        def repl(m):
            if m.group(2):
                raise ValueError(f"{m.group(1)} is used with matchers or a range; cannot inline it")
            return "(" + expand(records[m.group(1)], depth + 1) + ")"

        return pattern.sub(repl, expr)

    groups = []
    for name, rules in pack.groups:
        out = []
        for rule in rules:
            if rule.kind == "alert":
                raw = dict(rule.raw)
                raw["expr"] = expand(rule.expr)
                out.append(raw)
        if out:
            groups.append({"name": name, "rules": out})
    return {"groups": groups}


# -- processes -----------------------------------------------------------------------------------


class Children:
    """Subprocesses started here, so that they can all be stopped on the way out."""

    def __init__(self):
        self.procs = set()
        self.lock = threading.Lock()
        self.closed = False

    def popen(self, *args, **kwargs):
        with self.lock:
            if self.closed:
                raise RuntimeError("shutting down")
            proc = subprocess.Popen(*args, **kwargs)
            self.procs.add(proc)
        return proc

    def forget(self, proc):
        with self.lock:
            self.procs.discard(proc)

    def stop_all(self):
        with self.lock:
            self.closed = True
            procs = list(self.procs)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_tsdb(plan, chunks, workdir, tsdb_dir, promtool, jobs, children):
    """Generate chunk files and backfill them, `jobs` promtool processes at a time."""
    slots = threading.BoundedSemaphore(jobs + 1)  # chunk files on disk at once
    env = dict(os.environ, TMPDIR=str(workdir))
    stats = {"gen": 0.0, "lines": 0, "series": 0, "bytes": 0, "by_name": {}, "first_cluster": {}}
    errors = []

    def backfill(path):
        try:
            proc = children.popen([promtool, "tsdb", "create-blocks-from", "openmetrics", str(path), str(tsdb_dir)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            out, _ = proc.communicate()
            children.forget(proc)
            if proc.returncode != 0:
                errors.append(f"promtool failed on {path.name}:\n{out[-2000:]}")
        finally:
            path.unlink(missing_ok=True)
            slots.release()

    pool = concurrent.futures.ThreadPoolExecutor(jobs)
    futures = []
    try:
        for chunk in chunks:
            slots.acquire()
            if errors:
                slots.release()
                break
            path = Path(workdir) / f"chunk-{chunk.index:03d}.om"
            t0 = time.perf_counter()
            plan.write_chunk(path, chunk)
            stats["gen"] += time.perf_counter() - t0
            stats["lines"] += chunk.lines
            stats["series"] += chunk.series
            stats["bytes"] += path.stat().st_size
            for name, n in chunk.by_name.items():
                stats["by_name"][name] = stats["by_name"].get(name, 0) + n
            for name, n in chunk.by_name_first_cluster.items():
                stats["first_cluster"][name] = stats["first_cluster"].get(name, 0) + n
            log(f"  chunk {chunk.index + 1}/{len(chunks)}: nodes {chunk.first}-{chunk.stop - 1}, "
                f"{chunk.lines / 1e6:.1f}M samples, {path.stat().st_size / 1e9:.2f} GB -> promtool")
            futures.append(pool.submit(backfill, path))
            stats["peak_disk"] = max(stats.get("peak_disk", 0), dir_size(workdir))
        for f in futures:
            f.result()
    except BaseException:  # Ctrl-C or SIGTERM: do not wait for the promtool processes to finish
        children.stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if errors:
        raise SystemExit(errors[0])
    return stats


def dir_size(path):
    """Bytes under `path`. promtool creates and renames block directories meanwhile: what
    vanishes during the walk is not counted."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def blocks(tsdb_dir):
    out = []
    for d in Path(tsdb_dir).iterdir():
        meta = d / "meta.json"
        if d.is_dir() and len(d.name) == 26 and meta.exists():
            m = json.loads(meta.read_text())
            out.append((m["minTime"], m["maxTime"], d.name))
    return sorted(out)


def overlapping(bl):
    return any(b[0] < a[1] for a, b in zip(bl, bl[1:]))


class Prometheus:
    def __init__(self, binary, tsdb_dir, workdir, interval, children, gomemlimit=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rules_path = Path(workdir) / "rules.yml"
        self.rules_path.write_text("groups: []\n")
        config = {
            "global": {"evaluation_interval": f"{interval}s", "scrape_interval": "1m"},
            "rule_files": [str(self.rules_path)],
            "storage": {"tsdb": {"out_of_order_time_window": "6h"}},
        }
        cfg = Path(workdir) / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        self.log_path = Path(workdir) / "prometheus.log"
        self._log = open(self.log_path, "w")
        self.proc = children.popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={tsdb_dir}", "--storage.tsdb.retention.time=30d",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle", "--log.level=info"],
            stdout=self._log, stderr=subprocess.STDOUT,
            env=dict(os.environ, GOMEMLIMIT=gomemlimit) if gomemlimit else None)
        self.session = requests.Session()
        self.group_file = str(self.rules_path)

    def wait_ready(self, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"prometheus exited:\n{self.log_tail()}")
            try:
                if self.session.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise SystemExit(f"prometheus not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n=3000):
        self._log.flush()
        return self.log_path.read_text()[-n:]

    def load_rules(self, document):
        self.rules_path.write_text(yaml.safe_dump(document, sort_keys=False, width=10_000))
        r = self.session.post(self.url + "/-/reload", timeout=120)
        if r.status_code != 200:
            raise SystemExit(f"rule reload failed: {r.status_code} {r.text[:500]}\n{self.log_tail()}")

    def query(self, expr, at=None, timeout=300):
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        r = self.session.get(self.url + "/api/v1/query", params=params, timeout=timeout)
        body = r.json()
        if body.get("status") != "success":
            raise SystemExit(f"query failed: {expr}: {body}")
        return body["data"]["result"]

    def metrics(self):
        """{(metric, rule_group): value} for the rule group metrics of /metrics."""
        out = {}
        for line in self.session.get(self.url + "/metrics", timeout=30).text.splitlines():
            if not line.startswith("prometheus_rule_group_"):
                continue
            m = re.match(r'(\w+)\{rule_group="([^"]*)"\} (\S+)', line)
            if m:
                out[(m.group(1), m.group(2))] = float(m.group(3))
        return out

    def rules(self):
        return self.session.get(self.url + "/api/v1/rules", timeout=60).json()["data"]["groups"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


class CpuSampler(threading.Thread):
    """Samples the Prometheus process' CPU time and the machine's busy time every 50 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.tick = os.sysconf("SC_CLK_TCK")
        self.samples = []  # (wall, process cpu s, machine busy s)
        self.stopped = threading.Event()

    def read(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        proc = (int(fields[11]) + int(fields[12])) / self.tick
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(cpu[:8]) - cpu[3] - cpu[4]) / self.tick
        return time.time(), proc, busy

    def run(self):
        while not self.stopped.is_set():
            try:
                self.samples.append(self.read())
            except (OSError, ValueError, IndexError):
                return
            self.stopped.wait(0.05)

    def at(self, t):
        """(process cpu, machine busy) at wall time t, interpolated."""
        s = self.samples
        lo, hi = 0, len(s) - 1
        if not s or t <= s[0][0]:
            return (s[0][1], s[0][2]) if s else (0.0, 0.0)
        if t >= s[hi][0]:
            return s[hi][1], s[hi][2]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if s[mid][0] <= t:
                lo = mid
            else:
                hi = mid
        f = (t - s[lo][0]) / (s[hi][0] - s[lo][0])
        return s[lo][1] + f * (s[hi][1] - s[lo][1]), s[lo][2] + f * (s[hi][2] - s[lo][2])

    def between(self, t0, t1):
        """(process cpu s, other processes' busy s) in [t0, t1]."""
        p0, b0 = self.at(t0)
        p1, b1 = self.at(t1)
        return p1 - p0, max(0.0, (b1 - b0) - (p1 - p0))


def group_document(pack: RulePack, group: str, interval: int) -> dict:
    """A rule document with one group (and the groups it reads recordings from), at `interval`."""
    raw = {g["name"]: g for g in pack.raw_groups}
    out = []
    for name in pack.depends_on(group):
        g = dict(raw[name])
        g["interval"] = f"{interval}s"
        out.append(g)
    return {"groups": out}


def measure_group(prom, sampler, pack, group, interval, cycles, deadline, idle_rate, warmup=True):
    """Evaluate one group alone, every `interval`, until `cycles` evaluations are measured.

    Wall time is Prometheus' own prometheus_rule_group_last_duration_seconds. CPU is the
    Prometheus process' CPU time from just before the evaluation started to a moment after it
    ended (or the next one started), minus what the idle process uses over that span. The first
    evaluation is a warm-up (unless `warmup` is false). An evaluation during which other
    processes kept more than OTHER_LOAD_LIMIT cores busy is discarded and retried, up to
    `cycles + 1` times, so that a shared machine's bursts do not end up in the median.
    """
    prom.load_rules(group_document(pack, group, interval))
    loaded = time.time()
    key = f"{prom.group_file};{group}"
    seen, runs, rejected = set(), [], 0
    pending = None  # the last evaluation, waiting for its CPU window to close

    def close(run):
        nonlocal rejected
        t0, t1 = run["ts"] - 0.05, run["cpu_end"]
        cpu, other = sampler.between(t0, t1)
        run["cpu"] = max(0.0, cpu - idle_rate * (t1 - t0))
        run["other"] = other / max(t1 - t0, 1e-3)
        if run["other"] > OTHER_LOAD_LIMIT and rejected <= cycles:
            rejected += 1
        else:
            runs.append(run)

    while len(runs) < cycles:
        if time.time() > deadline:
            log(f"  warning: the data ends before {group} got {cycles} measured evaluations ({len(runs)} so far)")
            break
        time.sleep(0.5)
        if pending and time.time() >= pending["cpu_end"] + 0.1:
            close(pending)
            pending = None
            continue
        if pending:
            continue
        metrics = prom.metrics()
        ts = metrics.get(("prometheus_rule_group_last_evaluation_timestamp_seconds", key), 0)
        if ts <= 0 or ts < loaded - 1 or ts in seen:
            continue
        seen.add(ts)
        if warmup and len(seen) == 1:
            continue
        api = {g["name"]: g for g in prom.rules()}
        per_rule, errors = {}, []
        for i, r in enumerate(api.get(group, {}).get("rules", [])):
            per_rule[f"{r['name']}#{i}"] = r.get("evaluationTime", 0)
            if r.get("health") == "err":
                errors.append(f"{r['name']}: {r.get('lastError')}")
        dur = metrics.get(("prometheus_rule_group_last_duration_seconds", key), 0)
        next_start = ts + interval * max(1, math.ceil((dur + 0.001) / interval))
        pending = {"seconds": dur, "samples": metrics.get(("prometheus_rule_group_last_evaluation_samples", key), 0),
                   "rules": per_rule, "errors": errors, "ts": ts, "cpu": None, "other": None,
                   "cpu_end": min(ts + dur + 1.0, next_start - 0.05)}
    if rejected:
        log(f"  {group}: {rejected} evaluation(s) discarded because other processes were busy")
    if not runs:
        return None
    # What the group produced while it was loaded: series per recording rule, active alerts.
    records = [r.name for r in dict(pack.groups)[group] if r.kind == "record"]
    outputs = {}
    if records:
        res = prom.query('count by (__name__) ({__name__=~"' + "|".join(re.escape(r) for r in records) + '"})')
        counts = {x["metric"]["__name__"]: int(float(x["value"][1])) for x in res}
        outputs = {r: counts.get(r, 0) for r in records}
    alerts = {}
    for a in prom.session.get(prom.url + "/api/v1/alerts", timeout=60).json()["data"]["alerts"]:
        key = "/".join((a["labels"].get("alertname", ""), a["labels"].get("severity", ""), a["state"]))
        alerts[key] = alerts.get(key, 0) + 1
    rules = {}
    for r in runs:
        for k, v in r["rules"].items():
            rules.setdefault(k, []).append(v)
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "min_seconds": min(r["seconds"] for r in runs),
        "max_seconds": max(r["seconds"] for r in runs),
        "samples": int(statistics.median(r["samples"] for r in runs)),
        "cpu_seconds": statistics.median(r["cpu"] for r in runs),
        "other_load": statistics.mean(r["other"] for r in runs),
        "discarded": rejected,
        "cycles": len(runs),
        "rules": {k: statistics.median(v) for k, v in rules.items()},
        "errors": sorted({e for r in runs for e in r["errors"]}),
        "records": outputs,
        "alerts": alerts,
    }


def measure_idle(prom, sampler, seconds=6.0):
    """CPU seconds per second the Prometheus process uses with no rules, polled like during measurement."""
    prom.load_rules({"groups": []})
    time.sleep(1.0)
    t0 = time.time()
    while time.time() - t0 < seconds:
        time.sleep(0.5)
        prom.metrics()
    cpu, _ = sampler.between(t0, time.time())
    return cpu / (time.time() - t0)


def series_read(pack: RulePack, matched) -> dict:
    """Group -> (series, samples) its raw selectors read per evaluation (from the fleet model)."""
    out = {}
    for group, rules in pack.groups:
        series = samples = 0.0
        for rule in rules:
            for sel in scan_expr(rule.expr).selectors:
                n = matched.get(sel)
                if n:
                    series += n
                    samples += n * sel.window
        out[group] = (series, samples)
    return out


def estimate_seconds(series, sample_seconds, step):
    """Rough single-core evaluation time (calibrated on the reference machine)."""
    return EVAL_US_PER_SERIES * series / 1e6 + EVAL_NS_PER_SAMPLE * sample_seconds / step / 1e9


def one_line(error):
    return f"{type(error).__name__}: " + " ".join(str(error).split())


# -- main ----------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 nodes instead of 10,000")
    parser.add_argument("--nodes", type=int, help="agent nodes (default 10,000; 1,000 with --quick)")
    parser.add_argument("--clusters", type=int, default=20, help="clusters the nodes are spread over (default 20)")
    parser.add_argument("--fleet", action="store_true",
                        help="load the whole pack at once at its group intervals and measure Prometheus CPU with it "
                             "minus CPU with no rules (interleaved), missed iterations, evaluation seconds per cycle, "
                             "recording series per node and the most expensive rules")
    parser.add_argument("--rounds", type=int, default=2, help="--fleet: interleaved rounds (default 2)")
    parser.add_argument("--phase-seconds", type=float, default=120,
                        help="--fleet: seconds each variant (and the no-rules baseline) is watched per round (default 120)")
    parser.add_argument("--top", type=int, default=15, help="--fleet: most expensive rules to list (default 15)")
    parser.add_argument("--gomemlimit", metavar="LIMIT",
                        help="GOMEMLIMIT for Prometheus (e.g. 12GiB), so that a 10,000-node run stays in memory")
    parser.add_argument("--step", type=int, help="seconds between samples, the scrape interval (default 30; 15 with --fleet)")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                        help=f"minutes of samples before the start of each rule window (default {DEFAULT_MINUTES:g})")
    parser.add_argument("--interval", type=int,
                        help="evaluation interval of the group under measurement, seconds (default 5); with --fleet "
                             "the global evaluation_interval, which groups without their own interval use (default 15)")
    parser.add_argument("--cycles", type=int, help="measured evaluations per group (default 3; 2 above 2,000 nodes)")
    parser.add_argument("--compare-cycles", type=int,
                        help="the same for the inlined and --also variants (default 3; 1 above 2,000 nodes)")
    parser.add_argument("--rules", default=str(DEFAULT_RULES), help="rule file (default: the rendered pack)")
    parser.add_argument("--also-groups", metavar="REGEX",
                        help="measure only the groups of the --also files whose name matches (e.g. one cluster's "
                             "groups of a pack rendered with settings.shard_by_cluster: '-prod-01$')")
    parser.add_argument("--also", action="append", default=[], metavar="[NAME=]RULES",
                        help="another rule file to measure on the same data (repeatable), e.g. a reshaped pack")
    parser.add_argument("--no-inline", action="store_true", help="skip the variant without recording rules")
    parser.add_argument("--jobs", type=int, default=2, help="promtool processes at a time (default 2)")
    parser.add_argument("--chunk-lines", type=int, default=5_000_000, help="samples per OpenMetrics chunk file")
    parser.add_argument("--workdir", default=None, help="where temporary files go (default: system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (for inspection)")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    parser.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    parser.add_argument("--save", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    nodes = args.nodes or (1_000 if args.quick else 10_000)
    if nodes < 1 or args.clusters < 1 or args.clusters > nodes:
        parser.error(f"--nodes {nodes} --clusters {args.clusters}: need at least one node per cluster")
    if args.fleet and (args.rounds < 1 or args.phase_seconds < 5):
        parser.error("--fleet needs --rounds 1 or more and --phase-seconds 5 or more")
    if args.gomemlimit and not re.fullmatch(r"\d+(B|KiB|MiB|GiB|TiB)?", args.gomemlimit):
        parser.error(f"--gomemlimit {args.gomemlimit!r}: use a Go memory limit such as 12GiB or 8192MiB")
    args.step = args.step or (15 if args.fleet else 30)
    args.interval = args.interval or (15 if args.fleet else 5)
    if args.fleet:
        args.no_inline = True
    args.cycles = args.cycles or (3 if nodes <= 2_000 else 2)
    args.compare_cycles = args.compare_cycles or (3 if nodes <= 2_000 else 1)

    t_start = time.time()
    try:
        pack = RulePack.load(args.rules)
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        parser.error(f"--rules {args.rules}: not a readable Prometheus rule file ({one_line(e)}); "
                     "render the pack with `cilium-day2 render` or pass another file")
    variants = [("recorded", pack)]
    if not args.no_inline:
        try:
            doc = inline_recordings(pack)
            if doc:
                variants.append(("inlined", RulePack.from_document(doc, "inlined")))
        except ValueError as e:
            log(f"no inlined variant: {e}")
    for spec in args.also:
        name, _, path = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        try:
            also = RulePack.load(path)
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
            parser.error(f"--also {spec}: not a readable Prometheus rule file ({one_line(e)})")
        if args.also_groups:
            kept = [g for g in also.raw_groups if re.search(args.also_groups, g["name"])]
            if not kept:
                raise SystemExit(f"--also-groups {args.also_groups!r} matches no group of {path}")
            also = RulePack.from_document({"groups": kept}, path)
        variants.append((name or Path(path).stem, also))

    workdir = Path(tempfile.mkdtemp(prefix="cilium-day2-rule-cost-", dir=args.workdir))
    children = Children()
    prom = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for name, vpack in variants:
            path = workdir / f"check-{name}.yml"
            path.write_text(yaml.safe_dump(vpack.document(), sort_keys=False, width=10_000))
            out = subprocess.run([args.promtool, "check", "rules", str(path)], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"promtool check rules failed for the {name} variant:\n{out.stdout}{out.stderr}")
            path.unlink()

        # -- plan: estimate the pipeline and the measurement, place the anchor ----------------------
        fleet = Fleet(nodes=nodes, clusters=args.clusters)
        history = int(args.minutes * 60)
        planning = RulePack.merged([v for _, v in variants])
        now = int(time.time())
        probe = Plan(planning, fleet, anchor=now, end=now + 600, step=args.step, history=history)
        matched = probe.matched_series()
        reads = {name: series_read(v, matched) for name, v in variants}
        est_eval = {name: {g: estimate_seconds(s, w, args.step) for g, (s, w) in r.items()} for name, r in reads.items()}
        if args.fleet:
            measure_s = 30 + whole_pack.phase_seconds([v for _, v in variants], args.rounds, args.phase_seconds,
                                                      args.interval)
        else:
            measure_s = sum(args.interval + 2 + ((args.cycles + 1) if name == "recorded" else args.compare_cycles)
                            * max(args.interval, 1.2 * t + 0.5) for name, r in est_eval.items() for t in r.values()) + 30
        slack = 60 + 0.1 * measure_s
        probe = Plan(planning, fleet, anchor=now, end=int(now + measure_s + slack + 60), step=args.step, history=history)
        per_node_series, per_node_samples, _ = probe.estimate()
        lines = per_node_samples * nodes
        series = per_node_series * nodes
        gen_s = lines * GEN_US_PER_LINE / 1e6
        backfill_s = (lines * BACKFILL_US_PER_LINE + series * BACKFILL_US_PER_SERIES) / 1e6
        n_chunks = len(probe.chunks(args.chunk_lines))
        pipeline_s = max(gen_s, (gen_s + backfill_s) / max(1, min(args.jobs, os.cpu_count() or 1))) + backfill_s / n_chunks
        compaction_s = (COMPACTION_DELAY + series * COMPACT_US_PER_SERIES / 1e6) if n_chunks > 1 else 0
        lead = 1.1 * (pipeline_s + compaction_s + 10) + 20
        slack = max(60, 0.15 * (lead + measure_s))
        anchor = int(time.time() + lead)
        plan = Plan(planning, fleet, anchor=anchor, end=int(anchor + measure_s + slack), step=args.step, history=history)
        chunks = plan.chunks(args.chunk_lines)
        log(f"{nodes:,} nodes in {args.clusters} clusters: ~{series / 1e6:.2f}M series, ~{lines / 1e6:.0f}M samples "
            f"in {len(chunks)} chunk(s); first measured evaluation in {lead:.0f}s, measuring for ~{measure_s:.0f}s "
            f"(data runs {plan.end - anchor}s past the anchor)")
        for name in plan.generic:
            log(f"  warning: no shape for {name} (read by the rules); generated with a generic shape")
        if plan.absent:
            log(f"  absent by design (other clouds): {', '.join(sorted(set(plan.absent)))}")

        # -- generate and backfill ------------------------------------------------------------------
        tsdb_dir = workdir / "tsdb"
        tsdb_dir.mkdir()
        t0 = time.time()
        stats = build_tsdb(plan, chunks, workdir, tsdb_dir, args.promtool, args.jobs, children)
        t_build = time.time() - t0
        log(f"generated {stats['lines'] / 1e6:.1f}M samples of {stats['series']:,} series "
            f"({stats['bytes'] / 1e9:.1f} GB of OpenMetrics, generation {stats['gen']:.0f}s) and backfilled them into "
            f"{len(blocks(tsdb_dir))} blocks in {t_build:.0f}s")

        # -- Prometheus: start, let it compact ------------------------------------------------------
        t0 = time.time()
        prom = Prometheus(args.prometheus, tsdb_dir, workdir, args.interval, children, args.gomemlimit)
        prom.wait_ready()
        if overlapping(blocks(tsdb_dir)):
            log("waiting for Prometheus to compact the overlapping chunk blocks ...")
            while overlapping(blocks(tsdb_dir)):
                if prom.proc.poll() is not None:
                    raise SystemExit(f"prometheus exited:\n{prom.log_tail()}")
                if time.time() - t0 > COMPACTION_TIMEOUT:
                    raise SystemExit(f"prometheus did not compact the chunk blocks in {COMPACTION_TIMEOUT}s")
                stats["peak_disk"] = max(stats.get("peak_disk", 0), dir_size(workdir))
                time.sleep(2)
        t_compact = time.time() - t0
        final_blocks = blocks(tsdb_dir)
        block_mb = sum(f.stat().st_size for f in tsdb_dir.rglob("*") if f.is_file()) / 1e6
        log(f"prometheus up, {len(final_blocks)} block(s) ({block_mb:.0f} MB) after {t_compact:.0f}s")

        # -- check what Prometheus sees ----------------------------------------------------------------
        # Queries at the anchor see every generated series: names with up to 100k series are counted
        # whole, larger ones in the first cluster (counting all ~4M series would take half a minute).
        t0 = time.time()
        small = sorted(n for n, c in stats["by_name"].items() if c <= 100_000)
        large = sorted(n for n in stats["by_name"] if n not in small)
        expected = {n: stats["by_name"][n] for n in small}
        expected.update({n: stats["first_cluster"].get(n, 0) for n in large})
        seen = prom.query('count by (__name__) ({__name__=~"' + "|".join(small) + '"})', at=anchor)
        if large:
            seen += prom.query('count by (__name__) ({__name__=~"' + "|".join(large) + f'", cluster="{fleet.cluster_name(0)}"}})',
                               at=anchor)
        seen_series = {r["metric"]["__name__"]: int(float(r["value"][1])) for r in seen}
        wrong = {n: (e, seen_series.get(n, 0)) for n, e in expected.items() if seen_series.get(n, 0) != e}
        total_seen = sum(seen_series.values())
        log(f"prometheus sees all {total_seen:,} series counted ({len(small)} names whole, {len(large)} in "
            f"{fleet.cluster_name(0)}; {time.time() - t0:.1f}s)" if not wrong else "prometheus: series missing")
        if wrong:
            raise SystemExit(f"prometheus does not see the generated series (name: generated, seen): {wrong}; "
                             "the timing would be meaningless")

        # -- measure --------------------------------------------------------------------------------
        wait = anchor - time.time()
        if wait > 0:
            log(f"waiting {wait:.0f}s for the anchor (every window complete) ...")
            time.sleep(wait)
        lag = time.time() - anchor
        sampler = CpuSampler(prom.proc.pid)
        sampler.start()
        if args.fleet:
            log(f"measuring the whole pack at once: {args.rounds} round(s) of {args.phase_seconds:.0f}s per variant "
                f"and with no rules, interleaved (each phase once every group has started) ...")
            phases = whole_pack.run(prom, sampler, variants, args.rounds, args.phase_seconds, args.interval, log)
            end_lag = time.time() - plan.end
            sampler.stopped.set()
            report = {
                "mode": "fleet", "nodes": nodes, "clusters": args.clusters, "step": args.step, "interval": args.interval,
                "rounds": args.rounds, "phase_seconds": args.phase_seconds, "gomemlimit": args.gomemlimit,
                "series_generated": stats["series"], "series_by_name": stats["by_name"], "samples": stats["lines"],
                "build_s": t_build, "compaction_s": t_compact, "lag_s": lag, "data_ran_out_s": max(0.0, end_lag),
                "total_s": time.time() - t_start, "cores": os.cpu_count(),
                "prometheus": subprocess.run([args.prometheus, "--version"], capture_output=True,
                                             text=True).stdout.split("\n")[0].split(" (")[0],
                "fleet": whole_pack.summarize(phases, dict(variants), nodes), "phases": phases,
            }
            if args.save:
                Path(args.save).write_text(json.dumps(report, indent=2, default=str))
            if args.json:
                print(json.dumps(report, indent=2, default=str))
            else:
                whole_pack.print_report(report, args.top)
                if report["data_ran_out_s"]:
                    print(f"# warning: the measurement ran {report['data_ran_out_s']:.0f}s past the end of the data")
                print(f"\ntotal run time {report['total_s']:.0f}s")
            return 0
        idle_rate = measure_idle(prom, sampler)
        results, checks = {}, None
        for vname, vpack in variants:
            log(f"measuring {vname}: one group at a time, {args.cycles if vname == variants[0][0] else args.compare_cycles}"
                f" evaluation(s) each" + (" after a warm-up ..." if vname == variants[0][0] else " ..."))
            results[vname] = {}
            first = vname == variants[0][0]
            cycles = args.cycles if first else args.compare_cycles
            for group, _ in vpack.groups:
                r = measure_group(prom, sampler, vpack, group, args.interval, cycles, plan.end - 2, idle_rate,
                                  warmup=first)
                results[vname][group] = r
                log(f"  {group}: {1e3 * r['seconds']:.0f} ms wall, {1e3 * (r['cpu_seconds'] or 0):.0f} ms cpu, "
                    f"other load {r['other_load'] or 0:.1f} cores" if r else f"  {group}: not measured")
            prom.load_rules({"groups": []})
        checks = window_checks(prom, plan, fleet)
        end_lag = time.time() - plan.end
        sampler.stopped.set()

        report = {
            "nodes": nodes, "clusters": args.clusters, "step": args.step, "history_minutes": args.minutes,
            "interval": args.interval, "cycles": args.cycles, "series_generated": stats["series"],
            "series_checked": total_seen, "samples": stats["lines"], "openmetrics_gb": stats["bytes"] / 1e9,
            "chunks": len(chunks), "generation_s": stats["gen"], "peak_disk_gb": stats.get("peak_disk", 0) / 1e9, "build_s": t_build, "compaction_s": t_compact,
            "blocks": len(final_blocks), "block_mb": block_mb, "lag_s": lag, "data_ran_out_s": max(0.0, end_lag),
            "total_s": time.time() - t_start, "series_by_name": stats["by_name"], "results": results, "checks": checks,
            "series_read": {name: {g: s for g, (s, _w) in r.items()} for name, r in reads.items()},
            "prometheus": subprocess.run([args.prometheus, "--version"], capture_output=True,
                                         text=True).stdout.split("\n")[0].split(" (")[0],
            "cores": os.cpu_count(), "idle_cpu_rate": idle_rate,
        }
        if args.save:
            Path(args.save).write_text(json.dumps(report, indent=2, default=str))
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            print_report(report, variants)
        return 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if prom is not None:
            prom.stop()
        children.stop_all()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def window_checks(prom, plan, fleet):
    """The samples each range selector's window holds for one node, at the end of the measurement."""
    out = {"windows": {}}
    node = fleet.node(0, plan.step).node
    at = time.time()
    for sel in plan.selectors:
        if sel.range is None:
            continue
        matchers = ",".join([f"{m.label}{m.op}{json.dumps(m.value)}" for m in sel.matchers] + [f'node="{node}"'])
        res = prom.query(f"max(count_over_time({sel.name}{{{matchers}}}[{sel.range}s]))", at=at)
        if res:
            got = int(float(res[0]["value"][1]))
            prev = out["windows"].get(sel.range)
            if prev is None or got < prev[0]:
                out["windows"][sel.range] = (got, sel.range // plan.step)
    return out


def print_report(rep, variants):
    names = [n for n, _ in variants]
    packs = dict(variants)
    groups = []
    for _, p in variants:
        for g, _ in p.groups:
            if g not in groups:
                groups.append(g)
    base = packs["recorded"]
    counts = {g: (sum(r.kind == "record" for r in rules), sum(r.kind == "alert" for r in rules)) for g, rules in base.groups}
    res = rep["results"]
    print(f"# rule pack cost: {rep['nodes']:,} agent nodes in {rep['clusters']} clusters + {rep['clusters']} operators; "
          f"{rep['prometheus']}; {rep['cores']} cores")
    print(f"# data: {rep['series_generated']:,} series (cilium_*, hubble_*, up), {rep['samples'] / 1e6:.1f}M samples, one per "
          f"{rep['step']}s; a series read by a rule holds its window + {rep['history_minutes']:g} min before it "
          f"(+{max(0, rep['lag_s']):.0f}s measurement lag)")
    print(f"# build: {rep['openmetrics_gb']:.1f} GB of OpenMetrics in {rep['chunks']} chunk(s), generated in "
          f"{rep['generation_s']:.0f}s, generated + backfilled in {rep['build_s']:.0f}s; Prometheus start + compaction "
          f"{rep['compaction_s']:.0f}s -> {rep['blocks']} block(s), {rep['block_mb']:.0f} MB; peak temp disk "
          f"{rep['peak_disk_gb']:.1f} GB")
    print(f"# measured: each group alone, median of {rep['cycles']} evaluations after a warm-up "
          f"(prometheus_rule_group_last_duration_seconds); 'series' = raw series its selectors match")
    if rep["data_ran_out_s"]:
        print(f"# warning: the measurement ran {rep['data_ran_out_s']:.0f}s past the end of the data; the last "
              f"evaluations saw incomplete windows")
    print()
    head = f"{'rule group':<27}{'rec':>4}{'alert':>6} |"
    sub = f"{'':<37} |"
    for n in names:
        title = {"recorded": "with recording rules", "inlined": "recording rules inlined"}.get(n, n)
        head += f" {title[:33]:>33} |"
        sub += f"{'series':>10}{'wall ms':>9}{'cpu ms':>8}{'out':>7} |"
    print(head)
    print(sub)
    print("-" * len(head))
    totals = {n: 0.0 for n in names}
    cpu_totals = {n: 0.0 for n in names}
    others = {n: [] for n in names}

    def row_of(g):
        """Base group a variant's group belongs to (`cilium-day2-kvstore-prod-01` -> `cilium-day2-kvstore`)."""
        return next((b for b, _ in base.groups if g == b or g.startswith(b + "-")), g)

    merged = {n: {} for n in names}
    for n in names:
        for g, r in res.get(n, {}).items():
            merged[n][row_of(g)] = (r, rep["series_read"].get(n, {}).get(g, 0))
    groups = list(dict.fromkeys(row_of(g) for g in groups))
    for g in groups:
        nrec, nal = counts.get(g, (0, 0))
        line = f"{g:<27}{nrec:>4}{nal:>6} |"
        for n in names:
            r, s = merged[n].get(g, (None, 0))
            if r:
                cpu = f"{1e3 * r['cpu_seconds']:>8.0f}" if r.get("cpu_seconds") is not None else f"{'-':>8}"
                line += f"{s / 1e3:>9.0f}k{1e3 * r['seconds']:>9.1f}{cpu}{r['samples']:>7} |"
                totals[n] += r["seconds"]
                cpu_totals[n] += r.get("cpu_seconds") or 0
                others[n].append(r.get("other_load") or 0)
            else:
                line += f"{'-':>34} |"
        print(line)
    print("-" * len(head))
    line = f"{'total per cycle':<37} |"
    for n in names:
        s = sum(rep["series_read"].get(n, {}).values())
        line += f"{s / 1e3:>9.0f}k{1e3 * totals[n]:>9.1f}{1e3 * cpu_totals[n]:>8.0f}{'':>7} |"
    print(line)
    other = max((statistics.mean(v) for v in others.values() if v), default=0)
    if other > 0.3:
        print(f"# warning: other processes used {other:.1f} of {rep['cores']} cores on average while groups were "
              f"measured; wall times are inflated by the wait for a CPU, the cpu column is not")
    tot = totals["recorded"]
    verdict = "under" if tot < TARGET_SECONDS else "OVER"
    where = (f"one Prometheus holding {rep['nodes']:,} nodes in {rep['clusters']} cluster(s)" if rep["clusters"] > 1
             else f"one Prometheus for one cluster of {rep['nodes']:,} nodes (a per-cluster Prometheus or ruler shard)")
    print(f"\ntarget: whole pack < {TARGET_SECONDS:g} s per evaluation cycle; {where}: {tot:.2f} s -> {verdict} the target")
    read = sum(rep["series_read"].get("recorded", {}).values())
    if read:
        print(f"        {1e6 * tot / read:.1f} us of evaluation per raw series read ({int(read):,} series, "
              f"{read / max(rep['nodes'], 1):.0f} per node): evaluation time grows with the series each cycle selects")
    ctot = cpu_totals["recorded"]
    print(f"        Prometheus CPU per cycle {ctot:.2f} s = {100 * ctot / 30:.0f}% of one core at a 30 s evaluation "
          f"interval, {100 * ctot / 60:.0f}% at 60 s")
    for n in names[1:]:
        if tot > 0 and totals[n] > 0:
            print(f"        {n}: {totals[n]:.2f} s wall ({totals[n] / tot:.2f}x), {cpu_totals[n]:.2f} s cpu "
                  f"({cpu_totals[n] / max(ctot, 1e-9):.2f}x) per cycle")

    exprs = {}
    for g, rs in base.groups:
        for i, r in enumerate(rs):
            exprs[f"{r.name}#{i}"] = r.expr
    print("\nmost expensive rules with recording rules (median ms per evaluation):")
    ranked = sorted(((t, g, r) for g, s in res.get("recorded", {}).items() if s for r, t in s["rules"].items()),
                    reverse=True)
    for t, g, r in ranked[:10]:
        expr = exprs.get(r, "")
        print(f"  {1e3 * t:8.1f}  {r.split('#')[0]}\n            {expr[:140] + ('...' if len(expr) > 140 else '')}")
    for n in names[1:]:
        ranked = sorted(((t, g, r) for g, s in res.get(n, {}).items() if s for r, t in s["rules"].items()), reverse=True)
        print(f"most expensive rules, {n}: " + ", ".join(f"{r.split('#')[0]} {1e3 * t:.0f}" for t, g, r in ranked[:5]))

    checks = rep.get("checks") or {}
    recorded = [g for g in res.get("recorded", {}).values() if g]
    recs = {k: v for g in recorded for k, v in g.get("records", {}).items()}
    empty = [r for r, c in recs.items() if c == 0]
    print(f"\nchecks: {len(recs) - len(empty)}/{len(recs)} recording rules returned series"
          + (f" (empty: {', '.join(empty)})" if empty else ""))
    errs = sorted({e for v in res.values() for g in v.values() if g for e in g["errors"]})
    print(f"        rule errors: {len(errs)}" + "".join(f"\n          {e}" for e in errs))
    wins = checks.get("windows", {})
    if wins:
        print("        samples in each window for one node at the end (got/expected): "
              + ", ".join(f"{int(r) // 60}m {g}/{e}" for r, (g, e) in sorted(wins.items())))
    alerts = {}
    for g in recorded:
        for k, v in g.get("alerts", {}).items():
            alerts[k] = alerts.get(k, 0) + v
    firing = sum(n for k, n in alerts.items() if k.endswith("/firing"))
    print(f"        alerts active: {sum(alerts.values())} ({firing} firing, the rest pending) "
          f"from {len({k.split('/')[0] for k in alerts})} alert names")
    print(f"\ntotal run time {rep['total_s']:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
