"""The committed Grafana dashboard, read back with Grafana's own SDK (grafana-foundation-sdk):
every signal's panel carries both thresholds, in the right colours and direction, nothing is
lost on the way, thresholds are clean numbers, and the dashboard type-checks with `tsc`
against Grafana's published schema types (`@grafana/schema` from npm). Its ConfigMap is what
Grafana's dashboard sidecar loads."""

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cilium_day2.catalog import load_catalog
from cilium_day2.catalog.query import breaches
from cilium_day2.render import grafana

ROOT = Path(__file__).resolve().parents[1]
sdk = pytest.importorskip("grafana_foundation_sdk.models.dashboard",
                          reason="needs grafana-foundation-sdk (requirements-dev.txt)")


def colour_at(steps, value):
    """Grafana's rule: the last step whose value is at or below the value (the base has none)."""
    colour = steps[0].color
    for step in steps[1:]:
        if value >= step.value:
            colour = step.color
    return colour


def expected_colour(signal, value):
    if breaches(value, signal.comparison, signal.critical):
        return "red"
    if breaches(value, signal.comparison, signal.warning):
        return "orange"
    return "green"


@pytest.fixture(scope="module")
def panels():
    dashboard = sdk.Dashboard.from_json(json.loads((ROOT / grafana.GRAFANA_FILE).read_text()))
    assert dashboard.uid == "cilium-day2"
    return {p.title: p for p in dashboard.panels if isinstance(p, sdk.Panel)}


def test_every_signal_has_a_panel_with_both_thresholds_in_its_direction(panels):
    catalog = load_catalog()
    for signal in catalog.enabled():
        panel = panels[signal.title]
        thresholds = panel.field_config.defaults.thresholds
        assert thresholds.mode == sdk.ThresholdsMode.ABSOLUTE
        steps = thresholds.steps
        assert steps[0].value is None and len(steps) == 1 + len(signal.thresholds()), signal.id
        probes = {0.0}
        for _, thr in signal.thresholds():
            # On the threshold, just below it, a little above it (beyond the rounding a panel
            # shows), and far on either side.
            probes |= {thr, math.nextafter(thr, -math.inf), thr + max(abs(thr), 1e-3) * 0.01, thr * 2 + 1, thr / 2}
        for value in sorted(probes):
            assert colour_at(steps, value) == expected_colour(signal, value), (signal.id, value)


def test_subnet_exhaustion_is_red_below_the_critical_and_orange_below_the_warning(panels):
    """The issue's panel: it showed red below 128 and had no step at 32."""
    steps = panels["Subnet running out of addresses"].field_config.defaults.thresholds.steps
    assert [colour_at(steps, v) for v in (10, 31, 32, 100, 127, 128, 1000)] == \
        ["red", "red", "orange", "orange", "orange", "green", "green"]


def test_a_healthy_zero_of_a_greater_than_zero_signal_stays_green(panels):
    steps = panels["Pods waiting for IP addresses"].field_config.defaults.thresholds.steps
    assert colour_at(steps, 0) == "green" and colour_at(steps, 1) == "orange" and colour_at(steps, 11) == "red"


def test_thresholds_are_clean_numbers():
    """No float noise (`0.8000000000000002`) and no subnormals (`5e-324`): every step value
    is its own shortest decimal form with few significant digits."""
    dashboard = json.loads((ROOT / grafana.GRAFANA_FILE).read_text())
    values = [step["value"] for p in dashboard["panels"] if p["type"] != "row"
              for step in p["fieldConfig"]["defaults"]["thresholds"]["steps"] if step["value"] is not None]
    assert values
    for value in values:
        assert float(f"{value:.6g}") == value, value
        assert value == 0 or abs(value) >= 1e-6, value


def _lost(original, read_back, path=""):
    """Paths of `original` missing or changed in `read_back`."""
    if isinstance(original, dict):
        out = []
        for key, value in original.items():
            if key not in read_back:
                out.append(f"{path}/{key}")
            else:
                out += _lost(value, read_back[key], f"{path}/{key}")
        return out
    if isinstance(original, list):
        if len(original) != len(read_back):
            return [path]
        return [p for i, (a, b) in enumerate(zip(original, read_back)) for p in _lost(a, b, f"{path}[{i}]")]
    return [] if original == read_back else [path]


def test_the_sdk_reads_the_dashboard_back_without_losing_a_field():
    encoder = pytest.importorskip("grafana_foundation_sdk.cog.encoder")
    original = json.loads((ROOT / grafana.GRAFANA_FILE).read_text())
    read_back = json.loads(json.dumps(sdk.Dashboard.from_json(original), cls=encoder.JSONEncoder))
    assert _lost(original, read_back) == []


def test_the_configmap_is_what_the_grafana_sidecar_loads():
    docs = list(yaml.safe_load_all((ROOT / grafana.CONFIGMAP_FILE).read_text()))
    assert len(docs) == 1
    cm = docs[0]
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    # kube-prometheus-stack's Grafana: sidecar.dashboards.label/labelValue default.
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == load_catalog().settings.rule_namespace
    (name, body), = cm["data"].items()
    assert name.endswith(".json")
    assert json.loads(body) == json.loads((ROOT / grafana.GRAFANA_FILE).read_text())
    assert len(json.dumps(cm, separators=(",", ":")).encode()) < 262144


# --- tsc with @grafana/schema ----------------------------------------------------------------------

# The dashboard as its JSON: an enum member of the schema types is its string value; every
# other type, and the check for fields the types do not have, is the schema's own.
# The time series panels' `options` and `fieldConfig.defaults.custom` (open records in the
# dashboard type) are checked against the time series panel's own schema types.
TS_CHECK = """import { Dashboard } from '@grafana/schema';
import { Options, FieldConfig } from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
type Json<T> = T extends string ? `${T}` : T extends Array<infer U> ? Array<Json<U>>
  : T extends object ? { [K in keyof T]: Json<T[K]> } : T;
export const dashboard: Json<Dashboard> = %s;
export const options: Json<Options>[] = %s;
export const custom: Json<FieldConfig>[] = %s;
"""
TS_PACKAGES = ["typescript@7.0.2", "@grafana/schema@13.2.3"]


@pytest.fixture(scope="module")
def tsc(tmp_path_factory):
    """`tsc` with `@grafana/schema`, installed with npm into a temporary folder (or the folder
    named by CILIUM_DAY2_TS_DIR, where they are already installed)."""
    ready = os.environ.get("CILIUM_DAY2_TS_DIR")
    if ready and (Path(ready) / "node_modules/.bin/tsc").exists():
        return Path(ready)
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("needs npm to install typescript and @grafana/schema")
    folder = tmp_path_factory.mktemp("grafana-schema")
    (folder / "package.json").write_text('{"name": "cilium-day2-schema-check", "private": true}')
    result = subprocess.run([npm, "install", "--no-audit", "--no-fund", *TS_PACKAGES], cwd=folder,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.skip(f"npm install failed (offline?): {result.stderr[-500:]}")
    return folder


def type_check(folder, dashboard):
    series = [p for p in dashboard["panels"] if p["type"] == "timeseries"]
    (folder / "check.ts").write_text(TS_CHECK % (
        json.dumps(dashboard, indent=1), json.dumps([p["options"] for p in series], indent=1),
        json.dumps([p["fieldConfig"]["defaults"]["custom"] for p in series], indent=1)))
    return subprocess.run([str(folder / "node_modules/.bin/tsc"), "--noEmit", "--strict", "--moduleResolution", "bundler",
                           "--module", "esnext", "--target", "es2020", "check.ts"],
                          cwd=folder, capture_output=True, text=True, timeout=600)


def test_the_dashboard_type_checks_against_grafana_schema(tsc):
    result = type_check(tsc, json.loads((ROOT / grafana.GRAFANA_FILE).read_text()))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_the_type_check_catches_what_the_schema_does_not_have(tsc):
    """Not vacuous: an empty `current`, a field no panel has, a wrong enum value, a legend
    without `showLegend` all fail."""
    dashboard = json.loads((ROOT / grafana.GRAFANA_FILE).read_text())
    del dashboard["panels"][3]["options"]["legend"]["showLegend"]
    dashboard["templating"]["list"][1]["current"] = {}
    dashboard["panels"][1]["notAPanelField"] = 1
    dashboard["panels"][2]["fieldConfig"]["defaults"]["thresholds"]["mode"] = "fraction"
    result = type_check(tsc, dashboard)
    assert result.returncode != 0
    for needle in ("Type '{}' is missing", "notAPanelField", '"fraction"', "showLegend"):
        assert needle in result.stdout, needle
