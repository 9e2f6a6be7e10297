"""The signal reference (docs/signals.md) and the README's signals table."""

from __future__ import annotations

from typing import Dict

from .datadog_query import DatadogQuery, Unsupported
from .promql import PromQL, matcher
from ..catalog import Catalog, format_duration
from ..catalog.query import Up
from .prometheus import ABSENT_EVIDENCE, absent_alert_name
from .text import env, threshold_text

SIGNALS_DOC = "docs/signals.md"
README_BEGIN = "<!-- BEGIN signals table -->"
README_END = "<!-- END signals table -->"
CILIUM_SOURCE_URL = "https://github.com/cilium/cilium/blob/main/"
SCOPE_TEXT = {
    "node": "Per node: each agent reports its own view",
    "cluster": "Cluster-wide: one number for the whole cluster, from the leading operator",
}


def signals_table(catalog: Catalog) -> str:
    prom = PromQL(catalog.settings)
    rows = ["| area | signal | warning | critical | window | for | per | enabled |",
            "|---|---|---|---|---|---|---|---|"]
    for area, signals in catalog.by_area(enabled_only=False):
        for s in signals:
            rows.append(
                f"| {area.title} | [`{s.id}`]({SIGNALS_DOC}#{s.id}) {s.title} | {threshold_text(s, s.warning)} | "
                f"{threshold_text(s, s.critical)} | {format_duration(s.window)} | {format_duration(s.hold)} | "
                f"{', '.join(prom.labels(s.group_by))} | {'yes' if s.enabled else 'no'} |"
            )
    return "\n".join(rows)


def reads_text(s) -> str:
    """The `prometheus_reads` parts of a signal's selectors, as PromQL matcher sets."""
    parts = []
    for node in (s.query.expr, getattr(s.query.expr, "num", None), getattr(s.query.expr, "den", None)):
        selector = getattr(node, "selector", None)
        for subset in getattr(selector, "prometheus_reads", ()):
            parts.append("`{" + ", ".join(matcher(m) for m in subset) + "}`")
    return " or ".join(parts)


def render(catalog: Catalog) -> Dict[str, str]:
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
            sev = ", ".join(f"{sev} {threshold_text(s, thr)}" for sev, thr in s.thresholds())
            items.append({
                "id": s.id, "title": s.title, "component": s.component, "severity_text": sev,
                "window": format_duration(s.window), "hold": format_duration(s.hold),
                "keep_firing_for": format_duration(s.keep_firing_for) if s.keep_firing_for else "",
                "absent_alert": absent_alert_name(s) if isinstance(s.query.expr, Up) else "",
                "absent_when": ABSENT_EVIDENCE[s.query.expr.target] if isinstance(s.query.expr, Up) else "",
                "group_text": ", ".join(s.group_by), "enabled": s.enabled, "meaning": s.meaning,
                "runbook": s.runbook, "defaults_reason": s.defaults_reason or "—",
                "alert_name": s.alert_name, "promql": prom.expr(s), "datadog": dd_query, "datadog_reason": reason,
                "quantile_value": prom.quantile_value(s) if s.quantile else "",
                "prometheus_reads": reads_text(s),
                "unless_seen": prom.unless_seen(s).strip(),
                "q_percent": f"{100 * s.quantile.q:g}%" if s.quantile else "",
                "scope_text": SCOPE_TEXT[s.scope], "sources": s.source,
                "born_at_first_event": s.born_at_first_event,
            })
        areas.append((area, items))
    doc = env.get_template("signals.md.j2").render(table=signals_table(catalog).replace(f"({SIGNALS_DOC}#", "(#"),
                                                    areas=areas, source_url=CILIUM_SOURCE_URL)
    return {SIGNALS_DOC: "\n".join(line.rstrip() for line in doc.splitlines()).strip() + "\n"}


def update_readme(text: str, catalog: Catalog) -> str:
    if README_BEGIN not in text or README_END not in text:
        return text
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_BEGIN}\n{signals_table(catalog)}\n{README_END}{tail}"
