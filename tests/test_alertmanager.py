"""The rendered Alertmanager configuration: amtool accepts it, and end to end (simulated
endpoints -> Prometheus 2.42 -> Alertmanager 0.25 -> a webhook on 127.0.0.1) the expected
notifications arrive naming their cluster, while a critical alert for one subnet, reason or node
never silences the warning for another. The same run shows what kube-prometheus' default
inhibition does to these alerts, and that the merge docs/prometheus-stacks.md describes fixes it."""

import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from cilium_day2.catalog import load_catalog
from cilium_day2.render import prometheus

from .alertmanager_server import (AMTOOL, AlertmanagerServer, WebhookReceiver, require_alertmanager, require_amtool,
                                  webhook_config)
from .local_server import BackgroundHTTPServer
from .prometheus_server import PrometheusServer, require_prometheus

ROOT = Path(__file__).resolve().parents[1]
# kube-prometheus' (and kube-prometheus-stack's) default inhibition, as it ships.
KUBE_PROMETHEUS_INHIBIT = [
    {"source_matchers": ["severity = critical"], "target_matchers": ["severity =~ warning|info"],
     "equal": ["namespace", "alertname"]},
    {"source_matchers": ["severity = warning"], "target_matchers": ["severity = info"],
     "equal": ["namespace", "alertname"]},
    {"source_matchers": ["alertname = InfoInhibitor"], "target_matchers": ["severity = info"], "equal": ["namespace"]},
]


def amtool(*args):
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60)


# --- amtool -----------------------------------------------------------------------------------------


@pytest.mark.prometheus
def test_committed_alertmanager_config_passes_amtool_check_config():
    require_amtool()
    result = amtool("check-config", str(ROOT / prometheus.ALERTMANAGER_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
@pytest.mark.parametrize("labels,receiver", [
    (["signal=bpf_map_pressure", "severity=critical", "cluster=c1"], "cilium-day2-critical"),
    (["signal=bpf_map_pressure", "severity=warning", "cluster=c1"], "cilium-day2-warning"),
    (["alertname=KubePodCrashLooping", "severity=critical"], "default"),
])
def test_amtool_routes_by_severity_and_leaves_other_alerts_alone(labels, receiver):
    """The docs' `amtool config routes test` command."""
    require_amtool()
    result = amtool("config", "routes", "test", f"--config.file={ROOT / prometheus.ALERTMANAGER_FILE}", *labels)
    assert result.stdout.strip() == receiver, result.stdout + result.stderr


def test_every_two_severity_signal_is_inhibited_only_on_its_own_label_set():
    catalog = load_catalog()
    config = prometheus.alertmanager_config(catalog)
    rules = {r["source_matchers"][0]: r for r in config["inhibit_rules"]}
    for signal in catalog.enabled():
        rule = rules.get(f'signal="{signal.id}"')
        if len(signal.thresholds()) < 2:
            assert rule is None, signal.id
            continue
        assert rule["target_matchers"] == [f'signal="{signal.id}"', 'severity="warning"']
        assert rule["equal"] == [catalog.settings.prom_label(g) for g in signal.group_by]


# --- end to end ------------------------------------------------------------------------------------


class Endpoints(BackgroundHTTPServer):
    """Cilium expositions whose counters grow with the wall clock, on 127.0.0.1."""

    def __init__(self, pages):
        self.pages = pages  # path -> [(series, gauge value or per-second rate, is_counter)]
        self.started = time.monotonic()
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                page = endpoints.pages.get(self.path)
                if page is None:
                    self.send_error(404)
                    return
                elapsed = time.monotonic() - endpoints.started
                body = "".join(f"{s} {v * elapsed if counter else v}\n" for s, v, counter in page).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


CT, NAT = "CT: Map insertion failed", "No mapping for NAT masquerade"
PAGES = {
    # cluster c1 (from the target's labels): node n1 is critical on CT drops and warning on NAT
    # drops; node n2 is warning on CT drops.
    "/c1/n1": [(f'cilium_drop_count_total{{reason="{CT}",direction="EGRESS"}}', 10, True),
               (f'cilium_drop_count_total{{reason="{NAT}",direction="EGRESS"}}', 0.5, True)],
    "/c1/n2": [(f'cilium_drop_count_total{{reason="{CT}",direction="EGRESS"}}', 0.5, True)],
    # subnet-a is critical (10 free), subnet-b warning (100 free); Cilium allocates from both
    # (a subnet without allocations is not watched), not from the small transit subnet.
    "/c1/operator": [('cilium_operator_ipam_available_ips_per_subnet{subnet_id="subnet-a",availability_zone="az1"}', 10, False),
                     ('cilium_operator_ipam_available_ips_per_subnet{subnet_id="subnet-b",availability_zone="az2"}', 100, False),
                     ('cilium_operator_ipam_available_ips_per_subnet{subnet_id="subnet-transit",availability_zone="az1"}', 4, False),
                     ('cilium_operator_ipam_ip_allocation_ops{subnet_id="subnet-a"}', 2, True),
                     ('cilium_operator_ipam_ip_allocation_ops{subnet_id="subnet-b"}', 2, True)],
    # A cluster that its Prometheus names only in `external_labels` (no cluster label on targets).
    "/ext/n9": [('cilium_bpf_map_pressure{map_name="ct4_global"}', 0.97, False)],
    "/ext/operator": [('cilium_operator_ipam_available_ips_per_subnet{subnet_id="subnet-z",availability_zone="az1"}', 500, False),
                      ('cilium_operator_ipam_ip_allocation_ops{subnet_id="subnet-z"}', 1, True)],
}
TARGETS = [("cilium-agent", "/c1/n1", {"cluster": "c1", "node": "n1"}),
           ("cilium-agent", "/c1/n2", {"cluster": "c1", "node": "n2"}),
           ("cilium-operator", "/c1/operator", {"cluster": "c1"}),
           ("cilium-agent", "/ext/n9", {"node": "n9"}),
           ("cilium-operator", "/ext/operator", {})]
# (alertname, severity, identifying labels) of every notification that must arrive.
EXPECTED = {
    ("CiliumDatapathCapacityDrops", "critical", (("cluster", "c1"), ("node", "n1"), ("reason", CT))),
    ("CiliumDatapathCapacityDrops", "warning", (("cluster", "c1"), ("node", "n1"), ("reason", NAT))),
    ("CiliumDatapathCapacityDrops", "warning", (("cluster", "c1"), ("node", "n2"), ("reason", CT))),
    ("CiliumIpamSubnetExhaustion", "critical", (("cluster", "c1"), ("subnet_id", "subnet-a"))),
    ("CiliumIpamSubnetExhaustion", "warning", (("cluster", "c1"), ("subnet_id", "subnet-b"))),
    ("CiliumBpfMapPressure", "critical", (("cluster", "ext1"), ("node", "n9"), ("map_name", "ct4_global"))),
}
# The warnings that the critical of the same label set inhibits.
INHIBITED = {
    ("CiliumDatapathCapacityDrops", "warning", (("cluster", "c1"), ("node", "n1"), ("reason", CT))),
    ("CiliumIpamSubnetExhaustion", "warning", (("cluster", "c1"), ("subnet_id", "subnet-a"))),
    ("CiliumBpfMapPressure", "warning", (("cluster", "ext1"), ("node", "n9"), ("map_name", "ct4_global"))),
}


def fast_values():
    """The three signals on a time-lapse: short windows and holds, so they fire in seconds."""
    return {"signals": {"datapath_capacity_drops": {"window": "5s", "for": "1s"},
                        "ipam_subnet_exhaustion": {"for": "1s"},
                        "bpf_map_pressure": {"for": "1s"}}}


def notified(hook, name):
    out = set()
    for severity in ("critical", "warning"):
        for alert in hook.alerts(f"{name}/cilium-day2-{severity}"):
            labels = alert["labels"]
            assert labels["severity"] == severity
            key = tuple((k, labels[k]) for k in ("cluster", "node", "reason", "subnet_id", "map_name") if k in labels)
            out.add((labels["alertname"], severity, key))
            # Every notification names its cluster, from the label or from external_labels.
            assert f"in cluster {labels['cluster']}" in alert["annotations"]["summary"], alert
    return out


@pytest.fixture(scope="module")
def delivered():
    require_prometheus()
    require_alertmanager()
    catalog = load_catalog(fast_values())
    base = yaml.safe_load(prometheus.render(catalog)[prometheus.ALERTMANAGER_FILE])
    ours = base["inhibit_rules"]
    # The merge docs/prometheus-stacks.md describes: kube-prometheus' rules skip cilium-day2's
    # alerts (`signal=""`), and ours are appended.
    merged = [{**r, "target_matchers": r["target_matchers"] + ['signal=""']} for r in KUBE_PROMETHEUS_INHIBIT] + ours
    with Endpoints(PAGES) as endpoints, WebhookReceiver() as hook, \
            AlertmanagerServer(webhook_config(base, hook, "ours")) as am_ours, \
            AlertmanagerServer(webhook_config(base, hook, "kube-prometheus", KUBE_PROMETHEUS_INHIBIT)) as am_kp, \
            AlertmanagerServer(webhook_config(base, hook, "merged", merged)) as am_merged:
        rules = Path(am_ours._dir) / "rules.yml"
        rules.write_text(prometheus.render(catalog)[prometheus.RULES_FILE])
        config = {
            "global": {"external_labels": {"cluster": "ext1"}},
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [
                am.url.removeprefix("http://") for am in (am_ours, am_kp, am_merged)]}]}]},
            "scrape_configs": [{"job_name": f"{job}{path.replace('/', '-')}", "metrics_path": path,
                                "relabel_configs": [{"target_label": "job", "replacement": job}],
                                "static_configs": [{"targets": [f"127.0.0.1:{endpoints.port}"], "labels": labels}]}
                               for job, path, labels in TARGETS],
        }
        with PrometheusServer(config, rule_files=[rules], interval="1s",
                              extra_args=["--rules.alert.resend-delay=1s"]) as prom:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not (EXPECTED <= notified(hook, "ours")
                                                       and EXPECTED <= notified(hook, "merged")):
                time.sleep(1)
            time.sleep(4)  # a few more group intervals: anything inhibited would have arrived by now
            return {name: notified(hook, name) for name in ("ours", "kube-prometheus", "merged")}, prom.log()


@pytest.mark.prometheus
def test_expected_notifications_arrive_naming_their_cluster(delivered):
    got, log = delivered
    assert EXPECTED <= got["ours"], (sorted(EXPECTED - got["ours"]), log[-2000:])


@pytest.mark.prometheus
def test_a_critical_silences_only_the_warning_of_its_own_label_set(delivered):
    """A critical for one subnet, reason or node never hides the warning of another."""
    got, _ = delivered
    assert got["ours"] - EXPECTED == set(), sorted(got["ours"] - EXPECTED)
    assert not got["ours"] & INHIBITED


@pytest.mark.prometheus
def test_kube_prometheus_default_inhibition_hides_warnings_of_other_nodes_and_subnets(delivered):
    """The finding docs/prometheus-stacks.md warns about: `equal: [namespace, alertname]` and
    alerts without a namespace label, so one critical silences every warning of that alert."""
    got, _ = delivered
    warnings = {e for e in EXPECTED if e[1] == "warning"}
    assert not got["kube-prometheus"] & warnings
    assert {e for e in EXPECTED if e[1] == "critical"} <= got["kube-prometheus"]


@pytest.mark.prometheus
def test_the_documented_merge_with_kube_prometheus_keeps_the_other_warnings(delivered):
    got, _ = delivered
    assert got["merged"] == got["ours"] == EXPECTED
