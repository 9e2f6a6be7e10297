"""The rendered Alertmanager configuration: amtool accepts it, and end to end (simulated
endpoints -> Prometheus 2.42 -> Alertmanager 0.25 -> a webhook on 127.0.0.1) the expected
notifications arrive naming their cluster, while a critical alert for one subnet, reason or node
never silences the warning for another. The same run shows what kube-prometheus' default
inhibition does to these alerts, and that the rendered merge with kube-prometheus-stack's
defaults (assets/alertmanager/alertmanager.kube-prometheus-stack.yml) fixes it: a critical
alert on one node or cluster never silences a warning on another. The AlertmanagerConfig
variant routes the pack's alerts once they carry its namespace."""

import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from cilium_day2.catalog import load_catalog
from cilium_day2.render import alertmanager_k8s, prometheus

from .alertmanager_server import (AMTOOL, AlertmanagerServer, WebhookReceiver, require_alertmanager, require_amtool,
                                  webhook_config)
from .local_server import BackgroundHTTPServer
from .prometheus_server import PrometheusServer, require_prometheus

ROOT = Path(__file__).resolve().parents[1]
# kube-prometheus-stack's default inhibition, as its chart ships it (recorded in the pack's data).
KUBE_PROMETHEUS_INHIBIT = alertmanager_k8s.kps_defaults()["inhibit_rules"]


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
    # Its node n9 also drops on CT at the warning rate: the critical of cluster c1 must not hide it.
    "/ext/n9": [('cilium_bpf_map_pressure{map_name="ct4_global"}', 0.97, False),
                (f'cilium_drop_count_total{{reason="{CT}",direction="EGRESS"}}', 0.5, True)],
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
    ("CiliumDatapathCapacityDrops", "warning", (("cluster", "ext1"), ("node", "n9"), ("reason", CT))),
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
    rendered = prometheus.render(catalog)
    base = yaml.safe_load(rendered[prometheus.ALERTMANAGER_FILE])
    # The rendered kube-prometheus-stack configuration: the chart's defaults and the pack's, merged.
    merged = yaml.safe_load(rendered[alertmanager_k8s.KPS_ALERTMANAGER_FILE])
    merged.pop("templates", None)  # the chart's template folder does not exist here
    with Endpoints(PAGES) as endpoints, WebhookReceiver() as hook, \
            AlertmanagerServer(webhook_config(base, hook, "ours")) as am_ours, \
            AlertmanagerServer(webhook_config(base, hook, "kube-prometheus", KUBE_PROMETHEUS_INHIBIT)) as am_kp, \
            AlertmanagerServer(webhook_config(merged, hook, "merged")) as am_merged:
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
def test_the_rendered_kube_prometheus_stack_merge_keeps_the_other_warnings(delivered):
    """A critical on node n1 of cluster c1 silences neither n2's warning nor cluster ext1's."""
    got, _ = delivered
    assert got["merged"] == got["ours"] == EXPECTED
    assert ("CiliumDatapathCapacityDrops", "warning", (("cluster", "ext1"), ("node", "n9"), ("reason", CT))) \
        in got["merged"]


# --- the merged kube-prometheus-stack configuration and the AlertmanagerConfig -------------------------


@pytest.mark.prometheus
def test_the_committed_kube_prometheus_stack_merge_passes_amtool_and_keeps_the_charts_routes(tmp_path):
    require_amtool()
    merged = yaml.safe_load((ROOT / alertmanager_k8s.KPS_ALERTMANAGER_FILE).read_text())
    merged.pop("templates")
    (tmp_path / "am.yml").write_text(yaml.safe_dump(merged))
    result = amtool("check-config", str(tmp_path / "am.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    for labels, receiver in ((["signal=bpf_map_pressure", "severity=critical", "cluster=c1"], "cilium-day2-critical"),
                             (["alertname=Watchdog", "severity=none"], "null"),
                             (["alertname=KubePodCrashLooping", "severity=warning", "namespace=x"], "null")):
        result = amtool("config", "routes", "test", f"--config.file={tmp_path / 'am.yml'}", *labels)
        assert result.stdout.strip() == receiver, (labels, result.stdout + result.stderr)
    # Every one of the chart's own inhibit rules is kept, and none reaches the pack's alerts.
    chart = KUBE_PROMETHEUS_INHIBIT
    assert len([r for r in merged["inhibit_rules"] if 'signal=""' in r["target_matchers"]]) == len(chart)


def operator_generated(amc, root_receiver="null"):
    """The Alertmanager configuration prometheus-operator generates from an AlertmanagerConfig
    with its default matcher strategy (OnNamespace): the object's route under the root with
    `namespace="<ns>"` prepended and `continue: true`; receivers and inhibit rules named and
    scoped to the namespace the same way."""
    ns, name = amc["metadata"]["namespace"], amc["metadata"]["name"]
    prefix = f"{ns}/{name}/"

    def matchers(items):
        return [f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in items]

    def route(r, top=False):
        out = {"receiver": prefix + r["receiver"], "matchers": ([f'namespace="{ns}"'] if top else []) + matchers(r.get("matchers", []))}
        for key, yaml_key in (("groupBy", "group_by"), ("groupWait", "group_wait"), ("groupInterval", "group_interval"),
                              ("repeatInterval", "repeat_interval")):
            if key in r:
                out[yaml_key] = r[key]
        if top:
            out["continue"] = True
        if r.get("routes"):
            out["routes"] = [route(c) for c in r["routes"]]
        return out

    spec = amc["spec"]
    return {
        "route": {"receiver": root_receiver, "routes": [route(spec["route"], top=True)]},
        "receivers": [{"name": root_receiver}] + [
            {"name": prefix + r["name"], "webhook_configs": [{"url": w["url"], "send_resolved": w["sendResolved"]}
                                                             for w in r.get("webhookConfigs", [])]}
            for r in spec["receivers"]],
        "inhibit_rules": [{"source_matchers": [f'namespace="{ns}"'] + matchers(i["sourceMatch"]),
                           "target_matchers": [f'namespace="{ns}"'] + matchers(i["targetMatch"]),
                           "equal": i["equal"]} for i in spec["inhibitRules"]],
    }


@pytest.mark.prometheus
def test_the_alertmanagerconfig_matches_only_alerts_carrying_its_namespace(tmp_path):
    """The operator's namespace matcher: without `namespace` on the alerts nothing routes; with
    `settings.alert_labels: {namespace: <the object's namespace>}` every rendered alert does."""
    require_amtool()
    catalog = load_catalog({"settings": {"alert_labels": {"namespace": "monitoring"}}})
    rendered = prometheus.render(catalog)
    amc = yaml.safe_load(rendered[alertmanager_k8s.ALERTMANAGERCONFIG_FILE])
    assert amc["metadata"]["namespace"] == "monitoring"
    (tmp_path / "am.yml").write_text(yaml.safe_dump(operator_generated(amc)))
    assert amtool("check-config", str(tmp_path / "am.yml")).returncode == 0
    alerts = [r for g in yaml.safe_load(rendered[prometheus.RULES_FILE])["groups"] for r in g["rules"] if "alert" in r]
    assert alerts and all(r["labels"]["namespace"] == "monitoring" for r in alerts)
    for rule in (alerts[0], alerts[-1]):
        labels = [f"{k}={v}" for k, v in rule["labels"].items()] + ["cluster=c1"]
        routed = amtool("config", "routes", "test", f"--config.file={tmp_path / 'am.yml'}", *labels).stdout.strip()
        assert routed == f"monitoring/cilium-day2/cilium-day2-{rule['labels']['severity']}", (rule["alert"], routed)
        without = [x for x in labels if not x.startswith("namespace=")]
        routed = amtool("config", "routes", "test", f"--config.file={tmp_path / 'am.yml'}", *without).stdout.strip()
        assert routed == "null"
