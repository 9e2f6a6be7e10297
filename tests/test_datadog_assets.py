"""The Datadog monitors and dashboard: API models, ddev-style rules, and the check's metrics."""

import csv
import json
import re
from pathlib import Path

import pytest
from datadog_api_client import Configuration
from datadog_api_client.model_utils import OpenApiModel, UnparsedObject, validate_and_convert_types
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor

from cilium_day2.render import datadog as render
from cilium_day2.catalog import load_catalog

from .common import run_check_on_every_fixture, submitted

ROOT = Path(__file__).resolve().parents[1]
MONITORS = sorted((ROOT / render.MONITOR_DIR).glob("*.json"))
DASHBOARD = ROOT / render.DASHBOARD_FILE
METRIC_RE = re.compile(r"(cilium_day2\.[a-z0-9_.]+?)\{")
SERVICE_CHECK_RE = re.compile(r'"(cilium_day2\.[a-z0-9_.]+)"\.over')
REQUIRED_TOP = {"version", "created_at", "last_updated_at", "title", "description", "definition", "tags"}


def unparsed_parts(obj, path="$"):
    """Paths the API client could not map onto its models (it keeps them as UnparsedObject)."""
    bad = []
    if isinstance(obj, UnparsedObject) or getattr(obj, "_unparsed", False):
        bad.append(path)
    if isinstance(obj, OpenApiModel):
        for key, value in obj._data_store.items():
            bad += unparsed_parts(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            bad += unparsed_parts(value, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            bad += unparsed_parts(value, f"{path}.{key}")
    return bad


def deserialize(data, model):
    obj = validate_and_convert_types(data, (model,), ["asset"], True, True, Configuration())
    assert isinstance(obj, model)
    assert not unparsed_parts(obj), unparsed_parts(obj)
    return obj


def queried_metrics():
    names = set()
    for path in MONITORS:
        names |= set(METRIC_RE.findall(json.loads(path.read_text())["definition"]["query"]))
    names |= set(METRIC_RE.findall(DASHBOARD.read_text()))
    return names


# --- API models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MONITORS, ids=lambda p: p.stem)
def test_monitor_deserializes_with_the_api_client(path):
    monitor = deserialize(json.loads(path.read_text())["definition"], Monitor)
    assert str(monitor.type) in ("query alert", "service check")


def test_dashboard_deserializes_with_the_api_client():
    deserialize(json.loads(DASHBOARD.read_text()), Dashboard)


def test_the_model_check_rejects_what_the_client_cannot_parse():
    broken = json.loads(DASHBOARD.read_text())
    broken["widgets"][0]["definition"]["widgets"][0]["definition"]["type"] = "no_such_widget"
    with pytest.raises(Exception):
        deserialize(broken, Dashboard)


# --- ddev-style rules -------------------------------------------------------------------------------


def test_one_monitor_per_enabled_signal_except_those_datadog_cannot_express():
    catalog = load_catalog()
    _, skipped = render.datadog_monitors(catalog)
    assert {p.stem for p in MONITORS} == {s.id for s in catalog.enabled()} - set(skipped)
    assert set(skipped) == {"version_skew"}


@pytest.mark.parametrize("path", MONITORS, ids=lambda p: p.stem)
def test_monitor_follows_the_recommended_monitor_format(path):
    data = json.loads(path.read_text())
    assert REQUIRED_TOP <= set(data), REQUIRED_TOP - set(data)
    assert data["version"] == 2
    assert len(data["description"]) < 300
    assert "integration:cilium_day2" in data["tags"]
    definition = data["definition"]
    assert "id" not in definition
    assert render.DISPLAY_NAME.lower() in definition["name"].lower()
    assert "integration:cilium_day2" in definition["tags"]
    assert definition["type"] in ("query alert", "service check")
    signal = load_catalog().signal(path.stem)
    message = definition["message"]
    assert "{{#is_alert}}" in message and signal.runbook[:40] in message and signal.meaning[:40] in message
    assert ("{{#is_warning}}" in message) == ("warning" in definition["options"]["thresholds"])
    # notify_no_data only where silence is itself the failure.
    assert definition["options"]["notify_no_data"] == (signal.no_data == "alert")


@pytest.mark.parametrize("path", MONITORS, ids=lambda p: p.stem)
def test_monitor_thresholds_and_grouping_follow_the_catalog(path):
    definition = json.loads(path.read_text())["definition"]
    settings = load_catalog().settings
    signal = load_catalog().signal(path.stem)
    thresholds = definition["options"]["thresholds"]
    query = definition["query"]
    if definition["type"] == "service check":
        assert f'"{settings.cluster_tag}"' in query
        return
    assert query.endswith(f"{signal.comparison} {thresholds['critical']:g}")
    if "outliers(" not in query:
        expected = {"critical": signal.critical, "warning": signal.warning}
        if signal.critical is None:
            expected = {"critical": signal.warning}
        assert thresholds == {k: v for k, v in expected.items() if v is not None}
    by = re.findall(r" by \{([^}]*)\}", query)
    assert by, "multi-alert monitors group by tags"
    for group in by:
        tags = group.split(",")
        assert settings.cluster_tag in tags
        if "node" in signal.group_by:
            assert settings.node_tag in tags
    if signal.query.expr.fn == "quantile":
        assert ":p99:" in query
    if signal.query.expr.fn in ("rate", "increase"):
        assert ".count{" in query


def test_tag_names_follow_the_values_file():
    catalog = load_catalog({"settings": {"cluster_tag": "cluster_name", "node_tag": "kube_node"}})
    monitors, _ = render.datadog_monitors(catalog)
    for monitor in monitors.values():
        assert "kube_cluster_name" not in monitor["definition"]["query"]
        assert "cluster_name" in monitor["definition"]["query"]
    dashboard = render.render_datadog_dashboard(catalog)
    assert [v["prefix"] for v in dashboard["template_variables"]] == ["cluster_name", "kube_node"]


def test_dashboard_is_grouped_by_area_with_top_lists_and_monitor_status():
    data = json.loads(DASHBOARD.read_text())
    titles = [w["definition"]["title"] for w in data["widgets"]]
    catalog = load_catalog()
    assert [a.title for a in catalog.areas] == titles[1:]
    assert {v["name"] for v in data["template_variables"]} == {"cluster", "node"}
    text = DASHBOARD.read_text()
    assert '"manage_status"' in text and "tag:(integration:cilium_day2)" in text
    toplists = [w["definition"] for g in data["widgets"] for w in g["definition"]["widgets"]
                if w["definition"]["type"] == "toplist"]
    assert any("conntrack_gc.entries" in t["requests"][0]["q"] for t in toplists)
    assert any("map_pressure" in t["requests"][0]["q"] and "map_name" in t["requests"][0]["q"] for t in toplists)
    assert "$cluster" in text and "$node" in text


# --- the check submits what the assets query -----------------------------------------------------------


def test_every_queried_metric_is_in_metadata_csv():
    with open(ROOT / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    documented = {row["metric_name"] for row in rows}
    # Distributions are documented in their histogram's `.count` row (ddev has no such type).
    documented |= {m for row in rows for m in re.findall(r"distribution (cilium_day2\.[\w.]+),", row["description"])}
    missing = sorted(queried_metrics() - documented)
    assert not missing, f"queried by monitors/dashboard but not in metadata.csv: {missing}"


def test_every_service_check_monitored_exists():
    checks = {c["check"] for c in json.loads((ROOT / "assets" / "service_checks.json").read_text())}
    used = set()
    for path in MONITORS:
        used |= set(SERVICE_CHECK_RE.findall(json.loads(path.read_text())["definition"]["query"]))
    assert used and used <= checks


def test_every_queried_metric_is_submitted_by_the_check_on_the_fixtures(metrics_server, aggregator, dd_run_check):
    run_check_on_every_fixture(metrics_server, dd_run_check)
    missing = sorted(name for name in queried_metrics() if not submitted(aggregator, name))
    assert not missing, f"queried by monitors/dashboard but never submitted on the fixtures: {missing}"
