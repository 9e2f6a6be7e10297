"""What hostile input costs: the numbers behind docs/limits.md.

    python benchmarks/hostile_cost.py            # all three measurements (about a minute on 2 cores)
    python benchmarks/hostile_cost.py --json     # the same, as JSON

It serves the payloads on 127.0.0.1 and measures each in a fresh child process (peak RSS is the
child's VmHWM, imports included; wall time is the child's own, imports excluded; CPU is the
child's whole user + system time):

* doctor  - `cilium-day2 doctor --samples 2` against an agent endpoint and a ~50 MB Hubble
            endpoint (per-pod `hubble_flows_processed_total` series). Target: <= 6 s, <= 300 MB.
* check   - one run of the Agent check on an agent endpoint whose collected family carries one
            10 MB line. Target: < 400 MB.
* lint    - `cilium-day2 lint-config` on a ~700-byte YAML alias bomb. Target: refused in seconds.
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import payloads  # noqa: E402
from check_cost import serve  # noqa: E402

HUBBLE_MB = 50
ALIAS_LEVELS = 9


def hubble_body(megabytes):
    per_series = len(payloads.hubble(1000)) / 1000
    return payloads.hubble(int(megabytes * 1024 * 1024 / per_series))


def alias_bomb():
    lines, previous = [], None
    for name in "abcdefghijklmnopqrstuvwxyz"[:ALIAS_LEVELS]:
        items = [f"*{previous}"] * 9 if previous else ["lol"] * 9
        lines.append(f"{name}: &{name} [{', '.join(items)}]")
        previous = name
    return "\n".join(lines) + "\n"


def in_child(code):
    """Run `code` (which sets RESULT) in a fresh interpreter; the child times its own work."""
    wrapper = textwrap.dedent("""
        import json, resource, time
        RESULT = {}
        """) + textwrap.dedent(code) + textwrap.dedent("""
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
        with open("/proc/self/status") as status:
            hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        RESULT["peak_mb"] = round(hwm / 1024, 1)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        RESULT["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
        print(json.dumps(RESULT))
        """)
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_doctor(base):
    return in_child(f"""
        import contextlib, io
        from cilium_day2 import cli
        out = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(["doctor", "--samples", "2", "--interval", "1s", "--timeout", "30s", "--format", "json",
                             "--agent", "{base}/agent", "--hubble", "{base}/hubble"])
        RESULT["wall_s"] = round(time.monotonic() - started, 2)
        RESULT["exit_code"] = code
        RESULT["endpoint_errors"] = [e["error"] for e in json.loads(out.getvalue())["endpoints"] if e["error"]]
    """)


def measure_check(base):
    return in_child(f"""
        import logging
        from datadog_checks.base.stubs import aggregator
        from datadog_checks.cilium_day2 import CiliumDay2Check
        logging.disable(logging.CRITICAL)
        check = CiliumDay2Check("cilium_day2", {{}}, [{{"agent_endpoint": "{base}/longline", "timeout": 60}}])
        started = time.monotonic()
        check.run()
        RESULT["wall_s"] = round(time.monotonic() - started, 2)
        (sc,) = aggregator.service_checks("cilium_day2.agent.openmetrics.health")
        RESULT["service_check"] = [sc.status, sc.message]
    """)


def measure_lint(path):
    return in_child(f"""
        import contextlib, io
        from cilium_day2 import cli
        err = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = cli.main(["lint-config", {str(path)!r}])
        RESULT["wall_s"] = round(time.monotonic() - started, 3)
        RESULT["exit_code"] = code
        RESULT["message"] = err.getvalue().strip()
    """)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    agent = payloads.agent()
    hubble = hubble_body(HUBBLE_MB)
    longline = agent + 'cilium_bpf_map_pressure{map_name="' + "x" * 10_000_000 + '"} 0.5\n'
    httpd = serve({"/agent": agent, "/hubble": hubble, "/longline": longline})
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    bomb = Path(os.environ.get("TMPDIR", "/tmp")) / "cilium-day2-alias-bomb.yaml"
    bomb.write_text(alias_bomb())
    try:
        results = {
            "doctor_50mb_hubble_2_samples": {"hubble_mb": round(len(hubble) / 1e6, 1), **measure_doctor(base)},
            "check_10mb_line": {"body_mb": round(len(longline) / 1e6, 1), **measure_check(base)},
            "lint_config_alias_bomb": {"bytes": bomb.stat().st_size, **measure_lint(bomb)},
        }
    finally:
        httpd.shutdown()
        bomb.unlink()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"# hostile input cost: python {sys.version.split()[0]}, {os.cpu_count()} cores")
    d = results["doctor_50mb_hubble_2_samples"]
    print(f"doctor, {d['hubble_mb']} MB Hubble + agent, 2 samples 1s apart: wall {d['wall_s']} s, CPU {d['cpu_s']} s, "
          f"peak RSS {d['peak_mb']} MB (target <= 6 s, <= 300 MB); exit {d['exit_code']}, "
          f"endpoint errors {d['endpoint_errors'] or 'none'}")
    c = results["check_10mb_line"]
    print(f"check, {c['body_mb']} MB body with one 10 MB line: wall {c['wall_s']} s, CPU {c['cpu_s']} s, peak RSS {c['peak_mb']} MB "
          f"(target < 400 MB); service check {c['service_check'][0]}: {c['service_check'][1]}")
    lint = results["lint_config_alias_bomb"]
    print(f"lint-config, {lint['bytes']}-byte alias bomb: {lint['wall_s']} s, peak RSS {lint['peak_mb']} MB; "
          f"exit {lint['exit_code']}: {lint['message']}")


if __name__ == "__main__":
    main()
