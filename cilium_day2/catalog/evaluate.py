"""Local evaluation of catalog signals: samples in, one status per signal out.

`doctor` collects snapshots of every endpoint (see `cilium_day2.doctor.command`), this module turns them
into findings with the catalog's thresholds and comparison, through the catalog's own evaluator
(`cilium_day2.catalog.query.evaluate`), so that a signal means the same number here as in the rendered
Prometheus rules and Datadog monitors.

Where the two cannot be the same, the difference is deliberate and documented:

* `for:` holds are not applied: doctor answers "is it failing now", at the end of its sampling.
* Windowed functions (`rate`, `increase`, `delta`, `changes`, `quantile`) see only the sampled
  span. `increase` and `delta` are extrapolated from it to the signal's window, as PromQL
  extrapolates; `changes` counts what the samples saw (sample over the whole window to count
  restarts). When the sampling interval is longer than a window, they use the last two
  samples (the query evaluator's rule, `cilium_day2.catalog.query.Evaluator`).
* Totals over a window (`increase`, `delta`, `changes`) are not extrapolated from samples that
  span less than the window: a quiet counter seen for 15 s says nothing about 15 minutes. The
  observed total is a lower bound of the window's, so it still decides when it already crosses
  a `>` threshold (or clears a `<` one). Otherwise a `>` signal is OK on a partial window, and
  its reason says so (`PARTIAL`): the families were seen and nothing failed while doctor looked;
  a `<` signal (a stall: too few events) is NO DATA, "not enough samples".
* Values that are not finite (NaN, ±Inf) are never judged.
* A signal whose families no endpoint exposes is NO DATA (the feature is off, or the endpoint is
  missing), whatever its `no_data` (which only tells alerts whether silence pages), except gauges
  Cilium deletes while low (`ABSENT_MEANS_LOW`: map pressure) and rates and increases of counters: Cilium creates a labelled counter on its
  first increment, so an absent error counter on a scraped endpoint means "none yet", as it does
  for a Prometheus alert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

__all__ = ["OK", "WARNING", "CRITICAL", "NO_DATA", "Finding", "Group", "Snapshot", "evaluate_catalog", "overall"]

from .query import (
    Changes, Delta, Evaluator, Increase, Quantile, Rate, Snapshot, Up, breaches, iter_nodes, iter_selectors, apply_seen_guards,
)

OK = "OK"
WARNING = "WARNING"
CRITICAL = "CRITICAL"
NO_DATA = "NO DATA"
STATUS_ORDER = {OK: 0, NO_DATA: 1, WARNING: 2, CRITICAL: 3}
_WINDOWED = (Rate, Increase, Delta, Changes, Quantile)
_WINDOW_TOTALS = (Increase, Delta, Changes)


@dataclass
class Group:
    labels: Dict[str, str]
    value: float
    status: str


@dataclass
class Finding:
    signal: object  # cilium_day2.catalog.Signal
    status: str
    value: Optional[float] = None
    threshold: Optional[float] = None
    culprit: Dict[str, str] = field(default_factory=dict)
    groups: List[Group] = field(default_factory=list)  # every group not OK, worst first
    reason: str = ""  # why NO DATA or N/A; for an OK, that it was judged on a partial window

    @property
    def id(self):
        return self.signal.id

    @property
    def severity(self):
        return {WARNING: "warning", CRITICAL: "critical"}.get(self.status)


def severity_of(signal, value) -> str:
    if breaches(value, signal.comparison, signal.critical):
        return CRITICAL
    if breaches(value, signal.comparison, signal.warning):
        return WARNING
    return OK


def _worse(signal, a, b):
    """Whether value a is further on the failing side than b."""
    return a > b if signal.comparison == ">" else a < b


def _families(signal, cloud_apis):
    names = set()
    for selector in iter_selectors(signal.query.expr):
        for family in selector.families(cloud_apis):
            names.add(family)
    return names


def _present(family, seen_names):
    """Whether a family (as the catalog names it) appears among scraped sample names."""
    if family in seen_names:
        return True
    return any(family + suffix in seen_names for suffix in ("_bucket", "_count", "_sum", "_total"))


# The reason of an OK judged on samples that span less than the signal's window.
PARTIAL = "partial window"

# Gauge families whose series Cilium deletes while the value is low: absence is a verdict, "low"
# (cilium_bpf_map_pressure: a map's series exists only above an internal threshold).
ABSENT_MEANS_LOW = frozenset({"cilium_bpf_map_pressure"})


def _counter_only(expr):
    """Rates and increases of counters: an absent family means no event yet."""
    return isinstance(expr, (Rate, Increase))


class SignalEvaluator:
    """Evaluates catalog signals over the snapshots of one cluster."""

    def __init__(self, catalog, snapshots: Sequence[Snapshot], components: Dict[str, str]):
        """components: {component: "" if at least one endpoint was scraped, else the reason
        it could not be evaluated} for agent, operator and hubble."""
        self.catalog = catalog
        self.snapshots = sorted(snapshots, key=lambda s: s.timestamp)
        self.components = components
        self.cloud_apis = tuple(catalog.settings.cloud_apis)
        self.seen = {s.name for snap in self.snapshots for s in snap.samples}

    def evaluate(self, signal) -> Finding:
        comp_problem = self.components.get(signal.component)
        if comp_problem is None:
            return Finding(signal, NO_DATA, reason=f"no {signal.component} endpoint given")
        expr = signal.query.expr
        needs_up = isinstance(expr, Up) or signal.query.only_if_up
        if comp_problem and not needs_up:
            return Finding(signal, NO_DATA, reason=comp_problem)
        if any(isinstance(node, _WINDOWED) for node in iter_nodes(expr)) and len(self.snapshots) < 2:
            return Finding(signal, NO_DATA, reason="needs at least 2 samples (--samples 2)")
        families = _families(signal, self.cloud_apis)
        missing = sorted(f for f in families if not _present(f, self.seen))
        span = self.snapshots[-1].timestamp - self.snapshots[0].timestamp if self.snapshots else 0.0
        short = span < signal.window and any(isinstance(node, _WINDOW_TOTALS) for node in iter_nodes(expr))
        # Short of the window: observed totals over the sampled span, not extrapolated.
        ev = Evaluator(self.snapshots, span if short else signal.window, self.cloud_apis)
        by = list(signal.group_by)
        result = ev.evaluate(expr, by)
        if signal.query.only_if_up:
            up = ev.evaluate(Up(signal.query.only_if_up), by)
            result = {k: v for k, v in result.items() if up.get(k, 0) >= 1}
        guarded = apply_seen_guards(signal.query, self.snapshots, result)
        if result and not guarded and signal.query.unless_seen:
            unless = signal.query.unless_seen
            heir = f"signal {signal.version_twin}" if signal.version_twin else "the signal that reads it"
            return Finding(signal, OK, threshold=self._threshold(signal, OK), reason=(
                f"left to {heir}: every {', '.join(unless.on)} also exposes {', '.join(unless.metrics)}"))
        result = guarded
        result = {k: v for k, v in result.items() if math.isfinite(v)}
        if short and result:
            statuses = {severity_of(signal, v) for v in result.values()}
            decided = statuses != {OK} if signal.comparison == ">" else statuses == {OK}
            if not decided and signal.comparison != ">":
                # A low total over a short span says nothing about a whole window (a stall).
                return Finding(signal, NO_DATA, reason=(
                    f"not enough samples: they span {_human(span)} of the {_human(signal.window)} window "
                    f"(sample the whole window, e.g. --samples 2 --interval {_human(signal.window)})"))
            if not decided:
                # Judged on what was seen: the families are there and nothing crossed the
                # threshold in the sampled span. Said in the reason, since the window was not
                # covered (a quiet counter for 15 s says little about an hour).
                worst = max(result.values()) if signal.comparison == ">" else min(result.values())
                return Finding(signal, OK, value=worst, threshold=self._threshold(signal, OK), reason=(
                    f"{PARTIAL}: nothing over the threshold in the {_human(span)} sampled of its "
                    f"{_human(signal.window)} window (to cover it: --samples 2 --interval {_human(signal.window)})"))
        if not result:
            if isinstance(expr, Up):
                return Finding(signal, NO_DATA, reason=comp_problem or f"no {expr.target} endpoint given")
            if families and len(missing) == len(families):
                # `no_data: ok` is for alerts (silence alone does not page); a gate that did not
                # see the families has not judged the signal, unless Cilium's absence means a
                # known state (an error counter not yet incremented, a map below its pressure
                # threshold).
                if _counter_only(expr) or all(f in ABSENT_MEANS_LOW for f in families):
                    return Finding(signal, OK, value=None, threshold=self._threshold(signal, OK))
                return Finding(signal, NO_DATA, reason=f"not exposed: {', '.join(missing)}")
            # Families exist but nothing matched (no error series, no failing map): like a
            # Prometheus alert with an empty result, nothing is failing.
            return Finding(signal, OK, threshold=self._threshold(signal, OK))
        groups = []
        for key, value in result.items():
            groups.append(Group(dict(key), value, severity_of(signal, value)))
        bad = [g for g in groups if g.status != OK]
        if bad:
            bad.sort(key=lambda g: (-STATUS_ORDER[g.status], -g.value if signal.comparison == ">" else g.value))
            top = bad[0]
            return Finding(
                signal,
                top.status,
                value=top.value,
                threshold=self._threshold(signal, top.status),
                culprit=top.labels,
                groups=bad,
            )
        worst = groups[0]
        for g in groups[1:]:
            if _worse(signal, g.value, worst.value):
                worst = g
        return Finding(signal, OK, value=worst.value, threshold=self._threshold(signal, OK), culprit=worst.labels)

    @staticmethod
    def _threshold(signal, status):
        if status == CRITICAL:
            return signal.critical
        if status == WARNING:
            return signal.warning
        return signal.warning if signal.warning is not None else signal.critical


def _human(seconds):
    seconds = int(round(seconds))
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def evaluate_catalog(catalog, snapshots, components) -> List[Finding]:
    """One finding per enabled signal, in catalog order."""
    ev = SignalEvaluator(catalog, snapshots, components)
    return [ev.evaluate(signal) for signal in catalog.enabled()]


def overall(findings) -> str:
    worst = OK
    for f in findings:
        if f.status in (WARNING, CRITICAL) and STATUS_ORDER[f.status] > STATUS_ORDER[worst]:
            worst = f.status
    return worst
