"""Grafana target: one dashboard, a row per area and a panel per signal with its thresholds.

Panels plot each signal's value as PromQL with `$cluster`/`$node` variables. Threshold steps
follow Grafana's rule (a step applies from its value up, `>=`), so a catalog threshold `> T`
starts its colour just above T and healthy values sitting on T stay green.
"""

from __future__ import annotations

import math
from typing import Dict, List

from .promql import PromQL
from ..catalog import Catalog
from .text import to_json

GRAFANA_FILE = "assets/grafana/cilium-day2.json"


COLOURS = {"warning": "orange", "critical": "red"}


def threshold_steps(signal) -> List[dict]:
    """Grafana threshold steps for a signal: green when healthy, orange from the warning, red
    from the critical threshold, in the signal's direction.

    A step colours values from its own value up (`>=`). For `> T` the step starts at the next
    float above T, so a value of exactly T (a healthy `0` of a `> 0` signal) stays green. For
    `< T` the colours run downwards: the base colour is the worst, and a value of exactly T
    already takes the healthier colour, as `< T` says.
    """
    thresholds = signal.thresholds()
    if signal.comparison == ">":
        return [{"color": "green", "value": None}] + [
            {"color": COLOURS[sev], "value": math.nextafter(thr, math.inf)} for sev, thr in thresholds]
    # Least severe first (warning above critical): red below the critical, orange up to the
    # warning, green from the warning up.
    ordered = sorted(thresholds, key=lambda t: t[1])
    steps = [{"color": COLOURS[ordered[0][0]], "value": None}]
    for i, (_, thr) in enumerate(ordered):
        colour = COLOURS[ordered[i + 1][0]] if i + 1 < len(ordered) else "green"
        steps.append({"color": colour, "value": thr})
    return steps


def grafana_promql(settings) -> PromQL:
    return PromQL(
        settings,
        extra=[f'{settings.cluster_label}=~"$cluster"'],
        node_extra=[f'{settings.node_label}=~"$node"'],
    )


def grafana_panels(catalog: Catalog) -> List[dict]:
    """Panels of the Grafana dashboard; each target's `expr` is plain PromQL with variables."""
    s = catalog.settings
    prom = grafana_promql(s)
    panels, y, pid = [], 0, 1
    for area, signals in catalog.by_area():
        panels.append({"type": "row", "title": area.title, "id": pid, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y, x = pid + 1, y + 1, 0
        extra = []
        if area.id == "datapath":
            extra.append(("Top 10 BPF maps by pressure (map, node)",
                          f"topk(10, max by ({s.cluster_label}, {s.node_label}, map_name) "
                          f"(cilium_bpf_map_pressure{{{s.cluster_label}=~\"$cluster\", {s.node_label}=~\"$node\"}}))",
                          "{{map_name}} on {{" + s.node_label + "}}", "ratio"))
            extra.append(("Top 10 nodes by conntrack entries deleted per GC run",
                          f"topk(10, sum by ({s.cluster_label}, {s.node_label}) "
                          f"(cilium_datapath_conntrack_gc_entries{{status=\"deleted\", {s.cluster_label}=~\"$cluster\", {s.node_label}=~\"$node\"}}))",
                          "{{" + s.node_label + "}}", "count"))
        if area.id == "control_plane":
            extra.append(("Agents per Cilium version",
                          f"count by ({s.cluster_label}, version) (cilium_version{{{s.cluster_label}=~\"$cluster\"}})",
                          "{{" + s.cluster_label + "}} {{version}}", "count"))
        items = [(sig.title, prom.expr(sig),
                  " ".join("{{" + prom.labels([g])[0] + "}}" for g in sig.group_by), sig.unit, sig)
                 for sig in signals] + [(t, e, l, u, None) for t, e, l, u in extra]
        for title, expr, legend, unit, sig in items:
            steps = threshold_steps(sig) if sig is not None else [{"color": "green", "value": None}]
            panels.append({
                "type": "timeseries",
                "title": title,
                "id": pid,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
                "description": sig.meaning if sig is not None else "",
                "fieldConfig": {
                    "defaults": {
                        "unit": {"ratio": "percentunit", "seconds": "s", "per_second": "ops"}.get(unit, "short"),
                        "thresholds": {"mode": "absolute", "steps": steps},
                        "custom": {"thresholdsStyle": {"mode": "line"}},
                    },
                    "overrides": [],
                },
                "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["max", "lastNotNull"]},
                            "tooltip": {"mode": "multi", "sort": "desc"}},
                "targets": [{"refId": "A", "expr": expr, "legendFormat": legend,
                             "datasource": {"type": "prometheus", "uid": "${datasource}"}}],
            })
            pid += 1
            x += 8
            if x >= 24:
                x, y = 0, y + 8
        y += 8 if x else 0
    return panels


def render_grafana_dashboard(catalog: Catalog) -> dict:
    s = catalog.settings
    return {
        "title": "Cilium Day 2",
        "uid": "cilium-day2",
        "description": "Day-2 health of Cilium at scale. Generated by `cilium-day2 render` from the signal catalog.",
        "tags": ["cilium", "cilium-day2"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
             "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
            {"name": "cluster", "type": "query", "label": "Cluster",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": f"label_values(cilium_version, {s.cluster_label})", "refId": "cluster"},
             "definition": f"label_values(cilium_version, {s.cluster_label})",
             "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2, "sort": 1, "current": {},
             "hide": 0, "options": [], "regex": ""},
            {"name": "node", "type": "query", "label": "Node",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": f'label_values(cilium_version{{{s.cluster_label}=~"$cluster"}}, {s.node_label})',
                       "refId": "node"},
             "definition": f'label_values(cilium_version{{{s.cluster_label}=~"$cluster"}}, {s.node_label})',
             "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2, "sort": 1, "current": {},
             "hide": 0, "options": [], "regex": ""},
        ]},
        "annotations": {"list": []},
        "panels": grafana_panels(catalog),
    }


def render(catalog: Catalog) -> Dict[str, str]:
    return {GRAFANA_FILE: to_json(render_grafana_dashboard(catalog))}
