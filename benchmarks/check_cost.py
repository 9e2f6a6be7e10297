"""What one run of the check costs, per payload size, next to a stock check and the I/O floor.

    python benchmarks/check_cost.py            # full table (a few minutes on 2 cores)
    python benchmarks/check_cost.py --quick    # smaller sizes, one measured run each

For each payload it serves the exposition on 127.0.0.1 and measures, each in a fresh process so
that memory peaks do not leak between measurements:

* cilium_day2  - `CiliumDay2Check` with its default options;
* stock        - a plain `OpenMetricsBaseCheckV2` given the same metric map (what a user gets by
                 pointing the generic OpenMetrics check at Cilium);
* floor        - fetching the body over HTTP and splitting it into lines, and nothing else.

CPU is process CPU time of one run (median of the measured runs, after one warm-up run that
fills caches the way a long-running Agent has them). Peak memory is the high-water mark of the
resident set during the measured runs minus the resident set just before them. Series is the
number of distinct contexts submitted in one run. Submissions go to a counting sink, not to the
test aggregator, so its bookkeeping is not measured.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import payloads  # noqa: E402

FULL_SIZES = [
    ("agent only", "agent", 0),
    ("agent + hubble 1k", "agent+hubble", 1_000),
    ("agent + hubble 10k", "agent+hubble", 10_000),
    ("agent + hubble 50k", "agent+hubble", 50_000),
    ("agent + hubble 200k", "agent+hubble", 200_000),
    ("hubble 50k mixed", "hubble:mixed", 50_000),
    ("hubble 50k escaped", "hubble:escaped", 50_000),
    ("hubble 50k timestamps", "hubble:timestamps", 50_000),
    ("hubble 50k openmetrics", "hubble:openmetrics", 50_000),
    ("operator 500 nodes", "operator", 500),
    ("operator 5000 nodes", "operator", 5_000),
]
QUICK_NAMES = ("agent only", "agent + hubble 10k", "agent + hubble 50k", "hubble 50k mixed", "operator 500 nodes")
QUICK_SIZES = [size for size in FULL_SIZES if size[0] in QUICK_NAMES]
MODES = ("cilium_day2", "stock", "floor")


def build_payloads(kind, size):
    """{path: body} for one payload; agent+hubble is two endpoints of the same node."""
    if kind == "agent":
        return {"/agent": payloads.agent()}
    if kind == "agent+hubble":
        return {"/agent": payloads.agent(), "/hubble": payloads.hubble(size)}
    if kind.startswith("hubble:"):
        # A node's two endpoints, with the Hubble one in an unusual shape.
        return {"/agent": payloads.agent(), "/hubble": payloads.hubble(size, shape=kind.split(":", 1)[1])}
    return {"/operator": payloads.operator(size)}


def serve(bodies):
    encoded = {path: body.encode() for path, body in bodies.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            data = encoded.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


# -- child side ---------------------------------------------------------------------------------


def _rss_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


class CountingSink:
    """Stands in for the Agent's aggregator: counts contexts, keeps nothing else."""

    def __init__(self):
        self.contexts = set()

    def submit_metric(self, check, check_id, mtype, name, value, tags, hostname, flush_first_value):
        self.contexts.add((name, hash(tuple(tags))))

    def submit_histogram_bucket(self, check, check_id, name, value, lower, upper, monotonic, hostname, tags,
                                flush_first_value=False, *rest, **kwargs):
        self.contexts.add((name, hash(tuple(tags))))

    submit_histogram_bucket_multi = submit_histogram_bucket

    def submit_service_check(self, *args, **kwargs):
        pass

    def submit_event(self, *args, **kwargs):
        pass

    def submit_event_platform_event(self, *args, **kwargs):
        pass


def make_check(mode, urls):
    from datadog_checks.base import OpenMetricsBaseCheckV2
    from datadog_checks.base.stubs import aggregator as stub

    sink = CountingSink()
    for attr in ("submit_metric", "submit_histogram_bucket", "submit_histogram_bucket_multi", "submit_service_check",
                 "submit_event", "submit_event_platform_event"):
        if hasattr(stub, attr):
            setattr(stub, attr, getattr(sink, attr))

    if mode == "cilium_day2":
        from datadog_checks.cilium_day2 import CiliumDay2Check

        instance = {f"{component}_endpoint": url for component, url in urls.items()}
        return CiliumDay2Check("cilium_day2", {}, [instance]), sink

    from cilium_day2 import metrics
    from datadog_checks.cilium_day2.config import metric_config

    class StockCheck(OpenMetricsBaseCheckV2):
        __NAMESPACE__ = "cilium_stock"
        DEFAULT_METRIC_LIMIT = 0

        def __init__(self, name, init_config, instances):
            super().__init__(name, init_config, instances)
            self.scraper_configs = [
                {"openmetrics_endpoint": url, "metrics": metric_config(metrics.COMPONENT_MAPS[component]),
                 "histogram_buckets_as_distributions": True, "collect_counters_with_distributions": True}
                for component, url in urls.items()
            ]

    return StockCheck("cilium_stock", {}, [{"openmetrics_endpoint": next(iter(urls.values()))}]), sink


def floor_run(urls):
    import requests

    lines = 0
    with requests.Session() as session:
        for url in urls.values():
            with session.get(url, stream=True) as response:
                response.encoding = "utf-8"
                for _ in response.iter_lines(decode_unicode=True):
                    lines += 1
    return lines


def child(mode, urls, runs):
    cpu, wall = [], []
    if mode == "floor":
        run = lambda: floor_run(urls)  # noqa: E731
        sink = None
    else:
        check, sink = make_check(mode, urls)
        run = check.run
    first = run()  # warm-up
    if mode != "floor" and first:
        raise SystemExit(f"{mode}: check failed: {first[:300]}")
    baseline = _rss_kb("VmRSS")
    exact_peak = _reset_peak()
    for _ in range(runs):
        if sink is not None:
            sink.contexts.clear()
        c0, w0 = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    peak = _rss_kb("VmHWM") if exact_peak else _rss_kb("VmRSS")
    return {
        "cpu": statistics.median(cpu),
        "wall": statistics.median(wall),
        "peak_mb": max(0, peak - baseline) / 1024,
        "series": len(sink.contexts) if sink is not None else 0,
        "exact_peak": exact_peak,
    }


# -- parent side --------------------------------------------------------------------------------


def measure(mode, urls, runs):
    cmd = [sys.executable, __file__, "--child", mode, "--urls", json.dumps(urls), "--runs", str(runs)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"measurement {mode} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, one measured run each")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per cell (default 3)")
    parser.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    parser.add_argument("--only", metavar="TEXT", help="only the payloads whose name contains TEXT (e.g. 'operator')")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, json.loads(args.urls), args.runs)))
        return 0

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.only:
        sizes = [size for size in FULL_SIZES if args.only in size[0]]
        if not sizes:
            parser.error(f"--only {args.only!r} matches no payload; names: {', '.join(s[0] for s in FULL_SIZES)}")
    runs = 1 if args.quick else args.runs
    results = []
    print(f"# cilium_day2 check cost: python {sys.version.split()[0]}, {os.cpu_count()} cores, {runs} measured run(s) per cell",
          file=sys.stderr)
    for label, kind, size in sizes:
        bodies = build_payloads(kind, size)
        payload_lines = sum(body.count("\n") for body in bodies.values())
        payload_mb = sum(len(body) for body in bodies.values()) / 1e6
        httpd = serve(bodies)
        port = httpd.server_address[1]
        urls = {path.strip("/"): f"http://127.0.0.1:{port}{path}" for path in bodies}
        row = {"payload": label, "lines": payload_lines, "mb": payload_mb}
        for mode in MODES:
            print(f"  measuring {label}: {mode} ...", file=sys.stderr)
            row[mode] = measure(mode, urls, runs)
        httpd.shutdown()
        results.append(row)

    if args.json:
        print(json.dumps(results, indent=2))
        return 0

    header = (f"{'payload':<22}{'lines':>8}{'MB':>7} | {'check':<11}{'cpu s':>8}{'wall s':>8}{'peak MB':>9}{'series':>8}"
              f"{'us/line':>9} | {'cpu/stock':>9}{'cpu/floor':>10}")
    print(header)
    print("-" * len(header))
    for row in results:
        for mode in MODES:
            r = row[mode]
            ratios = ""
            if mode == "cilium_day2":
                ratios = f"{r['cpu'] / row['stock']['cpu']:>9.3f}{r['cpu'] / row['floor']['cpu']:>10.2f}"
            series = f"{r['series']:>8}" if mode != "floor" else f"{'-':>8}"
            print(f"{row['payload']:<22}{row['lines']:>8}{row['mb']:>7.2f} | {mode:<11}{r['cpu']:>8.3f}{r['wall']:>8.3f}"
                  f"{r['peak_mb']:>9.1f}{series}{1e6 * r['cpu'] / row['lines']:>9.2f} | {ratios}")
    print("\nratios: cpu/stock = CiliumDay2Check CPU / stock OpenMetricsBaseCheckV2 CPU (targets: <= 0.12 for consistent"
          " label sets, never above 1.0 for any shape); cpu/floor = CiliumDay2Check CPU / fetch-and-split CPU (target <= 3).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
