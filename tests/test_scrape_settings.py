"""The settings for real scrape setups: component selectors, HA replica labels, subnet scope.

What the rendered rules select is checked here on the rule text's selectors; whether they fire
on fleets labelled as each setup labels them is tests/test_fleet_rules.py.
"""

import re

import pytest
import yaml

from cilium_day2.catalog import load_catalog
from cilium_day2.catalog.query import Sample, Snapshot, evaluate
from cilium_day2.cli import main
from cilium_day2.errors import UserError
from cilium_day2.render import prometheus

from .promtool.fleets import EXAMPLES

SELECTOR_RE = re.compile(r"\b([a-z_][a-z0-9_]*)\{([^}]*)\}")
AGENT_ONLY = "cilium_bpf_map_pressure"
OPERATOR_ONLY = "cilium_operator_ipam_available_ips_per_subnet"


def _rules(values):
    """Every rule expression of the pack rendered with `values`, one per line."""
    catalog = load_catalog(values)
    groups = yaml.safe_load(prometheus.render(catalog)[prometheus.RULES_FILE])["groups"]
    return "\n".join(r["expr"] for g in groups for r in g["rules"])


def _selectors(text, family):
    return [m.group(2) for m in SELECTOR_RE.finditer(text) if m.group(1) == family]


def test_component_selectors_reach_every_selector_of_their_component_and_its_up():
    values = {"settings": {"agent_job": "kubernetes-pods", "agent_selector": 'k8s_app="cilium"',
                           "operator_job": "kubernetes-pods", "operator_selector": ['io_cilium_app="operator"'],
                           "hubble_job": "kubernetes-endpoints", "hubble_selector": 'service="hubble-metrics"'}}
    text = _rules(values)
    ups = _selectors(text, "up")
    assert ups
    # Each `up` of a job carries that component's selector, never another's.
    for sel in ups:
        if 'job=~"kubernetes-endpoints"' in sel:
            assert 'service="hubble-metrics"' in sel and "k8s_app" not in sel
        else:
            assert ('k8s_app="cilium"' in sel) != ('io_cilium_app="operator"' in sel), sel
    assert all('k8s_app="cilium"' in s for s in _selectors(text, AGENT_ONLY))
    assert all('io_cilium_app="operator"' in s for s in _selectors(text, OPERATOR_ONLY))
    assert all("k8s_app" not in s for s in _selectors(text, OPERATOR_ONLY))


@pytest.mark.parametrize("bad, words", [
    ('k8s_app=cilium', "cannot parse"),
    ('k8s_app="cilium" namespace="kube-system"', "cannot parse"),
    ('k8s_app=~"(cilium"', "not a valid regular expression"),
    ('__name__="up"', "metric name"),
    ('job="cilium"', "_job"),
    ('k8s_app="a", k8s_app="b"', "matched twice"),
    ('k8s_app="cilium",', "trailing comma"),
    ("", "empty"),
])
def test_a_selector_that_does_not_parse_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, bad, words):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"settings": {"agent_selector": bad}}))
    out = tmp_path / "out"
    code = main(["render", "--values", str(values), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert "settings.agent_selector" in err and words in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*.yml"))


def test_replica_labels_are_validated_and_may_be_turned_off():
    with pytest.raises(UserError, match="replica_labels"):
        load_catalog({"settings": {"replica_labels": ["prometheus-replica"]}})
    assert "max without" not in _rules({"settings": {"replica_labels": []}})
    assert "max without (prometheus_replica, replica)" in _rules(None)


def test_sums_read_one_copy_of_an_ha_pair_and_ratios_are_left_alone():
    groups = yaml.safe_load(prometheus.render(load_catalog())[prometheus.RULES_FILE])["groups"]
    # The alerts and the signals' own recordings (shared leaves recorded for a ratio or a
    # quantile are read through them).
    exprs = [r["expr"] for g in groups for r in g["rules"] if "alert" in r or "cilium_day2_" in r["record"]]
    for expr in exprs:
        # A sum of counts over raw series is over one copy, except inside a ratio of two sums
        # or a quantile (the copies cancel); a max or min needs no care.
        if " / " in expr or "histogram_quantile(" in expr:
            continue
        assert not re.search(r"sum by \([^)]*\) \((rate|increase|changes|delta)\(", expr), expr


def test_every_example_values_file_renders_and_passes_its_own_checks(tmp_path):
    files = sorted(EXAMPLES.glob("values-*.yaml"))
    assert len(files) >= 4
    for f in files:
        out = tmp_path / f.stem
        assert main(["render", "--values", str(f), "--only", "prometheus", "--out", str(out)]) == 0


# --- subnets ----------------------------------------------------------------------------------------


def _subnet_snapshot(activity):
    samples = [Sample("cilium_operator_ipam_available_ips_per_subnet",
                      {"cluster": "c1", "subnet_id": sid, "availability_zone": az}, free)
               for sid, az, free in (("subnet-pods-a", "eu-west-1a", 20), ("subnet-transit", "eu-west-1a", 5),
                                     ("subnet-pods-b", "eu-west-1b", 4000))]
    samples += [Sample("cilium_operator_ipam_ip_allocation_ops", {"cluster": "c1", "subnet_id": sid}, 10)
                for sid in activity]
    return [Snapshot(0.0, samples)]


def _exhausted(catalog, activity):
    s = catalog.signal("ipam_subnet_exhaustion")
    values = evaluate(s.query, _subnet_snapshot(activity), ["cluster", "subnet_id", "availability_zone"], s.window)
    return {dict(k)["subnet_id"] for k, v in values.items() if v < s.warning}


def test_subnet_exhaustion_watches_only_subnets_cilium_allocates_from_by_default():
    catalog = load_catalog()
    assert _exhausted(catalog, ["subnet-pods-a", "subnet-pods-b"]) == {"subnet-pods-a"}
    assert _exhausted(catalog, []) == set()
    assert "cilium_day2_ipam_subnet_exhaustion:seen[24h]" in _rules(None)


def test_subnet_scope_by_ids_or_zones_narrows_every_subnet_signal():
    by_id = load_catalog({"settings": {"ipam_subnet_ids": ["subnet-pods-*"]}})
    assert _exhausted(by_id, ["subnet-pods-a", "subnet-transit"]) == {"subnet-pods-a"}
    by_zone = load_catalog({"settings": {"ipam_availability_zones": ["eu-west-1b"]}})
    assert _exhausted(by_zone, ["subnet-pods-a", "subnet-pods-b"]) == set()
    assert 'subnet_id=~"subnet-pods-.*"' in _rules({"settings": {"ipam_subnet_ids": ["subnet-pods-*"]}})
    # The interface-creation failures (grouped by subnet too) follow the same scope.
    failures = by_id.signal("ipam_interface_creation_failures")
    assert all(any(m.label == "subnet_id" for m in sel.match) for sel in failures.query.selectors())
