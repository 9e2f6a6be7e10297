"""The rendered rules as each stack loads them: settings for kube-prometheus-stack and Mimir,
vanished scrape targets, and the cluster named from `external_labels`."""

import re

import pytest
import yaml

from cilium_day2.catalog import load_catalog
from cilium_day2.errors import UserError
from cilium_day2.catalog.query import Up
from cilium_day2.render import prometheus

from .prometheus_server import promtool, require_promtool

ALL_ON = {"signals": {"kvstore_qps": {"enabled": True}, "cloud_api_request_rate": {"enabled": True}}}
JOBS = {"agent": "cilium-agent", "operator": "cilium-operator", "hubble": "hubble-metrics"}



def rules_of(text):
    return [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]


# --- settings ------------------------------------------------------------------------------------


def test_rule_labels_namespace_and_alert_labels_reach_the_prometheusrule_and_every_alert():
    catalog = load_catalog({"settings": {"rule_labels": {"release": "kube-prometheus-stack", "prometheus": "k8s"},
                                         "rule_namespace": "monitoring", "alert_labels": {"team": "network"}}})
    files = prometheus.render(catalog)
    crd = yaml.safe_load(files[prometheus.CRD_FILE])
    assert crd["metadata"]["namespace"] == "monitoring"
    assert crd["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert crd["metadata"]["labels"]["prometheus"] == "k8s"
    alerts = [r for r in rules_of(files[prometheus.RULES_FILE]) if "alert" in r]
    assert alerts and all(r["labels"]["team"] == "network" for r in alerts)
    assert all(r["labels"]["team"] == "network" for g in crd["spec"]["groups"] for r in g["rules"] if "alert" in r)


def test_without_rule_settings_the_prometheusrule_is_what_a_default_kube_prometheus_stack_loads():
    crd = yaml.safe_load(prometheus.render(load_catalog())[prometheus.CRD_FILE])
    assert crd["metadata"]["namespace"] == "monitoring"
    assert crd["metadata"]["labels"] == {"app.kubernetes.io/name": "cilium-day2", "app.kubernetes.io/part-of": "cilium-day2",
                                         "role": "alert-rules", "release": "kube-prometheus-stack"}


@pytest.mark.parametrize("values,key", [
    ({"settings": {"rule_labels": {"release": "has space"}}}, "settings.rule_labels.release"),
    ({"settings": {"rule_labels": ["release"]}}, "settings.rule_labels"),
    ({"settings": {"alert_labels": {"severity": "page"}}}, "settings.alert_labels.severity"),
    ({"settings": {"alert_labels": {"bad-name": "x"}}}, "settings.alert_labels.bad-name"),
    ({"settings": {"rule_namespace": "Monitoring"}}, "settings.rule_namespace"),
    ({"settings": {"max_rules_per_group": 0}}, "settings.max_rules_per_group"),
    ({"settings": {"runbook_base_url": "wiki/cilium"}}, "settings.runbook_base_url"),
    ({"signals": {"agent_restarts": {"keep_firing_for": "0s"}}}, "signals.agent_restarts"),
])
def test_bad_rule_settings_fail_with_one_line_naming_the_key(values, key):
    with pytest.raises(UserError) as exc:
        load_catalog(values)
    assert key in str(exc.value) and "\n" not in str(exc.value)


def test_no_group_holds_more_than_max_rules_per_group_and_nothing_is_lost():
    one = rules_of(prometheus.render(load_catalog(ALL_ON))[prometheus.RULES_FILE])
    for limit in (20, 8):
        catalog = load_catalog({**ALL_ON, "settings": {"max_rules_per_group": limit}})
        groups = yaml.safe_load(prometheus.render(catalog)[prometheus.RULES_FILE])["groups"]
        assert max(len(g["rules"]) for g in groups) <= limit
        alerts = sorted((r["alert"], r["labels"]["severity"], r["expr"].split(" ")[-1])
                        for g in groups for r in g["rules"] if "alert" in r)
        assert alerts == sorted((r["alert"], r["labels"]["severity"], r["expr"].split(" ")[-1])
                                for r in one if "alert" in r)
    assert max(len(g["rules"]) for g in yaml.safe_load(
        prometheus.render(load_catalog())[prometheus.RULES_FILE])["groups"]) <= 20


def test_a_limit_below_what_one_signal_needs_is_a_user_error():
    catalog = load_catalog({"settings": {"max_rules_per_group": 2}})
    with pytest.raises(UserError, match="settings.max_rules_per_group: 2 is below"):
        prometheus.render(catalog)


@pytest.mark.prometheus
def test_split_and_sharded_renders_pass_promtool_lint(tmp_path):
    """Mimir's defaults: groups of at most 20 rules; with 12 shards, the group count is what
    the render prints and docs/prometheus-stacks.md sizes the tenant limit from."""
    require_promtool()
    clusters = [f"c{i}" for i in range(12)]
    catalog = load_catalog({**ALL_ON, "settings": {"shard_by_cluster": clusters}})
    text = prometheus.render(catalog)[prometheus.RULES_FILE]
    groups = yaml.safe_load(text)["groups"]
    assert max(len(g["rules"]) for g in groups) <= 20
    assert len(groups) == 12 * len(yaml.safe_load(prometheus.render(load_catalog(ALL_ON))[prometheus.RULES_FILE])["groups"])
    (tmp_path / "rules.yml").write_text(text)
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(tmp_path / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_runbook_links_only_where_the_user_says():
    rules = [r for r in rules_of(prometheus.render(load_catalog())[prometheus.RULES_FILE]) if "alert" in r]
    assert all("runbook_url" not in r["annotations"] and r["annotations"]["runbook"] for r in rules)
    catalog = load_catalog({"settings": {"runbook_base_url": "https://wiki.example/cilium-day2/signals"}})
    rules = [r for r in rules_of(prometheus.render(catalog)[prometheus.RULES_FILE]) if "alert" in r]
    assert all(r["annotations"]["runbook_url"] == f"https://wiki.example/cilium-day2/signals#{r['labels']['signal']}"
               for r in rules)


def test_every_alert_holds_or_keeps_firing():
    for rule in rules_of(prometheus.render(load_catalog(ALL_ON))[prometheus.RULES_FILE]):
        if "alert" in rule:
            assert rule.get("for") or rule.get("keep_firing_for"), rule["alert"]


def test_values_print_readably():
    text = prometheus.render(load_catalog())[prometheus.RULES_FILE]
    assert 'printf \\"%.4g\\" $value }}{{ end }}/s' in text  # large rates use humanize, not 5.4e+04
    from cilium_day2.render.text import format_value
    assert format_value("per_second", 54000) == "54k/s"
    assert format_value("per_second", 0.1) == "0.1/s"
    assert format_value("seconds", 90) == "1m 30s"
    assert format_value("count", 1234567) == "1.235M"


# --- promtool: vanished targets and the external_labels cluster ----------------------------------


def up(target, cluster, node, values):
    labels = f'job="{JOBS[target]}",instance="{node}:99"' + (f',cluster="{cluster}"' if cluster else "")
    return {"series": f"up{{{labels}}}", "values": values}


# (name, input series, eval minute, {alert name: [expected alert labels]})
VANISHED = [
    ("operator scaled to zero while agents run",
     [up("agent", "c1", "n1", "1x40"), up("operator", "c1", "op", "1x10"),
      up("agent", "c2", "m1", "1x40"), up("operator", "c2", "op", "1x40")],
     30, {"CiliumOperatorAbsent": [{"cluster": "c1"}], "CiliumAgentAbsent": [], "CiliumHubbleMetricsAbsent": []}),
    ("an operator ServiceMonitor that never matched",
     [up("agent", "c1", "n1", "1x40"), up("agent", "c1", "n2", "1x40")],
     10, {"CiliumOperatorAbsent": [{"cluster": "c1"}], "CiliumAgentAbsent": []}),
    ("agent job renamed: operator and Hubble present, no agents",
     [up("operator", "c1", "op", "1x40"), up("hubble", "c1", "n1", "1x40")],
     10, {"CiliumAgentAbsent": [{"cluster": "c1"}], "CiliumOperatorAbsent": [], "CiliumHubbleMetricsAbsent": []}),
    ("Hubble metrics gone from one cluster; another never had them",
     [up("agent", "c1", "n1", "1x40"), up("operator", "c1", "op", "1x40"), up("hubble", "c1", "n1", "1x10"),
      up("agent", "c2", "m1", "1x40"), up("operator", "c2", "op", "1x40")],
     30, {"CiliumHubbleMetricsAbsent": [{"cluster": "c1"}], "CiliumAgentAbsent": [], "CiliumOperatorAbsent": []}),
    ("one Prometheus per cluster (cluster from external_labels) lost its agents",
     [up("operator", None, "op", "1x40"), up("agent", None, "n1", "1x10")],
     30, {"CiliumAgentAbsent": [{}], "CiliumOperatorAbsent": []}),
    ("a Prometheus that scrapes no Cilium target at all",
     [{"series": 'up{job="node-exporter",instance="n1:9100"}', "values": "1x40"}],
     10, {"CiliumAgentAbsent": [{}], "CiliumOperatorAbsent": [{}], "CiliumHubbleMetricsAbsent": []}),
    ("healthy twin: every target there, one agent down (up 0, CiliumAgentDown's case)",
     [up("agent", "c1", "n1", "1x40"), up("agent", "c1", "n2", "0x40"), up("operator", "c1", "op", "1x40"),
      up("hubble", "c1", "n1", "1x40")],
     30, {"CiliumAgentAbsent": [], "CiliumOperatorAbsent": [], "CiliumHubbleMetricsAbsent": []}),
]


def vanished_tests(catalog, rules_file):
    s = catalog.settings
    by_name = {prometheus.absent_alert_name(sig): sig for sig in catalog.enabled() if isinstance(sig.query.expr, Up)}
    groups = []
    for name, series, minute, expected in VANISHED:
        tests = []
        for alertname, labels_list in expected.items():
            sig = by_name[alertname]
            alerts = [{
                "exp_labels": {**labels, "severity": "critical", "area": sig.area, "signal": sig.id},
                # promtool 2.42 has no external labels: the fallback expands to "".
                "exp_annotations": prometheus.absent_annotations(sig, s, labels, external_labels={}),
            } for labels in labels_list]
            tests.append({"eval_time": f"{minute}m", "alertname": alertname, "exp_alerts": alerts})
            # Held for `for:` first: nothing one step after the target vanished.
        groups.append({"name": name, "interval": "1m", "input_series": series, "alert_rule_test": tests})
    return {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": groups}


@pytest.mark.prometheus
@pytest.mark.parametrize("shards", [(), ("c1", "c2")])
def test_promtool_vanished_targets_alert_per_cluster(tmp_path, shards):
    require_promtool()
    values = {"settings": {"shard_by_cluster": list(shards)}} if shards else None
    catalog = load_catalog(values)
    rules = tmp_path / "rules.yml"
    rules.write_text(prometheus.render(catalog)[prometheus.RULES_FILE])
    tests = vanished_tests(catalog, rules)
    if shards:
        # A sharded ruler watches the listed clusters only: the unlabelled cases are not its
        # setup, and a listed cluster with no target at all alerts (absent() per shard), so the
        # other cases give c2 its agents and operator.
        tests["tests"] = [t for t in tests["tests"] if "external_labels" not in t["name"] and "no Cilium" not in t["name"]]
        for case in tests["tests"]:
            if not any('cluster="c2"' in series["series"] for series in case["input_series"]):
                case["input_series"] += [up("agent", "c2", "m1", "1x40"), up("operator", "c2", "op", "1x40")]
        listed = vanished_tests(catalog, rules)["tests"][-1]
        listed["name"] = "a listed cluster with no Cilium target at all"
        listed["input_series"] = [up("agent", "c1", "n1", "1x40"), up("operator", "c1", "op", "1x40")]
        for check in listed["alert_rule_test"]:
            check["eval_time"] = "10m"
            if check["alertname"] != "CiliumHubbleMetricsAbsent":
                sig = catalog.signal("agent_down" if "Agent" in check["alertname"] else "operator_down")
                labels = {"cluster": "c2"}
                check["exp_alerts"] = [{
                    "exp_labels": {**labels, "severity": "critical", "area": sig.area, "signal": sig.id},
                    "exp_annotations": prometheus.absent_annotations(sig, catalog.settings, labels, external_labels={}),
                }]
        tests["tests"].append(listed)
    (tmp_path / "t.yml").write_text(yaml.safe_dump(tests, sort_keys=False, width=200))
    result = promtool("test", "rules", str(tmp_path / "t.yml"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]


@pytest.mark.prometheus
def test_promtool_vanished_target_cases_are_not_vacuous(tmp_path):
    """Swapping the expected cluster makes promtool fail."""
    require_promtool()
    catalog = load_catalog()
    rules = tmp_path / "rules.yml"
    rules.write_text(prometheus.render(catalog)[prometheus.RULES_FILE])
    tests = vanished_tests(catalog, rules)
    case = tests["tests"][0]
    case["alert_rule_test"][0]["exp_alerts"][0]["exp_labels"]["cluster"] = "c2"
    tests["tests"] = [case]
    (tmp_path / "t.yml").write_text(yaml.safe_dump(tests, sort_keys=False, width=200))
    assert promtool("test", "rules", str(tmp_path / "t.yml")).returncode != 0


@pytest.mark.prometheus
def test_promtool_annotations_name_the_cluster_from_the_label_or_fall_back_to_external_labels(tmp_path):
    """With a cluster label the annotations name it; without one (one Prometheus per cluster)
    they take the `$externalLabels` branch, which promtool 2.42 expands to "" (it has no external
    labels; tests/test_alertmanager.py shows a real Prometheus filling it in)."""
    require_promtool()
    catalog = load_catalog()
    sig = catalog.signal("ipam_subnet_exhaustion")
    rules = tmp_path / "rules.yml"
    rules.write_text(prometheus.render(catalog)[prometheus.RULES_FILE])
    tests = []
    for cluster in ("c7", None):
        labels = {"subnet_id": "subnet-a", "availability_zone": "eu-west-1a"}
        if cluster:
            labels["cluster"] = cluster
        sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
        expected = []
        for severity, threshold in sig.thresholds():
            ann = prometheus.prometheus_annotations(sig, severity, threshold, catalog.settings, labels, 20.0, {})
            expected.append({"exp_labels": {**labels, "severity": severity, "area": sig.area, "signal": sig.id},
                             "exp_annotations": ann})
            if cluster:
                assert f"in cluster {cluster}" in ann["summary"]
                assert f"in cluster {cluster} (subnet_id=subnet-a, availability_zone=eu-west-1a): 20 is below" \
                       in ann["description"]
        tests.append({"name": f"cluster {cluster}", "interval": "1m",
                      "input_series": [{"series": f"cilium_operator_ipam_available_ips_per_subnet{{{sel}}}",
                                        "values": "20x40"},
                                       # Cilium allocates from this subnet (the signal's activity guard).
                                       {"series": "cilium_operator_ipam_ip_allocation_ops{" + ",".join(
                                           f'{k}="{v}"' for k, v in labels.items() if k != "availability_zone") + "}",
                                        "values": "0+1x40"}],
                      "alert_rule_test": [{"eval_time": "30m", "alertname": sig.alert_name, "exp_alerts": expected}]})
    (tmp_path / "t.yml").write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m",
                                                    "tests": tests}, sort_keys=False, width=200))
    result = promtool("test", "rules", str(tmp_path / "t.yml"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]


def test_quantile_alerts_state_the_latency_bound():
    catalog = load_catalog()
    sig = catalog.signal("cloud_api_latency_p99")
    ann = prometheus.prometheus_annotations(sig, "critical", 5.0, catalog.settings,
                                            {"cluster": "c1", "operation": "CreateNetworkInterface"}, 7.5)
    assert "the p99 latency is above 5s, the critical threshold (estimated at 7.5s" in ann["description"]
    assert re.match(r"^Cloud API calls slow in cluster c1$", ann["summary"])
