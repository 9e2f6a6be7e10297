"""The Prometheus rules and the Grafana dashboard, checked with promtool and a real Prometheus."""

import json
import re
from pathlib import Path

import pytest
import yaml

from cilium_day2.render import command as render
from cilium_day2.render import docs, grafana, prometheus
from cilium_day2.catalog import load_catalog
from cilium_day2.metrics import COMPONENT_MAPS, HISTOGRAMS

from .prometheus_server import PrometheusServer, promtool, require_prometheus, require_promtool
from .promtool.generate import build_tests, load_scenarios

ROOT = Path(__file__).resolve().parents[1]
ALL_ON = {"signals": {"kvstore_qps": {"enabled": True}, "cloud_api_request_rate": {"enabled": True}}}
MAPPED = {family for mapping in COMPONENT_MAPS.values() for family in mapping}
SYNTHETIC = {"up"}  # series Prometheus itself creates



@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Rules rendered with every signal enabled (the disabled-by-default ones are tested too)."""
    out = tmp_path_factory.mktemp("rendered")
    catalog = load_catalog(ALL_ON)
    render.write(render.render_files(catalog), out, catalog)
    return out, catalog


# --- promtool check -------------------------------------------------------------------------------


@pytest.mark.prometheus
def test_committed_rule_file_passes_promtool_check_with_lint():
    require_promtool()
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(ROOT / prometheus.RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_committed_prometheusrule_spec_passes_promtool_check_with_lint(tmp_path):
    require_promtool()
    crd = yaml.safe_load((ROOT / prometheus.CRD_FILE).read_text())
    assert crd["apiVersion"] == "monitoring.coreos.com/v1" and crd["kind"] == "PrometheusRule"
    assert crd["metadata"]["name"]
    spec = tmp_path / "spec.yml"
    spec.write_text(yaml.safe_dump(crd["spec"]))
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheusrule_and_plain_file_hold_the_same_rules():
    plain = yaml.safe_load((ROOT / prometheus.RULES_FILE).read_text())
    crd = yaml.safe_load((ROOT / prometheus.CRD_FILE).read_text())
    assert crd["spec"]["groups"] == plain["groups"]


# --- promtool unit tests ----------------------------------------------------------------------------


def test_every_enabled_signal_has_a_promtool_scenario_with_failure_and_healthy_twin():
    scenarios = load_scenarios()
    for signal in load_catalog(ALL_ON).enabled():
        assert signal.id in scenarios, f"no promtool scenario for {signal.id}"
        case = scenarios[signal.id]
        assert case["fire"]["culprits"], signal.id
        assert case["healthy"]["series"], signal.id
    assert set(scenarios) <= set(load_catalog().ids()), "scenario for an unknown signal"


@pytest.mark.prometheus
def test_promtool_unit_tests_for_every_alert(rendered, tmp_path):
    """Each alert fires after its `for:` with the culprit labels, and stays silent on the healthy
    twin and the known false positives (absent map-pressure series, the Hubble 1.19 trickle)."""
    require_promtool()
    out, catalog = rendered
    tests = build_tests(catalog, str(out / prometheus.RULES_FILE), load_scenarios())
    alert_names = {r["alert"] for g in yaml.safe_load((out / prometheus.RULES_FILE).read_text())["groups"]
                   for r in g["rules"] if "alert" in r}
    tested = {t["alertname"] for g in tests["tests"] for t in g["alert_rule_test"]}
    # The vanished-target alerts have their own cases (test_prometheus_rules_install.py).
    absent = {prometheus.absent_alert_name(s) for s in catalog.enabled() if s.query.expr.fn == "up"}
    assert tested == alert_names - absent
    test_file = tmp_path / "cilium-day2.test.yml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False, width=200))
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, (result.stdout + result.stderr)[-20000:]


@pytest.mark.prometheus
def test_rules_sharded_by_cluster_alert_once_from_their_own_cluster_group(tmp_path):
    """`settings.shard_by_cluster`: one copy of each group per cluster, each selecting only its
    cluster. The same promtool cases (series of cluster c1) pass: c1's groups fire, the others
    stay silent, and no alert is doubled."""
    require_promtool()
    catalog = load_catalog({**ALL_ON, "settings": {"shard_by_cluster": ["c0", "c1", "c2"]}})
    rules = prometheus.render(catalog)[prometheus.RULES_FILE]
    groups = yaml.safe_load(rules)["groups"]
    areas = {g["name"] for g in yaml.safe_load(prometheus.render(load_catalog(ALL_ON))[prometheus.RULES_FILE])["groups"]}
    assert {g["name"] for g in groups} == {f"{a}-{c}" for a in areas for c in ("c0", "c1", "c2")}
    for group in groups:
        shard = group["name"].rsplit("-", 1)[1]
        for rule in group["rules"]:
            # Every selector (raw series and recordings alike) carries the shard's cluster.
            selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?(?=\[|\)| |$)", rule["expr"])
            for name, matchers in selectors:
                if name.startswith(("cilium_", "hubble_", "up")) or name.count(":") == 2:
                    assert f'cluster="{shard}"' in matchers, (group["name"], rule["expr"])
    (tmp_path / "rules.yml").write_text(rules)
    check = promtool("check", "rules", "--lint=all", "--lint-fatal", str(tmp_path / "rules.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    crds = yaml.safe_load_all(prometheus.render(catalog)[prometheus.CRD_FILE])
    assert [g for crd in crds if crd for g in crd["spec"]["groups"]] == groups
    tests = build_tests(catalog, str(tmp_path / "rules.yml"), load_scenarios())
    (tmp_path / "t.yml").write_text(yaml.safe_dump(tests, sort_keys=False, width=200))
    result = promtool("test", "rules", str(tmp_path / "t.yml"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-20000:]


@pytest.mark.prometheus
def test_promtool_unit_tests_catch_a_wrong_threshold(rendered, tmp_path):
    """The generated tests are not vacuous: moving one threshold makes them fail."""
    require_promtool()
    out, catalog = rendered
    tests = build_tests(catalog, str(tmp_path / "rules.yml"), load_scenarios())
    rules = (out / prometheus.RULES_FILE).read_text().replace(
        'cluster_node_map_name:cilium_day2_bpf_map_pressure:value > 0.95', 'cluster_node_map_name:cilium_day2_bpf_map_pressure:value > 0.99')
    (tmp_path / "rules.yml").write_text(rules)
    tests["tests"] = [g for g in tests["tests"] if g["name"].startswith("bpf_map_pressure")]
    (tmp_path / "t.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", str(tmp_path / "t.yml"))
    assert result.returncode != 0
    assert "CiliumBpfMapPressure" in result.stdout + result.stderr


def test_alerts_follow_the_style_guide():
    groups = yaml.safe_load((ROOT / prometheus.RULES_FILE).read_text())["groups"]
    cluster = load_catalog().settings.cluster_label
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                assert re.match(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$", rule["record"]), rule["record"]
                assert rule["record"].startswith(cluster)
                continue
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            for key in ("summary", "description", "runbook"):
                assert rule["annotations"].get(key), (rule["alert"], key)
            assert re.match(r"^Cilium[A-Z][A-Za-z0-9]+$", rule["alert"])


def test_every_aggregation_is_by_explicit_labels_keeping_the_cluster_label():
    catalog = load_catalog({"settings": {"cluster_label": "k8s_cluster", "node_label": "kubernetes_node"}})
    text = prometheus.render(catalog)[prometheus.RULES_FILE]
    exprs = [r["expr"] for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    copies = f"max without ({', '.join(catalog.settings.replica_labels)}) ("
    for expr in exprs:
        # The only `without`: one copy of an HA pair, dropping nothing but the replica labels,
        # always inside an explicit `by` aggregation.
        assert all(re.search(r"\bby \([^)]*\) \($", part) for part in expr.split(copies)[:-1]), expr
        expr = expr.replace(copies, "(")
        assert " without " not in expr and "without(" not in expr
        for by in re.findall(r"\bby \(([^)]*)\)", expr):
            assert "k8s_cluster" in by.split(", "), expr
        assert not re.search(r"\bby \([^)]*\bcluster\b", expr.replace("k8s_cluster", "")), expr
    assert any("kubernetes_node" in e for e in exprs)


def test_runbook_anchors_exist_in_the_signals_doc():
    doc = (ROOT / docs.SIGNALS_DOC).read_text()
    catalog = load_catalog({"settings": {"runbook_base_url": "https://wiki.example/signals.md"}})
    groups = yaml.safe_load(prometheus.render(catalog)[prometheus.RULES_FILE])["groups"]
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert f"\n### {anchor}\n" in doc, anchor


def test_map_pressure_never_alerts_on_absence():
    """Only scrape targets are alerted on when absent; a missing map-pressure series means low."""
    expr = "\n".join(r["expr"] for g in yaml.safe_load((ROOT / prometheus.RULES_FILE).read_text())["groups"]
                     for r in g["rules"])
    assert re.findall(r"absent\((\w+)", expr) and set(re.findall(r"absent\((\w+)", expr)) == {"up"}


# --- both backends watch the same thing ---------------------------------------------------------------


def _families(expr: str):
    """Metric names in a PromQL expression (skipping functions, keywords, labels and records)."""
    names = set(re.findall(r"(?<![\w:{\"=~!,.])([a-zA-Z_][a-zA-Z0-9_]*)(?=\{|\[|\)| )", expr))
    return {n for n in names if n.startswith(("cilium_", "hubble_")) or n == "up"}


def _strip(family):
    for suffix in ("_bucket", "_count", "_sum"):
        if family.endswith(suffix) and family[: -len(suffix)] in HISTOGRAMS:
            return family[: -len(suffix)]
    return family


def test_every_family_the_rules_use_is_mapped_by_the_check():
    catalog = load_catalog(ALL_ON)
    used = set()
    for signal in catalog.signals:
        for sel in signal.query.selectors():
            used |= {_strip(f) for f in sel.families(catalog.settings.cloud_apis)}
        if signal.query.only_if_seen:
            used |= {_strip(f) for f in signal.query.only_if_seen.metrics}
    text = prometheus.render(catalog)[prometheus.RULES_FILE]
    from_text = {_strip(f) for g in yaml.safe_load(text)["groups"] for r in g["rules"] for f in _families(r["expr"])}
    assert from_text - SYNTHETIC <= used | SYNTHETIC
    missing = sorted(used - MAPPED)
    assert not missing, f"families used by the rules but not mapped in cilium_day2/metrics.py: {missing}"


# --- a real Prometheus ----------------------------------------------------------------------------------


def _grafana_exprs(dashboard):
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["query"]["query"])  # the variable query (no `definition`: not in the schema)
    return exprs


@pytest.mark.prometheus
def test_rules_and_grafana_queries_evaluate_on_a_real_prometheus(rendered, metrics_server, tmp_path):
    """Prometheus loads the rules (every group healthy after evaluating) and answers every
    Grafana query, while scraping the hand-written Cilium fixtures."""
    require_prometheus()
    out, catalog = rendered
    fixtures = Path(__file__).parent / "fixtures"
    targets = {}
    for job, name in (("cilium-agent", "agent_v1_18.txt"), ("cilium-operator", "operator_eni.txt"),
                      ("hubble-metrics", "hubble_context.txt")):
        if (fixtures / name).exists():
            metrics_server.serve_fixture(f"/{job}/metrics", name)
            targets[job] = f"/{job}/metrics"
    scrape = [{"job_name": job, "metrics_path": path,
               "static_configs": [{"targets": [f"127.0.0.1:{metrics_server.port}"],
                                   "labels": {"cluster": "c1", "node": "n1"}}]}
              for job, path in targets.items()]
    dashboard = json.loads((out / grafana.GRAFANA_FILE).read_text())
    # The groups' own intervals (up to minutes) would delay their first evaluation; here every
    # group runs at the scrape interval.
    doc = yaml.safe_load((out / prometheus.RULES_FILE).read_text())
    assert all(g["interval"] for g in doc["groups"])
    for g in doc["groups"]:
        g["interval"] = "1s"
    fast = tmp_path / "fast.rules.yml"
    fast.write_text(yaml.safe_dump(doc, sort_keys=False, width=10_000))
    with PrometheusServer({"scrape_configs": scrape}, rule_files=[fast], interval="1s") as prom:
        if targets:
            prom.wait_for(lambda: prom.query("count(up == 1)")["result"], timeout=30)
        # Wait until every rule has been evaluated at least once (an unevaluated rule reports
        # Go's zero time).
        groups = prom.wait_for(lambda: (lambda gs: gs if all(not r["lastEvaluation"].startswith("0001")
                                                           for g in gs for r in g["rules"]) else None)(prom.rules()),
                               timeout=30)
        for group in groups:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        for expr in _grafana_exprs(dashboard):
            promql = expr.replace("$cluster", ".*").replace("$node", ".*")
            if promql.startswith("label_values("):
                m = re.match(r"label_values\((.*), (\w+)\)$", promql)
                promql = m.group(1)
            prom.query(promql)  # raises on a PromQL error
        assert len(groups) == len(yaml.safe_load((out / prometheus.RULES_FILE).read_text())["groups"])


def test_an_aggregation_several_rules_read_is_recorded_once_before_its_readers():
    """Each cycle should select a raw series once: a leaf aggregation that several rules of a
    group read is a recording rule at the top of the group, and its readers use the record."""
    groups = yaml.safe_load((ROOT / prometheus.RULES_FILE).read_text())["groups"]
    hoisted = 0
    for group in groups:
        seen = {}
        defined = []
        for rule in group["rules"]:
            for m in prometheus.LEAF_RE.finditer(rule["expr"]):
                seen[m.group(0)] = seen.get(m.group(0), 0) + 1
            used = set(re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["expr"]))
            records = {r["record"] for r in group["rules"] if "record" in r}
            assert used & records <= set(defined), (group["name"], rule.get("alert") or rule.get("record"))
            if "record" in rule:
                defined.append(rule["record"])
                hoisted += ":cilium_day2_" not in rule["record"]
        repeated = {leaf: n for leaf, n in seen.items() if n > 1}
        assert not repeated, (group["name"], repeated)
    assert hoisted >= 1  # e.g. the conntrack GC outlier's per-node value, read for the node and for the median
