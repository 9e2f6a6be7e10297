"""`cilium-day2 lint-config`: behaviour over realistic Cilium configurations.

Fixtures (tests/lint_fixtures/) are written for this project:
  eks-well-tuned-values.yaml     Helm values of a cluster that follows the article everywhere
  eks-well-tuned-configmap.yaml  the cilium-config the chart renders from those values
  default-install-values.yaml    a first install that leaves everything to the chart
  misconfigured-configmap.yaml   `kubectl get cm cilium-config -o yaml` of a cluster without guardrails
  cilium-config-view.txt         `cilium config view` of an on-prem cluster
  cilium-dbg-config.txt          `cilium-dbg config --all` (the agent's Go field names)
  fleet/prod-eu-{1,2}-values.yaml two clusters that should be identical and are not
"""

import json
from pathlib import Path

import pytest
import yaml

from cilium_day2.cli import main
from cilium_day2.lint.formats import load_source
from cilium_day2.lint.model import FIELDS, build_config, model_field_names
from cilium_day2.lint.rules import catalog, identity_relevant, unbounded_hubble_options

FIXTURES = Path(__file__).parent / "lint_fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

WELL_TUNED = FIXTURES / "eks-well-tuned-values.yaml"
WELL_TUNED_CM = FIXTURES / "eks-well-tuned-configmap.yaml"
DEFAULT = FIXTURES / "default-install-values.yaml"
MISCONFIGURED = FIXTURES / "misconfigured-configmap.yaml"
PLACEHOLDERS = FIXTURES / "flux-placeholders-values.yaml"
CONFIG_VIEW = FIXTURES / "cilium-config-view.txt"
DBG_DUMP = FIXTURES / "cilium-dbg-config.txt"
FLEET = [FIXTURES / "fleet" / "prod-eu-1-values.yaml", FIXTURES / "fleet" / "prod-eu-2-values.yaml"]
OVERRIDES = FIXTURES / "overrides.yaml"

# The inputs that are not in the files: an AWS VPC (jumbo frames) and dense nodes.
OPTS = ["--network-mtu", "9001", "--max-pods-per-node", "110"]


def run_cli(capsys, *argv):
    code = main(["lint-config", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run_cli(capsys, *argv, "--format", "json")
    assert err == ""
    return code, json.loads(out)


def ids(document, cluster=None):
    return {f["id"] for f in document["findings"] if cluster is None or f["cluster"] == cluster}


# ---- the catalog ---------------------------------------------------------------------------

def test_every_rule_has_text_a_fix_and_an_article_section():
    rules = catalog()
    assert len({r.id for r in rules}) == len(rules)
    for rule in rules:
        assert rule.severity in ("error", "warning", "info")
        for text in (rule.title, rule.recommendation, rule.why, rule.helm, rule.configmap, rule.article):
            assert text.strip(), rule.id


def test_list_rules_prints_the_catalog(capsys):
    code, out, _ = run_cli(capsys, "--list-rules")
    assert code == 0
    for rule in catalog():
        assert rule.id in out and rule.name in out


# ---- each rule: fires on the bad configuration, never on the well-tuned one ----------------

# rule id -> (fixture that should trigger it, extra arguments)
BAD_CASES = {
    "CD002": (MISCONFIGURED, OPTS),           # enable-unreachable-route (typo)
    "CD003": (PLACEHOLDERS, OPTS),            # ${CLUSTER_NAME}, {{ .Values.podCIDR }}
    "CD101": (DEFAULT, OPTS),                 # chart default: VXLAN tunnel
    "CD102": (CONFIG_VIEW, OPTS),             # native routing, masquerading, no CIDR
    "CD103": (MISCONFIGURED, OPTS),           # mtu 9100 on a 9001 network
    "CD201": (MISCONFIGURED, OPTS),           # ENI without pre/min/max allocate
    "CD202": (MISCONFIGURED, OPTS),           # ENI without limit-ipam-api-*
    "CD203": (MISCONFIGURED, OPTS),           # ENI without prefix delegation, 110 pods/node
    "CD301": (DEFAULT, OPTS),                 # no labels allowlist
    "CD302": (MISCONFIGURED, OPTS),           # labels: k8s:.* lets job-name in
    "CD401": (MISCONFIGURED, OPTS),           # bpf-ct-global-*-max set
    "CD402": (MISCONFIGURED, OPTS),           # ratio 0.02
    "CD403": (DEFAULT, OPTS),                 # unreachable routes off by default
    "CD404": (MISCONFIGURED, OPTS),           # KPR with random
    "CD405": (MISCONFIGURED, OPTS),           # KPR with iptables masquerading
    "CD406": (MISCONFIGURED, OPTS),           # KPR without XDP
    "CD501": (DEFAULT, OPTS),                 # 4095-flow buffer on 110-pod nodes
    "CD502": (MISCONFIGURED, OPTS),           # sourceContext=pod, labelsContext=source_ip
    "CD503": (DEFAULT, OPTS),                 # prometheus.enabled defaults to false
    "CD504": (MISCONFIGURED, OPTS),           # -cilium_bpf_map_pressure
    "CD601": (MISCONFIGURED, OPTS),           # cluster-id 200 with ENI
}


@pytest.mark.parametrize("rule_id", sorted(BAD_CASES))
def test_rule_fires_on_the_bad_config_and_not_on_the_well_tuned_one(capsys, rule_id):
    fixture, extra = BAD_CASES[rule_id]
    _, bad = run_json(capsys, fixture, *extra)
    assert rule_id in ids(bad), f"{rule_id} should fire on {fixture.name}"
    for good in (WELL_TUNED, WELL_TUNED_CM):
        _, clean = run_json(capsys, good, *extra)
        assert rule_id not in ids(clean), f"{rule_id} must not fire on {good.name}"


def test_every_per_cluster_rule_is_exercised():
    per_cluster = {r.id for r in catalog() if r.area not in ("fleet",) and r.id != "CD001"}
    assert per_cluster == set(BAD_CASES)


def test_well_tuned_cluster_is_clean_even_in_strict_mode(capsys):
    code, document = run_json(capsys, WELL_TUNED, *OPTS, "--strict")
    assert document["findings"] == []
    assert code == 0


def test_missing_inputs_become_info_findings_not_silence(capsys):
    code, document = run_json(capsys, WELL_TUNED)  # no --network-mtu: the pinned MTU cannot be judged
    assert code == 0
    infos = [f for f in document["findings"] if f["severity"] == "info"]
    assert [f["id"] for f in infos] == ["CD103"]
    assert "--network-mtu" in infos[0]["message"]
    _, document = run_json(capsys, MISCONFIGURED)  # no --max-pods-per-node: density unknown
    by_id = {f["id"]: f for f in document["findings"]}
    assert by_id["CD203"]["severity"] == "info" and "--max-pods-per-node" in by_id["CD203"]["message"]


def test_default_install_findings(capsys):
    code, document = run_json(capsys, DEFAULT, *OPTS)
    assert ids(document) == {"CD101", "CD301", "CD403", "CD501", "CD503"}
    assert code == 0  # only warnings
    code, _ = run_json(capsys, DEFAULT, *OPTS, "--strict")
    assert code == 1


def test_small_nodes_do_not_need_bigger_hubble_buffers(capsys):
    _, document = run_json(capsys, DEFAULT, "--max-pods-per-node", "20")
    assert "CD501" not in ids(document)


def test_misconfigured_configmap_errors_point_at_the_keys(capsys):
    code, document = run_json(capsys, MISCONFIGURED, *OPTS)
    assert code == 1
    lines = MISCONFIGURED.read_text().splitlines()
    errors = {f["id"]: f for f in document["findings"] if f["severity"] == "error"}
    assert set(errors) == {"CD103", "CD601"}
    for finding in errors.values():
        assert lines[finding["line"] - 1].strip().startswith(finding["setting"] + ":")
    assert errors["CD601"]["value"] == "200"
    assert errors["CD601"]["helm_key"] == "cluster.id" and errors["CD601"]["configmap_key"] == "cluster-id"
    assert "CD101" not in ids(document)  # native routing
    assert "CD301" not in ids(document)  # there is an (inclusive) label filter, just a bad one


# ---- formats and the settings model --------------------------------------------------------

def test_formats_are_detected():
    assert load_source(str(WELL_TUNED)).format == "helm"
    assert load_source(str(DEFAULT)).format == "helm"
    assert load_source(str(MISCONFIGURED)).format == "configmap"
    assert load_source(str(CONFIG_VIEW)).format == "text"
    dump = load_source(str(DBG_DUMP))
    assert dump.format == "text" and dump.agent_view


def test_helm_values_and_rendered_configmap_give_the_same_settings():
    helm, helm_invalid = build_config(load_source(str(WELL_TUNED)).raw)
    configmap, cm_invalid = build_config(load_source(str(WELL_TUNED_CM)).raw)
    assert helm_invalid == [] and cm_invalid == []
    for name in model_field_names():
        assert getattr(helm, name) == getattr(configmap, name), name
    assert helm.routing_mode == "native" and helm.ipam_mode == "eni" and helm.mtu == 9001
    assert helm.kpr_enabled and helm.lb_algorithm == "maglev"


def test_config_view_text_dump_is_parsed():
    config, invalid = build_config(load_source(str(CONFIG_VIEW)).raw)
    assert invalid == []
    assert config.cluster_name == "onprem-lab-2" and config.routing_mode == "native"
    assert config.tunnel_protocol == "vxlan"  # printed empty: the agent default applies
    assert config.ipam_mode == "cluster-pool" and config.hubble_enabled is True


def test_cilium_dbg_dump_maps_go_field_names(capsys):
    config, invalid = build_config(load_source(str(DBG_DUMP)).raw)
    assert invalid == []
    assert config.cluster_id == 3 and config.kube_proxy_replacement == "true"
    assert config.lb_algorithm == "maglev" and config.labels == ["k8s:app", "k8s:team"]
    assert config.hubble_metrics == ["dns", "drop", "tcp", "flow:sourceContext=ip;destinationContext=ip"]
    assert config.prometheus_serve_addr == ":9962"
    _, document = run_json(capsys, DBG_DUMP, *OPTS)
    assert ids(document) == {"CD502", "CD406"}  # the agent dump says nothing about the operator


def test_helm_chart_defaults_are_applied():
    config, _ = build_config(load_source(str(DEFAULT)).raw)
    assert config.routing_mode == "tunnel" and not config.explicit("routing_mode")
    assert config.bpf_map_dynamic_size_ratio == 0.0025  # the chart renders it
    assert config.hubble_enabled is True and config.operator_metrics_enabled is True
    assert config.display("routing_mode") == "tunnel (chart default)"


def test_legacy_tunnel_key_and_old_kube_proxy_replacement_values(tmp_path):
    path = tmp_path / "old.txt"
    path.write_text("tunnel              vxlan\nkube-proxy-replacement   strict\ncluster-name   old\n")
    config, invalid = build_config(load_source(str(path)).raw)
    assert invalid == []
    assert config.routing_mode == "tunnel" and config.tunnel_protocol == "vxlan" and config.kpr_enabled


def test_helm_extra_args_reach_the_model(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text("cluster:\n  name: x\nextraArgs:\n  - --enable-unreachable-routes\n  - --mtu=1450\n")
    config, _ = build_config(load_source(str(path)).raw)
    assert config.enable_unreachable_routes is True and config.mtu == 1450


def test_every_model_field_has_keys():
    for spec in FIELDS:
        assert spec.configmap and spec.helm


def _configmap_document():
    return "apiVersion: v1" + WELL_TUNED_CM.read_text().split("apiVersion: v1", 1)[1]


def test_multi_document_helm_template_output_finds_the_configmap(tmp_path):
    stream = tmp_path / "rendered.yaml"
    stream.write_text("---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: cilium}\n---\n"
                      + _configmap_document())
    source = load_source(str(stream))
    assert source.format == "configmap" and source.raw["cluster-name"].value == "prod-us-east-1"
    assert source.raw["cluster-name"].line == stream.read_text().splitlines().index(
        "  cluster-name: prod-us-east-1") + 1


def test_kubectl_list_and_json_output_are_read(tmp_path):
    configmap = yaml.safe_load(_configmap_document())
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [configmap]}, indent=2))
    source = load_source(str(listing))
    assert source.format == "configmap" and source.raw["ipam"].value == "eni"


def test_helm_get_values_header_is_ignored(tmp_path):
    path = tmp_path / "values.txt"
    path.write_text("USER-SUPPLIED VALUES:\n" + WELL_TUNED.read_text())
    source = load_source(str(path))
    assert source.format == "helm" and source.raw["cluster-name"].value == "prod-us-east-1"


def test_cilium_dbg_json_output_is_read(tmp_path):
    path = tmp_path / "dbg.json"
    path.write_text(json.dumps({"RoutingMode": "tunnel", "TunnelProtocol": "geneve", "ClusterName": "j",
                                "KubeProxyReplacement": "false", "EnableHubble": True}))
    source = load_source(str(path))
    config, _ = build_config(source.raw)
    assert source.agent_view and config.routing_mode == "tunnel" and config.tunnel_protocol == "geneve"


# ---- rule semantics ------------------------------------------------------------------------

def test_identity_label_filter_follows_cilium_semantics():
    # Defaults: hashes are excluded, Job names are not.
    assert not identity_relevant("pod-template-hash", [])
    assert identity_relevant("job-name", [])
    assert identity_relevant("app", [])
    # One inclusive pattern turns the filter into an allowlist (the documented team/env example).
    assert identity_relevant("team", ["k8s:team"])
    assert not identity_relevant("env", ["k8s:team"])
    # Patterns are prefixes anchored at the start of the key.
    assert identity_relevant("team-name", ["k8s:team"])
    # A catch-all inclusive pattern does not beat the default hash exclusions, but lets Jobs in.
    assert not identity_relevant("pod-template-hash", ["k8s:.*"])
    assert identity_relevant("batch.kubernetes.io/job-name", ["k8s:.*"])
    # Explicit exclusions work without an allowlist.
    assert not identity_relevant("job-name", ["k8s:!job-name"])


def test_exclusion_only_label_filter_is_not_an_allowlist(tmp_path, capsys):
    path = tmp_path / "cm.yaml"
    path.write_text('labels: "k8s:!job-name k8s:!batch\\\\.kubernetes\\\\.io/job-name"\nipam: cluster-pool\n'
                    'routing-mode: tunnel\n')
    _, document = run_json(capsys, path)
    assert "CD301" in ids(document) and "CD302" not in ids(document)


def test_hubble_context_options_are_judged_per_option():
    bounded, unbounded = ["pod", "pod-name", "ip", "dns"], ["source_ip", "source_pod", "destination_ip",
                                                            "destination_pod"]
    assert unbounded_hubble_options("flow:sourceContext=workload-name|reserved-identity", bounded, unbounded) == []
    assert unbounded_hubble_options("flow:sourceContext=dns|ip", bounded, unbounded) == ["sourceContext=dns|ip"]
    assert unbounded_hubble_options("httpV2:exemplars=true;labelsContext=source_ip\\,source_namespace",
                                    bounded, unbounded) == ["labelsContext=source_ip"]


@pytest.mark.parametrize("mtu, routing, network, expected", [
    (9001, "native", 9001, None),          # the network MTU: right
    (1450, "tunnel", 1500, "warning"),     # overhead subtracted by hand, then again by Cilium
    (1400, "native", 1500, "warning"),     # below the network for no reason
    (9100, "native", 9001, "error"),       # above the network: drops
    (1500, "tunnel", 1500, None),          # Cilium gives pods 1450 itself
])
def test_mtu_is_checked_against_the_network_minus_overhead(tmp_path, capsys, mtu, routing, network, expected):
    path = tmp_path / "cm.yaml"
    path.write_text(f'mtu: "{mtu}"\nrouting-mode: {routing}\nipv4-native-routing-cidr: 10.0.0.0/8\n')
    _, document = run_json(capsys, path, "--network-mtu", network)
    found = [f for f in document["findings"] if f["id"] == "CD103"]
    if expected is None:
        assert found == []
    else:
        assert [f["severity"] for f in found] == [expected]


@pytest.mark.parametrize("cluster_id, ipam, chaining, expected", [
    (200, "eni", "none", "error"),
    (128, "eni", "none", "error"),          # the bit is set from 128, not only above it
    (127, "eni", "none", None),
    (300, "eni", "none", None),             # 300 = 0x12C: bit 0x80 clear (maxConnectedClusters 511)
    (400, "eni", "none", "error"),          # 0x190: set
    (200, "cluster-pool", "aws-cni", "error"),
    (200, "cluster-pool", "none", None),
])
def test_cluster_id_mark_bug(tmp_path, capsys, cluster_id, ipam, chaining, expected):
    path = tmp_path / "cm.yaml"
    path.write_text(f'cluster-id: "{cluster_id}"\nmax-connected-clusters: "511"\nipam: {ipam}\n'
                    f'cni-chaining-mode: {chaining}\ncluster-name: c{cluster_id}\n')
    _, document = run_json(capsys, path)
    found = [f["severity"] for f in document["findings"] if f["id"] == "CD601"]
    assert found == ([] if expected is None else [expected])


def test_invalid_values_are_findings_and_do_not_feed_other_rules(tmp_path, capsys):
    path = tmp_path / "cm.yaml"
    path.write_text('routing-mode: nativ\nmtu: "big"\nbpf-map-dynamic-size-ratio: "2"\nipam: cluster-pool\n')
    code, document = run_json(capsys, path, *OPTS)
    invalid = {f["setting"]: f for f in document["findings"] if f["id"] == "CD001"}
    assert set(invalid) == {"routing-mode", "mtu", "bpf-map-dynamic-size-ratio"}
    assert "native, tunnel" in invalid["routing-mode"]["message"]
    assert not ids(document) & {"CD101", "CD103", "CD402"}
    assert code == 1


@pytest.mark.parametrize("written, metrics_on", [('"yes"', True), ('"false"', True), ("1", True), ('""', False)])
def test_a_chart_switch_that_is_not_a_boolean_is_invalid_and_read_as_the_chart_reads_it(
        tmp_path, capsys, written, metrics_on):
    path = tmp_path / "values.yaml"
    path.write_text(f"prometheus:\n  enabled: {written}\nhubble:\n  enabled: true\n")
    source = load_source(str(path))
    config, _ = build_config(source.raw)
    # Go templates take any non-empty string as true ("false" included); "" is the chart default.
    assert (config.prometheus_serve_addr == ":9962") is metrics_on
    code, document = run_json(capsys, path, *OPTS)
    invalid = [f for f in document["findings"] if f["id"] == "CD001"]
    if written == '""':
        assert not invalid
        return
    [finding] = invalid
    assert "prometheus.enabled" in finding["message"] and "true or false" in finding["message"]
    assert code == 1


def test_yaml_booleans_in_chart_switches_are_fine(tmp_path, capsys):
    path = tmp_path / "values.yaml"
    path.write_text("prometheus:\n  enabled: yes\nencryption:\n  enabled: off\nhubble:\n  enabled: on\n")
    config, _ = build_config(load_source(str(path)).raw)
    # Helm reads values files as YAML 1.1: unquoted `yes` and `on` are true, `off` false.
    assert config.prometheus_serve_addr == ":9962" and config.hubble_enabled is True
    assert config.enable_ipsec is False and config.enable_wireguard is False
    _code, document = run_json(capsys, path, *OPTS)
    assert "CD001" not in ids(document)


# ---- several clusters ----------------------------------------------------------------------

def test_fleet_comparison_reports_collisions_and_drift(capsys):
    code, document = run_json(capsys, *FLEET, "--network-mtu", "9000")
    fleet = [f for f in document["findings"] if f["id"] in ("CD701", "CD702")]
    assert {(f["id"], f["setting"]) for f in fleet} == {
        ("CD701", "cluster-id"), ("CD702", "routing-mode"), ("CD702", "mtu"),
        ("CD702", "bpf-map-dynamic-size-ratio")}
    collision = next(f for f in fleet if f["id"] == "CD701")
    assert {r["cluster"] for r in collision["related"]} == {"prod-eu-1", "prod-eu-2"}
    assert all(r["line"] for r in collision["related"])
    assert code == 1


def test_a_single_file_is_not_a_fleet(capsys):
    _, document = run_json(capsys, FLEET[0], "--network-mtu", "9000")
    assert not ids(document) & {"CD701", "CD702"}


def test_identical_clusters_do_not_drift(tmp_path, capsys):
    other = tmp_path / "eks-copy.yaml"
    other.write_text(WELL_TUNED.read_text().replace("prod-us-east-1", "prod-us-west-2").replace("id: 12", "id: 13"))
    _, document = run_json(capsys, WELL_TUNED, other, *OPTS)
    assert document["findings"] == []


# ---- output formats and exit codes ---------------------------------------------------------

def test_json_schema_is_stable(capsys):
    _, document = run_json(capsys, MISCONFIGURED, *OPTS)
    assert document["schema"] == "cilium-day2/lint-config/v1"
    assert set(document) == {"schema", "tool", "files", "summary", "exit_code", "findings"}
    assert document["files"] == [{"path": str(MISCONFIGURED), "format": "configmap",
                                  "format_label": "cilium-config ConfigMap", "cluster": "batch-eu-west-1"}]
    keys = {"id", "name", "severity", "cluster", "file", "line", "setting", "key", "value", "message",
            "recommendation", "why", "fix", "helm_key", "configmap_key", "article", "related"}
    for finding in document["findings"]:
        assert set(finding) == keys
        assert set(finding["fix"]) == {"helm", "configmap"}
    summary = document["summary"]
    assert summary["error"] == sum(f["severity"] == "error" for f in document["findings"])
    severities = [f["severity"] for f in document["findings"]]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


def test_sarif_is_structurally_valid(capsys):
    code, out, err = run_cli(capsys, MISCONFIGURED, *FLEET, *OPTS, "--format", "sarif")
    assert err == "" and code == 1
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    run = sarif["runs"][0]
    driver = run["tool"]["driver"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids)) == len(catalog())
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert run["results"]
    lines = MISCONFIGURED.read_text().splitlines()
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"]
        assert location["region"]["startLine"] >= 1
        if result["ruleId"] == "CD601":
            assert "cluster-id" in lines[location["region"]["startLine"] - 1]
        if result["ruleId"] == "CD701":
            assert len(result["relatedLocations"]) == 2


def test_table_is_aligned_and_severity_first(capsys):
    code, out, _ = run_cli(capsys, MISCONFIGURED, *OPTS)
    assert code == 1
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("SEVERITY"))
    rows = lines[header + 1: lines.index("", header)]
    finding_col = lines[header].index("FINDING")
    for row in rows:
        assert row.split()[0] in ("error", "warning", "info")
        assert row[finding_col - 2: finding_col] == "  "  # columns line up
    assert "How to fix:" in out and "Helm:" in out and "ConfigMap:" in out
    assert "exit status 1" in lines[-1]


def test_output_file(tmp_path, capsys):
    target = tmp_path / "report.sarif"
    code, out, _ = run_cli(capsys, WELL_TUNED, *OPTS, "--format", "sarif", "-o", target)
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["runs"][0]["results"] == []


def test_stdin(monkeypatch, capsys):
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(MISCONFIGURED.read_text()))
    code, document = run_json(capsys, "-", *OPTS)
    assert code == 1 and document["files"][0]["path"] == "-"


# ---- bad input: one line on stderr, exit 2, never a traceback ------------------------------

@pytest.mark.parametrize("argv, needle", [
    ([FIXTURES / "malformed-values.yaml"], "malformed YAML at line 6"),
    ([FIXTURES / "not-cilium-deployment.yaml"], "unknown format"),
    ([FIXTURES / "does-not-exist.yaml"], "no such file"),
    ([FIXTURES], "is a directory"),
    ([], "no input files"),
    ([WELL_TUNED, WELL_TUNED], "more than once"),
    ([WELL_TUNED, "--network-mtu", "10"], "--network-mtu 10"),
    ([WELL_TUNED, "--values", FIXTURES / "missing-overrides.yaml"], "--values"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content, needle", [
    ("", "file is empty"),
    ("just some words that are not settings\n", "unknown format"),
    ("- a\n- b\n", "unknown format"),
    ("foo: 1\nbar: 2\n", "no known Cilium keys"),
    (b"\xff\xfe\x00binary", "not a UTF-8 text file"),
])
def test_unreadable_content_is_rejected(tmp_path, capsys, content, needle):
    path = tmp_path / "input.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, _, err = run_cli(capsys, path)
    assert code == 2 and needle in err and "Traceback" not in err


# ---- overrides (--values, shared with render) and inline suppression -----------------------

def test_overrides_disable_rules_change_severity_and_set_per_cluster_options(capsys):
    code, document = run_json(capsys, *FLEET, "--values", OVERRIDES)
    found = {(f["id"], f["cluster"]): f for f in document["findings"]}
    assert ("CD101", "prod-eu-2") not in found  # disabled for that cluster only
    assert ("CD103", "prod-eu-2") not in found  # per-cluster network_mtu 1500 matches its MTU
    assert ("CD103", "prod-eu-1") not in found  # global network_mtu 9000 matches
    assert "CD406" not in ids(document)
    assert document["summary"]["suppressed"] >= 1
    _, plain = run_json(capsys, *FLEET, "--network-mtu", "9000")
    assert ("CD101", "prod-eu-2") in {(f["id"], f["cluster"]) for f in plain["findings"]}


def test_override_severity_applies(tmp_path, capsys):
    values = tmp_path / "values.yaml"
    values.write_text("lint:\n  rules:\n    CD601: {severity: warning}\n    unreachable-routes-disabled: "
                      "{severity: error}\n")
    code, document = run_json(capsys, MISCONFIGURED, *OPTS, "--values", values)
    severity = {f["id"]: f["severity"] for f in document["findings"]}
    assert severity["CD601"] == "warning" and severity["CD403"] == "error"
    assert code == 1


def test_cluster_override_can_reenable_a_globally_disabled_rule(tmp_path, capsys):
    values = tmp_path / "values.yaml"
    values.write_text("lint:\n  rules:\n    CD101: {enabled: false}\n  clusters:\n"
                      "    default-install-values:\n      rules:\n        CD101: {enabled: true}\n")
    _, document = run_json(capsys, DEFAULT, "--values", values)
    assert "CD101" in ids(document)


def test_other_commands_keys_are_ignored(tmp_path, capsys):
    values = tmp_path / "values.yaml"
    values.write_text("render:\n  anything: [goes, here]\ndoctor: {x: 1}\n")
    code, _ = run_json(capsys, WELL_TUNED, *OPTS, "--values", values)
    assert code == 0


@pytest.mark.parametrize("lint_section, needle", [
    ("rules: {CD999: {enabled: false}}", "unknown rule 'CD999'; valid rules: CD001 (invalid-value)"),
    ("rules: {CD101: {severity: critical}}", "valid: error, warning, info"),
    ("rules: {CD101: {enabled: maybe}}", "expected true or false"),
    ("rules: {CD101: {mute: true}}", "valid keys: enabled, severity"),
    ("rulez: {}", "valid keys: options, rules, clusters"),
    ("options: {network_mtu: 20}", "from 68 to 65535"),
    ("clusters: {a: {rules: {nope: {enabled: false}}}}", "lint.clusters.a.rules: unknown rule 'nope'"),
    ("clusters: [a]", "lint.clusters must map"),
])
def test_bad_overrides_are_user_errors(tmp_path, capsys, lint_section, needle):
    values = tmp_path / "values.yaml"
    values.write_text("lint:\n  " + lint_section + "\n")
    code, _, err = run_cli(capsys, WELL_TUNED, "--values", values)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_inline_suppression_comment(tmp_path, capsys):
    copy = tmp_path / "misconfigured.yaml"
    copy.write_text(MISCONFIGURED.read_text().replace(
        '  cluster-id: "200"', '  cluster-id: "200"  # cilium-day2: disable=CD601,kpr-without-maglev'))
    code, document = run_json(capsys, copy, *OPTS)
    assert not ids(document) & {"CD601", "CD404"}
    assert "CD103" in ids(document)  # other rules still run
    assert document["summary"]["suppressed"] == 2


def test_inline_suppression_in_a_text_dump(tmp_path, capsys):
    copy = tmp_path / "view.txt"
    copy.write_text("# cilium-day2: disable=native-routing-cidr-missing\n" + CONFIG_VIEW.read_text())
    code, document = run_json(capsys, copy, *OPTS)
    assert "CD102" not in ids(document) and code == 0


def test_inline_suppression_with_an_unknown_rule_is_an_error(tmp_path, capsys):
    copy = tmp_path / "values.yaml"
    copy.write_text("# cilium-day2: disable=CD777\n" + WELL_TUNED.read_text())
    code, _, err = run_cli(capsys, copy)
    assert code == 2 and "values.yaml:1: unknown rule 'CD777'" in err


# ---- third-party examples, when the shared folder has any ----------------------------------

def _shared_cilium_configs():
    if not SHARED.is_dir():
        return []
    found = []
    for path in sorted(SHARED.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json", ".txt", ".conf") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if "cilium-config" in text or "routing-mode" in text or "routingMode" in text or "kubeProxyReplacement" in text:
            found.append(path)
    return found


def test_shared_example_configurations(capsys):
    configs = _shared_cilium_configs()
    if not configs:
        pytest.skip(f"no Cilium configuration files under {SHARED} (only metric expositions, or absent)")
    for path in configs:
        code, out, err = run_cli(capsys, path, "--format", "json")
        assert code in (0, 1, 2) and "Traceback" not in err
        if code != 2:
            assert json.loads(out)["files"][0]["path"] == str(path)
