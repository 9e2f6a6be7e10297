"""A gate you can trust: the fault classes of issue 20, tried the way an attacker or an unlucky
user would. Servers on 127.0.0.1 break HTTP on purpose; files break YAML on purpose."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cilium_day2 import cli
from cilium_day2.render import command as render_command
from datadog_checks.base import AgentCheck

from .common import make_check
from .conftest import fixture_text
from .prometheus_server import PROMTOOL, promtool

ROOT = Path(__file__).resolve().parents[1]
AGENT_MINIMAL = (
    "# HELP cilium_version Cilium version\n# TYPE cilium_version gauge\n"
    'cilium_version{date="2025-01-01T00:00:00Z",revision="abc",version="1.16.4"} 1\n'
)


def doctor(capsys, *argv):
    code = cli.main(["doctor", "--samples", "1", "--timeout", "2", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err):
    err = err.strip()
    return "\n" not in err and "Traceback" not in err


# --- 1. no data is never OK ----------------------------------------------------------------------


def test_cilium_endpoint_missing_the_families_is_could_not_evaluate(metrics_server, capsys):
    code, out, err = doctor(capsys, "--format", "json", "--agent", metrics_server.serve("/a", AGENT_MINIMAL))
    report = json.loads(out)
    assert code == 3 and report["status"] == "UNEVALUATED"
    (failing,) = [s for s in report["signals"] if s["id"] == "controllers_failing"]
    assert failing["status"] == "NO DATA" and "cilium_controllers_failing" in failing["reason"]
    # A map below Cilium's pressure threshold has no series: absence is "low", a verdict.
    (pressure,) = [s for s in report["signals"] if s["id"] == "bpf_map_pressure"]
    assert pressure["status"] == "OK"
    assert "without data" in report["reason"] and "could not evaluate" in err


def _cluster_pool_operator():
    """The ENI operator capture without its IPAM and cloud-API families: what an operator running
    cluster-pool IPAM exposes."""
    keep = []
    for line in fixture_text("operator_eni.txt").splitlines(keepends=True):
        if "cilium_operator_ipam_" in line or "cilium_operator_ec2_api_" in line:
            continue
        keep.append(line)
    return "".join(keep)


@pytest.mark.parametrize("feature_gauge", [True, False], ids=["agent-feature-gauge", "operator-families"])
def test_cluster_pool_makes_ipam_signals_not_applicable(metrics_server, capsys, feature_gauge):
    agent = fixture_text("agent_v1_18.txt")
    if feature_gauge:
        agent += ("# HELP cilium_feature_controlplane_ipam IPAM mode enabled on the agent\n"
                  "# TYPE cilium_feature_controlplane_ipam gauge\n"
                  'cilium_feature_controlplane_ipam{mode="cluster-pool"} 1\n'
                  'cilium_feature_controlplane_ipam{mode="eni"} 0\n')
    code, out, _ = doctor(capsys, "--format", "json", "--all",
                          "--agent", metrics_server.serve("/a", agent),
                          "--operator", metrics_server.serve("/o", _cluster_pool_operator()))
    report = json.loads(out)
    by_id = {s["id"]: s for s in report["signals"]}
    for sid in ("cloud_api_error_ratio", "ipam_pods_waiting", "ipam_subnet_exhaustion", "ipam_interface_creation_failures"):
        assert by_id[sid]["status"] == "N/A", sid
        assert by_id[sid]["reason"].startswith("not applicable")
        if feature_gauge:
            assert by_id[sid]["reason"] == "not applicable: IPAM mode cluster-pool"
    # Not applicable is not "no data": those signals do not hold the gate back.
    assert not any(s["status"] == "NO DATA" and s["id"].startswith(("ipam_", "cloud_api_")) for s in report["signals"])


def test_eni_operator_keeps_its_ipam_signals(metrics_server, capsys):
    code, out, _ = doctor(capsys, "--format", "json", "--operator", metrics_server.serve("/o", fixture_text("operator_eni.txt")))
    by_id = {s["id"]: s for s in json.loads(out)["signals"]}
    assert by_id["ipam_pods_waiting"]["status"] in ("OK", "WARNING", "CRITICAL")


def test_demo_healthy_is_ok_and_map_pressure_critical(capsys):
    assert cli.main(["doctor", "--demo", "healthy", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == 0 and report["status"] == "OK"
    assert not [s["id"] for s in report["signals"] if s["status"] == "NO DATA"]
    assert cli.main(["doctor", "--demo", "map-pressure", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["exit_code"] == 2


# --- 2. duplicates --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["same-url", "same-url-spelled-differently", "same-node-name", "agent-and-hubble"])
def test_duplicate_endpoints_are_refused(metrics_server, capsys, how):
    url = metrics_server.serve("/a", fixture_text("agent_v1_18.txt"))
    other = metrics_server.serve("/b", fixture_text("agent_v1_18.txt"))
    argv = {
        "same-url": ["--agent", url, "--agent", url],
        "same-url-spelled-differently": ["--agent", url, "--agent", url.replace("http://127.0.0.1", "HTTP://127.0.0.1")],
        "same-node-name": ["--agent", f"node-1={url}", "--agent", f"node-1={other}"],
        "agent-and-hubble": ["--agent", url, "--hubble", url],
    }[how]
    code, out, err = doctor(capsys, *argv)
    assert code == 2 and out == "" and one_line_error(err)
    assert "twice" in err or "two endpoints are named" in err


# --- 3. one deadline per request; Ctrl-C ----------------------------------------------------------


class BadHttp:
    """A TCP server that answers every connection with `handler(conn)`."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            conn.recv(65536)
            self.handler(self, conn)
        except OSError:
            pass
        finally:
            conn.close()

    def url(self, path="/metrics"):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.stop.set()
        self.sock.close()


def drip_headers(server, conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not server.stop.is_set():
        conn.sendall(b"X-Drip: a\r\n")  # a header line every 0.2 s, never the end of the headers
        time.sleep(0.2)


def redirect_forever(server, conn):
    time.sleep(0.3)
    conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {server.url('/again')}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())


@pytest.mark.parametrize("handler", [drip_headers, redirect_forever], ids=["header-drip", "slow-redirect-chain"])
def test_timeout_bounds_headers_and_redirects(capsys, handler):
    server = BadHttp(handler)
    try:
        started = time.monotonic()
        code, _, err = doctor(capsys, "--timeout", "1.5s", "--agent", server.url())
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert code == 3 and "timed out" in err
    assert elapsed < 1.5 + 1.0


def test_ctrl_c_ends_a_hanging_run_with_130():
    server = BadHttp(drip_headers)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cilium_day2", "doctor", "--timeout", "60s", "--samples", "1", "--agent", server.url()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
        )
        time.sleep(2.0)  # started and waiting on the dripping server
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        server.close()
    assert proc.returncode == 130 and elapsed < 1.0
    assert b"Traceback" not in err and b"interrupted" in err


# --- 4. truncated bodies --------------------------------------------------------------------------


def http10_cut(body):
    def handler(server, conn):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\r\n" + body.encode())

    return handler


@pytest.mark.parametrize("cut", ["mid-sample", "mid-type-line", "mid-value"])
def test_body_cut_mid_line_fails_like_prometheus(capsys, aggregator, dd_run_check, cut):
    text = fixture_text("agent_v1_18.txt")
    at = {
        "mid-sample": text.index("cilium_bpf_map_pressure{") + 20,
        "mid-type-line": text.index("# TYPE cilium_bpf_map_pressure") + 20,
        "mid-value": text.index("\n", text.index("cilium_bpf_map_pressure{")) - 1,
    }[cut]
    server = BadHttp(http10_cut(text[:at]))
    try:
        code, out, err = doctor(capsys, "--format", "json", "--agent", server.url())
        check = make_check({"agent_endpoint": server.url()})
        dd_run_check(check)
    finally:
        server.close()
    report = json.loads(out)
    assert code == 3 and "truncated" in report["endpoints"][0]["error"]
    (sc,) = aggregator.service_checks("cilium_day2.agent.openmetrics.health")
    assert sc.status == AgentCheck.CRITICAL and "truncated" in sc.message
    # As Prometheus drops a failed scrape whole, nothing of the cut body is sent.
    assert not aggregator.metric_names


def test_whole_body_without_cut_still_reads(capsys):
    server = BadHttp(http10_cut(fixture_text("agent_v1_18.txt")))
    try:
        code, out, _ = doctor(capsys, "--format", "json", "--agent", server.url())
    finally:
        server.close()
    assert json.loads(out)["endpoints"][0]["error"] is None


# --- 7. flags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag, value", [("--timeout", "0s"), ("--timeout", "1h"), ("--timeout", "soon"),
                                         ("--interval", "2h"), ("--interval", "x"), ("--interval", "0s")])
def test_timeout_and_interval_are_bounded(capsys, flag, value):
    code = cli.main(["doctor", "--agent", "http://127.0.0.1:1/metrics", f"{flag}={value}"])
    err = capsys.readouterr().err
    assert code == 2 and one_line_error(err) and flag in err


# --- 8. render: all or nothing -----------------------------------------------------------------------


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_failure_while_moving_leaves_the_previous_pack(tmp_path, monkeypatch, capsys):
    out = tmp_path / "pack"
    assert cli.main(["render", "--out", str(out)]) == 0
    before = _tree(out)
    values = tmp_path / "v.yaml"
    values.write_text("signals:\n  bpf_map_pressure: {warning: 0.5, critical: 0.6}\n")
    real_replace, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(render_command.os, "replace", flaky)
    assert cli.main(["render", "--out", str(out), "--values", str(values)]) == 2
    assert one_line_error(capsys.readouterr().err)
    assert _tree(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".cilium-day2-render-")]


# --- 9. render: refuse what would render broken or different -------------------------------------------


@pytest.mark.parametrize("values, words", [
    ("signals:\n  bpf_map_pressure: {warning: 0.5}\n  bpf_map_pressure: {critical: 0.6}\n", "twice"),
    ("settings:\n  agent_job: 'cilium-(agent'\n", "agent_job"),
    ("settings:\n  agent_job: '(?!kube)cilium.*'\n", "RE2"),
    ("settings:\n  operator_job: 'a\\\\1'\n", "RE2"),
    ("settings:\n  alert_labels: {team: '{{ $labels.node }}'}\n", "template"),
    ("settings:\n  runbook_base_url: 'https://x/{{.Value}}'\n", "template"),
    ("signals:\n  bpf_map_pressure: {warning: 0.5, critical: 1.2}\n", "ratio"),
    ("signals:\n  controllers_failing: {warning: -1, critical: -0.5}\n", "at least 0"),
    ("signals:\n  datapath_capacity_drops: {warning: -0.1}\n", "at least 0"),
    ("signals:\n  bpf_map_pressure: {window: 9000h}\n", "7d"),
    ("signals:\n  bpf_map_pressure: {for: 720h}\n", "7d"),
    ("signals:\n  bpf_map_pressure: {enabled: yes}\n", "true or false"),
])
def test_values_that_would_render_broken_write_nothing(tmp_path, capsys, values, words):
    path = tmp_path / "values.yaml"
    path.write_text(values)
    out = tmp_path / "pack"
    assert cli.main(["render", "--values", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert one_line_error(err) and words in err
    assert not out.exists()


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool not installed")
def test_scientific_numbers_and_odd_but_valid_values_render_for_promtool(tmp_path, capsys):
    path = tmp_path / "values.yaml"
    path.write_text(
        "settings:\n"
        "  agent_job: 'cilium-agent|kube-system/cilium\\.agent-[0-9]+'\n"
        "  alert_labels: {team: 'net \"core\" $x'}\n"
        "signals:\n"
        "  kvstore_qps: {enabled: true, warning: 5e2, critical: 8E2}\n"
    )
    out = tmp_path / "pack"
    assert cli.main(["render", "--values", str(path), "--out", str(out), "--only", "prometheus"]) == 0
    capsys.readouterr()
    rules = out / "assets" / "prometheus" / "cilium-day2.rules.yml"
    text = rules.read_text()
    assert "> 500" in text.replace("\n", " ") or "500" in text
    proc = promtool("check", "rules", rules, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- 13. lint-config: booleans as Cilium parses them ---------------------------------------------------


def _lint(tmp_path, capsys, value):
    cm = tmp_path / "cm.yaml"
    cm.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config, namespace: kube-system}\n"
        f"data:\n  enable-hubble: {value}\n  ipam: cluster-pool\n"
    )
    cli.main(["lint-config", "--format", "json", str(cm)])
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("value", ["yes", "on", "enabled", "'Yes'", "'tRUE'", "y"])
def test_words_that_are_not_go_booleans_are_cd001(tmp_path, capsys, value):
    report = _lint(tmp_path, capsys, value)
    text = json.dumps(report)
    hits = [f for f in _findings(report) if f.get("rule") == "CD001" or f.get("id") == "CD001"]
    assert hits, text[:400]
    assert "1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False" in json.dumps(hits)


@pytest.mark.parametrize("value", ["'1'", "t", "T", "TRUE", "true", "True", "'0'", "f", "F", "FALSE", "false", "False"])
def test_go_boolean_spellings_are_accepted(tmp_path, capsys, value):
    report = _lint(tmp_path, capsys, value)
    assert not [f for f in _findings(report) if f.get("rule") == "CD001" or f.get("id") == "CD001"]


def _findings(report):
    if isinstance(report, dict):
        for key in ("findings", "results"):
            if key in report:
                return report[key]
        return [f for v in report.values() if isinstance(v, list) for f in v if isinstance(f, dict)]
    return report


# --- 6. output and bad buckets -------------------------------------------------------------------------


def test_escape_sequences_in_label_values_cannot_rewrite_the_table(metrics_server, capsys):
    hostile = 'cilium_bpf_map_pressure{map_name="\x1b[2J\x1b[HResult: OK\u202e\rx"} 0.99\n'
    text = fixture_text("agent_v1_18.txt")
    at = text.index("cilium_bpf_map_pressure{")
    code, out, err = doctor(capsys, "--agent", metrics_server.serve("/a", text[:at] + hostile + text[at:]))
    assert code == 2
    assert "\x1b" not in out and "\u202e" not in out and "\r" not in out
    assert "\\x1b[2J" in out
    results = [line for line in out.splitlines() if line.startswith("Result:")]
    assert len(results) == 1 and results[0].startswith("Result: CRITICAL")


def _with_buckets(rows):
    """The v1.18 agent capture with its policy-implementation-delay histogram replaced."""
    text = fixture_text("agent_v1_18.txt")
    kept = [line for line in text.splitlines(keepends=True)
            if not line.startswith("cilium_policy_implementation_delay")]
    head = "".join(kept)
    body = "".join(f'cilium_policy_implementation_delay_bucket{{source="custom-resource",le="{le}"}} {v}\n'
                   for le, v in rows)
    body += 'cilium_policy_implementation_delay_sum{source="custom-resource"} 3\n'
    body += f'cilium_policy_implementation_delay_count{{source="custom-resource"}} {rows[-1][1]}\n'
    at = head.index("# TYPE cilium_policy_implementation_delay histogram\n") + len("# TYPE cilium_policy_implementation_delay histogram\n")
    return head[:at] + body + head[at:]


@pytest.mark.parametrize("rows, words", [
    ([("0.1", 1), ("abc", 2), ("+Inf", 3)], "not a number"),
    ([("0.1", 1), ("NaN", 2), ("+Inf", 3)], "NaN"),
    ([("0.1", 5), ("1", 2), ("+Inf", 6)], "decrease"),
    ([("0.1", -1), ("1", 2), ("+Inf", 3)], "negative"),
    ([("0.1", 1), ("1", "NaN"), ("+Inf", 3)], "nan"),
])
def test_bad_buckets_make_the_signal_could_not_evaluate(metrics_server, capsys, rows, words):
    url = metrics_server.serve("/a", _with_buckets(rows))
    code, out, err = doctor(capsys, "--samples", "2", "--interval", "0.2s", "--format", "json", "--agent", url)
    report = json.loads(out)
    (delay,) = [s for s in report["signals"] if s["id"] == "policy_implementation_delay_p99"]
    assert delay["status"] == "NO DATA" and "bad histogram buckets" in delay["reason"] and words in delay["reason"]
    assert code == report["exit_code"] != 0 and "Traceback" not in err


@pytest.mark.parametrize("rows", [
    [("0.1", 1), ("abc", 2), ("+Inf", 3)],
    [("0.1", 5), ("1", 2), ("+Inf", 6)],
    [("0.1", -1), ("1", 2), ("+Inf", 3)],
], ids=["le-not-a-number", "decreasing", "negative"])
def test_the_check_drops_and_counts_bad_buckets(metrics_server, aggregator, dd_run_check, rows):
    dd_run_check(make_check({"agent_endpoint": metrics_server.serve("/a", _with_buckets(rows))}))
    (sc,) = aggregator.service_checks("cilium_day2.agent.openmetrics.health")
    assert sc.status == AgentCheck.WARNING and "histogram" in sc.message
    submitted = aggregator.histogram_bucket("cilium_day2.policy.implementation_delay")
    assert not [b for b in submitted if "cilium_source:custom-resource" in b.tags]
    # The rest of the endpoint is still collected.
    assert aggregator.metrics("cilium_day2.bpf.map_pressure")


# --- 11, 12. the check: bad options, bounded contexts ---------------------------------------------------


@pytest.mark.parametrize("options, words", [
    ({"timeout": "soon"}, "`timeout`"),
    ({"timeout": 0}, "`timeout`"),
    ({"timeout": -5}, "`timeout`"),
    ({"read_timeout": "1e999"}, "`read_timeout`"),
    ({"extra_metrics": ["cilium_(unclosed"]}, "`extra_metrics`"),
    ({"extra_metrics": [{"cilium_[x": "y"}]}, "`extra_metrics`"),
    ({"exclude_metrics": ["*bad"]}, "`exclude_metrics`"),
    ({"max_contexts_per_family": "many"}, "`max_contexts_per_family`"),
])
def test_bad_options_are_critical_naming_the_option(metrics_server, aggregator, dd_run_check, caplog, options, words):
    url = metrics_server.serve("/a", fixture_text("agent_v1_18.txt"))
    check = make_check({"agent_endpoint": url, **options})
    dd_run_check(check)
    (sc,) = aggregator.service_checks("cilium_day2.agent.openmetrics.health")
    assert sc.status == AgentCheck.CRITICAL and words in sc.message
    assert "Traceback" not in sc.message and "\n" not in sc.message
    assert any(words in r.getMessage() for r in caplog.records)


def test_a_family_beyond_its_context_limit_is_capped_and_named(metrics_server, aggregator, dd_run_check):
    series = "".join(f'cilium_bpf_map_pressure{{map_name="map_{i}"}} 0.{i % 9 + 1}\n' for i in range(50))
    text = fixture_text("agent_v1_18.txt")
    at = text.index("cilium_bpf_map_pressure{")
    url = metrics_server.serve("/a", text[:at] + series + text[at:])
    dd_run_check(make_check({"agent_endpoint": url, "max_contexts_per_family": 10}))
    (sc,) = aggregator.service_checks("cilium_day2.agent.openmetrics.health")
    assert sc.status == AgentCheck.WARNING and "cilium_bpf_map_pressure" in sc.message and "max_contexts_per_family" in sc.message
    contexts = {tuple(sorted(m.tags)) for m in aggregator.metrics("cilium_day2.bpf.map_pressure")}
    assert len(contexts) == 10
    # Other families are untouched.
    assert aggregator.metrics("cilium_day2.policy.count")


# --- 7. TLS, tokens, proxies -----------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path, metrics_server):
    """The metrics server's routes over https, with a self-signed certificate for 127.0.0.1."""
    import ssl

    cert, key = tmp_path / "ca.pem", tmp_path / "key.pem"
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, timeout=60,
    )
    if proc.returncode != 0:
        pytest.skip("openssl cannot make a certificate here")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = metrics_server.httpd
    plain = httpd.socket
    httpd.socket = context.wrap_socket(plain, server_side=True)
    yield metrics_server, cert
    httpd.socket = plain


def test_tls_options(tls_server, capsys):
    server, ca = tls_server
    url = server.serve("/a", fixture_text("agent_v1_18.txt")).replace("http://", "https://")
    _, out, _ = doctor(capsys, "--format", "json", "--agent", url)
    error = json.loads(out)["endpoints"][0]["error"]
    assert "TLS certificate verification failed" in error and "--ca-file" in error and "tls_verify" not in error
    for flags in (["--ca-file", str(ca)], ["--insecure"]):
        _, out, _ = doctor(capsys, "--format", "json", "--agent", url, *flags)
        assert json.loads(out)["endpoints"][0]["error"] is None, flags


def test_bearer_token_file(metrics_server, tmp_path, capsys):
    url = metrics_server.serve("/a", fixture_text("agent_v1_18.txt"))
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    code, out, err = doctor(capsys, "--agent", url, "--bearer-token-file", str(token))
    assert metrics_server.routes["/a"].requests[-1].get("Authorization") == "Bearer s3cr3t-token"
    assert "s3cr3t" not in out + err
    missing = tmp_path / "nope"
    code, out, err = doctor(capsys, "--agent", url, "--bearer-token-file", str(missing))
    assert code == 2 and str(missing) in err and one_line_error(err)
    code, _, err = doctor(capsys, "--agent", url, "--ca-file", str(missing))
    assert code == 2 and str(missing) in err and "--ca-file" in err


def test_unauthorized_names_the_token_option(metrics_server, capsys):
    url = metrics_server.serve("/a", "denied", status=401)
    _, out, _ = doctor(capsys, "--format", "json", "--agent", url)
    assert "--bearer-token-file" in json.loads(out)["endpoints"][0]["error"]


def test_a_failing_proxy_is_named(monkeypatch, refused_url, capsys):
    proxy_port = refused_url.split(":")[2].split("/")[0]
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://user:pw@127.0.0.1:{proxy_port}")
    _, out, _ = doctor(capsys, "--format", "json", "--agent", "http://10.255.255.1:9962/metrics")
    error = json.loads(out)["endpoints"][0]["error"]
    assert f"127.0.0.1:{proxy_port}" in error and "proxy" in error and "pw" not in error


# --- 5. memory ---------------------------------------------------------------------------------------


# Peak RSS of this process's own memory (VmHWM): getrusage's ru_maxrss keeps the forking
# parent's peak across exec on Linux, so a large pytest process would be measured instead.
MEMORY_PROBE = """
import json, re, sys
from cilium_day2.cli import main
code = main(sys.argv[1:])
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"code": code, "rss_mb": hwm / 1024}), file=sys.stderr)
"""


@pytest.mark.parametrize("family", ["cilium_drop_count_total", "cilium_endpoint_some_other_family"])
def test_an_agent_with_300k_series_stays_under_300_mb(metrics_server, family):
    lines = [f"# TYPE {family} {'counter' if family.endswith('_total') else 'gauge'}\n"]
    lines += [f'{family}{{reason="Policy denied",direction="INGRESS",pod="p{i}"}} {i}\n' for i in range(300_000)]
    body = fixture_text("agent_v1_18.txt") + "".join(lines)
    url = metrics_server.serve("/big", body)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, "doctor", "--samples", "2", "--interval", "0.5s", "--timeout", "30s",
         "--format", "json", "--agent", url],
        capture_output=True, text=True, env=env, timeout=120,
    )
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    report = json.loads(proc.stdout)
    assert report["endpoints"][0]["error"] is None
    assert result["rss_mb"] < 300, result


# --- 10. every documented option works as in the stock OpenMetrics V2 check, or is refused ------------


def _tags_by_metric(aggregator, name, drop=("endpoint:", "cilium_component:")):
    return sorted(tuple(sorted(t for t in m.tags if not t.startswith(drop))) for m in aggregator.metrics(name))


@pytest.mark.parametrize("options", [
    {"exclude_labels": ["map_name"]},
    {"rename_labels": {"map_name": "bpf_map"}},
    {"tags": ["team:net", "env:prod"], "ignore_tags": ["^env:"]},
    {"exclude_metrics": ["cilium_bpf_map_pressure"]},
])
def test_options_match_the_stock_openmetrics_check(metrics_server, aggregator, dd_run_check, options):
    from datadog_checks.base import OpenMetricsBaseCheckV2

    from cilium_day2 import metrics

    url = metrics_server.serve("/a", fixture_text("agent_v1_18.txt"))
    name = "cilium_day2.bpf.map_pressure"
    stock_options = dict(options)
    stock_options["rename_labels"] = {**metrics.RENAME_LABELS, **options.get("rename_labels", {})}
    stock = OpenMetricsBaseCheckV2("stock", {}, [{
        "openmetrics_endpoint": url, "namespace": "cilium_day2",
        "metrics": [{"cilium_bpf_map_pressure": "bpf.map_pressure"}], **stock_options,
    }])
    dd_run_check(stock)
    expected = _tags_by_metric(aggregator, name)
    assert expected or "exclude_metrics" in options
    aggregator.reset()
    dd_run_check(make_check({"agent_endpoint": url, **options}))
    assert _tags_by_metric(aggregator, name) == expected


@pytest.mark.parametrize("option, value", [
    ("exclude_metrics_by_labels", {"map_name": ["lxc"]}),
    ("include_labels", ["map_name"]),
    ("hostname_label", "node"),
    ("raw_line_filters", ["^cilium_bpf"]),
    ("ignore_connection_errors", True),
])
def test_options_the_reader_does_not_apply_are_refused_by_name(metrics_server, aggregator, dd_run_check, option, value):
    url = metrics_server.serve("/a", fixture_text("agent_v1_18.txt"))
    dd_run_check(make_check({"agent_endpoint": url, option: value}))
    (sc,) = aggregator.service_checks("cilium_day2.agent.openmetrics.health")
    assert sc.status == AgentCheck.CRITICAL and f"`{option}`" in sc.message
    assert not aggregator.metrics("cilium_day2.bpf.map_pressure")
    example = (ROOT / "datadog_checks" / "cilium_day2" / "data" / "conf.yaml.example").read_text()
    assert f"@param {option} " not in example


def test_a_gzip_body_cut_short_is_truncated(capsys):
    import gzip

    packed = gzip.compress(fixture_text("agent_v1_18.txt").encode())

    def handler(server, conn):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n\r\n"
                     + packed[: len(packed) - 40])

    server = BadHttp(handler)
    try:
        code, out, _ = doctor(capsys, "--format", "json", "--agent", server.url())
    finally:
        server.close()
    assert code == 3 and "truncated" in json.loads(out)["endpoints"][0]["error"]


def test_crd_identity_mode_without_kvstore_makes_kvstore_signals_not_applicable(metrics_server, capsys):
    agent = "".join(line for line in fixture_text("agent_v1_18.txt").splitlines(keepends=True)
                    if "cilium_kvstore_" not in line)
    agent += ("# TYPE cilium_feature_controlplane_identity_allocation gauge\n"
              'cilium_feature_controlplane_identity_allocation{mode="crd"} 1\n'
              'cilium_feature_controlplane_identity_allocation{mode="kvstore"} 0\n')
    _, out, _ = doctor(capsys, "--format", "json", "--agent", metrics_server.serve("/a", agent))
    by_id = {s["id"]: s for s in json.loads(out)["signals"]}
    for sid in ("kvstore_latency_p99", "kvstore_initial_sync_incomplete"):
        assert by_id[sid]["status"] == "N/A" and "identity allocation mode crd" in by_id[sid]["reason"]
    # Without the feature gauge the same endpoint leaves them without data: nothing is assumed.
    plain = "".join(line for line in agent.splitlines(keepends=True) if "identity_allocation" not in line)
    _, out, _ = doctor(capsys, "--format", "json", "--agent", metrics_server.serve("/b", plain))
    by_id = {s["id"]: s for s in json.loads(out)["signals"]}
    assert by_id["kvstore_initial_sync_incomplete"]["status"] == "NO DATA"
