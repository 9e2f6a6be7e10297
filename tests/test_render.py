"""`cilium-day2 render`: drift against the committed assets, overrides, atomic writes, CLI."""

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cilium_day2.render import command as render
from cilium_day2.render import datadog, docs, grafana, prometheus
from cilium_day2.catalog import load_catalog
from cilium_day2.cli import main

ROOT = Path(__file__).resolve().parents[1]
GENERATED = [datadog.DASHBOARD_FILE, prometheus.RULES_FILE, prometheus.CRD_FILE, prometheus.ALERTMANAGER_FILE,
             grafana.GRAFANA_FILE, docs.SIGNALS_DOC]


def test_committed_assets_match_a_fresh_render(tmp_path):
    """Drift: `cilium-day2 render` with no values reproduces the committed files exactly."""
    assert main(["render", "--out", str(tmp_path)]) == 0
    for rel in GENERATED:
        assert (tmp_path / rel).read_text() == (ROOT / rel).read_text(), f"{rel} drifted: run `cilium-day2 render`"
    fresh = sorted(p.name for p in (tmp_path / render.MONITOR_DIR).glob("*.json"))
    committed = sorted(p.name for p in (ROOT / render.MONITOR_DIR).glob("*.json"))
    assert fresh == committed
    for name in fresh:
        assert filecmp.cmp(tmp_path / render.MONITOR_DIR / name, ROOT / render.MONITOR_DIR / name, shallow=False), name


def test_readme_table_matches_the_catalog():
    text = (ROOT / "README.md").read_text()
    assert docs.update_readme(text, load_catalog()) == text, "README signals table drifted: run `cilium-day2 render`"
    for s in load_catalog().signals:
        assert f"`{s.id}`" in text


def test_values_change_what_is_rendered(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "settings": {"cluster_label": "k8s_cluster", "node_tag": "kube_node",
                     "runbook_base_url": "https://runbooks.example/cilium"},
        "signals": {"bpf_map_pressure": {"critical": 0.9}, "hubble_lost_events": {"enabled": False},
                    "kvstore_qps": {"enabled": True}},
    }))
    out = tmp_path / "out"
    assert main(["render", "--values", str(values), "--out", str(out)]) == 0
    rules = (out / prometheus.RULES_FILE).read_text()
    assert "by (k8s_cluster, node, map_name)" in rules and "> 0.9\"" in rules
    assert "CiliumHubbleLostEvents" not in rules and "CiliumKvstoreQps" in rules
    assert "https://runbooks.example/cilium#bpf_map_pressure" in rules
    assert not (out / render.MONITOR_DIR / "hubble_lost_events.json").exists()
    monitor = json.loads((out / render.MONITOR_DIR / "bpf_map_pressure.json").read_text())
    assert "kube_node" in monitor["definition"]["query"]
    assert monitor["definition"]["options"]["thresholds"]["critical"] == 0.9


def test_only_renders_one_backend(tmp_path):
    assert main(["render", "--only", "prometheus", "--out", str(tmp_path)]) == 0
    assert (tmp_path / prometheus.RULES_FILE).exists()
    assert not (tmp_path / "assets" / "monitors").exists() and not (tmp_path / "assets" / "grafana").exists()


def test_disabling_a_signal_removes_its_stale_monitor(tmp_path):
    assert main(["render", "--out", str(tmp_path)]) == 0
    values = tmp_path / "v.yaml"
    values.write_text("signals: {agent_down: {enabled: false}}\n")
    assert main(["render", "--values", str(values), "--out", str(tmp_path)]) == 0
    assert not (tmp_path / render.MONITOR_DIR / "agent_down.json").exists()
    assert not list(tmp_path.glob(".cilium-day2-render-*"))


@pytest.mark.parametrize("values,key", [
    ("signals: {bpf_map_pressure: {warning: 0.99}}\n", "signals.bpf_map_pressure"),
    ("signals: {nope: {}}\n", "signals.nope"),
    ("signals: {bpf_map_pressure: {critical: lots}}\n", "signals.bpf_map_pressure.critical"),
])
def test_bad_values_write_nothing_and_exit_2_with_one_line(tmp_path, values, key):
    path = tmp_path / "values.yaml"
    path.write_text(values)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "cilium_day2", "render", "--values", str(path), "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert key in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_a_failure_while_writing_leaves_the_previous_render_in_place(tmp_path, monkeypatch):
    assert main(["render", "--out", str(tmp_path)]) == 0
    before = (tmp_path / prometheus.RULES_FILE).read_text()
    values = tmp_path / "v.yaml"
    values.write_text("signals: {bpf_map_pressure: {critical: 0.99}}\n")

    def broken(catalog):
        raise RuntimeError("renderer crashed half way")

    monkeypatch.setattr(grafana, "render", broken)
    with pytest.raises(RuntimeError):
        main(["render", "--values", str(values), "--out", str(tmp_path)])
    assert (tmp_path / prometheus.RULES_FILE).read_text() == before
    assert not list(tmp_path.glob(".cilium-day2-render-*"))
