"""Query model -> Datadog metric queries and monitor queries.

Names come from the check's own maps (`cilium_day2.metrics`): counters are queried as their
`.count` monotonic counts, histograms as distributions (`p99:`) or their `.count`, and label
filters use the tag names the check submits (`RENAME_LABELS`). Tag values are normalized the
way Datadog stores them (lowercase, unsupported characters as `_`).

Datadog has no pending state (`for:`): aggregate functions are evaluated over `window + for`,
and instant values must hold for the whole `for` (`min(last_<for>)` above a threshold).
"""

from __future__ import annotations

import re
from typing import List, Sequence, Tuple

from ..catalog import Settings, Signal
from ..metrics import COMPONENT_MAPS, HISTOGRAM, RENAME_LABELS, metric_type
from ..catalog.query import (
    Changes, Delta, Distinct, Increase, Match, Outlier, Quantile, Rate, Ratio, Selector, Up, Value,
)

NAMESPACE = "cilium_day2"
_FAMILY_TO_DD = {family: dd for mapping in COMPONENT_MAPS.values() for family, dd in mapping.items()}


class Unsupported(Exception):
    """The query cannot be expressed as one Datadog monitor (the reason is the message)."""


def dd_window(seconds: int) -> str:
    seconds = max(seconds, 60)
    if seconds % 86400 == 0 and seconds >= 86400:
        return f"last_{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"last_{seconds // 3600}h"
    return f"last_{max(1, round(seconds / 60))}m"


def normalize_tag_value(value: str) -> str:
    """How Datadog stores a tag value: lowercase, runs of unsupported characters as one `_`."""
    value = value.lower()
    value = re.sub(r"[^a-z0-9_:./\-*]+", "_", value)
    value = re.sub(r"_+", "_", value).strip("_")
    return value


def tag_name(label: str) -> str:
    return RENAME_LABELS.get(label, label)


def resolve(family: str) -> Tuple[str, str]:
    """(Prometheus family as mapped by the check, suffix) for a possibly suffixed name."""
    if family in _FAMILY_TO_DD:
        return family, ""
    for suffix in ("_count", "_sum", "_bucket"):
        if family.endswith(suffix) and family[: -len(suffix)] in _FAMILY_TO_DD:
            return family[: -len(suffix)], suffix
    raise KeyError(family)


def metric_name(family: str, kind: str = "value") -> str:
    """The submitted Datadog metric for a family read as `kind` (value|count|distribution)."""
    base_family, suffix = resolve(family)
    base = f"{NAMESPACE}.{_FAMILY_TO_DD[base_family]}"
    ptype = metric_type(base_family)
    if ptype == HISTOGRAM:
        if suffix == "_count":
            return base + ".count"
        if suffix == "_sum":
            return base + ".sum"
        return base  # the distribution
    if ptype == "counter":
        return base + ".count"
    return base


class DatadogQuery:
    def __init__(self, settings: Settings, scope: Sequence[str] = ()):
        """`scope`: extra filters (e.g. dashboard template variables `$cluster`)."""
        self.s = settings
        self.scope = list(scope)

    def tags(self, logical: Sequence[str]) -> List[str]:
        return [self.s.dd_tag(label) for label in logical]

    def by(self, logical: Sequence[str]) -> str:
        return " by {" + ",".join(self.tags(logical)) + "}" if logical else ""

    def filters(self, sel: Selector) -> str:
        parts = []
        for m in sel.match:
            parts.append(self._match(m))
        parts += self.scope
        return "{" + " AND ".join(parts) + "}" if parts else "{*}"

    @staticmethod
    def _match(m: Match) -> str:
        tag = tag_name(m.label)
        values = [normalize_tag_value(v) for v in m.values]
        if m.op == "not_in":
            return " AND ".join(f"!{tag}:{v}" for v in values)
        if len(values) == 1:
            return f"{tag}:{values[0]}"
        return "(" + " OR ".join(f"{tag}:{v}" for v in values) + ")"

    def family(self, sel: Selector) -> str:
        families = sel.families((self.s.datadog_cloud_api,))
        return families[0]

    # -- series expressions (no time aggregation): used by monitors and dashboards ---------
    def series(self, node, group: Sequence[str]) -> str:
        by = self.by(group)
        if isinstance(node, Value):
            if node.over_time:
                # Datadog has no per-series *_over_time; the monitor's time aggregation covers it.
                pass
            return f"{node.agg}:{metric_name(self.family(node.selector))}{self.filters(node.selector)}{by}"
        if isinstance(node, Rate):
            return f"sum:{metric_name(self.family(node.selector))}{self.filters(node.selector)}{by}.as_rate()"
        if isinstance(node, Increase):
            return f"sum:{metric_name(self.family(node.selector))}{self.filters(node.selector)}{by}.as_count()"
        if isinstance(node, Delta):
            return f"{node.agg}:{metric_name(self.family(node.selector))}{self.filters(node.selector)}{by}"
        if isinstance(node, Changes):
            inner = f"max:{metric_name(self.family(node.selector))}{self.filters(node.selector)}{by}"
            return f"clamp_max(diff({inner}), 1)"
        if isinstance(node, Quantile):
            pct = f"p{node.q * 100:g}".replace(".", "")
            return f"{pct}:{metric_name(self.family(node.selector))}{self.filters(node.selector)}{by}"
        if isinstance(node, Ratio):
            num = self.series(node.num, group)
            if isinstance(node.den, float):
                return f"{num} / {node.den:g}"
            den = self.series(node.den, group)
            if node.min_den is not None:
                den = f"clamp_min({den}, {node.min_den:g})"
            return f"{num} / {den}"
        if isinstance(node, Outlier):
            return self.series(node.of, group)
        if isinstance(node, Distinct):
            return f"count:{metric_name(self.family(node.selector))}{self.filters(node.selector)}{self.by(list(group) + [node.label])}"
        raise Unsupported(f"`{node.fn}` has no Datadog metric query")

    # -- monitors ----------------------------------------------------------------------------
    def monitor(self, signal: Signal) -> Tuple[str, str]:
        """(monitor type, query with the critical threshold) for one signal."""
        node = signal.query.expr
        threshold = signal.critical if signal.critical is not None else signal.warning
        total = dd_window(signal.window + signal.hold)
        if isinstance(node, Up):
            return self.service_check(node.target, signal)
        if isinstance(node, Distinct):
            raise Unsupported(
                "a Datadog monitor cannot count distinct tag values per group (here: Cilium versions per "
                "cluster); the dashboard shows versions per cluster instead"
            )
        if isinstance(node, Outlier):
            dd = dict(node.datadog)
            inner = self.series(node.of, signal.group_by)
            query = (
                f"avg({dd_window(signal.window)}):outliers({inner}, '{dd['algorithm']}', "
                f"{float(dd['tolerance']):g}, {float(dd['pct']):g}) > 0"
            )
            return "query alert", query
        series = self.series(node, signal.group_by)
        if isinstance(node, Delta):
            time_agg = f"change(avg(last_5m),{dd_window(signal.window)})"
        elif isinstance(node, Quantile):
            time_agg = f"percentile({total})"
        elif isinstance(node, (Increase, Changes)):
            time_agg = f"sum({total})"
        elif isinstance(node, Rate):
            time_agg = f"avg({total})"
        elif isinstance(node, Ratio) and isinstance(node.num, (Rate, Increase)):
            # Ratio of counters: sum both sides over the window, then divide.
            num = self.series(node.num, signal.group_by).replace(".as_rate()", ".as_count()")
            den = self.series(node.den, signal.group_by).replace(".as_rate()", ".as_count()")
            series = f"{num} / {den}"
            time_agg = f"sum({total})"
        else:  # instant values (and ratios of values): must hold for the whole `for`
            if signal.hold:
                time_agg = f"{'min' if signal.comparison == '>' else 'max'}({dd_window(signal.hold)})"
            else:
                time_agg = f"avg({dd_window(signal.window)})"
        return "query alert", f"{time_agg}:{series} {signal.comparison} {threshold:g}"

    def service_check(self, target: str, signal: Signal) -> Tuple[str, str]:
        runs = max(1, min(20, signal.hold // self.s.datadog_check_interval))
        tags = ",".join(f'"{t}"' for t in self.tags(signal.group_by))
        check = f"{NAMESPACE}.{target}.openmetrics.health"
        return "service check", f'"{check}".over("*").by({tags}).last({runs + 1}).count_by_status()'

    def service_check_runs(self, signal: Signal) -> int:
        return max(1, min(20, signal.hold // self.s.datadog_check_interval))
