"""Fault injection: hostile or broken endpoints and files, against the check, `doctor`, `render`
and `lint-config`. One test per failure class; each serves the misbehaviour on 127.0.0.1 and
asserts the outcome: the right verdict, one clear line of error, no secret anywhere, bounded wall
time, and (in a child process) bounded peak memory. Bounds are generous: they catch a hang or a
blow-up, not a slowdown (the numbers are in benchmarks/hostile_cost.py and docs/limits.md)."""

import json
import logging
import os
import socket
import socketserver
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cilium_day2 import cli
from cilium_day2.exposition.reader import MAX_LINE_CHARS
from cilium_day2.userfiles import MAX_VALUES_BYTES
from datadog_checks.base import AgentCheck

from .common import make_check

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-t0ken"

# Small but realistic expositions (names and labels from the Cilium fact sheet).
AGENT = (
    "# HELP cilium_version Cilium version\n# TYPE cilium_version gauge\n"
    'cilium_version{date="2025-01-01T00:00:00Z",revision="abc",version="1.16.4"} 1\n'
    "# HELP cilium_bpf_map_pressure Fill percentage of map, tagged by map name\n"
    "# TYPE cilium_bpf_map_pressure gauge\n"
    'cilium_bpf_map_pressure{map_name="ct4_global"} 0.31\n'
    'cilium_bpf_map_pressure{map_name="lxc"} 0.02\n'
    "# HELP cilium_unreachable_nodes Number of nodes that cannot be reached\n"
    "# TYPE cilium_unreachable_nodes gauge\n"
    "cilium_unreachable_nodes 0\n"
)
HUBBLE_SERIES = [("Trace", "to-stack", "FORWARDED", "TCP"), ("PolicyVerdict", "", "DROPPED", "UDP")]


def hubble_text(flows=100, openmetrics=False):
    name = "hubble_flows_processed" if openmetrics else "hubble_flows_processed_total"
    out = ["# HELP hubble_flows_processed_total Total number of flows processed",
           f"# TYPE {name} counter"]
    for i, (kind, subtype, verdict, proto) in enumerate(HUBBLE_SERIES):
        labels = (f'protocol="{proto}",source_pod="web-{i}",subtype="{subtype}",type="{kind}",'
                  f'verdict="{verdict}"')
        line = f"hubble_flows_processed_total{{{labels}}} {flows + i}"
        if openmetrics:
            line += ' # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 1.0 1735689600.123'
            out += [line, f"hubble_flows_processed_created{{{labels}}} 1.7356896e+09"]
        else:
            out.append(line)
    out += ["# HELP hubble_lost_events_total Number of lost events", f"# TYPE {'hubble_lost_events' if openmetrics else 'hubble_lost_events_total'} counter",
            'hubble_lost_events_total{source="hubble_ring_buffer"} 0']
    if openmetrics:
        out += ["# EOF"]
    return "\n".join(out) + "\n"


NODE_EXPORTER = (
    "# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.21\n"
    "# HELP node_memory_MemFree_bytes Memory information field MemFree_bytes.\n"
    "# TYPE node_memory_MemFree_bytes gauge\nnode_memory_MemFree_bytes 1.2e+09\n"
)


# --- a server that misbehaves at the socket level --------------------------------------------------


class Misbehaving:
    """`http://127.0.0.1:<port>/<behaviour>`; behaviours are methods named `do_<behaviour>`."""

    def __init__(self):
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                request = b""
                while b"\r\n\r\n" not in request:
                    data = self.request.recv(4096)
                    if not data:
                        return
                    if data[:1] == b"\x16":  # a TLS ClientHello: answer in plain HTTP, as a plain port does
                        self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                        return
                    request += data
                path = request.split(b" ", 2)[1].decode()
                try:
                    getattr(owner, "do_" + path.strip("/").split("?")[0])(self.request)
                except OSError:
                    pass  # the client gave up: expected

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass

        self.stop = threading.Event()
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, behaviour, scheme="http"):
        return f"{scheme}://127.0.0.1:{self.port}/{behaviour}"

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _headers(sock, length=None, content_type="text/plain; version=0.0.4"):
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
        if length is not None:
            head += f"Content-Length: {length}\r\n"
        sock.sendall((head + "\r\n").encode())

    def do_drip(self, sock):
        """A valid exposition, one byte every 0.2 s: each read succeeds, the whole never ends."""
        body = AGENT.encode()
        self._headers(sock, len(body))
        for i in range(len(body)):
            if self.stop.wait(0.2):
                return
            sock.sendall(body[i:i + 1])

    def do_endless(self, sock):
        """A line that never ends, as fast as the client reads."""
        self._headers(sock)
        sock.sendall(b'# TYPE cilium_bpf_map_pressure gauge\ncilium_bpf_map_pressure{map_name="')
        block = b"x" * (1 << 20)
        while not self.stop.is_set():
            sock.sendall(block)

    def do_longline(self, sock):
        """A 10 MB line inside a collected family, then valid series."""
        body = (AGENT + 'cilium_bpf_map_pressure{map_name="' + "x" * 10_000_000 + '"} 0.5\n'
                + '# TYPE cilium_unreachable_health_endpoints gauge\ncilium_unreachable_health_endpoints 2\n').encode()
        self._headers(sock, len(body))
        sock.sendall(body)

    def do_reset(self, sock):
        """Half the body, then a TCP reset."""
        body = AGENT.encode()
        self._headers(sock, len(body) * 2)
        sock.sendall(body)
        time.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def do_plain(self, sock):
        """Plain HTTP, for an https:// URL: the TLS handshake fails."""
        body = AGENT.encode()
        self._headers(sock, len(body))
        sock.sendall(body)


@pytest.fixture
def bad_server():
    server = Misbehaving()
    yield server
    server.close()


def doctor(capsys, *argv):
    code = cli.main(["doctor", "--samples", "1", "--timeout", "2", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def service_check(aggregator, component):
    (sc,) = aggregator.service_checks(f"cilium_day2.{component}.openmetrics.health")
    return sc


def all_tags(aggregator):
    tags = [t for name in aggregator.metric_names for m in aggregator.metrics(name) for t in m.tags]
    for scs in aggregator._service_checks.values():
        for sc in scs:
            tags.extend(sc.tags)
            tags.append(sc.message or "")
    return tags


def child_peak(code, timeout=60):
    """Run `code` in a fresh interpreter; returns (its JSON result, peak RSS in MB, wall seconds)."""
    wrapper = code + textwrap.dedent("""
        import json as _json
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) peak across exec.
        with open("/proc/self/status") as _status:
            RESULT["peak_mb"] = next(int(l.split()[1]) for l in _status if l.startswith("VmHWM:")) / 1024
        print(_json.dumps(RESULT))
    """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result, result["peak_mb"], time.monotonic() - started


CHECK_IN_CHILD = """
import logging
from datadog_checks.base.stubs import aggregator
from datadog_checks.cilium_day2 import CiliumDay2Check
logging.disable(logging.CRITICAL)
check = CiliumDay2Check("cilium_day2", {{}}, [{instance!r}])
check.run()
RESULT = {{"service_checks": {{n: [(s.status, s.message) for s in scs] for n, scs in aggregator._service_checks.items()}},
          "metrics": sorted(aggregator.metric_names)}}
"""


# --- security -----------------------------------------------------------------------------------


def test_credentials_and_query_never_reach_tags_messages_or_logs(metrics_server, aggregator, dd_run_check, caplog):
    metrics_server.serve(f"/m?token={SECRET}", AGENT)
    url = f"http://user:{SECRET}@127.0.0.1:{metrics_server.port}/m?token={SECRET}"
    caplog.set_level(logging.DEBUG)
    dd_run_check(make_check({"agent_endpoint": url, "hubble_endpoint": url.replace("/m?", "/missing?")}))
    assert aggregator.metrics("cilium_day2.bpf.map_pressure")
    tags = all_tags(aggregator)
    assert f"endpoint:http://127.0.0.1:{metrics_server.port}/m" in tags
    assert not [t for t in tags if SECRET in t or "user:" in t]
    # urllib3's own DEBUG line logs the request path (query string included) but never the
    # credentials; nothing of ours logs either.
    assert f"user:{SECRET}" not in caplog.text
    assert not [r for r in caplog.records if not r.name.startswith("urllib3") and SECRET in r.getMessage()]


def test_doctor_never_prints_credentials(metrics_server, capsys):
    url = f"http://user:{SECRET}@127.0.0.1:{metrics_server.port}/gone?token={SECRET}"
    code, out, err = doctor(capsys, "--agent", url, "--format", "json")
    assert code == 3 and SECRET not in out + err


# --- false verdicts ------------------------------------------------------------------------------


def test_check_empty_200_body_is_not_ok(metrics_server, aggregator, dd_run_check):
    dd_run_check(make_check({"agent_endpoint": metrics_server.serve("/m", "")}))
    sc = service_check(aggregator, "agent")
    assert sc.status == AgentCheck.CRITICAL and "empty" in sc.message


def test_check_non_cilium_exposition_is_not_ok(metrics_server, aggregator, dd_run_check):
    dd_run_check(make_check({"hubble_endpoint": metrics_server.serve("/m", NODE_EXPORTER)}))
    sc = service_check(aggregator, "hubble")
    assert sc.status == AgentCheck.CRITICAL and "none of the Cilium families" in sc.message


def test_doctor_on_a_node_exporter_could_not_evaluate(metrics_server, capsys):
    code, out, err = doctor(capsys, "--agent", metrics_server.serve("/m", NODE_EXPORTER))
    assert code == 3
    assert "Result: OK" not in out and "could not evaluate" in err
    assert "no Cilium agent metrics" in out


def test_doctor_with_one_component_not_cilium_does_not_pass(metrics_server, capsys):
    code, out, _ = doctor(capsys, "--samples", "2", "--interval", "0.2s",
                          "--agent", metrics_server.serve("/a", AGENT),
                          "--hubble", metrics_server.serve("/h", NODE_EXPORTER))
    assert code == 3
    assert "Result: COULD NOT EVALUATE" in out and "hubble" in out


def test_doctor_with_nothing_reachable_never_says_ok(refused_url, capsys):
    code, out, err = doctor(capsys, "--agent", refused_url)
    assert code == 3 and "Result: OK" not in out
    assert "COULD NOT EVALUATE" in out and "connection refused" in out


def test_repeated_series_first_wins_identically_in_check_and_doctor(metrics_server, aggregator, dd_run_check, capsys):
    # The whole exposition twice over (a proxy concatenating), the repeat with other values.
    twice = AGENT + AGENT.replace("0.31", "0.99") + hubble_text(100) + hubble_text(5000)
    dd_run_check(make_check({"agent_endpoint": metrics_server.serve("/a", twice),
                             "hubble_endpoint": metrics_server.serve("/h", twice)}))
    (ct,) = [m for m in aggregator.metrics("cilium_day2.bpf.map_pressure") if "map_name:ct4_global" in m.tags]
    assert ct.value == 0.31
    flows = sum(m.value for m in aggregator.metrics("cilium_day2.hubble.flows_processed.count"))
    assert flows == 100 + 101  # the first block only: not doubled, not the repeat's values
    code, out, _ = doctor(capsys, "--format", "json", "--agent", metrics_server.url("/a"))
    report = json.loads(out)
    (pressure,) = [s for s in report["signals"] if s["id"] == "bpf_map_pressure"]
    assert pressure["status"] == "OK" and pressure["value"] == 0.31


def test_short_sample_does_not_judge_a_long_window(metrics_server, capsys):
    # A quiet node: no new flow between two samples 0.3 s apart; the signal's window is 15 minutes.
    code, out, _ = doctor(capsys, "--samples", "2", "--interval", "0.3s", "--format", "json", "--all",
                          "--agent", metrics_server.serve("/a", AGENT), "--hubble", metrics_server.serve("/h", hubble_text()))
    (stalled,) = [s for s in json.loads(out)["signals"] if s["id"] == "hubble_flows_stalled"]
    assert stalled["status"] == "NO DATA" and stalled["reason"].startswith("not enough samples")
    # Not judged is not OK: the gate cannot pass (exit 3, could not evaluate).
    assert code == 3 and json.loads(out)["status"] == "UNEVALUATED"


def test_nan_and_inf_never_become_a_verdict(metrics_server, aggregator, dd_run_check, capsys):
    text = AGENT.replace("0.31", "NaN").replace("0.02", "+Inf")
    url = metrics_server.serve("/a", text)
    code, out, _ = doctor(capsys, "--format", "json", "--agent", url)
    (pressure,) = [s for s in json.loads(out)["signals"] if s["id"] == "bpf_map_pressure"]
    assert pressure["status"] != "CRITICAL" and pressure["value"] in (None,) and code in (0, 3)
    dd_run_check(make_check({"agent_endpoint": url}))
    assert not aggregator.metrics("cilium_day2.bpf.map_pressure")
    assert service_check(aggregator, "agent").status == AgentCheck.OK


def test_openmetrics_hubble_with_exemplars_is_read(metrics_server, aggregator, dd_run_check, capsys):
    url = metrics_server.serve("/h", hubble_text(openmetrics=True),
                               content_type="application/openmetrics-text; version=1.0.0; charset=utf-8")
    dd_run_check(make_check({"hubble_endpoint": url}))
    assert service_check(aggregator, "hubble").status == AgentCheck.OK
    assert sum(m.value for m in aggregator.metrics("cilium_day2.hubble.flows_processed.count")) == 100 + 101
    code, out, _ = doctor(capsys, "--format", "json", "--agent", metrics_server.serve("/a", AGENT), "--hubble", url)
    report = json.loads(out)
    assert all(e["error"] is None for e in report["endpoints"]), report["endpoints"]


def test_next_line_character_stays_inside_a_label_value(metrics_server, aggregator, dd_run_check, capsys):
    # U+0085 (NEL) and U+2028 in a label value, served without a charset.
    text = AGENT.replace('map_name="lxc"', 'map_name="lxc\u0085x\u2028y"')
    url = metrics_server.serve("/a", text, content_type="text/plain")
    dd_run_check(make_check({"agent_endpoint": url}))
    names = {t for m in aggregator.metrics("cilium_day2.bpf.map_pressure") for t in m.tags if t.startswith("map_name:")}
    assert names == {"map_name:ct4_global", "map_name:lxc\u0085x\u2028y"}
    assert service_check(aggregator, "agent").status == AgentCheck.OK


# --- hangs and memory ------------------------------------------------------------------------------


def test_slow_drip_is_cut_at_the_deadline_and_the_others_collected(bad_server, metrics_server, aggregator,
                                                                  dd_run_check, capsys):
    instance = {"timeout": 1, "agent_endpoint": bad_server.url("drip"),
                "hubble_endpoint": metrics_server.serve("/h", hubble_text())}
    started = time.monotonic()
    dd_run_check(make_check(instance))
    assert time.monotonic() - started < 4
    sc = service_check(aggregator, "agent")
    assert sc.status == AgentCheck.CRITICAL and "timed out" in sc.message
    assert service_check(aggregator, "hubble").status == AgentCheck.OK
    started = time.monotonic()
    code, out, _ = doctor(capsys, "--timeout", "1s", "--agent", bad_server.url("drip"))
    assert time.monotonic() - started < 4
    assert code == 3 and "timed out" in out


def test_ten_megabyte_line_costs_no_memory_and_the_rest_is_read(bad_server):
    instance = {"agent_endpoint": bad_server.url("longline"), "timeout": 20}
    result, peak, _ = child_peak(CHECK_IN_CHILD.format(instance=instance))
    (sc,) = result["service_checks"]["cilium_day2.agent.openmetrics.health"]
    assert sc[0] == AgentCheck.WARNING and f"longer than {MAX_LINE_CHARS}" in sc[1]
    assert "cilium_day2.unreachable.health_endpoints" in result["metrics"]
    assert peak < 250, f"peak RSS {peak:.0f} MB"


def test_endless_line_is_bounded_in_time_and_memory(bad_server):
    instance = {"agent_endpoint": bad_server.url("endless"), "timeout": 2}
    result, peak, wall = child_peak(CHECK_IN_CHILD.format(instance=instance))
    (sc,) = result["service_checks"]["cilium_day2.agent.openmetrics.health"]
    assert sc[0] == AgentCheck.CRITICAL and ("timed out" in sc[1] or "larger than" in sc[1])
    assert peak < 250, f"peak RSS {peak:.0f} MB"
    assert wall < 20


def test_doctor_memory_with_a_ten_megabyte_line(bad_server):
    code = textwrap.dedent(f"""
        import contextlib, io
        from cilium_day2 import cli
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = cli.main(["doctor", "--samples", "1", "--format", "json", "--agent", {bad_server.url("longline")!r}])
        RESULT = {{"code": code, "report": out.getvalue()}}
    """)
    result, peak, _ = child_peak(code)
    report = json.loads(result["report"])
    assert report["endpoints"][0]["error"] is None
    assert peak < 250, f"peak RSS {peak:.0f} MB"


def test_reset_is_worded_as_a_reset(bad_server, aggregator, dd_run_check, capsys):
    code, out, _ = doctor(capsys, "--agent", bad_server.url("reset"))
    assert code == 3 and ("reset" in out or "cut off" in out)
    assert "ChunkedEncodingError" not in out and "ProtocolError" not in out
    dd_run_check(make_check({"agent_endpoint": bad_server.url("reset")}))
    sc = service_check(aggregator, "agent")
    assert sc.status == AgentCheck.CRITICAL and ("reset" in sc.message or "cut off" in sc.message)


def test_tls_failure_is_worded_as_tls(bad_server, aggregator, dd_run_check, capsys):
    url = bad_server.url("plain", scheme="https")
    code, out, _ = doctor(capsys, "--agent", url)
    assert code == 3 and "TLS" in out and "refused" not in out
    dd_run_check(make_check({"agent_endpoint": url, "tls_verify": False}))
    assert "TLS" in service_check(aggregator, "agent").message


def test_binary_garbage_is_one_clear_line(metrics_server, aggregator, dd_run_check, capsys):
    url = metrics_server.serve("/g", "\x00\x01\x02garbage\xff\n" * 50)
    dd_run_check(make_check({"agent_endpoint": url}))
    assert "not a Prometheus exposition" in service_check(aggregator, "agent").message
    code, out, _ = doctor(capsys, "--agent", url)
    assert code == 3 and "not Prometheus text" in out and "Traceback" not in out


# --- bad configuration and values ------------------------------------------------------------------


def test_one_invalid_endpoint_url_fails_alone(metrics_server, aggregator, dd_run_check):
    check = make_check({"agent_endpoint": metrics_server.serve("/a", AGENT),
                        "hubble_endpoint": "http://127.0.0.1:port/metrics"})
    dd_run_check(check)
    assert aggregator.metrics("cilium_day2.bpf.map_pressure")
    assert service_check(aggregator, "agent").status == AgentCheck.OK
    sc = service_check(aggregator, "hubble")
    assert sc.status == AgentCheck.CRITICAL and "`hubble_endpoint` is not a valid URL" in sc.message


@pytest.mark.parametrize("argv", [["doctor", "--agent", "http://[::1"], ["doctor", "--hubble", "http://[::1]:x/m"]])
def test_unparseable_url_is_one_line(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "not a valid URL" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["render", "doctor"])
def test_binary_values_file_is_one_line(command, tmp_path, capsys):
    values = tmp_path / "values.yaml"
    values.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    extra = ["--out", str(tmp_path / "out")] if command == "render" else ["--agent", "http://127.0.0.1:1/m"]
    code = cli.main([command, "--values", str(values), *extra])
    err = capsys.readouterr().err
    assert code == 2 and "not a UTF-8 text file" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("values, key", [
    ("signals:\n  bpf_map_pressure: {warning: .nan}\n", "signals.bpf_map_pressure.warning"),
    ("signals:\n  bpf_map_pressure: {critical: .inf}\n", "signals.bpf_map_pressure.critical"),
    ("settings:\n  cluster_label: kube.cluster\n", "settings.cluster_label"),
    ("settings:\n  node_label: '-'\n", "settings.node_label"),
    ("settings:\n  node_label: nœud\n", "settings.node_label"),
])
def test_render_rejects_non_finite_numbers_and_bad_label_names(values, key, tmp_path, capsys):
    path = tmp_path / "values.yaml"
    path.write_text(values, encoding="utf-8")
    code = cli.main(["render", "--values", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"`{key}`" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_render_writes_nothing_when_a_file_blocks_a_folder(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "assets").mkdir(parents=True)
    (out / "assets" / "prometheus").write_text("not a folder")
    code = cli.main(["render", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and str(out / "assets" / "prometheus") in err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["assets", "assets/prometheus"]


def test_oversized_values_file_is_refused(tmp_path, capsys):
    path = tmp_path / "values.yaml"
    path.write_text("# padding\n" * (MAX_VALUES_BYTES // 10 + 1))
    code = cli.main(["render", "--values", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "larger than" in err and str(path) in err


ALIAS_BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi")
)


def test_lint_config_refuses_an_alias_bomb_quickly(tmp_path, capsys):
    path = tmp_path / "values.yaml"
    path.write_text("cluster:\n  name: x\n" + ALIAS_BOMB)
    started = time.monotonic()
    code = cli.main(["lint-config", str(path)])
    err = capsys.readouterr().err
    assert time.monotonic() - started < 5
    assert code == 2 and "alias" in err and len(err.strip().splitlines()) == 1


def lint_json(capsys, path, *extra):
    code = cli.main(["lint-config", "--format", "json", str(path), *extra])
    return code, json.loads(capsys.readouterr().out)


def test_lint_config_reports_placeholders_as_unresolved(tmp_path, capsys):
    path = tmp_path / "cilium-config.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system}\n"
                    "data:\n  cluster-name: prod\n  mtu: \"${NODE_MTU}\"\n  tunnel-protocol: \"{{ .Values.tunnel }}\"\n")
    code, report = lint_json(capsys, path)
    rules = {f["id"]: f for f in report["findings"] if f["id"] in ("CD001", "CD003")}
    assert "CD001" not in rules and "CD003" in rules
    assert code == 0 or any(f["severity"] == "error" for f in report["findings"])


@pytest.mark.parametrize("mode, replaced", [("strict", True), ("probe", True), ("partial", False), ("disabled", False)])
def test_lint_config_reads_cilium_1_14_kube_proxy_replacement(mode, replaced, tmp_path, capsys):
    path = tmp_path / "cilium-config.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system}\n"
                    f"data:\n  cluster-name: prod\n  kube-proxy-replacement: {mode}\n  bpf-lb-algorithm: random\n")
    _, report = lint_json(capsys, path)
    # CD404 (random backend selection) is about services that kube-proxy replacement handles.
    assert ("CD404" in {f["id"] for f in report["findings"]}) is replaced


def test_lint_config_flags_hubble_without_metrics(tmp_path, capsys):
    path = tmp_path / "values.yaml"
    path.write_text("cluster: {name: prod}\nhubble:\n  enabled: true\n  metrics:\n    enabled: []\n")
    _, report = lint_json(capsys, path)
    assert any(f["id"] == "CD503" and "hubble" in f["message"].lower() for f in report["findings"])
