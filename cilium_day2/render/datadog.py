"""Datadog target: one recommended monitor per signal (integrations-core format) and the
overview dashboard.

Metric names come from the check's own maps (`cilium_day2.metrics`, through
`render.datadog_query`), never from this module.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from .datadog_query import DatadogQuery, Unsupported, metric_name
from ..catalog import Catalog, Signal
from .text import comparison_text, env, format_threshold, runbook_url, to_json

INTEGRATION = "cilium_day2"
DISPLAY_NAME = "Cilium Day 2"
# Fixed so that re-rendering is byte-for-byte reproducible (the drift test relies on it).
ASSET_DATE = "2025-11-23"
MONITOR_DIR = "assets/monitors"
DASHBOARD_FILE = "assets/dashboards/cilium_day2_overview.json"


def group_text(signal: Signal, settings) -> str:
    """Who a monitor's group is about, e.g. `map_name {{map_name.name}}, node {{host.name}}, ...`."""
    parts = []
    for logical in reversed(signal.group_by):
        tag = settings.dd_tag(logical)
        parts.append(f"{logical if logical in ('cluster', 'node') else tag} {{{{{tag}.name}}}}")
    return ", ".join(parts)


def monitor_definition(signal: Signal, catalog: Catalog) -> dict:
    """One recommended monitor (integrations-core format) for a signal; Unsupported if none."""
    settings = catalog.settings
    dd = DatadogQuery(settings)
    mtype, query = dd.monitor(signal)
    who = group_text(signal, settings)
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
            # Datadog needs a critical threshold: the only one set becomes the monitor's alert
            # level, and its message says WARNING (a Datadog ALERT is this signal's warning).
            thresholds = {"critical": signal.warning}
        crit_text = format_threshold(signal.unit, thresholds["critical"])
        warn_text = format_threshold(signal.unit, thresholds["warning"]) if "warning" in thresholds else None
        cmp_text = comparison_text(signal)
    message = env.get_template("monitor_message.md.j2").render(
        alert_level="CRITICAL" if signal.critical is not None or mtype == "service check" else "WARNING",
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
                markers.append({"label": f"{severity} {format_threshold(sig.unit, thr)}", "value": f"{op} {thr:g}",
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


def render(catalog: Catalog) -> Dict[str, str]:
    monitors, _ = datadog_monitors(catalog)
    files = {f"{MONITOR_DIR}/{sid}.json": to_json(m) for sid, m in monitors.items()}
    files[DASHBOARD_FILE] = to_json(render_datadog_dashboard(catalog))
    return files
