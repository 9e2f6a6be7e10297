"""Prometheus target: the rule file, the prometheus-operator `PrometheusRule` and an
Alertmanager configuration that routes and inhibits the pack's alerts.

Rules: one group per area and evaluation pace (and per cluster with
`settings.shard_by_cluster`), split so that no group holds more than
`settings.max_rules_per_group` rules (Mimir refuses larger groups), plus a
`cilium-day2-targets-<interval>` group whose alerts fire when a component's scrape targets
vanish from a cluster (no `up` series at all, which `up < 1` cannot see). Each signal is one
sparse recording and the alerts comparing it (`_signal_rules`).

Annotations name the cluster from the alert's cluster label, or from Prometheus'
`external_labels` when each cluster has its own Prometheus and the series carry no cluster.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Optional, Sequence

import yaml

from . import alertmanager_k8s, kubernetes
from .promql import PromQL, quote
from ..catalog import Catalog, Signal, format_duration
from ..errors import UserError
from ..catalog.query import Up
from .text import comparison_text, env, format_threshold, format_value, runbook_url, value_template

RULES_FILE = "assets/prometheus/cilium-day2.rules.yml"
CLUSTER_RULES_DIR = "assets/prometheus/clusters"
CRD_FILE = "assets/prometheus/cilium-day2.prometheusrule.yaml"
ALERTMANAGER_FILE = "assets/alertmanager/alertmanager.yml"
TARGETS_GROUP = "targets"
# How long a vanished component is remembered. Within it, a cluster whose targets went away
# still alerts even when nothing else of that component's cluster is left to compare with.
ABSENT_LOOKBACK = "25h"
UP_TARGET_TITLES = {"agent": "cilium-agent", "operator": "cilium-operator", "hubble": "Hubble metrics"}
# What shows that a component should be there, per component (see `absent_rules`).
ABSENT_EVIDENCE = {
    "agent": f"its operator or Hubble targets are scraped, or agents were within {ABSENT_LOOKBACK}, or this "
             f"Prometheus scrapes no agent at all",
    "operator": f"its agents are scraped, or an operator was within {ABSENT_LOOKBACK}, or this Prometheus scrapes "
                f"no operator at all",
    "hubble": f"Hubble metrics were scraped within {ABSENT_LOOKBACK} (they are optional: a cluster that never had "
              f"them does not alert)",
}


# --- annotations ---------------------------------------------------------------------------------


def cluster_template(settings) -> str:
    """The alert's cluster: its cluster label, else the Prometheus' own `external_labels`."""
    c = settings.cluster_label
    return f"{{{{ with $labels.{c} }}}}{{{{ . }}}}{{{{ else }}}}{{{{ $externalLabels.{c} }}}}{{{{ end }}}}"


def _who(signal: Signal, settings, labels: Optional[Dict[str, str]]) -> str:
    """The labels that tell this alert from its siblings in the cluster: `node=n1, map_name=x`."""
    parts = []
    for logical in signal.group_by:
        if logical == "cluster":
            continue
        label = settings.prom_label(logical)
        value = f"{{{{ $labels.{label} }}}}" if labels is None else labels.get(label, "")
        parts.append(f"{logical if logical == 'node' else label}={value}")
    return ", ".join(parts)


def prometheus_annotations(signal: Signal, severity: str, threshold: float, settings,
                           labels: Optional[Dict[str, str]] = None, value: Optional[float] = None,
                           external_labels: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Alert annotations. With `labels`/`value`, returns them as Prometheus expands them (with
    `external_labels` as the Prometheus' own), for test expectations; without, the templates.

    The `summary` is the same for every alert of a signal in a cluster, so it reads as the one
    line of an Alertmanager group; `description` holds the values and label values.
    """
    if labels is None:
        cluster, val = cluster_template(settings), value_template(signal.unit)
    else:
        cluster = labels.get(settings.cluster_label) or (external_labels or {}).get(settings.cluster_label, "")
        val = format_value(signal.unit, value)
    who = _who(signal, settings, labels)
    head = f"{signal.title} in cluster {cluster}" + (f" ({who})" if who else "")
    thr = format_threshold(signal.unit, threshold)
    if signal.quantile:
        # The rule's value: the quantile read from the buckets at the thresholds and the last
        # bound (see PromQL.quantile_value): exact at a threshold, coarse between bounds.
        description = (
            f"{head}: the p{100 * signal.quantile.q:g} latency is {comparison_text(signal)} {thr}, the {severity} "
            f"threshold (estimated at {val} from the buckets at the thresholds). {signal.meaning}"
        )
    else:
        description = (
            f"{head}: {val} is {comparison_text(signal)} the {severity} threshold of {thr}. {signal.meaning}"
        )
    out = {
        "summary": f"{signal.title} in cluster {cluster}",
        "description": description,
        "runbook": signal.runbook,
    }
    url = runbook_url(signal, settings)
    if url:
        out["runbook_url"] = url
    return out


def _target_matchers(settings, target: str) -> str:
    return ", ".join([f"job=~\"{settings.job(target)}\""] + list(settings.selector(target)))


def absent_alert_name(signal: Signal) -> str:
    return signal.alert_name.removesuffix("Down") + "Absent"


def absent_annotations(signal: Signal, settings, labels: Optional[Dict[str, str]] = None,
                       external_labels: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Annotations of a vanished-target alert (see `absent_annotations` arguments above)."""
    if labels is None:
        cluster = cluster_template(settings)
    else:
        cluster = labels.get(settings.cluster_label) or (external_labels or {}).get(settings.cluster_label, "")
    target = signal.query.expr.target
    name = UP_TARGET_TITLES[target]
    out = {
        "summary": f"No {name} scrape target in cluster {cluster}",
        "description": (
            f"Cluster {cluster} has no {name} scrape target ({_target_matchers(settings, target)}), though "
            f"{ABSENT_EVIDENCE[target]}. Without a target there is no `up` series, so `{signal.alert_name}` cannot fire: the deployment was scaled to "
            f"zero, the ServiceMonitor or scrape job no longer matches, or the job was renamed "
            f"(settings.{target}_job, settings.{target}_selector). {signal.meaning}"
        ),
        "runbook": signal.runbook,
    }
    url = runbook_url(signal, settings)
    if url:
        out["runbook_url"] = url
    return out


# --- rules ----------------------------------------------------------------------------------------


def _signal_rules(s: Signal, prom: PromQL, scope: str, settings) -> List[dict]:
    """A signal's rules: one recording of its value, then its alerts, which only compare the
    recorded series with their thresholds (the expression runs once per evaluation, whatever
    the number of severities).

    The recording is sparse: it keeps only the rows past the signal's loosest threshold (the
    warning one when there is one; `check_thresholds` orders them). Those are the only rows any
    alert of the signal can fire on, so every alert sees exactly the rows it would see over the
    full value, and its `for` clock runs as before; a healthy node records nothing. (The
    dashboards read the raw families, never these recordings.)
    """
    rules = []
    value = prom.quantile_value(s) if s.quantile else prom.expr(s)
    thresholds = s.thresholds()
    seen = None
    if s.query.only_if_seen:
        # Recorded each cycle (a few series), so that the alert looks back over the record,
        # not over a day of the raw counters.
        seen = prom.seen_record_name(s)
        rules.append({"record": seen, "expr": prom.seen_expr(s)})
        seen = f"{seen}{{{scope}}}" if scope else seen
    record = prom.record_name(s)
    loosest = thresholds[0][1]
    kept = f"({value}) {s.comparison} {loosest:g}"
    if s.query.unless_seen:
        # Its label sets leave the record, so no alert of the signal sees them.
        kept = f"({kept}){prom.unless_seen(s)}"
    rules.append({"record": record, "expr": kept})
    value = f"{record}{{{scope}}}" if scope else record
    for severity, threshold in thresholds:
        rules.append({
            "alert": s.alert_name,
            "expr": prom.condition(value, s, threshold, seen),
            "for": format_duration(s.hold) if s.hold else None,
            "keep_firing_for": format_duration(s.keep_firing_for) if s.keep_firing_for else None,
            "labels": {**dict(settings.alert_labels), "severity": severity, "area": s.area, "signal": s.id},
            "annotations": prometheus_annotations(s, severity, threshold, settings),
        })
    return rules


def rule_interval(s: Signal, settings) -> int:
    """Seconds between evaluations of a signal's rules (see `Settings.rule_intervals`)."""
    return settings.rule_interval(s.window, s.hold, s.keep_firing_for)


def targets_record_name(settings, target: str) -> str:
    return f"{settings.cluster_label}:cilium_day2_{target}_targets:count"


def absent_rules(catalog: Catalog, extra: Sequence[str]) -> List[dict]:
    """Alerts for components whose scrape targets vanished from a cluster.

    A component is missing from a cluster when the cluster's other Cilium targets are scraped
    (agents without an operator, an operator or Hubble without agents) or when it was scraped
    within ABSENT_LOOKBACK, and it has no `up` series now. Hubble metrics are optional in
    Cilium, so only their disappearance counts. A Prometheus that scrapes no agent or operator
    at all (one Prometheus per cluster) is caught by `absent()`. Each component's `up` is
    selected by its job and its `*_selector` setting, so another pod of a shared job (every
    annotated pod under `kubernetes-pods`) never stands in for it.
    """
    s = catalog.settings
    c = s.cluster_label
    prom = PromQL(s, extra=list(extra))
    up_signals = {sig.query.expr.target: sig for sig in catalog.enabled() if isinstance(sig.query.expr, Up)}
    if not up_signals:
        return []
    scope = ", ".join(extra)
    ref = f"{{{scope}}}" if scope else ""
    rules, present = [], {}
    for target in ("agent", "operator", "hubble"):
        rules.append({"record": targets_record_name(s, target), "expr": f"count by ({c}) ({prom.up_selector(target)})"})
        present[target] = targets_record_name(s, target) + ref
    evidence = {"agent": ["operator", "hubble"], "operator": ["agent"], "hubble": []}
    for target, sig in up_signals.items():
        seen = [present[other] for other in evidence[target]]
        seen.append(f"max_over_time({present[target]}[{ABSENT_LOOKBACK}])")
        expr = f"({' or '.join(seen)}) unless on ({c}) {present[target]}"
        if target != "hubble":
            # `or on ()`: only when nothing above matched, so no cluster gets a second alert.
            expr = f"{expr} or on () absent({prom.up_selector(target)})"
        severity, _ = sig.thresholds()[-1]
        rules.append({
            "alert": absent_alert_name(sig),
            "expr": expr,
            "for": format_duration(sig.hold) if sig.hold else None,
            "keep_firing_for": None,
            "labels": {**dict(s.alert_labels), "severity": severity, "area": sig.area, "signal": sig.id},
            "annotations": absent_annotations(sig, s),
        })
    return rules


def _pack(units: List[List[dict]], scope: str, limit: int, where: str, ignore: Sequence[str] = ()) -> List[List[dict]]:
    """Consecutive units (a signal's rules) into groups of at most `limit` rules, counting the
    recordings each group hoists. A unit is never split: its alerts read its recordings, which
    must be evaluated just before them in the same group."""
    chunks, current = [], []
    for unit in units:
        size = len(hoist_shared(unit, scope, ignore))
        if size > limit:
            raise UserError(
                f"settings.max_rules_per_group: {limit} is below the {size} rules of {where} that must share one "
                f"group (a recording and the alerts reading it); use at least {size}"
            )
        if current and len(hoist_shared(current + unit, scope, ignore)) > limit:
            chunks.append(current)
            current = []
        current = current + unit
    if current:
        chunks.append(current)
    return chunks


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def prometheus_groups(catalog: Catalog) -> List[dict]:
    """Rule groups, one per area and evaluation interval (`Settings.rule_intervals`: a group
    holds signals of one pace, named `cilium-day2-<area>-<interval>`, numbered parts when it
    exceeds max_rules_per_group); with `settings.shard_by_cluster`, one set per cluster, each
    selecting only its cluster's series (for central rulers that spread groups over replicas)."""
    settings = catalog.settings
    groups = []
    ignore = [m for target in ("agent", "operator", "hubble") for m in settings.selector(target)]
    up_signals = [s for s in catalog.enabled() if isinstance(s.query.expr, Up)]
    for shard in settings.shard_by_cluster or (None,):
        scope = f"{settings.cluster_label}={quote(shard)}" if shard else ""
        prom = PromQL(settings, extra=[scope] if scope else [])
        suffix = "-" + _slug(shard) if shard else ""
        paced = []
        for area, signals in catalog.by_area():
            for interval in sorted({rule_interval(s, settings) for s in signals}):
                units = [_signal_rules(s, prom, scope, settings) for s in signals if rule_interval(s, settings) == interval]
                paced.append((area.id, interval, units))
        targets = absent_rules(catalog, [scope] if scope else [])
        if targets:
            paced.append((TARGETS_GROUP, min(rule_interval(s, settings) for s in up_signals), [targets]))
        for area_id, interval, units in paced:
            every = format_duration(interval)
            chunks = _pack(units, scope, settings.max_rules_per_group, f"area {area_id} (every {every})", ignore)
            for i, rules in enumerate(chunks, start=1):
                rules = hoist_shared(rules, scope, ignore)
                if shard:
                    # The copies differ only by their selectors; a static cluster label (the value
                    # the series carry anyway) keeps them distinct for `promtool check rules`.
                    rules = [{**r, "labels": {settings.cluster_label: shard, **r.get("labels", {})}} for r in rules]
                part = f"-{i}" if len(chunks) > 1 else ""
                groups.append({"name": f"cilium-day2-{area_id.replace('_', '-')}-{every}{part}{suffix}",
                               "interval": every, "rules": rules})
    return groups


# `sum by (cluster, action) (rate(family{matchers}[5m]))` and the like: an aggregation over one
# range function of one selector, the leaves every compiled query is built from.
LEAF_RE = re.compile(
    r"(sum|max|min) by \(([^)]*)\) \((?P<copy>max without \([^)]*\) \()?"
    r"(rate|increase|changes|delta|max_over_time|min_over_time|avg_over_time)"
    r"\(([a-zA-Z_][a-zA-Z0-9_]*)(?:\{([^}]*)\})?\[(\w+)\]\)(?(copy)\))\)"
)
_EQ_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"\s*$')


def _leaf_record_name(match, ignore: Sequence[str] = ()) -> Optional[str]:
    """`level:metric:operation` for a leaf, or None when its matchers cannot be named plainly.
    The shard's own matcher and the components' selectors (`ignore`) are not part of the name."""
    agg, by, _copy, fn, family, matchers, window = match.groups()
    suffix = []
    for part in (matchers.split(",") if matchers else []):
        if part.strip() in ignore:
            continue
        m = _EQ_MATCHER_RE.match(part)
        if not m:
            return None
        suffix.append(re.sub(r"[^a-z0-9]+", "_", m.group(2).lower()).strip("_"))
    level = "_".join(label.strip() for label in by.split(","))
    metric = "_".join([family] + [x for x in suffix if x])
    op = f"{fn}{window}" if agg == "sum" else f"{agg}_{fn}{window}"
    return f"{level}:{metric}:{op}"


def hoist_shared(rules: List[dict], scope: str = "", ignore: Sequence[str] = ()) -> List[dict]:
    """Record each leaf that several rules of a group read, once, ahead of them.

    Quantile alerts share their `_count` rate between the warning and the critical rule and
    with error ratios over the same histogram; an outlier reads its per-node value twice. On a
    large fleet every raw series a cycle selects costs Prometheus microseconds, so reading each
    once is a direct saving. Rules in a group run in order, so the recordings are fresh.
    """
    counts: Dict[str, int] = {}
    names: Dict[str, str] = {}
    for rule in rules:
        for m in LEAF_RE.finditer(rule["expr"]):
            counts[m.group(0)] = counts.get(m.group(0), 0) + 1
            names.setdefault(m.group(0), _leaf_record_name(m, [scope, *ignore] if scope else ignore))
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


# --- Alertmanager ---------------------------------------------------------------------------------


def alertmanager_config(catalog: Catalog) -> dict:
    """A complete Alertmanager configuration for the pack's alerts.

    Notifications are grouped per cluster, area and alert, critical and warning alerts go to
    their own receivers, and a warning is inhibited only by the critical alert of the same
    signal with the same label set (every label the signal is grouped by): a critical for one
    subnet, reason or node never hides the warning of another.
    """
    s = catalog.settings
    signals = catalog.enabled()
    ids = "|".join(sig.id for sig in signals)
    inhibit = []
    for sig in signals:
        if len(sig.thresholds()) < 2:
            continue
        inhibit.append({
            "source_matchers": [f'signal="{sig.id}"', 'severity="critical"'],
            "target_matchers": [f'signal="{sig.id}"', 'severity="warning"'],
            "equal": [s.prom_label(g) for g in sig.group_by],
        })
    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname", s.cluster_label],
            "routes": [{
                "receiver": "cilium-day2-warning",
                "matchers": [f'signal=~"{ids}"'],
                "group_by": [s.cluster_label, "area", "alertname"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
                "routes": [
                    {"receiver": "cilium-day2-critical", "matchers": ['severity="critical"'], "repeat_interval": "1h"},
                    {"receiver": "cilium-day2-warning", "matchers": ['severity="warning"']},
                ],
            }],
        },
        "receivers": [
            {"name": "default"},
            {"name": "cilium-day2-critical",
             "webhook_configs": [{"url": "http://127.0.0.1:9099/cilium-day2/critical", "send_resolved": True}]},
            {"name": "cilium-day2-warning",
             "webhook_configs": [{"url": "http://127.0.0.1:9099/cilium-day2/warning", "send_resolved": True}]},
        ],
        "inhibit_rules": inhibit,
    }


ALERTMANAGER_HEADER = """\
# Generated by `cilium-day2 render` from the cilium-day2 signal catalog.
# A complete Alertmanager configuration for the cilium-day2 alerts: check it with
#   amtool check-config alertmanager.yml
# Point the two webhook receivers at your own (or replace them with PagerDuty, Slack, ...
# configurations); docs/prometheus-stacks.md shows how to merge the route and the inhibit
# rules into an existing configuration.
"""


# --- files ----------------------------------------------------------------------------------------


def cluster_rules_file(shard: str) -> str:
    """Per-cluster rule file of a sharded render, for one ruler tenant each (`mimirtool rules sync`)."""
    return f"{CLUSTER_RULES_DIR}/{kubernetes.k8s_name_part(shard)}.rules.yml"


def render(catalog: Catalog) -> Dict[str, str]:
    s = catalog.settings
    labels = {**kubernetes.PACK_LABELS, "role": "alert-rules", **dict(s.rule_labels)}
    rules_template = env.get_template("prometheus_rules.yml.j2")
    shards = list(s.shard_by_cluster) or [None]
    if s.shard_by_cluster:
        # Each cluster's groups on their own; together, in order, they are the sharded render.
        per_shard = {shard: prometheus_groups(Catalog(dataclasses.replace(s, shard_by_cluster=(shard,)),
                                                      catalog.areas, catalog.signals)) for shard in shards}
    else:
        per_shard = {None: prometheus_groups(catalog)}
    groups = [g for shard in shards for g in per_shard[shard]]
    objects = kubernetes.prometheusrule_objects(shards, per_shard.__getitem__, labels, s.rule_namespace)
    pack_routing = alertmanager_config(catalog)
    files = {
        RULES_FILE: rules_template.render(groups=groups),
        CRD_FILE: kubernetes.render_prometheusrules(CRD_FILE, objects, labels, s.rule_namespace),
        ALERTMANAGER_FILE: ALERTMANAGER_HEADER + yaml.safe_dump(pack_routing, sort_keys=False, width=1000),
    }
    for shard in s.shard_by_cluster:
        files[cluster_rules_file(shard)] = rules_template.render(groups=per_shard[shard])
    files.update(alertmanager_k8s.render(catalog, pack_routing))
    return files
