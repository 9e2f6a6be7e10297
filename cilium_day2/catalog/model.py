"""The catalog's model: areas, signals and settings, validated as they are built.

One YAML file per area. Each signal says what it means, what to do, its default thresholds,
window and hold, its grouping and a backend-neutral query (see `catalog.query`). The
renderers and `doctor` only ever read the typed `Catalog` built here (by `catalog.loading`),
with the user's overrides (`--values`, see `catalog.overrides`) already applied.

    from cilium_day2.catalog import load_catalog
    catalog = load_catalog("values.yaml")      # or a parsed mapping, or None for the defaults
    for signal in catalog.enabled():
        print(signal.id, signal.warning, signal.critical, signal.window, signal.hold)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import CatalogError
from .buckets import check_quantile_threshold
from .query import Outlier, Quantile, Ratio, RootQuery, parse_root, with_born_default

AREAS = ("datapath", "identity", "kvstore", "cloud_ipam", "control_plane", "hubble")
COMPONENTS = ("agent", "operator", "hubble")
COMPARISONS = (">", "<")
UNITS = ("ratio", "per_second", "count", "seconds", "factor", "bool")
NO_DATA = ("ok", "alert")
# Where the number a signal reads is measured: `node` (each agent's own view, such as its maps,
# its endpoints or its health probes) or `cluster` (one number for the whole cluster, reported by
# the leading operator). A per-node number aggregated over agents is still `node`: the maximum of
# per-agent counts is not a cluster count (see `identity_cluster_usage`).
SCOPES = ("node", "cluster")
# `source:` entries are paths of Go files in github.com/cilium/cilium.
_SOURCE_RE = re.compile(r"^(?:[a-z0-9_.-]+/)+[a-z0-9_.-]+\.go$")
# Logical labels: each backend maps them to its own label/tag name (see Settings).
LOGICAL_LABELS = ("cluster", "node")

_SIGNAL_KEYS = {
    "id", "title", "component", "unit", "meaning", "runbook", "defaults_reason", "warning",
    "critical", "comparison", "window", "for", "keep_firing_for", "group_by", "query", "enabled", "no_data",
    "regression",
    "source", "scope", "born_at_first_event",
    "datadog_difference", "feature", "version_twin",
}
# How a signal's Datadog monitor may end up in another state than its Prometheus rule, where
# Datadog cannot express the catalog's query exactly (`datadog_difference: {effect, reason}`):
# `misses`: the monitor can stay OK where the rule fires; `extra_alerts`: it can alert on groups
# the rule leaves alone (it still alerts wherever the rule does).
DATADOG_DIFFERENCES = ("misses", "extra_alerts")
_REQUIRED_SIGNAL_KEYS = ("id", "title", "component", "unit", "meaning", "runbook", "comparison", "window", "for",
                         "group_by", "query", "source", "scope")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value, where) -> int:
    """`90`, `"90s"`, `"5m"`, `"1h30m"` -> seconds."""
    if isinstance(value, bool):
        raise CatalogError(f"{where}: expected a duration such as 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        m = _DURATION_RE.match(value.strip())
        if m and value.strip():
            h, mi, s = (int(x) if x else 0 for x in m.groups())
            return h * 3600 + mi * 60 + s
    raise CatalogError(f"{where}: expected a duration such as 30s, 5m or 1h, got {value!r}")


def format_duration(seconds: int) -> str:
    """Seconds -> the shortest Prometheus duration (`90` -> `1m30s`, `0` -> `0s`)."""
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out


def _number(value, where) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CatalogError(f"{where}: expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Settings:
    """Names and switches shared by every signal (the kubernetes-mixin `_config` object)."""

    # Prometheus label names. Cilium's Helm ServiceMonitor relabels the pod's node into `node`.
    cluster_label: str = "cluster"
    node_label: str = "node"
    # Datadog tag names.
    cluster_tag: str = "kube_cluster_name"
    node_tag: str = "host"
    # Where `runbook_url` points; each signal adds `#<signal id>` (host docs/signals.md there).
    # Empty: no link is made up; alerts and monitors carry the runbook text itself.
    runbook_base_url: str = ""
    # Prometheus `job` label (a regex) of each scrape target, for the `up` signals.
    agent_job: str = "cilium-agent"
    operator_job: str = "cilium-operator"
    hubble_job: str = "hubble-metrics"
    # Extra label matchers (as inside PromQL braces) added next to the job matcher of every
    # selector of that component, `up` included: where the job also scrapes other pods
    # (annotation-based `kubernetes-pods`), e.g. `k8s_app="cilium"`. Empty: the job alone.
    agent_selector: Tuple[str, ...] = ()
    operator_selector: Tuple[str, ...] = ()
    hubble_selector: Tuple[str, ...] = ()
    # Labels that tell the copies of one series apart when an HA pair of Prometheus servers is
    # read without deduplication. Sums that would double are taken over one copy.
    replica_labels: Tuple[str, ...] = ("prometheus_replica", "replica")
    # IPAM subnets the exhaustion signal watches (Cilium's metrics carry `subnet_id` and
    # `availability_zone`, not tags). Empty: every subnet Cilium allocated from.
    ipam_subnet_ids: Tuple[str, ...] = ()
    ipam_availability_zones: Tuple[str, ...] = ()
    # Cloud APIs whose families `{cloud}` expands to (Prometheus, doctor), and the single one
    # Datadog monitors use (a monitor cannot union metric names).
    cloud_apis: Tuple[str, ...] = ("ec2", "azure", "alibabacloud")
    datadog_cloud_api: str = "ec2"
    # Datadog service checks run every check interval; used to turn `for` into check runs.
    datadog_check_interval: int = 15
    # Prometheus rules: render each group once per listed cluster, each copy selecting only that
    # cluster's series. For a central Thanos/Mimir/Cortex ruler watching many clusters: rulers
    # spread groups over their replicas, and each group reads one cluster. Empty: one copy.
    shard_by_cluster: Tuple[str, ...] = ()
    # Prometheus rule groups hold at most this many rules (Mimir's default
    # `ruler.max-rules-per-rule-group` is 20); larger areas are split into numbered groups.
    max_rules_per_group: int = 20
    # The PrometheusRule's `metadata.labels` (added to the pack's own) and `metadata.namespace`:
    # kube-prometheus-stack only loads rules its `ruleSelector` matches (`release: <release>`).
    # The defaults are what a default kube-prometheus-stack install selects: its chart's
    # `ruleSelector` is `release: <Helm release name>`, here the chart's own name.
    rule_labels: Tuple[Tuple[str, str], ...] = (("release", "kube-prometheus-stack"),)
    rule_namespace: str = "monitoring"
    # Static labels on every alert (Prometheus and Alertmanager), e.g. `team: network`.
    alert_labels: Tuple[Tuple[str, str], ...] = ()
    # Rule groups a ruler accepts per tenant/namespace (Mimir's `ruler.max-rule-groups-per-tenant`
    # default is 70): `render` warns above it, `render --strict` refuses.
    max_groups_per_namespace: int = 70
    # How often Prometheus scrapes the Cilium targets (seconds): no rule group is evaluated more
    # often than that, since a second evaluation between two scrapes sees the same samples.
    scrape_interval: int = 15
    # Rule groups are evaluated at the pace of their signals: ((time to fire at least,
    # interval), ...) in seconds. A signal's time to fire is its window plus its `for`: the
    # entry with the largest time not above it applies (capped at the signal's `for` and
    # `keep_firing_for`, floored at `scrape_interval`). A signal that needs 15 minutes of
    # evidence does not need re-evaluating every 15 seconds; its alert fires at most one
    # interval later than at the global evaluation interval. The defaults keep every interval
    # at a third of the time to fire or less: 2m below 15 minutes (down targets: 5m + 5m),
    # 5m up to 30 minutes, 10m above (restarts over an hour, identity GC, conntrack GC).
    rule_intervals: Tuple[Tuple[int, int], ...] = ((0, 120), (900, 300), (1800, 600))

    def rule_interval(self, window: int, hold: int = 0, keep_firing_for: int = 0) -> int:
        """The evaluation interval (seconds) of a signal's rules."""
        tiers = sorted(self.rule_intervals)
        evidence = window + hold
        interval = next((iv for at, iv in reversed(tiers) if evidence >= at), tiers[0][1])
        for cap in (hold, keep_firing_for):
            if cap:
                interval = min(interval, cap)
        return max(interval, self.scrape_interval)

    def job(self, target: str) -> str:
        return {"agent": self.agent_job, "operator": self.operator_job, "hubble": self.hubble_job}[target]

    def selector(self, target: str) -> Tuple[str, ...]:
        return {"agent": self.agent_selector, "operator": self.operator_selector, "hubble": self.hubble_selector}[target]

    def prom_label(self, logical: str) -> str:
        return {"cluster": self.cluster_label, "node": self.node_label}.get(logical, logical)

    def dd_tag(self, logical: str) -> str:
        from ..metrics import RENAME_LABELS

        mapped = {"cluster": self.cluster_tag, "node": self.node_tag}.get(logical)
        return mapped if mapped else RENAME_LABELS.get(logical, logical)


SETTINGS_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


@dataclass(frozen=True)
class Regression:
    """How much worse than a baseline a signal may get before `doctor --baseline` reports it.

    A regression needs all of: the value moved to the failing side by at least `factor` times the
    baseline (relative), by at least `floor` (absolute, in the signal's unit: it keeps noise on
    tiny values out), and, for quantiles of a histogram, by at least `buckets` of Cilium's bucket
    bounds. `severity` is the gate's verdict for it (warning: exit 1, critical: exit 2).
    """

    factor: float
    floor: float
    buckets: int = 0
    severity: str = "warning"
    enabled: bool = True


# Defaults per unit (the catalog's `regression:` on a signal overrides any key): a drop or failure
# rate at least doubled and above a floor, a p99 at least one bucket up, a count that grew.
REGRESSION_DEFAULTS = {
    "per_second": Regression(factor=2.0, floor=0.05),
    "ratio": Regression(factor=2.0, floor=0.005),
    "seconds": Regression(factor=1.2, floor=0.005, buckets=1),
    "count": Regression(factor=1.5, floor=1.0),
    "factor": Regression(factor=1.5, floor=1.0),
    "bool": Regression(factor=1.0, floor=1.0),
}
REGRESSION_SEVERITIES = ("warning", "critical")
_REGRESSION_KEYS = {"factor", "floor", "buckets", "severity", "enabled"}


def parse_regression(data, unit: str, warning, where, comparison: str = ">") -> Regression:
    """The signal's tolerance: the unit's defaults, with the catalog's keys applied. A signal
    with no warning threshold (critical only) regresses at critical by default. Where lower is
    worse (flows processed, targets up), the value must at least halve: volumes of traffic move
    with the workload, not with Cilium."""
    base = REGRESSION_DEFAULTS[unit]
    base = dataclasses.replace(base, severity="critical" if warning is None else "warning")
    if comparison == "<":
        base = dataclasses.replace(base, factor=max(base.factor, 2.0))
    if data is None:
        return base
    if not isinstance(data, dict):
        raise CatalogError(f"{where}: expected a mapping with keys {', '.join(sorted(_REGRESSION_KEYS))}")
    unknown = sorted(set(data) - _REGRESSION_KEYS)
    if unknown:
        raise CatalogError(f"{where}: unknown key `{unknown[0]}`; valid keys: {', '.join(sorted(_REGRESSION_KEYS))}")
    changes = {}
    for key in ("factor", "floor"):
        if key in data:
            value = _number(data[key], f"{where}.{key}")
            if value is None or value < (1.0 if key == "factor" else 0.0):
                raise CatalogError(f"{where}.{key}: expected a number >= {1 if key == 'factor' else 0}, got {data[key]!r}")
            changes[key] = value
    if "buckets" in data:
        if isinstance(data["buckets"], bool) or not isinstance(data["buckets"], int) or data["buckets"] < 0:
            raise CatalogError(f"{where}.buckets: expected a whole number >= 0, got {data['buckets']!r}")
        changes["buckets"] = data["buckets"]
    if "severity" in data:
        if data["severity"] not in REGRESSION_SEVERITIES:
            raise CatalogError(f"{where}.severity: `{data['severity']}` is not one of {', '.join(REGRESSION_SEVERITIES)}")
        changes["severity"] = data["severity"]
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise CatalogError(f"{where}.enabled: expected true or false")
        changes["enabled"] = data["enabled"]
    return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class DatadogDifference:
    effect: str  # one of DATADOG_DIFFERENCES
    reason: str


def parse_datadog_difference(data, where) -> Optional[DatadogDifference]:
    if data is None:
        return None
    where = f"{where}.datadog_difference"
    if not isinstance(data, dict) or set(data) != {"effect", "reason"}:
        raise CatalogError(f"{where}: expected a mapping with `effect` and `reason`")
    if data["effect"] not in DATADOG_DIFFERENCES:
        raise CatalogError(f"{where}.effect: `{data['effect']}` is not one of {', '.join(DATADOG_DIFFERENCES)}")
    if not isinstance(data["reason"], str) or not data["reason"].strip():
        raise CatalogError(f"{where}.reason: expected non-empty text")
    return DatadogDifference(data["effect"], " ".join(data["reason"].split()))


@dataclass(frozen=True)
class Signal:
    id: str
    title: str
    area: str
    component: str
    unit: str
    meaning: str
    runbook: str
    defaults_reason: str
    warning: Optional[float]
    critical: Optional[float]
    comparison: str
    window: int  # seconds
    hold: int  # seconds (`for:` in the catalog and in Prometheus)
    group_by: Tuple[str, ...]
    query: RootQuery
    enabled: bool = True
    no_data: str = "ok"  # "alert": silence itself is the failure
    # Seconds an alert keeps firing after its condition last held (Prometheus `keep_firing_for`):
    # event counts (`increase`, `changes`) fall back to zero a window after each event, so
    # without it a recurring fault resolves and notifies again on every event.
    keep_firing_for: int = 0
    # Tolerance against a baseline (`doctor --baseline`); None: the unit's defaults.
    regression: Optional[Regression] = None

    # Files in cilium/cilium that define the metric and move its value (metric definition first).
    source: Tuple[str, ...] = ()
    # `node`: the number is one agent's own view; `cluster`: one number for the whole cluster.
    scope: str = "node"
    # True when the failure series the query selects does not exist until the first failure
    # (Cilium creates a labelled child on its first increment, or pre-creates another label value
    # than the one it increments, as `policy_change_total` and `endpoint_regenerations_total` do
    # with `failure` vs `fail`). `increase()`/`rate()` cannot see the first failure of a series
    # born with value 1. Set in the catalog, it is the default of every selector of the query
    # (`Selector.born_at_first_event`), which the compilers read to count that first failure.
    born_at_first_event: bool = False
    # An optional Cilium feature whose metrics exist only while it is on ("Cluster Mesh"):
    # `doctor` calls the signal not applicable, with this name, when no endpoint exposes them.
    feature: str = ""
    # The signal that watches the same thing under another Cilium version's metric names: where
    # the twin's families are exposed, `doctor` calls this one not applicable.
    version_twin: str = ""
    # Where the Datadog monitor cannot match the Prometheus rule exactly (docs/datadog.md).
    datadog_difference: Optional["DatadogDifference"] = None

    @property
    def tolerance(self) -> Regression:
        """The signal's regression tolerance (its own, or its unit's defaults)."""
        if self.regression is not None:
            return self.regression
        return parse_regression(None, self.unit, self.warning, f"signal {self.id}.regression", self.comparison)

    @property
    def for_(self) -> int:
        return self.hold

    @property
    def alert_name(self) -> str:
        return "Cilium" + "".join(part.capitalize() for part in self.id.split("_"))

    @property
    def quantile(self) -> Optional[Quantile]:
        """The query's quantile node when the signal is a quantile of a histogram, else None."""
        return self.query.expr if isinstance(self.query.expr, Quantile) else None

    def thresholds(self) -> List[Tuple[str, float]]:
        """(severity, threshold) pairs that are set, least severe first."""
        return [(sev, val) for sev, val in (("warning", self.warning), ("critical", self.critical)) if val is not None]

    def params(self) -> Dict[str, float]:
        """Signal-specific tunables that overrides may change."""
        expr = self.query.expr
        if isinstance(expr, Outlier):
            return {"min_baseline": expr.min_baseline, "min_value": expr.min_value}
        if isinstance(expr, Ratio) and expr.min_den is not None:
            return {"min_den": expr.min_den}
        return {}


@dataclass(frozen=True)
class Area:
    id: str
    title: str
    description: str


@dataclass
class Catalog:
    settings: Settings
    areas: List[Area]
    signals: List[Signal] = field(default_factory=list)

    def signal(self, signal_id: str) -> Signal:
        for s in self.signals:
            if s.id == signal_id:
                return s
        raise KeyError(signal_id)

    def ids(self) -> List[str]:
        return [s.id for s in self.signals]

    def enabled(self) -> List[Signal]:
        return [s for s in self.signals if s.enabled]

    def by_area(self, enabled_only=True):
        for area in self.areas:
            signals = [s for s in self.signals if s.area == area.id and (s.enabled or not enabled_only)]
            yield area, signals


def check_thresholds(where, warning, critical, comparison):
    if warning is None and critical is None:
        raise CatalogError(f"{where}: at least one of `warning` and `critical` must be set")
    if warning is not None and critical is not None:
        if comparison == ">" and warning > critical:
            raise CatalogError(
                f"{where}: warning ({warning:g}) is above critical ({critical:g}); this signal alerts on values "
                f"above the threshold, so warning must be <= critical"
            )
        if comparison == "<" and warning < critical:
            raise CatalogError(
                f"{where}: warning ({warning:g}) is below critical ({critical:g}); this signal alerts on values "
                f"below the threshold, so warning must be >= critical"
            )


def check_hold(where, hold: int, keep_firing_for: int):
    """One evaluation over a threshold must not notify and resolve on its own: every alert
    holds (`for`) before firing or keeps firing (`keep_firing_for`) after."""
    if hold <= 0 and keep_firing_for <= 0:
        raise CatalogError(
            f"{where}: set `for` or `keep_firing_for` above 0s, otherwise one sample over the threshold "
            f"notifies and resolves on its own"
        )


def check_quantile_thresholds(where, query: RootQuery, warning, critical):
    """Quantile thresholds must be bucket bounds Cilium's histogram can report (see `buckets`)."""
    if not isinstance(query.expr, Quantile):
        return

    sel = query.expr.selector
    for severity, value in (("warning", warning), ("critical", critical)):
        if value is not None:
            check_quantile_threshold(where, (sel.metric,) + tuple(sel.also), severity, value)


def parse_signal(area_id: str, data, where) -> Signal:
    if not isinstance(data, dict):
        raise CatalogError(f"{where}: expected a mapping")
    unknown = sorted(set(data) - _SIGNAL_KEYS)
    if unknown:
        raise CatalogError(f"{where}: unknown key `{unknown[0]}`; valid keys: {', '.join(sorted(_SIGNAL_KEYS))}")
    for key in _REQUIRED_SIGNAL_KEYS:
        if key not in data:
            raise CatalogError(f"{where}: missing key `{key}`")
    sid = data["id"]
    if not isinstance(sid, str) or not _ID_RE.match(sid):
        raise CatalogError(f"{where}.id: expected a snake_case identifier, got {sid!r}")
    where = f"signal {sid}"

    def choice(key, choices, default=None):
        value = data.get(key, default)
        if value not in choices:
            raise CatalogError(f"{where}.{key}: `{value}` is not one of {', '.join(choices)}")
        return value

    for key in ("title", "meaning", "runbook"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise CatalogError(f"{where}.{key}: expected non-empty text")
    group_by = data["group_by"]
    if not isinstance(group_by, list) or not group_by or not all(isinstance(g, str) for g in group_by):
        raise CatalogError(f"{where}.group_by: expected a non-empty list of label names")
    if "cluster" not in group_by:
        raise CatalogError(f"{where}.group_by: must keep `cluster` so that one ruler can watch many clusters")
    comparison = choice("comparison", COMPARISONS)
    warning = _number(data.get("warning"), f"{where}.warning")
    critical = _number(data.get("critical"), f"{where}.critical")
    check_thresholds(where, warning, critical, comparison)
    query = parse_root(data["query"], f"{where}.query")
    check_quantile_thresholds(where, query, warning, critical)
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise CatalogError(f"{where}.enabled: expected true or false")
    keep_firing_for = parse_duration(data.get("keep_firing_for", 0), f"{where}.keep_firing_for")
    check_hold(where, parse_duration(data["for"], f"{where}.for"), keep_firing_for)
    unit = choice("unit", UNITS)
    regression = (parse_regression(data["regression"], unit, warning, f"{where}.regression", comparison)
                  if "regression" in data else None)
    source = parse_source(data["source"], f"{where}.source")
    born = data.get("born_at_first_event", False)
    if not isinstance(born, bool):
        raise CatalogError(f"{where}.born_at_first_event: expected true or false")
    if "born_at_first_event" in data:
        # The signal's word is every selector's default (a selector may still say otherwise).
        query = dataclasses.replace(query, expr=with_born_default(query.expr, born))
    return Signal(
        id=sid,
        title=data["title"].strip(),
        area=area_id,
        component=choice("component", COMPONENTS),
        unit=unit,
        meaning=" ".join(data["meaning"].split()),
        runbook=" ".join(data["runbook"].split()),
        defaults_reason=" ".join(str(data.get("defaults_reason", "")).split()),
        warning=warning,
        critical=critical,
        comparison=comparison,
        window=parse_duration(data["window"], f"{where}.window"),
        hold=parse_duration(data["for"], f"{where}.for"),
        group_by=tuple(group_by),
        query=query,
        enabled=enabled,
        no_data=choice("no_data", NO_DATA, "ok"),
        keep_firing_for=keep_firing_for,
        regression=regression,
        source=source,
        scope=choice("scope", SCOPES),
        born_at_first_event=born,
        datadog_difference=parse_datadog_difference(data.get("datadog_difference"), where),
        feature=_text(data.get("feature", ""), f"{where}.feature"),
        version_twin=_text(data.get("version_twin", ""), f"{where}.version_twin"),
    )


def _text(value, where) -> str:
    if not isinstance(value, str):
        raise CatalogError(f"{where}: expected text, got {value!r}")
    return " ".join(value.split())


def parse_source(value, where) -> Tuple[str, ...]:
    """`source:` is one path or a list of paths of Go files in cilium/cilium."""
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not paths:
        raise CatalogError(f"{where}: expected a path or a list of paths of Go files in cilium/cilium")
    for path in paths:
        if not isinstance(path, str) or not _SOURCE_RE.match(path):
            raise CatalogError(
                f"{where}: {path!r} is not a path of a Go file in cilium/cilium (such as pkg/metrics/metrics.go)"
            )
    return tuple(paths)
