"""The backend-neutral query model of a signal, and its evaluation in plain Python.

A signal's `query:` in the catalog is parsed into a small tree of the node types below. The
compilers in `cilium_day2.render` (`promql`, `datadog_query`) turn the tree into PromQL or a Datadog query; `evaluate()`
computes the same quantity from raw scraped samples (for `cilium-day2 doctor`). Keeping the set
of functions small is what makes three implementations of each affordable.

Every function produces **one number per group**. The group is the signal's `group_by`: logical
label names (`cluster`, `node`, `pod`) that each backend maps to its own label or tag name, plus
Cilium label names (`map_name`, `target_node`, `operation`, ...) kept as they are.

Functions (the `fn:` key)
-------------------------
``value``      Gauge aggregated across series with `agg` (max|min|sum|avg). With ``over_time``
               (max|min|avg) each series is first reduced over the signal's window.
``rate``       Per-second increase of a counter over the window, summed per group.
``increase``   Increase of a counter over the window, summed per group.
``delta``      Change of a gauge over the window (for gauges that only grow, such as
               `cilium_operator_identity_gc_runs`), aggregated with `agg`.
``changes``    Number of times a gauge's value changed over the window, summed per group
               (restarts, from `process_start_time_seconds`).
``quantile``   Quantile `q` of a histogram family over the window (from its `_bucket` rates).
``distinct``   Number of distinct values of `label` per group (version skew).
``up``         Whether the scrape target of a component (`target`: agent|operator|hubble) is
               up. Prometheus: the `up` series of the configured job; Datadog: the check's
               service check; evaluate(): samples named ``up`` with a ``target`` label.
``ratio``      `num` / `den`, where `den` is another query or a constant; `min_den` floors the
               denominator so that tiny populations do not produce huge ratios.
``outlier``    The group's value of `of` divided by the median of `of` across the groups that
               share the `among` labels (for example: node vs. the cluster's median), with the
               median floored at `min_baseline`; groups whose own value is below `min_value`
               are left out (too small to matter, whatever their peers do). Datadog cannot divide by a median per cluster:
               its monitor uses Datadog's own outlier algorithm with the `datadog:` parameters.

Selectors
---------
``metric`` is a Prometheus family name as Cilium exposes it (histogram `_count` series may be
named directly). ``also`` lists families that carry the same signal in other Cilium versions
(read together: PromQL `or`, summed by evaluate(); Datadog queries `metric`, the newest). ``{cloud}`` in a name stands for each configured cloud API (`ec2`, `azure`,
`alibabacloud`). ``match`` maps a label to a value, or to ``{in: [...]}`` / ``{not_in: [...]}``.
A value may contain ``*`` wildcards. Missing labels match as the empty string, like PromQL.
``prometheus_reads`` (rate and increase only) lists matcher sets: Prometheus reads only the
series matching one of them, a small part of a large family that moves whenever the family does
(Hubble's flows from outside the pods, out of per-workload series); the check and evaluate() read the
whole family. ``born_at_first_event`` (true/false) says whether the selected counter series are created at
their first event (client_golang creates a labelled child on first use) rather than exported
at 0 from the start; `rate`/`increase` then count a series born inside the window from zero.
Unset, a counter selector that matches labels (a failure, an error code) is taken as born at its
first event, and an unfiltered one (a whole family) is not. Ratios count growth only, on both
sides (a share of many events; see `PromQL.compile`).

A root query may carry ``only_if_up: <component>``: results are kept only for groups whose
component target is up (the Hubble flow-stall signal fires only while the agent runs).
It may carry ``only_if_seen: {metrics: [...], by: [labels], within: <duration>}``: results are
kept only for groups (matched on the `by` labels) where one of those families had a series
within the duration: the subnet-exhaustion signal watches only subnets Cilium allocated from.
``unless_seen`` (same keys) is its opposite: groups where one of those families had a series
within the duration are dropped. A signal read from a family that a newer Cilium replaces stays
silent where the agent reports the newer one too (1.17 reports both node-connectivity families).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import UserError

AGGREGATIONS = ("max", "min", "sum", "avg")
OVER_TIME = ("max", "min", "avg")
UP_TARGETS = ("agent", "operator", "hubble")
CLOUD_PLACEHOLDER = "{cloud}"
CLOUD_APIS = ("ec2", "azure", "alibabacloud")


class QueryError(UserError):
    """A query in the catalog does not follow the model."""


# --- selectors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    label: str
    op: str  # "eq" | "in" | "not_in"
    values: Tuple[str, ...]

    def accepts(self, value: str) -> bool:
        hit = any(fnmatch.fnmatchcase(value, pattern) for pattern in self.values)
        return not hit if self.op == "not_in" else hit


@dataclass(frozen=True)
class Selector:
    metric: str
    match: Tuple[Match, ...] = ()
    # Families that carry the same signal in other Cilium versions, newest first after `metric`.
    also: Tuple[str, ...] = ()
    # Whether the selected series appear at their first event (client_golang creates a
    # labelled child on first use, so a failure counter is born at 1): a counter's windowed
    # functions then count a series born inside the window from zero. None: the compilers'
    # default (yes for a counter selector that matches labels, see `counts_from_birth`).
    born_at_first_event: Optional[bool] = None
    # Prometheus reads only the series matching one of these matcher sets (their union): a
    # cheap part of a large family that moves whenever the family does. The check and the
    # Python evaluator read the whole family (the check already sums it per node).
    prometheus_reads: Tuple[Tuple[Match, ...], ...] = ()

    def counts_from_birth(self) -> bool:
        if self.born_at_first_event is not None:
            return self.born_at_first_event
        return bool(self.match)

    def families(self, cloud_apis: Sequence[str] = CLOUD_APIS) -> List[str]:
        """The concrete family names this selector reads (the first is the one Datadog queries)."""
        out = []
        for metric in (self.metric,) + self.also:
            if CLOUD_PLACEHOLDER in metric:
                out.extend(metric.replace(CLOUD_PLACEHOLDER, api) for api in cloud_apis)
            else:
                out.append(metric)
        return out

    def accepts(self, labels: Mapping[str, str]) -> bool:
        return all(m.accepts(str(labels.get(m.label, ""))) for m in self.match)


# --- query nodes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    selector: Selector
    agg: str = "max"
    over_time: Optional[str] = None
    fn = "value"


@dataclass(frozen=True)
class Rate:
    selector: Selector
    fn = "rate"


@dataclass(frozen=True)
class Increase:
    selector: Selector
    fn = "increase"


@dataclass(frozen=True)
class Delta:
    selector: Selector
    agg: str = "sum"
    fn = "delta"


@dataclass(frozen=True)
class Changes:
    selector: Selector
    fn = "changes"


@dataclass(frozen=True)
class Quantile:
    selector: Selector
    q: float = 0.99
    fn = "quantile"


@dataclass(frozen=True)
class Distinct:
    selector: Selector
    label: str
    fn = "distinct"


@dataclass(frozen=True)
class Up:
    target: str
    fn = "up"


@dataclass(frozen=True)
class Ratio:
    num: "Query"
    den: Union["Query", float]
    min_den: Optional[float] = None
    fn = "ratio"


@dataclass(frozen=True)
class Outlier:
    of: "Query"
    among: Tuple[str, ...] = ("cluster",)
    min_baseline: float = 0.0
    min_value: float = 0.0
    datadog: Tuple[Tuple[str, object], ...] = (("algorithm", "MAD"), ("tolerance", 3.0), ("pct", 20))
    fn = "outlier"


Query = Union[Value, Rate, Increase, Delta, Changes, Quantile, Distinct, Up, Ratio, Outlier]
FUNCTIONS = ("value", "rate", "increase", "delta", "changes", "quantile", "distinct", "up", "ratio", "outlier")


@dataclass(frozen=True)
class Seen:
    """`only_if_seen`: the families whose presence, on the `on` labels, shows activity."""

    metrics: Tuple[str, ...]
    on: Tuple[str, ...]
    within: int  # seconds


@dataclass(frozen=True)
class RootQuery:
    """A signal's query: the expression plus the optional `only_if_up`, `only_if_seen` and
    `unless_seen` guards."""

    expr: Query
    only_if_up: Optional[str] = None
    only_if_seen: Optional[Seen] = None
    unless_seen: Optional[Seen] = None

    def selectors(self) -> List[Selector]:
        return list(iter_selectors(self.expr))


def iter_selectors(node) -> Iterable[Selector]:
    if isinstance(node, (int, float)):
        return
    selector = getattr(node, "selector", None)
    if selector is not None:
        yield selector
    if isinstance(node, Ratio):
        yield from iter_selectors(node.num)
        yield from iter_selectors(node.den)
    if isinstance(node, Outlier):
        yield from iter_selectors(node.of)


def with_born_default(node, born: bool):
    """The query with `born_at_first_event` set to `born` on every selector that does not say."""
    if isinstance(node, (int, float)):
        return node
    changes = {}
    selector = getattr(node, "selector", None)
    if selector is not None and selector.born_at_first_event is None:
        changes["selector"] = dataclasses.replace(selector, born_at_first_event=born)
    if isinstance(node, Ratio):
        changes.update(num=with_born_default(node.num, born), den=with_born_default(node.den, born))
    if isinstance(node, Outlier):
        changes["of"] = with_born_default(node.of, born)
    return dataclasses.replace(node, **changes) if changes else node


def iter_nodes(node) -> Iterable[Query]:
    if isinstance(node, (int, float)):
        return
    yield node
    if isinstance(node, Ratio):
        yield from iter_nodes(node.num)
        yield from iter_nodes(node.den)
    if isinstance(node, Outlier):
        yield from iter_nodes(node.of)


def with_match(node, match: "Match"):
    """`node` with `match` added to every selector in it (a new tree; `node` is unchanged)."""
    if isinstance(node, (int, float)):
        return node
    changes = {}
    selector = getattr(node, "selector", None)
    if selector is not None:
        changes["selector"] = replace(selector, match=tuple(m for m in selector.match if m.label != match.label) + (match,))
    if isinstance(node, Ratio):
        changes["num"], changes["den"] = with_match(node.num, match), with_match(node.den, match)
    if isinstance(node, Outlier):
        changes["of"] = with_match(node.of, match)
    return replace(node, **changes) if changes else node


# --- parsing ---------------------------------------------------------------------------------


def _keys(where, data, allowed, required=()):
    if not isinstance(data, dict):
        raise QueryError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise QueryError(f"{where}: unknown key `{unknown[0]}`; valid keys: {', '.join(sorted(allowed))}")
    for key in required:
        if key not in data:
            raise QueryError(f"{where}: missing key `{key}`")


def _choice(where, value, choices):
    if value not in choices:
        raise QueryError(f"{where}: `{value}` is not one of {', '.join(choices)}")
    return value


def parse_matchers(where, data) -> Tuple[Match, ...]:
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise QueryError(f"{where}.match: expected a mapping of label to value")
    out = []
    for label, spec in sorted(data.items()):
        if isinstance(spec, (str, int, float)) and not isinstance(spec, bool):
            out.append(Match(str(label), "eq", (str(spec),)))
        elif isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("in", "not_in"):
            op, values = next(iter(spec.items()))
            if not isinstance(values, list) or not values:
                raise QueryError(f"{where}.match.{label}.{op}: expected a non-empty list")
            out.append(Match(str(label), op, tuple(str(v) for v in values)))
        else:
            raise QueryError(f"{where}.match.{label}: expected a value or {{in: [...]}} / {{not_in: [...]}}")
    return tuple(out)


def _selector(where, data) -> Selector:
    metric = data.get("metric")
    if not isinstance(metric, str) or not metric:
        raise QueryError(f"{where}: `metric` must be a metric family name")
    also = data.get("also") or []
    if not isinstance(also, list) or not all(isinstance(m, str) and m for m in also):
        raise QueryError(f"{where}.also: expected a list of metric family names (the same signal in other versions)")
    born = data.get("born_at_first_event")
    if born is not None and not isinstance(born, bool):
        raise QueryError(f"{where}.born_at_first_event: expected true or false")
    reads = data.get("prometheus_reads")
    subsets = ()
    if reads is not None:
        if data.get("fn") not in ("rate", "increase"):
            raise QueryError(f"{where}.prometheus_reads: only a rate or increase selector can read a part of its family")
        if not isinstance(reads, list) or not reads or not all(isinstance(r, dict) and r for r in reads):
            raise QueryError(f"{where}.prometheus_reads: expected a non-empty list of label matchers "
                             "(e.g. [{source_namespace: \"\"}])")
        subsets = tuple(parse_matchers(f"{where}.prometheus_reads[{i}]", r) for i, r in enumerate(reads))
    return Selector(metric, parse_matchers(where, data.get("match")), tuple(also), born, subsets)


_SELECTOR_KEYS = {"fn", "metric", "match", "also", "born_at_first_event", "prometheus_reads"}


def parse_query(data, where="query") -> Query:
    if not isinstance(data, dict):
        raise QueryError(f"{where}: expected a mapping with `fn`")
    fn = _choice(f"{where}.fn", data.get("fn"), FUNCTIONS)
    if fn == "value":
        _keys(where, data, _SELECTOR_KEYS | {"agg", "over_time"}, ("metric",))
        over = data.get("over_time")
        if over is not None:
            _choice(f"{where}.over_time", over, OVER_TIME)
        return Value(_selector(where, data), _choice(f"{where}.agg", data.get("agg", "max"), AGGREGATIONS), over)
    if fn in ("rate", "increase", "changes"):
        _keys(where, data, _SELECTOR_KEYS, ("metric",))
        return {"rate": Rate, "increase": Increase, "changes": Changes}[fn](_selector(where, data))
    if fn == "delta":
        _keys(where, data, _SELECTOR_KEYS | {"agg"}, ("metric",))
        return Delta(_selector(where, data), _choice(f"{where}.agg", data.get("agg", "sum"), AGGREGATIONS))
    if fn == "quantile":
        _keys(where, data, _SELECTOR_KEYS | {"q"}, ("metric",))
        q = data.get("q", 0.99)
        if not isinstance(q, (int, float)) or not 0 < q < 1:
            raise QueryError(f"{where}.q: expected a number between 0 and 1")
        return Quantile(_selector(where, data), float(q))
    if fn == "distinct":
        _keys(where, data, _SELECTOR_KEYS | {"label"}, ("metric", "label"))
        return Distinct(_selector(where, data), str(data["label"]))
    if fn == "up":
        _keys(where, data, {"fn", "target"}, ("target",))
        return Up(_choice(f"{where}.target", data["target"], UP_TARGETS))
    if fn == "ratio":
        _keys(where, data, {"fn", "num", "den", "min_den"}, ("num", "den"))
        den = data["den"]
        den = float(den) if isinstance(den, (int, float)) and not isinstance(den, bool) else parse_query(den, f"{where}.den")
        if isinstance(den, float) and den <= 0:
            raise QueryError(f"{where}.den: a constant denominator must be positive")
        min_den = data.get("min_den")
        return Ratio(parse_query(data["num"], f"{where}.num"), den, None if min_den is None else float(min_den))
    # outlier
    _keys(where, data, {"fn", "of", "among", "min_baseline", "min_value", "datadog"}, ("of",))
    among = data.get("among", ["cluster"])
    if not isinstance(among, list) or not all(isinstance(x, str) for x in among):
        raise QueryError(f"{where}.among: expected a list of label names")
    dd = dict(Outlier.datadog)
    dd_in = data.get("datadog") or {}
    _keys(f"{where}.datadog", dd_in, {"algorithm", "tolerance", "pct"})
    dd.update(dd_in)
    _choice(f"{where}.datadog.algorithm", dd["algorithm"], ("MAD", "DBSCAN", "scaledMAD", "scaledDBSCAN"))
    return Outlier(
        parse_query(data["of"], f"{where}.of"),
        tuple(among),
        float(data.get("min_baseline", 0.0)),
        float(data.get("min_value", 0.0)),
        tuple(sorted(dd.items())),
    )


def parse_root(data, where="query") -> RootQuery:
    if not isinstance(data, dict):
        raise QueryError(f"{where}: expected a mapping with `fn`")
    data = dict(data)
    guard = data.pop("only_if_up", None)
    if guard is not None:
        _choice(f"{where}.only_if_up", guard, UP_TARGETS)
    seen = data.pop("only_if_seen", None)
    if seen is not None:
        seen = _parse_seen(seen, f"{where}.only_if_seen")
    unless = data.pop("unless_seen", None)
    if unless is not None:
        unless = _parse_seen(unless, f"{where}.unless_seen")
    return RootQuery(parse_query(data, where), guard, seen, unless)


def _parse_seen(data, where) -> Seen:
    _keys(where, data, {"metrics", "by", "within"}, ("metrics", "by", "within"))
    metrics, on, within = data["metrics"], data["by"], data["within"]
    for key, value in (("metrics", metrics), ("by", on)):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise QueryError(f"{where}.{key}: expected a non-empty list of names")
    m = re.match(r"^(?:(\d+)h)?(?:(\d+)m)?$", str(within))
    if not m or not str(within):
        raise QueryError(f"{where}.within: expected a duration such as 24h")
    seconds = int(m.group(1) or 0) * 3600 + int(m.group(2) or 0) * 60
    return Seen(tuple(metrics), tuple(on), seconds)


# --- evaluation from raw samples -------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One scraped sample. `labels` must already carry the logical labels (`cluster`, `node`)."""

    __slots__ = ("name", "labels", "value")  # doctor holds one per series and snapshot

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class Snapshot:
    """Every sample seen at one scrape time (seconds since the epoch)."""

    timestamp: float
    samples: List[Sample] = field(default_factory=list)

    def named(self, names) -> List[Sample]:
        """The samples with one of `names`, through an index built on first use (each signal
        reads a few families; scanning every sample per signal would cost signals x series)."""
        index = self.__dict__.get("_index")
        if index is None or index[0] != len(self.samples):
            by_name = defaultdict(list)
            for sample in self.samples:
                by_name[sample.name].append(sample)
            index = self.__dict__["_index"] = (len(self.samples), by_name)
        by_name = index[1]
        return [s for name in dict.fromkeys(names) for s in by_name.get(name, ())]


GroupKey = Tuple[Tuple[str, str], ...]


def _key(labels: Mapping[str, str], by: Sequence[str]) -> GroupKey:
    return tuple((label, str(labels.get(label, ""))) for label in by)


def _series_id(sample: Sample):
    return sample.name, tuple(sorted((k, str(v)) for k, v in sample.labels.items()))


def _aggregate(values: List[float], agg: str) -> float:
    if agg == "sum":
        return sum(values)
    if agg == "max":
        return max(values)
    if agg == "min":
        return min(values)
    return sum(values) / len(values)


def _select(snapshot: Snapshot, selector: Selector, names: Sequence[str]):
    return [s for s in snapshot.named(names) if selector.accepts(s.labels)]


class Evaluator:
    """Evaluates a query over successive snapshots, the way the backends would.

    Rates use the first and last snapshot inside the window (counter resets count as a restart
    from zero); `increase`/`delta` scale that rate to the full window as PromQL extrapolates.
    With a single snapshot only instant functions (`value`, `distinct`, `up`) have a result.

    Which snapshots a function reads:

    * Instant functions (`value`, `distinct`, `up`) read the latest snapshot; `value` with
      `over_time` reads the snapshots inside the window.
    * Functions of successive samples (`rate`, `increase`, `delta`, `changes`, and `quantile`,
      which rates its buckets) read the snapshots inside the window, and at least the last two
      when fewer fall inside it: a sampling interval longer than the window still gives a rate,
      over the shortest span there is (a PromQL rate needs two points too).
    """

    def __init__(self, snapshots: Sequence[Snapshot], window: float, cloud_apis: Sequence[str] = CLOUD_APIS):
        ordered = sorted(snapshots, key=lambda s: s.timestamp)
        if not ordered:
            raise ValueError("at least one snapshot is needed")
        last = ordered[-1].timestamp
        # Always holds the latest snapshot (its timestamp is `last`).
        self.snapshots = [s for s in ordered if s.timestamp >= last - window]
        self.rate_snapshots = self.snapshots if len(self.snapshots) >= 2 else ordered[-2:]
        self.window = window
        self.cloud_apis = tuple(cloud_apis)
        self.in_ratio = False  # ratios count growth only (see PromQL.compile)

    @property
    def latest(self) -> Snapshot:
        return self.snapshots[-1]

    def _names(self, selector: Selector, suffix: str = "") -> List[str]:
        return [f + suffix for f in selector.families(self.cloud_apis)]

    def _series_over_window(self, selector: Selector, names: Sequence[str], successive: bool = True):
        """Points of each selected series. successive: for functions of successive samples
        (at least the last two snapshots); otherwise only the snapshots inside the window."""
        series = defaultdict(list)
        for snap in self.rate_snapshots if successive else self.snapshots:
            for sample in _select(snap, selector, names):
                series[_series_id(sample)].append((snap.timestamp, sample.value, sample.labels))
        return series

    def _counter_rates(self, selector: Selector, names: Sequence[str], born: bool = False):
        """Per-series per-second rates (first to last point in the window).

        With `born` (a counter Cilium creates at its first event), a series that appears after
        the first snapshot, while its family was already scraped there, counts from zero: its
        first value happened inside the window (the compiled PromQL does the same)."""
        out = []
        first = self.rate_snapshots[0]
        family_seen = born and any(s.name in set(names) for s in first.samples)
        span = self.rate_snapshots[-1].timestamp - first.timestamp
        for points in self._series_over_window(selector, names).values():
            new = family_seen and points[0][0] > first.timestamp
            if len(points) < 2 and not new:
                continue
            total = points[0][1] if new else 0.0
            for (_, prev, _), (_, cur, _) in zip(points, points[1:]):
                total += cur - prev if cur >= prev else cur
            elapsed = span if new else points[-1][0] - points[0][0]
            if elapsed > 0:
                out.append((points[-1][2], total / elapsed))
        return out

    def evaluate(self, node, by: Sequence[str]) -> Dict[GroupKey, float]:
        groups: Dict[GroupKey, List[float]] = defaultdict(list)
        if isinstance(node, Value):
            names = self._names(node.selector)
            if node.over_time:
                for points in self._series_over_window(node.selector, names, successive=False).values():
                    vals = [v for _, v, _ in points]
                    reduced = _aggregate(vals, node.over_time)
                    groups[_key(points[-1][2], by)].append(reduced)
            else:
                for sample in _select(self.latest, node.selector, names):
                    groups[_key(sample.labels, by)].append(sample.value)
            return {k: _aggregate(v, node.agg) for k, v in groups.items()}
        if isinstance(node, (Rate, Increase)):
            scale = 1.0 if isinstance(node, Rate) else self.window
            born = node.selector.counts_from_birth() and not self.in_ratio
            for labels, rate in self._counter_rates(node.selector, self._names(node.selector), born):
                groups[_key(labels, by)].append(rate * scale)
            return {k: sum(v) for k, v in groups.items()}
        if isinstance(node, Delta):
            for points in self._series_over_window(node.selector, self._names(node.selector)).values():
                if len(points) < 2 or points[-1][0] == points[0][0]:
                    continue
                per_second = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
                groups[_key(points[-1][2], by)].append(per_second * self.window)
            return {k: _aggregate(v, node.agg) for k, v in groups.items()}
        if isinstance(node, Changes):
            for points in self._series_over_window(node.selector, self._names(node.selector)).values():
                changed = sum(1 for (_, a, _), (_, b, _) in zip(points, points[1:]) if a != b)
                groups[_key(points[-1][2], by)].append(float(changed))
            return {k: sum(v) for k, v in groups.items()}
        if isinstance(node, Quantile):
            return self._quantile(node, by)
        if isinstance(node, Distinct):
            seen = defaultdict(set)
            for sample in _select(self.latest, node.selector, self._names(node.selector)):
                seen[_key(sample.labels, by)].add(str(sample.labels.get(node.label, "")))
            return {k: float(len(v)) for k, v in seen.items()}
        if isinstance(node, Up):
            for sample in self.latest.samples:
                if sample.name == "up" and sample.labels.get("target") == node.target:
                    groups[_key(sample.labels, by)].append(sample.value)
            return {k: max(v) for k, v in groups.items()}
        if isinstance(node, Ratio):
            # Both sides count growth after each series' first sample (as the compiled PromQL does).
            outer, self.in_ratio = self.in_ratio, True
            try:
                num = self.evaluate(node.num, by)
                if isinstance(node.den, float):
                    return {k: v / node.den for k, v in num.items()}
                den = self.evaluate(node.den, by)
            finally:
                self.in_ratio = outer
            out = {}
            for k, v in num.items():
                if k not in den:
                    continue
                d = den[k] if node.min_den is None else max(den[k], node.min_den)
                if d != 0:
                    out[k] = v / d
            return out
        if isinstance(node, Outlier):
            values = self.evaluate(node.of, by)
            peers = defaultdict(list)
            for k, v in values.items():
                peers[_key(dict(k), node.among)].append(v)
            baseline = {k: max(statistics.median(v), node.min_baseline) for k, v in peers.items()}
            return {
                k: v / baseline[_key(dict(k), node.among)]
                for k, v in values.items()
                if baseline[_key(dict(k), node.among)] > 0 and v >= node.min_value
            }
        raise TypeError(f"unknown query node {node!r}")

    def _quantile(self, node: Quantile, by: Sequence[str], bounds=None) -> Dict[GroupKey, float]:
        """Per group, the quantile of the summed bucket rates; with `bounds`, read from those
        buckets only (as the Prometheus rules read it, see PromQL.quantile_value)."""
        buckets: Dict[GroupKey, Dict[float, float]] = defaultdict(lambda: defaultdict(float))
        names = self._names(node.selector, "_bucket")
        for labels, rate in self._counter_rates(node.selector, names):
            bound = _le_bound(labels)
            if bound is not None and (bounds is None or bound in bounds):
                buckets[_key(labels, by)][bound] += rate
        out = {}
        for key, per_le in buckets.items():
            value = histogram_quantile(node.q, sorted(per_le.items()))
            if value is not None:
                out[key] = value
        return out


def _le_bound(labels: Mapping[str, str]) -> Optional[float]:
    """A bucket sample's upper bound (`le`, `1` or `1.0` alike), None without one."""
    le = labels.get("le")
    if le is None:
        return None
    if le in ("+Inf", "Inf", "inf"):
        return math.inf
    try:
        bound = float(le)
    except ValueError:
        return None  # not a bucket bound: left out, never a crash
    return bound if bound == bound else None


def histogram_quantile(q: float, cumulative: Sequence[Tuple[float, float]]) -> Optional[float]:
    """Prometheus' interpolation of a quantile from cumulative (upper bound, count) buckets."""
    if not cumulative or cumulative[-1][0] != math.inf:
        return None
    total = cumulative[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for i, (bound, count) in enumerate(cumulative):
        if count >= rank:
            if bound == math.inf:
                # Like PromQL: the quantile falls in the +Inf bucket, answer the last finite bound.
                return cumulative[i - 1][0] if i > 0 else None
            if i == 0 and bound <= 0:
                return bound
            width = bound - prev_bound
            in_bucket = count - prev_count
            return prev_bound + width * ((rank - prev_count) / in_bucket if in_bucket else 0)
        prev_bound, prev_count = bound, count
    return None


def evaluate(root: RootQuery, snapshots: Sequence[Snapshot], by: Sequence[str], window: float,
             cloud_apis: Sequence[str] = CLOUD_APIS) -> Dict[GroupKey, float]:
    """One value per group for a signal's query, from successive raw snapshots.

    `by` are label names as they appear on the samples (the caller puts the logical `cluster`
    and `node` labels on every sample). `window` is the signal's window in seconds; snapshots
    older than that are ignored.
    """
    ev = Evaluator(snapshots, window, cloud_apis)
    result = ev.evaluate(root.expr, by)
    if root.only_if_up:
        up = ev.evaluate(Up(root.only_if_up), by)
        result = {k: v for k, v in result.items() if up.get(k, 0) >= 1}
    return apply_seen_guards(root, snapshots, result)


def apply_seen_guards(root: RootQuery, snapshots: Sequence[Snapshot], result: Dict[GroupKey, float]) -> Dict[GroupKey, float]:
    """`result` through the root's `only_if_seen` and `unless_seen` guards."""
    if root.only_if_seen:
        result = only_seen(root.only_if_seen, snapshots, result)
    if root.unless_seen:
        dropped = only_seen(root.unless_seen, snapshots, result)
        result = {k: v for k, v in result.items() if k not in dropped}
    return result


def only_seen(seen: Seen, snapshots: Sequence[Snapshot], result: Dict[GroupKey, float]) -> Dict[GroupKey, float]:
    """The groups of `result` whose `on` labels one of `seen.metrics` carried in any snapshot."""
    names = set(seen.metrics)
    present = {_key(s.labels, seen.on) for snap in snapshots for s in snap.samples if s.name in names}
    return {k: v for k, v in result.items() if _key(dict(k), seen.on) in present}


def quantile_on_bounds(root: RootQuery, snapshots: Sequence[Snapshot], by: Sequence[str], window: float,
                       bounds, cloud_apis: Sequence[str] = CLOUD_APIS) -> Dict[GroupKey, float]:
    """For a quantile signal: per group, the quantile read from the buckets at `bounds` (and +Inf)."""
    if not isinstance(root.expr, Quantile):
        raise TypeError("quantile_on_bounds needs a quantile signal")
    return Evaluator(snapshots, window, cloud_apis)._quantile(root.expr, by, set(bounds) | {math.inf})


def breaches(value: float, comparison: str, threshold: Optional[float]) -> bool:
    """Whether a value crosses a threshold in the signal's direction."""
    if threshold is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return value > threshold if comparison == ">" else value < threshold
