"""The monitoring mixin (mixin/), evaluated with a real jsonnet (Debian's `jsonnet`, or PyPI's
`jsonnet` module): its rules and dashboard equal `render`'s, for the defaults and for a values
file expressed as `_config` overrides; its rules pass promtool; bad `_config` fails."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cilium_day2.catalog import load_catalog
from cilium_day2.cli import main
from cilium_day2.render import grafana, mixin, prometheus

from .prometheus_server import promtool, require_promtool

ROOT = Path(__file__).resolve().parents[1]
MIXIN = ROOT / mixin.MIXIN_DIR
JSONNET = shutil.which("jsonnet")

# A values file touching every kind of `_config` value: label and job names, the runbook link,
# alert labels, the group size, thresholds (a quantile's too: it selects another bucket), windows,
# holds, keep_firing_for, a parameter, enabling and disabling.
VALUES = {
    "settings": {"cluster_label": "k8s_cluster", "node_label": "instance", "agent_job": "kube-system/cilium",
                 "runbook_base_url": "https://wiki.example/cilium/signals", "alert_labels": {"team": "network"},
                 "max_rules_per_group": 8},
    "signals": {
        "bpf_map_pressure": {"warning": 0.7, "critical": 0.9, "for": "15m"},
        "kvstore_qps": {"enabled": True, "warning": 500, "critical": 800},
        "agent_restarts": {"keep_firing_for": "2h"},
        "kvstore_latency_p99": {"warning": 0.5, "critical": 2.5, "window": "10m"},
        "version_skew": {"enabled": False},
        "operator_down": {"enabled": False},
        "conntrack_gc_outlier": {"min_baseline": 2000},
    },
}


def evaluate(code):
    """jsonnet -> JSON, with the binary or the Python module."""
    if JSONNET:
        result = subprocess.run([JSONNET, "-J", str(ROOT), "-e", code], capture_output=True, text=True, timeout=600)
        return result.returncode, result.stdout, result.stderr
    module = pytest.importorskip("_jsonnet", reason="needs jsonnet (Debian package or PyPI `jsonnet`)")
    try:
        return 0, module.evaluate_snippet("snippet", code, jpathdir=[str(ROOT)]), ""
    except RuntimeError as exc:
        return 1, "", str(exc)


def as_config(values):
    """A values file as `_config` overrides (the same names)."""
    settings = json.dumps(values.get("settings", {}))
    signals = ", ".join(f"{json.dumps(sid)}+: {json.dumps(spec)}" for sid, spec in values.get("signals", {}).items())
    return f"{{ _config+:: {settings} + {{ signals+: {{ {signals} }} }} }}"


def mixin_output(overrides="{}"):
    code = (f"local m = (import 'mixin/mixin.libsonnet') + {overrides}; "
            "{alerts: m.prometheusAlerts, rules: m.prometheusRules, dashboards: m.grafanaDashboards}")
    code_, out, err = evaluate(code)
    assert code_ == 0, err[-3000:]
    return json.loads(out)


def test_the_committed_mixin_is_a_fresh_render():
    for rel, text in mixin.render(load_catalog()).items():
        assert (ROOT / rel).read_text() == text, f"{rel} drifted: run `cilium-day2 render`"
    assert set(json.loads((MIXIN / "jsonnetfile.json").read_text())) >= {"version", "dependencies"}


def test_the_defaults_give_what_render_gives():
    out = mixin_output()
    rendered = prometheus.render(load_catalog())
    assert out["alerts"]["groups"] == yaml.safe_load(rendered[prometheus.RULES_FILE])["groups"]
    assert out["rules"] == {"groups": []}
    assert out["dashboards"] == {"cilium-day2.json": json.loads((ROOT / grafana.GRAFANA_FILE).read_text())}


def test_a_values_file_as_config_overrides_gives_what_render_values_gives():
    catalog = load_catalog(VALUES)
    out = mixin_output(as_config(VALUES))
    want = yaml.safe_load(prometheus.render(catalog)[prometheus.RULES_FILE])["groups"]
    assert [g["name"] for g in out["alerts"]["groups"]] == [g["name"] for g in want]
    assert out["alerts"]["groups"] == want
    assert out["dashboards"]["cilium-day2.json"] == grafana.render_grafana_dashboard(catalog)
    # Not vacuous: the overrides changed the rules.
    assert want != yaml.safe_load(prometheus.render(load_catalog())[prometheus.RULES_FILE])["groups"]


def test_config_holds_the_values_files_names():
    out_code, out, err = evaluate("(import 'mixin/mixin.libsonnet')._config")
    assert out_code == 0, err
    config = json.loads(out)
    for name in ("cluster_label", "node_label", "agent_job", "operator_job", "hubble_job", "runbook_base_url",
                 "alert_labels", "max_rules_per_group"):
        assert name in config
    catalog = load_catalog()
    assert set(config["signals"]) == set(catalog.ids())
    sig = catalog.signal("bpf_map_pressure")
    assert config["signals"]["bpf_map_pressure"]["warning"] == sig.warning
    assert config["signals"]["kvstore_qps"]["enabled"] is False


@pytest.mark.prometheus
def test_the_mixin_rules_pass_promtool_lint(tmp_path):
    require_promtool()
    out = mixin_output(as_config(VALUES))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(out["alerts"], sort_keys=False, width=1000))
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", tmp_path / "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overrides,needle", [
    ("{ _config+:: { alert_labels: { severity: 'page' } } }", "alert_labels"),
    ("{ _config+:: { signals+: { no_such_signal: { enabled: true } } } }", "unknown signal"),
    ("{ _config+:: { max_rules_per_group: 2 } }", "max_rules_per_group"),
    ("{ _config+:: { signals+: { bpf_map_pressure+: { 'for': '10 minutes' } } } }", "duration"),
])
def test_bad_config_fails_naming_the_field(overrides, needle):
    code, _, err = evaluate(f"((import 'mixin/mixin.libsonnet') + {overrides}).prometheusAlerts")
    assert code != 0 and needle in err


def test_render_writes_the_mixin_with_the_values_as_its_defaults(tmp_path):
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(VALUES))
    assert main(["render", "--values", str(tmp_path / "values.yaml"), "--out", str(tmp_path / "out")]) == 0
    config = (tmp_path / "out" / mixin.MIXIN_DIR / "config.libsonnet").read_text()
    assert '"k8s_cluster"' in config and '"team": "network"' in config
