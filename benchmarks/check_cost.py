"""What one run of the check costs, per payload size, next to a stock check and the I/O floor.

    python benchmarks/check_cost.py            # full table (several minutes on 2 cores)
    python benchmarks/check_cost.py --quick    # smaller sizes, fewer rounds

For each payload it serves the exposition on 127.0.0.1 and measures:

* cilium_day2  - `CiliumDay2Check` with its default options;
* stock        - a plain `OpenMetricsBaseCheckV2` given the same metric map (what a user gets by
                 pointing the generic OpenMetrics check at Cilium);
* floor        - fetching the body over HTTP and splitting it into lines, and nothing else.

CPU is measured side by side: one process holds all three, runs each once to warm up (filling
caches the way a long-running Agent has them), then runs them in rounds, one run of each per
round in a rotating order, with a garbage collection before every run. A round's ratios
(cilium_day2 / stock, cilium_day2 / floor) compare runs made seconds apart, so a machine that
speeds up or slows down during the measurement moves both sides; the table gives the median
ratio over the rounds and its range. CPU per mode is the median of its runs.

Peak memory and series come from a fresh process per mode (so that memory peaks do not leak
between measurements): the high-water mark of the resident set during one measured run minus
the resident set just before it, and the number of distinct contexts that run submitted.
Submissions go to a counting sink, not to the test aggregator, so its bookkeeping is not
measured.
"""

import argparse
import gc
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
QUICK_ROUNDS = 3
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


def install_sink():
    """Point the stub aggregator the checks submit to at a fresh counting sink."""
    from datadog_checks.base.stubs import aggregator as stub

    sink = CountingSink()
    for attr in ("submit_metric", "submit_histogram_bucket", "submit_histogram_bucket_multi", "submit_service_check",
                 "submit_event", "submit_event_platform_event"):
        if hasattr(stub, attr):
            setattr(stub, attr, getattr(sink, attr))
    return sink


def make_check(mode, urls):
    from datadog_checks.base import OpenMetricsBaseCheckV2

    if mode == "cilium_day2":
        from datadog_checks.cilium_day2 import CiliumDay2Check

        instance = {f"{component}_endpoint": url for component, url in urls.items()}
        return CiliumDay2Check("cilium_day2", {}, [instance])

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

    return StockCheck("cilium_stock", {}, [{"openmetrics_endpoint": next(iter(urls.values()))}])


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


def runner(mode, urls):
    """A callable doing one run of `mode`; a check's run raises if the check reports an error."""
    if mode == "floor":
        return lambda: floor_run(urls)
    check = make_check(mode, urls)

    def run():
        error = check.run()
        if error:
            raise SystemExit(f"{mode}: check failed: {error[:300]}")

    return run


def cpu_of(run):
    gc.collect()
    start = time.process_time()
    run()
    return time.process_time() - start


def paired_child(urls, rounds):
    """CPU of every mode, in rounds of one run each in a rotating order, in this one process."""
    install_sink()
    runs = {mode: runner(mode, urls) for mode in MODES}
    for run in runs.values():
        run()  # warm-up
    cpu = {mode: [] for mode in MODES}
    for index in range(rounds):
        order = MODES[index % len(MODES):] + MODES[: index % len(MODES)]
        for mode in order:
            cpu[mode].append(cpu_of(runs[mode]))
    return cpu


def memory_child(mode, urls):
    """Peak memory and series of one run of `mode`, after a warm-up run, in a fresh process."""
    sink = install_sink()
    run = runner(mode, urls)
    run()  # warm-up
    sink.contexts.clear()
    baseline = _rss_kb("VmRSS")
    exact_peak = _reset_peak()
    run()
    peak = _rss_kb("VmHWM") if exact_peak else _rss_kb("VmRSS")
    return {"peak_mb": max(0, peak - baseline) / 1024, "series": len(sink.contexts) if mode != "floor" else 0,
            "exact_peak": exact_peak}


# -- parent side --------------------------------------------------------------------------------


def in_child(*args):
    cmd = [sys.executable, __file__, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"measurement {' '.join(args[:2])} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(urls, rounds):
    """One payload's row: per-mode CPU (median), paired ratios (median and range), memory, series."""
    cpu = in_child("--child", "paired", "--urls", json.dumps(urls), "--runs", str(rounds))
    row = {}
    for mode in MODES:
        row[mode] = {"cpu": statistics.median(cpu[mode]), "cpu_runs": cpu[mode]}
        row[mode].update(in_child("--child", "memory", "--mode", mode, "--urls", json.dumps(urls)))
    ours = cpu["cilium_day2"]
    for other in ("stock", "floor"):
        ratios = [a / b for a, b in zip(ours, cpu[other]) if b > 0]
        row[f"ratio_{other}"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return row


SHAPE_NAMES = {
    "hubble 50k mixed": "one series in 50 without the context labels, the first among them",
    "hubble 50k escaped": "one label value in 50 with escaped quotes",
    "hubble 50k timestamps": "a timestamp on every sample",
    "hubble 50k openmetrics": "OpenMetrics: exemplars on a third of the samples, `_created` lines, `# EOF`",
}


def markdown(results):
    """The two tables of docs/performance.md: payload sizes, then Hubble shapes."""
    head = ("| {} | lines | MB | cilium_day2 CPU s | stock CPU s | floor CPU s | cilium_day2 / stock (rounds) "
            "| cilium_day2 / floor | peak MB (ours / stock) | series (ours / stock) |\n|---|" + "---:|" * 9)
    sizes = [head.format("payload")]
    shapes = [head.format("Hubble body")]
    for row in results:
        label = row["payload"]
        if label in SHAPE_NAMES:
            table, label = shapes, SHAPE_NAMES[label]
        else:
            table = sizes
            label = label.replace("hubble", "Hubble").replace("operator ", "operator, ").replace("5000", "5,000")
        if label == "agent + Hubble 50k":
            label = f"**{label}**"
        ours, stock, floor = row["cilium_day2"], row["stock"], row["floor"]
        ratio = row["ratio_stock"]
        table.append(
            f"| {label} | {row['lines']:,} | {row['mb']:.1f} | {ours['cpu']:.3f} | {stock['cpu']:.3f} | {floor['cpu']:.3f} "
            f"| {ratio['median']:.3f} ({ratio['min']:.2f}-{ratio['max']:.2f}) | {row['ratio_floor']['median']:.1f} "
            f"| {ours['peak_mb']:.1f} / {stock['peak_mb']:.1f} | {ours['series']:,} / {stock['series']:,} |"
        )
    rows = len(next(iter(results))["cilium_day2"]["cpu_runs"]) if results else 0
    note = f"\n\n{rows} paired rounds per payload; ratios are the median round, with the lowest and highest in brackets.\n"
    return "\n".join(sizes) + ("\n\nOther Hubble shapes, with the agent (same run):\n\n" + "\n".join(shapes)
                                if len(shapes) > 1 else "") + note


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"fewer sizes, {QUICK_ROUNDS} rounds each")
    parser.add_argument("--runs", type=int, default=5, help="paired rounds per payload (default 5)")
    parser.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    parser.add_argument("--markdown", action="store_true", help="print the tables of docs/performance.md")
    parser.add_argument("--from-json", metavar="FILE", help="print a saved --json run instead of measuring")
    parser.add_argument("--only", metavar="TEXT", help="only the payloads whose name contains TEXT (e.g. 'operator')")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "paired":
        print(json.dumps(paired_child(json.loads(args.urls), args.runs)))
        return 0
    if args.child == "memory":
        print(json.dumps(memory_child(args.mode, json.loads(args.urls))))
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.only:
        sizes = [size for size in FULL_SIZES if args.only in size[0]]
        if not sizes:
            parser.error(f"--only {args.only!r} matches no payload; names: {', '.join(s[0] for s in FULL_SIZES)}")
    rounds = QUICK_ROUNDS if args.quick else args.runs
    if args.from_json:
        try:
            results = json.loads(Path(args.from_json).read_text())
        except (OSError, ValueError) as error:
            parser.error(f"--from-json {args.from_json}: {error}")
        return report(results, args)
    results = []
    print(f"# cilium_day2 check cost: python {sys.version.split()[0]}, {os.cpu_count()} cores, {rounds} paired rounds "
          "per payload", file=sys.stderr)
    for label, kind, size in sizes:
        bodies = build_payloads(kind, size)
        payload_lines = sum(body.count("\n") for body in bodies.values())
        payload_mb = sum(len(body) for body in bodies.values()) / 1e6
        httpd = serve(bodies)
        port = httpd.server_address[1]
        urls = {path.strip("/"): f"http://127.0.0.1:{port}{path}" for path in bodies}
        print(f"  measuring {label} ...", file=sys.stderr)
        row = {"payload": label, "lines": payload_lines, "mb": payload_mb}
        row.update(measure(urls, rounds))
        httpd.shutdown()
        results.append(row)
    return report(results, args)


def report(results, args):
    if args.json:
        print(json.dumps(results, indent=2))
        return 0

    if args.markdown:
        print(markdown(results))
        return 0

    header = (f"{'payload':<24}{'lines':>8}{'MB':>7} | {'check':<11}{'cpu s':>8}{'peak MB':>9}{'series':>8}{'us/line':>9}"
              f" | {'cpu/stock (range)':>19}{'cpu/floor (range)':>19}")
    print(header)
    print("-" * len(header))
    for row in results:
        for mode in MODES:
            r = row[mode]
            ratios = ""
            if mode == "cilium_day2":
                ratios = "".join(f"{row[key]['median']:>7.3f} ({row[key]['min']:.2f}-{row[key]['max']:.2f})"
                                 for key in ("ratio_stock", "ratio_floor"))
            series = f"{r['series']:>8}" if mode != "floor" else f"{'-':>8}"
            print(f"{row['payload']:<24}{row['lines']:>8}{row['mb']:>7.2f} | {mode:<11}{r['cpu']:>8.3f}{r['peak_mb']:>9.1f}"
                  f"{series}{1e6 * r['cpu'] / row['lines']:>9.2f} | {ratios}")
    print("\nratios: median over the paired rounds of CiliumDay2Check CPU / stock OpenMetricsBaseCheckV2 CPU (targets:"
          " <= 0.12 for consistent label sets, never above 1.0 for any shape) and of CiliumDay2Check CPU /"
          " fetch-and-split CPU (target <= 3); in brackets, the lowest and highest round.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
