"""Query model -> PromQL.

Every aggregation is `by (...)` the signal's group labels, with the logical `cluster` and `node`
labels renamed to the configured Prometheus label names, so that one Prometheus or a
Thanos/Mimir ruler watching many clusters keeps them apart.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

from ..catalog import buckets
from ..catalog.buckets import le_forms
from ..catalog import Settings, Signal, format_duration
from ..catalog.query import (
    Changes, Delta, Distinct, Increase, Match, Outlier, Quantile, Rate, Ratio, Selector, Up, Value,
)

_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


def glob_to_regex(pattern: str) -> str:
    """A `*` wildcard pattern as an RE2 regex (Prometheus anchors it on both ends)."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch in _RE2_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def matcher(m: Match) -> str:
    if m.op == "eq" and "*" not in m.values[0]:
        return f"{m.label}={quote(m.values[0])}"
    regex = "|".join(glob_to_regex(v) for v in m.values)
    return f"{m.label}{'!~' if m.op == 'not_in' else '=~'}{quote(regex)}"


class PromQL:
    """Compiles a signal's query. `extra` matchers (raw PromQL, e.g. Grafana's
    `cluster=~"$cluster"`) are added to every selector; `node_extra` only to selectors of
    per-node components (agent, Hubble). Each component's own `*_selector` setting is added to
    the selectors of its signals and to its `up` selectors.

    Two facts of real Prometheus setups shape the leaves:

    * Series born at their first event (see `Selector.counts_from_birth`): `increase()` and
      `rate()` only see a series' growth after its first sample, so a failure counter born at 1
      would never count that failure. Such a leaf adds, for each series that did not exist one
      window ago, its current value (all of it happened since the series was born).
      A series that existed a window ago is read by `increase()`/`rate()` as before, counter
      resets included. (The current value, two instant reads: a series born and gone again
      within one window is not counted.)
    * HA pairs read without deduplication (`settings.replica_labels`): every series twice. Sums
      of counts and of gauges are taken over one copy (`max without (replica labels)`); maxima,
      minima, quantiles and ratios of two sums are the same with or without the copies.
    """

    def __init__(self, settings: Settings, extra: Sequence[str] = (), node_extra: Sequence[str] = (),
                 rate_window: Optional[str] = None):
        self.s = settings
        self.extra = list(extra)
        self.node_extra = list(node_extra)
        self.rate_window = rate_window

    # -- pieces --------------------------------------------------------------------------------
    def labels(self, logical: Sequence[str]) -> List[str]:
        return [self.s.prom_label(label) for label in logical]

    def by(self, logical: Sequence[str], extra: Sequence[str] = ()) -> str:
        return ", ".join(self.labels(logical) + list(extra))

    def component_matchers(self, component: str) -> List[str]:
        return list(self.s.selector(component))

    def selector(self, family: str, sel: Selector, component: str, subset: Sequence[Match] = ()) -> str:
        per_node = component in ("agent", "hubble")
        parts = ([matcher(m) for m in tuple(sel.match) + tuple(subset)] + self.extra
                 + (self.node_extra if per_node else []) + self.component_matchers(component))
        return f"{family}{{{', '.join(parts)}}}" if parts else family

    def read(self, family: str, sel: Selector, component: str, per_series) -> str:
        """`per_series(selector)` over the series Prometheus reads: the selector, or the union
        of its `prometheus_reads` parts (`or`: a series in two parts counts once)."""
        parts = [per_series(self.selector(family, sel, component, subset)) for subset in sel.prometheus_reads]
        if not parts:
            return per_series(self.selector(family, sel, component))
        return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"

    def _union(self, sel: Selector, build) -> str:
        exprs = [build(family) for family in sel.families(self.s.cloud_apis)]
        return exprs[0] if len(exprs) == 1 else "(" + " or ".join(exprs) + ")"

    def window(self, signal: Signal) -> str:
        return self.rate_window or format_duration(signal.window)

    def one_copy(self, inner: str, dedupe: bool) -> str:
        """`inner` over one copy of each series of an HA pair (when a sum would count both)."""
        if not dedupe or not self.s.replica_labels:
            return inner
        return f"max without ({', '.join(self.s.replica_labels)}) ({inner})"

    def counted(self, fn: str, sel: str, w: str, seconds: Optional[int], born: bool, component: str) -> str:
        """`rate`/`increase` of one selector, per series. With `born`, a series born inside the
        window counts from zero (its current value), not from its first sample, provided this
        component's targets in the cluster were already scraped a window ago: otherwise the
        series is new only to this Prometheus (first scrape, a Prometheus without history) and
        its value holds failures of any age."""
        plain = f"{fn}({sel}[{w}])"
        if not born or seconds is None:
            return plain
        c = self.s.cluster_label
        watched = f"group by ({c}) ({self.up_selector(component)} offset {w})"
        # The current value of a series absent a window ago: two instant reads, no range.
        since_birth = f"({sel} unless {sel} offset {w}) and on ({c}) {watched}"
        if fn == "rate":
            since_birth = f"({since_birth}) / {seconds}"
        return f"({plain} and {sel} offset {w}) or {since_birth}"

    # -- nodes ---------------------------------------------------------------------------------
    def compile(self, node, signal: Signal, group: Sequence[str], dedupe: bool = True,
                born: Optional[bool] = None) -> str:
        comp = signal.component
        w = self.window(signal)
        by = self.by(group)
        if isinstance(node, Value):
            def build(f):
                sel = self.selector(f, node.selector, comp)
                inner = f"{node.over_time}_over_time({sel}[{w}])" if node.over_time else sel
                return f"{node.agg} by ({by}) ({self.one_copy(inner, dedupe and node.agg == 'sum')})"
            return self._union(node.selector, build)
        if isinstance(node, (Rate, Increase)):
            fn = "rate" if isinstance(node, Rate) else "increase"
            seconds = self.window_seconds(signal)
            from_birth = node.selector.counts_from_birth() if born is None else born
            def build(f):
                inner = self.read(f, node.selector, comp, lambda sel: self.counted(fn, sel, w, seconds, from_birth, comp))
                return f"sum by ({by}) ({self.one_copy(inner, dedupe)})"
            return self._union(node.selector, build)
        if isinstance(node, Changes):
            return self._union(node.selector, lambda f: (
                f"sum by ({by}) ({self.one_copy(f'changes({self.selector(f, node.selector, comp)}[{w}])', dedupe)})"))
        if isinstance(node, Delta):
            return self._union(node.selector, lambda f: (
                f"{node.agg} by ({by}) ({self.one_copy(f'delta({self.selector(f, node.selector, comp)}[{w}])', dedupe and node.agg == 'sum')})"))
        if isinstance(node, Quantile):
            inner = self._union(
                node.selector,
                lambda f: f"sum by ({self.by(group, ['le'])}) (rate({self.selector(f + '_bucket', node.selector, comp)}[{w}]))",
            )
            return f"histogram_quantile({node.q:g}, {inner})"
        if isinstance(node, Distinct):
            return self._union(
                node.selector,
                lambda f: f"count by ({by}) (count by ({self.by(group, [node.label])}) ({self.selector(f, node.selector, comp)}))",
            )
        if isinstance(node, Up):
            return self.up(node.target, group)
        if isinstance(node, Ratio):
            # Both sides of a ratio count the copies of an HA pair alike: no deduplication
            # needed, unless a floor (`min_den`) compares the denominator with a number.
            # Both sides count growth after each series' first sample: a share of many events
            # does not turn on one birth value, counting birth values in the numerator only
            # would divide a new pod's first failures by a total missing its first successes,
            # and counting them on both sides would read the whole family twice more.
            inner_dedupe = dedupe and node.min_den is not None
            num = self.compile(node.num, signal, group, inner_dedupe, False)
            if isinstance(node.den, float):
                return f"{num} / {node.den:g}"
            den = self.compile(node.den, signal, group, inner_dedupe, False)
            if node.min_den is not None:
                return f"{num} / clamp_min({den}, {node.min_den:g})"
            return f"{num} / {den}"
        if isinstance(node, Outlier):
            # A node's value against its peers' median: copies scale both alike, except the
            # `min_value` floor.
            of = self.compile(node.of, signal, group, dedupe and bool(node.min_value), born)
            among = self.by(node.among)
            baseline = f"quantile by ({among}) (0.5, {of})"
            if node.min_baseline:
                baseline = f"clamp_min({baseline}, {node.min_baseline:g})"
            ratio = f"{of} / on ({among}) group_left () {baseline}"
            if node.min_value:
                return f"({ratio}) and on ({by}) ({of} >= {node.min_value:g})"
            return ratio
        raise TypeError(f"unknown query node {node!r}")

    def window_seconds(self, signal: Signal) -> Optional[int]:
        """The window in seconds; None for a dashboard's own window (a Grafana variable)."""
        return None if self.rate_window else signal.window

    def up_selector(self, target: str) -> str:
        """`up{job=~"<job>", <the component's selector>, <extra>}`."""
        parts = [f"job=~{quote(self.s.job(target))}"] + self.component_matchers(target) + self.extra
        if target in ("agent", "hubble"):
            parts += self.node_extra
        return f"up{{{', '.join(parts)}}}"

    def up(self, target: str, group: Sequence[str]) -> str:
        return f"max by ({self.by(group)}) ({self.up_selector(target)})"

    # -- signals -------------------------------------------------------------------------------
    def expr(self, signal: Signal) -> str:
        """The signal's value, one series per group (no threshold)."""
        return self.compile(signal.query.expr, signal, signal.group_by)

    def quantile_value(self, signal: Signal) -> str:
        """A quantile signal's value, read from the few buckets its alerts need.

        `histogram_quantile` over the buckets at the signal's thresholds, the last finite bound
        of each of Cilium's layouts of the family, and `+Inf`. At a threshold T (a bucket bound)
        the result is above T exactly when fewer than q of the observations fell at or below T,
        as with every bucket; above the highest threshold it is only a coarse estimate, but it
        stays above that threshold (the last bound is above every valid threshold). So one
        recorded series serves both severities, reading four or five series per label set
        instead of the whole histogram.
        """
        node = signal.quantile
        sel = node.selector
        forms = [f for _sev, t in signal.thresholds() for f in le_forms(t)]
        lasts = buckets.last_bounds((sel.metric,) + tuple(sel.also))
        forms += [f for b in lasts for f in buckets.le_forms(b)] + ["+Inf"]
        reduced = dataclasses.replace(sel, match=sel.match + (Match("le", "in", tuple(forms)),))
        comp = signal.component
        w = self.window(signal)
        inner = self._union(
            sel,
            lambda f: f"sum by ({self.by(signal.group_by, ['le'])}) (rate({self.selector(f + '_bucket', reduced, comp)}[{w}]))",
        )
        return f"histogram_quantile({node.q:g}, {inner})"

    def condition(self, value_expr: str, signal: Signal, threshold: float,
                  seen_record: Optional[str] = None) -> str:
        """The alert expression: the signal's recorded value `value_expr` against the threshold."""
        cond = f"{value_expr} {signal.comparison} {threshold:g}"
        if signal.query.only_if_up:
            group = self.by(signal.group_by)
            cond = f"({cond}) and on ({group}) ({self.up(signal.query.only_if_up, signal.group_by)} == 1)"
        seen = signal.query.only_if_seen
        if seen:
            on = self.by(seen.on)
            within = format_duration(seen.within)
            recent = (f"max_over_time({seen_record}[{within}])" if seen_record else
                      f"group by ({on}) ({self._present(seen, signal.component)})")
            cond = f"({cond}) and on ({on}) {recent}"
        return cond

    def unless_seen(self, signal: Signal) -> str:
        """The `unless on (...)` clause of a signal with `unless_seen` ('' without): the label
        sets where one of its families had a series within the lookback."""
        unless = signal.query.unless_seen
        if not unless:
            return ""
        on = self.by(unless.on)
        return f" unless on ({on}) group by ({on}) ({self._present(unless, signal.component)})"

    def _present(self, seen, component: str) -> str:
        """Whether any of `seen.metrics` had a series within `seen.within`, per series."""
        within = format_duration(seen.within)
        return " or ".join(f"present_over_time({self.selector(m, Selector(m), component)}[{within}])"
                           for m in seen.metrics)

    def seen_expr(self, signal: Signal) -> str:
        """Which `on` label sets show activity now (recorded, then looked back over)."""
        seen = signal.query.only_if_seen
        sels = " or ".join(self.selector(m, Selector(m), signal.component) for m in seen.metrics)
        return f"group by ({self.by(seen.on)}) ({sels})"

    def seen_record_name(self, signal: Signal) -> str:
        return f"{'_'.join(self.labels(signal.query.only_if_seen.on))}:cilium_day2_{signal.id}:seen"

    def record_name(self, signal: Signal) -> str:
        """`level:metric:operation`, the Prometheus naming convention for recording rules."""
        level = "_".join(self.labels(signal.group_by))
        fn = signal.query.expr.fn
        windowed = fn not in ("value", "up", "distinct") or getattr(signal.query.expr, "over_time", None)
        return f"{level}:cilium_day2_{signal.id}:{fn}{format_duration(signal.window) if windowed else ''}"
