"""The monitoring mixin: `mixin/`, for jsonnet users (kubernetes-mixin and node-mixin style).

    local cilium = (import 'github.com/<org>/cilium-day2/mixin/mixin.libsonnet') + {
      _config+:: { cluster_label: 'k8s_cluster', signals+: { bpf_map_pressure+: { warning: 0.7 } } },
    };
    cilium.prometheusAlerts   // {groups: [...]}: the rule groups `render` writes
    cilium.grafanaDashboards  // {'cilium-day2.json': {...}}

No second source of truth: the catalog is compiled here once more, with every setting and
every per-signal value replaced by a marker (`ǂ<n>ǂ`). The compiled rules and panels are
written as jsonnet data (`mixin/signals.libsonnet`) together with the jsonnet expression of each
marker, read from `_config`. The jsonnet side (`templates/mixin/lib.libsonnet`, the twin of the
few Python steps that depend on values: number and duration formats, grouping, hoisting of
shared leaves, dashboard layout) substitutes the markers and assembles. So a `_config`
override yields what `render --values` yields for the same override (tests/test_mixin.py).

What `_config` cannot change (the structure is compiled in): which severities a signal has
(set a threshold, not null), a parameter from zero to non-zero, `cloud_apis`, and
`shard_by_cluster` (render the pack for sharded rulers).
"""

from __future__ import annotations

import dataclasses
import json
import re
from contextlib import contextmanager
from typing import Dict, List

from . import grafana, prometheus, promql, text
from ..catalog import Catalog, format_duration
from ..catalog.query import Up
from .text import TEMPLATES

MIXIN_DIR = "mixin"
# A marker: ǂ<n>ǂ. One character on each side (jsonnet splits on one character) that is a word
# character (so the leaf pattern of hoisting sees a marked window as a window) and appears in no
# catalog text.
MARK = "\u01c2"
MARKER_RE = re.compile(MARK + r"(\d+)" + MARK)
# Settings `_config` holds, by name (the values file's names), and the jsonnet reading them.
STRING_SETTINGS = ("cluster_label", "node_label", "agent_job", "operator_job", "hubble_job")
STATIC_FILES = ("mixin.libsonnet", "lib.libsonnet", "jsonnetfile.json", "README.md")


class Markers:
    """Marker text -> the jsonnet expression (of `c`, the `_config`) it stands for."""

    def __init__(self):
        self.exprs: List[str] = []
        self.index: Dict[str, str] = {}

    def __call__(self, expr: str) -> str:
        if expr not in self.index:
            self.index[expr] = f"{MARK}{len(self.exprs)}{MARK}"
            self.exprs.append(expr)
        return self.index[expr]


class SymFloat(float):
    """A number that formats as a marker (its default value stays for comparisons)."""

    def __new__(cls, value, markers, ref):
        obj = float.__new__(cls, value)
        obj.markers, obj.ref = markers, ref
        return obj

    def __format__(self, spec):
        return self.markers(f"lib.fmt({json.dumps('%' + spec)}, {self.ref})")


class SymDuration(int):
    def __new__(cls, value, markers, ref):
        obj = int.__new__(cls, value)
        obj.markers, obj.ref = markers, ref
        return obj


def _cfg(sid: str, key: str) -> str:
    return f"c.signals[{json.dumps(sid)}][{json.dumps(key)}]"


def symbolic(catalog: Catalog, markers: Markers) -> Catalog:
    """The catalog with markers for every `_config` value, every signal enabled."""
    s = dataclasses.replace(
        catalog.settings, runbook_base_url="", alert_labels=(), shard_by_cluster=(),
        **{name: markers(f"c[{json.dumps(name)}]") for name in STRING_SETTINGS})
    signals = []
    for sig in catalog.signals:
        changes = {"enabled": True}
        for key in ("warning", "critical"):
            value = getattr(sig, key)
            if value is not None:
                changes[key] = SymFloat(value, markers, _cfg(sig.id, key))
        changes["window"] = SymDuration(sig.window, markers, _cfg(sig.id, "window"))
        expr = sig.query.expr
        params = {k: SymFloat(v, markers, _cfg(sig.id, k)) for k, v in sig.params().items()}
        if params:
            expr = dataclasses.replace(expr, **params)
        changes["query"] = dataclasses.replace(sig.query, expr=expr)
        signals.append(dataclasses.replace(sig, **changes))
    return Catalog(s, list(catalog.areas), signals)


@contextmanager
def _symbolic_formats(markers: Markers):
    """Durations and thresholds for people format as markers while compiling."""
    real_duration, real_threshold = format_duration, text.format_threshold

    def duration(seconds):
        if isinstance(seconds, SymDuration):
            return markers(f"lib.duration({seconds.ref})")
        return real_duration(seconds)

    def threshold(unit, value):
        if isinstance(value, SymFloat):
            return markers(f"lib.threshold({json.dumps(unit)}, {value.ref})")
        return real_threshold(unit, value)

    def le_forms(value):
        return (markers(f"lib.leRegex({value.ref})"),)

    saved = (prometheus.format_duration, promql.format_duration, prometheus.format_threshold, promql.le_forms,
             promql.glob_to_regex)
    prometheus.format_duration = promql.format_duration = duration
    prometheus.format_threshold = threshold
    promql.le_forms = le_forms
    # The `le` marker already stands for a regex.
    promql.glob_to_regex = lambda p: p if MARKER_RE.fullmatch(p) else saved[4](p)
    try:
        yield
    finally:
        (prometheus.format_duration, promql.format_duration, prometheus.format_threshold, promql.le_forms,
         promql.glob_to_regex) = saved


def _segments(expr: str) -> list:
    """An expression as text and the leaves hoisting may record (`{leaf, name}`), in order, so
    that jsonnet counts and replaces leaves without searching text."""
    out, pos = [], 0
    for m in prometheus.LEAF_RE.finditer(expr):
        if m.start() > pos:
            out.append(expr[pos:m.start()])
        out.append({"leaf": m.group(0), "name": prometheus._leaf_record_name(m)})
        pos = m.end()
    if pos < len(expr):
        out.append(expr[pos:])
    return out


def _compiled_rule(rule: dict) -> dict:
    """A rule for the jsonnet side: its expression as segments; `for` and `keep_firing_for`
    come from `_config` there (they may be 0s)."""
    out = {k: v for k, v in rule.items() if k not in ("for", "keep_firing_for") and v is not None}
    out["expr"] = _segments(rule["expr"])
    return out


def compile_signals(catalog: Catalog, markers: Markers) -> dict:
    """Per signal its rule unit and leaves; per area its dashboard row and panels (a panel's
    signal, or null for the area's extra panels); the vanished-target unit; the dashboard."""
    sym = symbolic(catalog, markers)
    s = sym.settings
    out = {"areas": [], "signals": {}}
    saved_steps = grafana.threshold_steps
    with _symbolic_formats(markers):
        grafana.threshold_steps = lambda signal: None  # computed from `_config` by lib.steps
        try:
            dashboard = grafana.render_grafana_dashboard(sym)
        finally:
            grafana.threshold_steps = saved_steps
        panels = iter(dashboard.pop("panels"))
        prom = promql.PromQL(s)
        for area, signals in sym.by_area():
            row = next(panels)
            items = []
            for sig in signals:
                items.append({"signal": sig.id, "panel": next(panels)})
            for _ in _extra_panels(area.id, s):
                items.append({"signal": None, "panel": next(panels)})
            out["areas"].append({"id": area.id, "row": row, "items": items, "signals": [x.id for x in signals]})
            for sig in signals:
                rules = prometheus._signal_rules(sig, prom, "", s)
                out["signals"][sig.id] = {"rules": [_compiled_rule(r) for r in rules],
                                          "comparison": sig.comparison,
                                          "up_target": sig.query.expr.target if isinstance(sig.query.expr, Up) else None}
        targets = prometheus.absent_rules(sym, [])
        out["targets"] = {"records": [_compiled_rule(r) for r in targets if "record" in r],
                          "alerts": [_compiled_rule(r) for r in targets if "alert" in r]}
    out["dashboard"] = dashboard
    return out


def _extra_panels(area_id: str, settings) -> List[dict]:
    """The dashboard's panels of an area that belong to no signal."""
    from ..catalog.model import Area

    probe = Catalog(settings, [Area(area_id, area_id, "")], [])
    return [p for p in grafana.grafana_panels(probe) if p["type"] != "row"]


def config_defaults(catalog: Catalog) -> dict:
    """`_config`: the values file's settings and per-signal values, with their defaults."""
    s = catalog.settings
    signals = {}
    for sig in catalog.signals:
        entry = {"enabled": sig.enabled, "window": format_duration(sig.window), "for": format_duration(sig.hold),
                 "keep_firing_for": format_duration(sig.keep_firing_for)}
        for key in ("warning", "critical"):
            if getattr(sig, key) is not None:
                entry[key] = getattr(sig, key)
        entry.update(sig.params())
        signals[sig.id] = entry
    return {
        **{name: getattr(s, name) for name in STRING_SETTINGS},
        "runbook_base_url": s.runbook_base_url,
        "alert_labels": dict(s.alert_labels),
        "max_rules_per_group": s.max_rules_per_group,
        "scrape_interval": format_duration(s.scrape_interval),
        "rule_intervals": {format_duration(at): format_duration(iv) for at, iv in s.rule_intervals},
        "signals": signals,
    }


def _jsonnet_markers(markers: Markers) -> str:
    lines = [f"  {json.dumps(f'{MARK}{i}{MARK}')}: {expr}," for i, expr in enumerate(markers.exprs)]
    return "function(c, lib) {\n" + "\n".join(lines) + "\n}\n"


GENERATED_HEADER = "// Generated by `cilium-day2 render` from the cilium-day2 signal catalog. Do not edit.\n"


def render(catalog: Catalog) -> Dict[str, str]:
    markers = Markers()
    compiled = compile_signals(catalog, markers)
    files = {
        f"{MIXIN_DIR}/config.libsonnet": GENERATED_HEADER + "{\n  _config+:: " + json.dumps(
            config_defaults(catalog), indent=2).replace("\n", "\n  ") + ",\n}\n",
        f"{MIXIN_DIR}/signals.libsonnet": GENERATED_HEADER + json.dumps(compiled, indent=1, ensure_ascii=False) + "\n",
        f"{MIXIN_DIR}/markers.libsonnet": GENERATED_HEADER + _jsonnet_markers(markers),
    }
    for name in STATIC_FILES:
        files[f"{MIXIN_DIR}/{name}"] = (TEMPLATES / "mixin" / name).read_text()
    return files
