"""`cilium-day2 render`: the signal catalog -> Datadog, Prometheus and Grafana assets.

    cilium-day2 render [--values overrides.yaml] [--out DIR] [--only datadog|prometheus|grafana]

Writes under DIR (default: the current directory):

    assets/monitors/<signal>.json                   Datadog recommended monitors, one per signal
    assets/dashboards/cilium_day2_overview.json     Datadog dashboard
    assets/prometheus/cilium-day2.rules.yml         plain Prometheus rule file
    assets/prometheus/cilium-day2.prometheusrule.yaml   prometheus-operator PrometheusRule
    assets/grafana/cilium-day2.json                 Grafana dashboard
    docs/signals.md                                 the signal reference (runbook anchors)
    README.md                                       the signals table, if DIR has one with markers

Everything is rendered into a temporary folder first and moved into place only when all of it
rendered, so a bad values file writes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import jinja2

from .backends.datadog import DatadogQuery, Unsupported, metric_name
from .backends.prometheus import PromQL, quote
from .catalog import Catalog, Signal, format_duration, load_catalog
from .errors import UserError

TEMPLATES = Path(__file__).parent / "templates"
BACKENDS = ("datadog", "prometheus", "grafana")
INTEGRATION = "cilium_day2"
DISPLAY_NAME = "Cilium Day 2"
# Fixed so that re-rendering is byte-for-byte reproducible (the drift test relies on it).
ASSET_DATE = "2025-11-23"
README_BEGIN = "<!-- BEGIN signals table -->"
README_END = "<!-- END signals table -->"

MONITOR_DIR = "assets/monitors"
DASHBOARD_FILE = "assets/dashboards/cilium_day2_overview.json"
RULES_FILE = "assets/prometheus/cilium-day2.rules.yml"
CRD_FILE = "assets/prometheus/cilium-day2.prometheusrule.yaml"
GRAFANA_FILE = "assets/grafana/cilium-day2.json"
SIGNALS_DOC = "docs/signals.md"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)
# YAML double-quoted scalars, readable (no HTML-safe escaping of `<`, `>`, `&`).
_env.filters["yaml_str"] = lambda v: json.dumps(v, ensure_ascii=False)


# --- value formatting shared by annotations and their tests ------------------------------------


def format_value(unit: str, value: float) -> str:
    """Python twin of the Go template used in annotations (see `value_template`)."""
    if unit == "ratio":
        return "%.4g%%" % (value * 100)  # humanizePercentage
    if unit == "count":
        return humanize(value)
    return "%.4g%s" % (value, UNIT_SUFFIX.get(unit, ""))


def humanize(v: float) -> str:
    """Prometheus' `humanize` template function (SI prefixes, 4 significant digits)."""
    if v == 0 or v != v or v in (float("inf"), float("-inf")):
        return "%.4g" % v
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return "%.4g%s" % (v, prefix)


UNIT_SUFFIX = {"seconds": "s", "per_second": "/s", "factor": "x"}


def value_template(unit: str) -> str:
    if unit == "ratio":
        return "{{ $value | humanizePercentage }}"
    if unit == "count":
        return "{{ $value | humanize }}"
    return '{{ printf "%.4g" $value }}' + UNIT_SUFFIX.get(unit, "")


def comparison_text(signal: Signal) -> str:
    return "above" if signal.comparison == ">" else "below"


def group_text(signal: Signal, settings, style: str) -> str:
    """Who the alert is about, e.g. `map_name=ct4_global, node=n1, cluster=c1`."""
    parts = []
    for logical in reversed(signal.group_by):
        if style == "prometheus":
            label = settings.prom_label(logical)
            parts.append(f"{logical if logical in ('cluster', 'node') else label}={{{{ $labels.{label} }}}}")
        else:
            tag = settings.dd_tag(logical)
            parts.append(f"{logical if logical in ('cluster', 'node') else tag} {{{{{tag}.name}}}}")
    return ", ".join(parts)


def runbook_url(signal: Signal, settings) -> str:
    return f"{settings.runbook_base_url}#{signal.id}"


def prometheus_annotations(signal: Signal, severity: str, threshold: float, settings,
                           labels: Optional[Dict[str, str]] = None, value: Optional[float] = None) -> Dict[str, str]:
    """Alert annotations. With `labels`/`value`, returns them as Prometheus will expand them
    (used to write the promtool expectations); without, the Go templates themselves."""
    who = group_text(signal, settings, "prometheus")
    val = value_template(signal.unit)
    if labels is not None:
        for logical in signal.group_by:
            label = settings.prom_label(logical)
            who = who.replace(f"{{{{ $labels.{label} }}}}", labels.get(label, ""))
        val = format_value(signal.unit, value)
    thr = format_value(signal.unit, threshold)
    if signal.quantile:
        # The rule's value is the share of observations at or below the threshold (a bucket bound).
        share = "{{ $value | humanizePercentage }}" if labels is None else format_value("ratio", value)
        description = (
            f"{signal.title}: the p{100 * signal.quantile.q:g} is {comparison_text(signal)} the {severity} "
            f"threshold of {thr} for {who} ({share} of the observations took {thr} or less). {signal.meaning}"
        )
    else:
        description = (
            f"{signal.title}: {val} is {comparison_text(signal)} the {severity} threshold of {thr} "
            f"for {who}. {signal.meaning}"
        )
    return {
        "summary": f"{signal.title} ({who}).",
        "description": description,
        "runbook_url": runbook_url(signal, settings),
    }


# --- Prometheus ---------------------------------------------------------------------------------


def prometheus_groups(catalog: Catalog) -> List[dict]:
    """Rule groups, one per area; with `settings.shard_by_cluster`, one per area and cluster,
    each selecting only its cluster's series (for central rulers that spread groups)."""
    settings = catalog.settings
    groups = []
    for shard in settings.shard_by_cluster or (None,):
        scope = f"{settings.cluster_label}={quote(shard)}" if shard else ""
        prom = PromQL(settings, extra=[scope] if scope else [])
        suffix = "-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", shard) if shard else ""
        for area, signals in catalog.by_area():
            rules = []
            for s in signals:
                # A quantile alert reads its threshold's bucket (PromQL.condition), not this value.
                value = None if s.quantile else prom.expr(s)
                thresholds = s.thresholds()
                if len(thresholds) > 1 and not s.quantile:
                    # The warning and the critical rule share one recorded series: the query runs once.
                    record = prom.record_name(s)
                    rules.append({"record": record, "expr": value})
                    value = f"{record}{{{scope}}}" if scope else record
                for severity, threshold in thresholds:
                    rules.append({
                        "alert": s.alert_name,
                        "expr": prom.condition(value, s, threshold),
                        "for": format_duration(s.hold) if s.hold else None,
                        "labels": {"severity": severity, "area": s.area, "signal": s.id},
                        "annotations": prometheus_annotations(s, severity, threshold, settings),
                    })
            if rules:
                rules = hoist_shared(rules, scope)
                if shard:
                    # The copies differ only by their selectors; a static cluster label (the value
                    # the series carry anyway) keeps them distinct for `promtool check rules`.
                    rules = [{**r, "labels": {settings.cluster_label: shard, **r.get("labels", {})}} for r in rules]
                groups.append({"name": f"cilium-day2-{area.id.replace('_', '-')}{suffix}", "rules": rules})
    return groups


# `sum by (cluster, action) (rate(family{matchers}[5m]))` and the like: an aggregation over one
# range function of one selector, the leaves every compiled query is built from.
_LEAF_RE = re.compile(
    r"(sum|max|min) by \(([^)]*)\) \((rate|increase|changes|delta|max_over_time|min_over_time|avg_over_time)"
    r"\(([a-zA-Z_][a-zA-Z0-9_]*)(?:\{([^}]*)\})?\[(\w+)\]\)\)"
)
_EQ_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"\s*$')


def _leaf_record_name(match, scope: str = "") -> Optional[str]:
    """`level:metric:operation` for a leaf, or None when its matchers cannot be named plainly.
    The shard's own matcher (`scope`) is not part of the name."""
    agg, by, fn, family, matchers, window = match.groups()
    suffix = []
    for part in (matchers.split(",") if matchers else []):
        if scope and part.strip() == scope:
            continue
        m = _EQ_MATCHER_RE.match(part)
        if not m:
            return None
        suffix.append(re.sub(r"[^a-z0-9]+", "_", m.group(2).lower()).strip("_"))
    level = "_".join(label.strip() for label in by.split(","))
    metric = "_".join([family] + [x for x in suffix if x])
    op = f"{fn}{window}" if agg == "sum" else f"{agg}_{fn}{window}"
    return f"{level}:{metric}:{op}"


def hoist_shared(rules: List[dict], scope: str = "") -> List[dict]:
    """Record each leaf that several rules of a group read, once, ahead of them.

    Quantile alerts share their `_count` rate between the warning and the critical rule and
    with error ratios over the same histogram; an outlier reads its per-node value twice. On a
    large fleet every raw series a cycle selects costs Prometheus microseconds, so reading each
    once is a direct saving. Rules in a group run in order, so the recordings are fresh.
    """
    counts: Dict[str, int] = {}
    names: Dict[str, str] = {}
    for rule in rules:
        for m in _LEAF_RE.finditer(rule["expr"]):
            counts[m.group(0)] = counts.get(m.group(0), 0) + 1
            names.setdefault(m.group(0), _leaf_record_name(m, scope))
    taken = {r.get("record") for r in rules}
    shared = []
    for leaf, n in counts.items():
        name = names[leaf]
        if n < 2 or name is None or name in taken:
            continue
        taken.add(name)
        shared.append((leaf, name))
    if not shared:
        return rules
    out = [{"record": name, "expr": leaf} for leaf, name in shared]
    ref = f"{{{scope}}}" if scope else ""
    for rule in rules:
        expr = rule["expr"]
        for leaf, name in shared:
            expr = expr.replace(leaf, name + ref)
        out.append({**rule, "expr": expr})
    return out


def render_prometheus(catalog: Catalog) -> Dict[str, str]:
    groups = prometheus_groups(catalog)
    return {
        RULES_FILE: _env.get_template("prometheus_rules.yml.j2").render(groups=groups),
        CRD_FILE: _env.get_template("prometheusrule.yaml.j2").render(groups=groups),
    }


# --- Datadog --------------------------------------------------------------------------------------


def monitor_definition(signal: Signal, catalog: Catalog) -> dict:
    """One recommended monitor (integrations-core format) for a signal; Unsupported if none."""
    settings = catalog.settings
    dd = DatadogQuery(settings)
    mtype, query = dd.monitor(signal)
    who = group_text(signal, settings, "datadog")
    no_data_text = None
    if signal.no_data == "alert":
        no_data_text = "no data is itself the failure here: the endpoint or pipeline went silent."
    if mtype == "service check":
        runs = dd.service_check_runs(signal)
        thresholds = {"critical": runs, "ok": 1}
        crit_text, warn_text, cmp_text = f"{runs} consecutive failed checks", None, "reached"
    elif "outliers(" in query:
        thresholds = {"critical": 0}
        crit_text, warn_text, cmp_text = "its peers (outlier)", None, "differs from"
    else:
        thresholds = {}
        if signal.critical is not None:
            thresholds["critical"] = signal.critical
        if signal.warning is not None:
            thresholds["warning"] = signal.warning
        if signal.critical is None:
            # Datadog needs a critical threshold: the only one set becomes critical.
            thresholds = {"critical": signal.warning}
        crit_text = format_value(signal.unit, thresholds["critical"])
        warn_text = format_value(signal.unit, thresholds["warning"]) if "warning" in thresholds else None
        cmp_text = comparison_text(signal)
    message = _env.get_template("monitor_message.md.j2").render(
        title=signal.title, comparison_text=cmp_text, critical_text=crit_text, warning_text=warn_text,
        group_text=who, no_data=no_data_text, meaning=signal.meaning, runbook=signal.runbook,
        runbook_url=runbook_url(signal, settings),
    ).strip() + "\n"
    options = {
        "thresholds": thresholds,
        "notify_no_data": signal.no_data == "alert",
        "no_data_timeframe": max(10, 2 * (signal.window + signal.hold) // 60) if signal.no_data == "alert" else None,
        "notify_audit": False,
        "include_tags": True,
        "new_group_delay": 300,
        "renotify_interval": 0,
        "require_full_window": False,
        "escalation_message": "",
    }
    if mtype == "query alert":
        options["evaluation_delay"] = 60
    tags = [f"integration:{INTEGRATION}", f"cilium_day2_signal:{signal.id}", f"cilium_day2_area:{signal.area}"]
    description = signal.meaning if len(signal.meaning) < 300 else signal.meaning[:296].rsplit(" ", 1)[0] + " ..."
    return {
        "version": 2,
        "created_at": ASSET_DATE,
        "last_updated_at": ASSET_DATE,
        "title": signal.title,
        "description": description,
        "tags": [f"integration:{INTEGRATION}"],
        "definition": {
            "name": f"[{DISPLAY_NAME}] {signal.title}",
            "type": mtype,
            "query": query,
            "message": message,
            "tags": tags,
            "options": options,
            "priority": None,
        },
    }


def datadog_monitors(catalog: Catalog):
    """{signal id: monitor} for rendered signals, and {signal id: reason} for the others."""
    monitors, skipped = {}, {}
    for s in catalog.enabled():
        try:
            monitors[s.id] = monitor_definition(s, catalog)
        except Unsupported as exc:
            skipped[s.id] = str(exc)
    return monitors, skipped


def _dd_scope(settings, signal: Signal) -> List[str]:
    scope = ["$cluster"]
    if signal.component in ("agent", "hubble"):
        scope.append("$node")
    return scope


def _timeseries(title: str, q: str, display: str = "line", markers=None) -> dict:
    widget = {
        "definition": {
            "type": "timeseries",
            "title": title,
            "title_size": "16",
            "title_align": "left",
            "show_legend": True,
            "legend_layout": "auto",
            "requests": [{"q": q, "display_type": display, "style": {"palette": "dog_classic"}}],
        }
    }
    if markers:
        widget["definition"]["markers"] = markers
    return widget


def dashboard_series(signal: Signal, settings) -> Optional[str]:
    """The per-group series a dashboard graphs for a signal (None for service checks)."""
    node = signal.query.expr
    if node.fn == "up":
        return None
    dd = DatadogQuery(settings, scope=_dd_scope(settings, signal))
    return dd.series(node, signal.group_by)


def render_datadog_dashboard(catalog: Catalog) -> dict:
    s = catalog.settings
    groups = []
    top = {
        "bpf_map_pressure": ("Top 10 BPF maps by pressure (map, node)",
                             f"top(max:{metric_name('cilium_bpf_map_pressure')}{{$cluster AND $node}} by "
                             f"{{map_name,{s.node_tag}}}, 10, 'max', 'desc')"),
        "conntrack_gc_outlier": ("Top 10 nodes by conntrack entries deleted per GC run",
                                 f"top(sum:{metric_name('cilium_datapath_conntrack_gc_entries')}{{status:deleted AND $cluster AND $node}} "
                                 f"by {{{s.cluster_tag},{s.node_tag}}}, 10, 'max', 'desc')"),
    }
    for area, signals in catalog.by_area():
        widgets = []
        for sig in signals:
            if sig.id in top:
                title, q = top[sig.id]
                widgets.append({"definition": {
                    "type": "toplist", "title": title, "title_size": "16", "title_align": "left",
                    "requests": [{"q": q}],
                }})
                if sig.id == "conntrack_gc_outlier":
                    widgets.append(_timeseries("Conntrack entries deleted per GC run, top 10 nodes", q))
                    continue
            series = dashboard_series(sig, s)
            if series is None:
                continue
            markers = []
            for severity, thr in sig.thresholds():
                op = "y >" if sig.comparison == ">" else "y <"
                markers.append({"label": f"{severity} {format_value(sig.unit, thr)}", "value": f"{op} {thr:g}",
                                "display_type": "error dashed" if severity == "critical" else "warning dashed"})
            widgets.append(_timeseries(sig.title, series, markers=markers))
        if area.id == "control_plane":
            widgets.append({"definition": {
                "type": "toplist", "title": "Agents per Cilium version and cluster", "title_size": "16",
                "title_align": "left",
                "requests": [{"q": f"top(count:{metric_name('cilium_version')}{{$cluster}} by "
                                   f"{{{s.cluster_tag},cilium_version}}, 20, 'last', 'desc')"}],
            }})
            for target in ("agent", "operator", "hubble"):
                widgets.append({"definition": {
                    "type": "check_status", "title": f"{target.capitalize()} metrics endpoint",
                    "title_size": "16", "title_align": "left",
                    "check": f"{INTEGRATION}.{target}.openmetrics.health", "grouping": "cluster",
                    "group_by": [], "tags": ["$cluster"],
                }})
        groups.append({"definition": {
            "type": "group", "title": area.title, "layout_type": "ordered", "show_title": True,
            "background_color": "vivid_blue" if area.id in ("datapath", "identity") else "gray",
            "widgets": widgets,
        }})
    status = {"definition": {
        "type": "group", "title": "Monitors", "layout_type": "ordered", "show_title": True,
        "widgets": [{"definition": {
            "type": "manage_status", "title": "Cilium Day 2 monitors", "title_size": "16", "title_align": "left",
            "query": f"tag:(integration:{INTEGRATION})", "summary_type": "monitors",
            "display_format": "countsAndList", "color_preference": "text", "hide_zero_counts": True,
            "show_last_triggered": True, "sort": "status,asc",
        }}],
    }}
    return {
        "title": "Cilium Day 2 Overview",
        "description": (
            "Day-2 health of Cilium at scale, by area: datapath, identity, kvstore, cloud API and IPAM, "
            "control plane, Hubble. Generated by `cilium-day2 render` from the signal catalog."
        ),
        "layout_type": "ordered",
        "reflow_type": "auto",
        "notify_list": [],
        "template_variables": [
            {"name": "cluster", "prefix": s.cluster_tag, "available_values": [], "default": "*"},
            {"name": "node", "prefix": s.node_tag, "available_values": [], "default": "*"},
        ],
        "widgets": [status] + groups,
    }


def render_datadog(catalog: Catalog) -> Dict[str, str]:
    monitors, _ = datadog_monitors(catalog)
    files = {f"{MONITOR_DIR}/{sid}.json": _json(m) for sid, m in monitors.items()}
    files[DASHBOARD_FILE] = _json(render_datadog_dashboard(catalog))
    return files


# --- Grafana --------------------------------------------------------------------------------------


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
            steps = [{"color": "green", "value": None}]
            if sig is not None:
                for severity, thr in sig.thresholds():
                    steps.append({"color": "orange" if severity == "warning" else "red", "value": thr})
                if sig.comparison == "<":
                    steps = [{"color": "red", "value": None}] + [
                        {"color": "green", "value": thr} for _, thr in sig.thresholds()[:1]]
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


def render_grafana(catalog: Catalog) -> Dict[str, str]:
    return {GRAFANA_FILE: _json(render_grafana_dashboard(catalog))}


# --- docs -------------------------------------------------------------------------------------------


def _thr(signal: Signal, value) -> str:
    if value is None:
        return "—"
    op = signal.comparison
    return f"{op} {format_value(signal.unit, value)}"


def signals_table(catalog: Catalog) -> str:
    prom = PromQL(catalog.settings)
    rows = ["| area | signal | warning | critical | window | for | per | enabled |",
            "|---|---|---|---|---|---|---|---|"]
    for area, signals in catalog.by_area(enabled_only=False):
        for s in signals:
            rows.append(
                f"| {area.title} | [`{s.id}`]({SIGNALS_DOC}#{s.id}) {s.title} | {_thr(s, s.warning)} | "
                f"{_thr(s, s.critical)} | {format_duration(s.window)} | {format_duration(s.hold)} | "
                f"{', '.join(prom.labels(s.group_by))} | {'yes' if s.enabled else 'no'} |"
            )
    return "\n".join(rows)


def render_docs(catalog: Catalog) -> Dict[str, str]:
    prom = PromQL(catalog.settings)
    dd = DatadogQuery(catalog.settings)
    areas = []
    for area, signals in catalog.by_area(enabled_only=False):
        items = []
        for s in signals:
            try:
                dd_query, reason = dd.monitor(s)[1], None
            except Unsupported as exc:
                dd_query, reason = None, str(exc)
            sev = ", ".join(f"{sev} {_thr(s, thr)}" for sev, thr in s.thresholds())
            items.append({
                "id": s.id, "title": s.title, "component": s.component, "severity_text": sev,
                "window": format_duration(s.window), "hold": format_duration(s.hold),
                "group_text": ", ".join(s.group_by), "enabled": s.enabled, "meaning": s.meaning,
                "runbook": s.runbook, "defaults_reason": s.defaults_reason or "—",
                "alert_name": s.alert_name, "promql": prom.expr(s), "datadog": dd_query, "datadog_reason": reason,
                "prom_alerts": [(sev, prom.condition(None, s, thr)) for sev, thr in s.thresholds()] if s.quantile else [],
                "q_percent": f"{100 * s.quantile.q:g}%" if s.quantile else "",
            })
        areas.append((area, items))
    doc = _env.get_template("signals.md.j2").render(table=signals_table(catalog).replace(f"({SIGNALS_DOC}#", "(#"),
                                                    areas=areas)
    return {SIGNALS_DOC: "\n".join(line.rstrip() for line in doc.splitlines()).strip() + "\n"}


def update_readme(text: str, catalog: Catalog) -> str:
    if README_BEGIN not in text or README_END not in text:
        return text
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_BEGIN}\n{signals_table(catalog)}\n{README_END}{tail}"


# --- writing ----------------------------------------------------------------------------------------


def _json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_files(catalog: Catalog, only: Optional[str] = None) -> Dict[str, str]:
    """{relative path: content} for everything `render` writes (without the README)."""
    files = {}
    if only in (None, "datadog"):
        files.update(render_datadog(catalog))
    if only in (None, "prometheus"):
        files.update(render_prometheus(catalog))
    if only in (None, "grafana"):
        files.update(render_grafana(catalog))
    if only is None:
        files.update(render_docs(catalog))
    return files


def check_targets(out: Path, rels) -> None:
    """Refuse, before anything is written, a tree where a file sits where a folder must go (or
    a folder where a file must go): all or nothing, naming the path."""
    for rel in sorted(rels):
        path = out / rel
        for parent in reversed(path.relative_to(out).parents):
            folder = out / parent
            if folder.exists() and not folder.is_dir():
                raise UserError(f"--out {out}: {folder} is a file where a folder must go; move it away (nothing was written)")
        if path.is_dir() and not rel.startswith(MONITOR_DIR + "/"):
            raise UserError(f"--out {out}: {path} is a folder where a file must go; move it away (nothing was written)")


def write(files: Dict[str, str], out: Path, catalog: Catalog, only: Optional[str] = None) -> List[Path]:
    """Write atomically: stage everything in a temp folder under `out`, then move into place."""
    check_targets(out, files)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".cilium-day2-render-", dir=out))
    written = []
    try:
        for rel, content in files.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        readme = out / "README.md"
        new_readme = None
        if only is None and readme.exists():
            current = readme.read_text()
            updated = update_readme(current, catalog)
            if updated != current:
                new_readme = updated
                (stage / "README.md").write_text(updated)
        # Everything rendered: move into place. The monitors folder is replaced as a whole so
        # that disabling a signal removes its monitor.
        if any(rel.startswith(MONITOR_DIR + "/") for rel in files):
            target = out / MONITOR_DIR
            target.parent.mkdir(parents=True, exist_ok=True)
            old = out / (MONITOR_DIR + ".old")
            if target.exists():
                os.replace(target, old)
            os.replace(stage / MONITOR_DIR, target)
            shutil.rmtree(old, ignore_errors=True)
            written.append(target)
        for rel in files:
            if rel.startswith(MONITOR_DIR + "/"):
                continue
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, target)
            written.append(target)
        if new_readme is not None:
            os.replace(stage / "README.md", readme)
            written.append(readme)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return written


# --- CLI ----------------------------------------------------------------------------------------------


def add_arguments(parser):
    parser.add_argument("--values", metavar="FILE", help="overrides: thresholds, windows, label/tag names, enabled signals")
    parser.add_argument("--out", metavar="DIR", default=".", help="output root; assets/ and docs/ are written under it (default: .)")
    parser.add_argument("--only", choices=BACKENDS, help="render only one backend's assets")


def run(args) -> int:
    catalog = load_catalog(args.values) if args.values else load_catalog()
    files = render_files(catalog, args.only)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a directory")
    try:
        written = write(files, out, catalog, args.only)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write: {exc.strerror or exc}")
    _, skipped = datadog_monitors(catalog)
    print(f"cilium-day2 render: {len(catalog.enabled())} signals enabled, wrote {len(written)} paths under {out}")
    if args.only in (None, "datadog"):
        for sid, reason in skipped.items():
            print(f"  no Datadog monitor for {sid}: {reason}")
    return 0
