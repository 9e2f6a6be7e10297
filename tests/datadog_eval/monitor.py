"""Evaluating one Datadog monitor on a `Store` at one time: a state per group, and overall.

The semantics of each construct, with the Datadog documentation page it follows, are in
docs/datadog-monitor-semantics.md; this module is their implementation, nothing more.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .query import (
    BinOp, Func, Metric, MetricMonitor, Number, ServiceCheckMonitor, UnknownConstruct, parse_monitor,
    parse_service_check,
)
from .store import COUNT, Store

OK, WARN, ALERT, NO_DATA = "OK", "WARN", "ALERT", "NO DATA"
RANK = {OK: 0, NO_DATA: 1, WARN: 2, ALERT: 3}
# Normalizes a MAD to the standard deviation of a normal distribution (Datadog's MAD outliers).
MAD_TO_SIGMA = 1.4826
Group = Tuple[Tuple[str, str], ...]  # ((tag key, value), ...) in `by` order
Series = Dict[float, Tuple[float, float]]  # t -> (value, span)

# Monitor options the evaluator applies; any other option that changes evaluation fails.
KNOWN_OPTIONS = {
    "thresholds", "notify_no_data", "no_data_timeframe", "require_full_window", "evaluation_delay",
    # notification and bookkeeping only
    "notify_audit", "include_tags", "new_group_delay", "new_host_delay", "renotify_interval",
    "escalation_message", "silenced", "timeout_h", "priority",
}


@dataclass
class Result:
    state: str
    groups: Dict[Group, Tuple[str, Optional[float]]]  # group -> (state, value)


def evaluate(definition: dict, store: Store, now: float) -> Result:
    """`definition`: a monitor's `definition` (type, query, options); `now`: evaluation time."""
    options = definition.get("options") or {}
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise UnknownConstruct(f"monitor options {sorted(unknown)}")
    kind = definition["type"]
    if kind == "service check":
        return _service_check(parse_service_check(definition["query"]), options, store, now)
    if kind in ("query alert", "metric alert"):
        return _metric_monitor(parse_monitor(definition["query"]), options, store, now)
    raise UnknownConstruct(f"monitor type {kind!r}")


# -- service checks --------------------------------------------------------------------------
def _service_check(mon: ServiceCheckMonitor, options: dict, store: Store, now: float) -> Result:
    if mon.over not in ((), ("*",)):
        raise UnknownConstruct(f"service check scope {mon.over}")
    thresholds = options.get("thresholds") or {}
    need = {state: int(thresholds[key]) for state, key in ((ALERT, "critical"), (WARN, "warning"), (OK, "ok")) if key in thresholds}
    if max(need.values()) > mon.last:
        raise UnknownConstruct(f".last({mon.last}) is shorter than a threshold {need}")
    statuses: Dict[Group, List] = defaultdict(list)
    for tags, runs in store.service_checks.get(mon.check, {}).items():
        group = _group_of(tags, mon.by)
        if group is None:
            continue
        statuses[group].extend(s for s in runs if s.t <= now)
    groups = {}
    no_data = _no_data_seconds(options)
    for group, runs in statuses.items():
        runs.sort(key=lambda s: s.t)
        if no_data is not None and (not runs or runs[-1].t < now - no_data):
            groups[group] = (NO_DATA, None)
            continue
        state = OK
        # Walk the runs in time: a state changes when its number of consecutive statuses is met.
        for i in range(len(runs)):
            recent = [s.status for s in runs[max(0, i + 1 - mon.last): i + 1]]
            if ALERT in need and _tail(recent, need[ALERT], {2}):
                state = ALERT
            elif WARN in need and _tail(recent, need[WARN], {1, 2}):
                state = WARN
            elif _tail(recent, need.get(OK, 1), {0}):
                state = OK
        groups[group] = (state, None)
    return _result(groups)


def _tail(statuses, n, accepted) -> bool:
    return len(statuses) >= n and all(s in accepted for s in statuses[-n:])


# -- metric monitors -------------------------------------------------------------------------
def _metric_monitor(mon: MetricMonitor, options: dict, store: Store, now: float) -> Result:
    thresholds = options.get("thresholds") or {}
    if "critical" not in thresholds or float(thresholds["critical"]) != mon.threshold:
        raise UnknownConstruct(f"query threshold {mon.threshold} differs from options.thresholds {thresholds}")
    end = now - float(options.get("evaluation_delay") or 0)
    full = bool(options.get("require_full_window"))
    values = _monitor_values(mon, store, end, full)
    groups = {}
    for group, value in values.items():
        if value is None:
            groups[group] = (OK, None)
            continue
        state = OK
        if _crosses(value, mon.comparator, float(thresholds["critical"])):
            state = ALERT
        elif thresholds.get("warning") is not None and _crosses(value, mon.comparator, float(thresholds["warning"])):
            state = WARN
        groups[group] = (state, value)
    no_data = _no_data_seconds(options)
    if no_data is not None:
        for group, last_seen in _last_seen(mon.expr, store).items():
            if last_seen < end - no_data:
                groups[group] = (NO_DATA, None)
    return _result(groups)


def _crosses(value, comparator, threshold) -> bool:
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[comparator]


def _no_data_seconds(options) -> Optional[float]:
    if not options.get("notify_no_data"):
        return None
    minutes = options.get("no_data_timeframe")
    if minutes is None:
        raise UnknownConstruct("notify_no_data without no_data_timeframe")
    return float(minutes) * 60.0


def _monitor_values(mon: MetricMonitor, store: Store, end: float, full: bool) -> Dict[Group, Optional[float]]:
    expr = mon.expr
    if isinstance(expr, Func) and expr.name == "outliers":
        if mon.time_agg != "avg" or mon.comparator != ">" or mon.threshold != 0 or mon.change_shift:
            raise UnknownConstruct("outliers() outside `avg(window):outliers(...) > 0`")
        return _outliers(expr, store, end - mon.window, end, full)
    if mon.time_agg == "percentile":
        if not isinstance(expr, Metric) or expr.percentile is None:
            raise UnknownConstruct("percentile() time aggregation over anything but one pNN: distribution query")
        return _percentile(expr, store, end - mon.window, end, full)
    if mon.change_shift is not None:
        now_values = _aggregate(mon.time_agg, expr, store, end - mon.window, end, full)
        before_end = end - mon.change_shift
        then_values = _aggregate(mon.time_agg, expr, store, before_end - mon.window, before_end, full)
        return {
            g: (v - then_values[g]) if v is not None and then_values.get(g) is not None else None
            for g, v in now_values.items()
        }
    return _aggregate(mon.time_agg, expr, store, end - mon.window, end, full)


def _aggregate(time_agg, expr, store, start, end, full) -> Dict[Group, Optional[float]]:
    if _has_arithmetic(expr) and _has_as_count(expr):
        # as_count evaluation path: time aggregation on each query, then the arithmetic.
        if time_agg != "sum":
            raise UnknownConstruct(f"{time_agg}() over arithmetic with .as_count()")
        return _reduce_then_combine(expr, store, start, end, full)
    series = _series(expr, store, start, end)
    out = {}
    for group, points in series.items():
        window = {t: vs for t, vs in points.items() if start < t <= end}
        if full and not _covers(window, start):
            out[group] = None
            continue
        out[group] = _reduce(time_agg, window)
    return out


def _covers(points, start) -> bool:
    if not points:
        return False
    first = min(points)
    return first - points[first][1] <= start + 1e-9


def _reduce(time_agg, points) -> Optional[float]:
    if not points:
        return None
    values = [v for v, _ in points.values()]
    if time_agg == "sum":
        return sum(values)
    if time_agg == "min":
        return min(values)
    if time_agg == "max":
        return max(values)
    if time_agg == "avg":
        spans = [s for _, s in points.values()]
        if all(s > 0 for s in spans):
            return sum(v * s for v, s in points.values()) / sum(spans)
        return sum(values) / len(values)
    raise UnknownConstruct(f"time aggregator {time_agg}()")


def _reduce_then_combine(expr, store, start, end, full):
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Metric):
        if expr.modifier != "as_count":
            raise UnknownConstruct("a query without .as_count() on the as_count evaluation path")
        return _aggregate("sum", expr, store, start, end, full)
    if isinstance(expr, Func) and expr.name in ("clamp_min", "clamp_max"):
        inner = _reduce_then_combine(expr.arg, store, start, end, full)
        return _map(inner, lambda v: _clamp(expr.name, v, expr.params[0]))
    if isinstance(expr, BinOp):
        left = _reduce_then_combine(expr.left, store, start, end, full)
        right = _reduce_then_combine(expr.right, store, start, end, full)
        return _combine_values(expr.op, left, right)
    raise UnknownConstruct(f"{type(expr).__name__} on the as_count evaluation path")


def _map(values, fn):
    if isinstance(values, float):
        return fn(values)
    return {g: (fn(v) if v is not None else None) for g, v in values.items()}


def _combine_values(op, left, right):
    if isinstance(left, float) and isinstance(right, float):
        return _arith(op, left, right)
    if isinstance(right, float):
        return {g: (_arith(op, v, right) if v is not None else None) for g, v in left.items()}
    if isinstance(left, float):
        return {g: (_arith(op, left, v) if v is not None else None) for g, v in right.items()}
    return {
        g: (_arith(op, v, right[g]) if v is not None and right.get(g) is not None else None)
        for g, v in left.items()
        if g in right
    }


def _arith(op, a, b) -> Optional[float]:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b if b != 0 else None
    raise UnknownConstruct(f"operator {op}")


def _clamp(name, value, bound):
    return max(value, bound) if name == "clamp_min" else min(value, bound)


def _has_arithmetic(expr) -> bool:
    if isinstance(expr, BinOp):
        return True
    if isinstance(expr, Func):
        return _has_arithmetic(expr.arg)
    return False


def _has_as_count(expr) -> bool:
    if isinstance(expr, Metric):
        return expr.modifier == "as_count"
    if isinstance(expr, Func):
        return _has_as_count(expr.arg)
    if isinstance(expr, BinOp):
        return _has_as_count(expr.left) or _has_as_count(expr.right)
    return False


# -- series ----------------------------------------------------------------------------------
def _group_of(tags, by) -> Optional[Group]:
    """The group of a context: its value of each `by` tag; None when it lacks one."""
    if not by:
        return ()
    out = []
    for key in by:
        prefix = key + ":"
        values = sorted(tag[len(prefix):] for tag in tags if tag.startswith(prefix))
        if not values:
            return None
        out.append((key, values[0]))
    return tuple(out)


def _series(expr, store: Store, start: float, end: float):
    """{group: {t: (value, span)}} of an expression (or a float for a number)."""
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Metric):
        return _metric_series(expr, store)
    if isinstance(expr, Func):
        inner = _series(expr.arg, store, start, end)
        if isinstance(inner, float):
            raise UnknownConstruct(f"{expr.name}() of a number")
        if expr.name == "diff":
            out = {}
            for group, points in inner.items():
                times = sorted(points)
                out[group] = {b: (points[b][0] - points[a][0], points[b][1]) for a, b in zip(times, times[1:])}
            return out
        if expr.name in ("clamp_min", "clamp_max"):
            bound = float(expr.params[0])
            return {g: {t: (_clamp(expr.name, v, bound), s) for t, (v, s) in pts.items()} for g, pts in inner.items()}
        raise UnknownConstruct(f"{expr.name}() inside another expression")
    if isinstance(expr, BinOp):
        left = _series(expr.left, store, start, end)
        right = _series(expr.right, store, start, end)
        return _combine_series(expr.op, left, right)
    raise UnknownConstruct(type(expr).__name__)


def _combine_series(op, left, right):
    if isinstance(left, float) and isinstance(right, float):
        return _arith(op, left, right)
    if isinstance(right, float):
        return {g: _drop_none({t: (_arith(op, v, right), s) for t, (v, s) in pts.items()}) for g, pts in left.items()}
    if isinstance(left, float):
        return {g: _drop_none({t: (_arith(op, left, v), s) for t, (v, s) in pts.items()}) for g, pts in right.items()}
    out = {}
    for group, pts in left.items():
        other = right.get(group)
        if other is None:
            continue
        out[group] = _drop_none({t: (_arith(op, v, other[t][0]), s) for t, (v, s) in pts.items() if t in other})
    return out


def _drop_none(points):
    return {t: (v, s) for t, (v, s) in points.items() if v is not None}


def _metric_series(m: Metric, store: Store):
    if m.percentile is not None:
        raise UnknownConstruct(f"{m.space}: outside a percentile() monitor")
    contexts = [c for c in store.contexts.get(m.name, {}).values() if m.filter.matches(c.tags)]
    if store.distributions.get(m.name):
        raise UnknownConstruct(f"{m.name} is a distribution; query it with pNN: and percentile()")
    by_group = defaultdict(list)
    for context in contexts:
        group = _group_of(context.tags, m.by)
        if group is not None:
            by_group[group].append(context)
    out = {}
    for group, members in by_group.items():
        kinds = {c.kind for c in members}
        if kinds == {COUNT} and m.modifier is None:
            raise UnknownConstruct(f"{m.name} is a count: add .as_count() or .as_rate()")
        if kinds != {COUNT} and m.modifier is not None:
            raise UnknownConstruct(f".{m.modifier}() on {m.name}, which is not a count")
        at = defaultdict(list)
        for context in members:
            for p in context.points:
                value = p.value
                if m.modifier == "as_rate":
                    if p.span <= 0:
                        continue
                    value = p.value / p.span
                at[p.t].append((value, p.span))
        out[group] = {t: (_space(m.space, [v for v, _ in vs]), max(s for _, s in vs)) for t, vs in at.items()}
    return out


def _space(agg, values):
    if agg == "sum":
        return sum(values)
    if agg == "avg":
        return sum(values) / len(values)
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    raise UnknownConstruct(f"space aggregator {agg}")


def _last_seen(expr, store: Store) -> Dict[Group, float]:
    """Latest point time of every group an expression's queries report (for no-data)."""
    out: Dict[Group, float] = {}
    for m in _metrics_in(expr):
        for context in store.contexts.get(m.name, {}).values():
            if not m.filter.matches(context.tags) or not context.points:
                continue
            group = _group_of(context.tags, m.by)
            if group is not None:
                out[group] = max(out.get(group, -math.inf), context.points[-1].t)
    return out


def _metrics_in(expr):
    if isinstance(expr, Metric):
        yield expr
    elif isinstance(expr, Func):
        yield from _metrics_in(expr.arg)
    elif isinstance(expr, BinOp):
        yield from _metrics_in(expr.left)
        yield from _metrics_in(expr.right)


# -- distributions ---------------------------------------------------------------------------
def _percentile(m: Metric, store: Store, start, end, full) -> Dict[Group, Optional[float]]:
    if m.modifier is not None:
        raise UnknownConstruct(f".{m.modifier}() on a distribution")
    merged: Dict[Group, Dict[Tuple[float, float], float]] = defaultdict(lambda: defaultdict(float))
    for dist in store.distributions.get(m.name, {}).values():
        if not m.filter.matches(dist.tags):
            continue
        group = _group_of(dist.tags, m.by)
        if group is None:
            continue
        for t, lower, upper, count in dist.buckets:
            if start < t <= end:
                merged[group][(lower, upper)] += count
        merged[group]  # a group seen outside the window still exists (no value)
    return {group: quantile(buckets, m.percentile) for group, buckets in merged.items()}


def quantile(buckets: Dict[Tuple[float, float], float], q: float) -> Optional[float]:
    """The q-quantile of values spread evenly over each (lower, upper) bucket."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for (lower, upper), count in sorted(buckets.items()):
        if count <= 0:
            continue
        if seen + count >= rank:
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return max(upper for (_, upper) in buckets)


# -- outliers --------------------------------------------------------------------------------
def _outliers(func: Func, store: Store, start, end, full) -> Dict[Group, Optional[float]]:
    """MAD over every point of every group in the window: a point is an outlier when it is more
    than tolerance x 1.4826 x MAD from the median of all points; a group is an outlier when more
    than pct% of its points are. 1 for an outlier group, 0 otherwise."""
    _, tolerance, pct = func.params
    series = _series(func.arg, store, start, end)
    if isinstance(series, float):
        raise UnknownConstruct("outliers() of a number")
    window = {g: [v for t, (v, _) in pts.items() if start < t <= end] for g, pts in series.items()}
    everything = [v for values in window.values() for v in values]
    present = [g for g, values in window.items() if values]
    out: Dict[Group, Optional[float]] = {g: None for g in window}
    if len(present) < 3:
        return out  # an outlier needs peers: Datadog asks for three or more groups
    median = _median(everything)
    limit = float(tolerance) * MAD_TO_SIGMA * _median([abs(v - median) for v in everything])
    for g in present:
        flagged = sum(1 for v in window[g] if abs(v - median) > limit)
        out[g] = 1.0 if 100.0 * flagged / len(window[g]) > float(pct) else 0.0
    return out


def _median(values):
    values = sorted(values)
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2.0


def _result(groups) -> Result:
    state = max((s for s, _ in groups.values()), key=RANK.get, default=OK)
    return Result(state, groups)
