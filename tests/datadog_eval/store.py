"""What the Datadog Agent sends and the intake stores, from the check's submissions.

The check submits to datadog-checks-dev's stub aggregator: gauges and monotonic counts as raw
values, distributions as raw cumulative bucket counts, service checks as statuses. The real
Agent turns those into stored points at each flush; this module does the same, one flush per
check run, with the rules of the Agent's own code:

* gauge: the last value of the run, at the run's time;
* monotonic count (datadog-agent `pkg/metrics/monotonic_count.go`): the increase since the
  previous run; the first value is sent whole only when the check says `flush_first_value`
  (the OpenMetrics scraper does after its first run); a decrease is a reset: the new value is
  sent with `flush_first_value`, nothing otherwise;
* histogram bucket (`pkg/aggregator/check_sampler.go`, `addBucket`): the increase of each
  bucket since the previous run, dropped when negative (a reset) or, without
  `flush_first_value`, when the bucket is new; the count is spread over the bucket's bounds
  (all at the lower bound for `+Inf`).

Every point carries `span`, the seconds since the previous run of the same check: the interval
a count covers (`as_rate` divides by it).

Tags are normalized the way Datadog stores them (https://docs.datadoghq.com/getting_started/tagging/#define-tags):
lowercase; characters other than letters, digits, `_ - : . /` become `_`; runs of `_` collapse
and trailing `_` are dropped. `host` and the Agent's host tags are added as tags, as the
intake attaches them to every point of the host.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Tuple

GAUGE = "gauge"
COUNT = "count"
BOUND_TAGS = ("upper_bound:", "lower_bound:")


@functools.lru_cache(maxsize=None)
def normalize_tag(tag: str) -> str:
    tag = tag.lower()
    tag = re.sub(r"[^a-z0-9_\-:./]", "_", tag)
    tag = re.sub(r"_+", "_", tag)
    return tag.rstrip("_")


@dataclass(frozen=True)
class Point:
    t: float
    value: float
    span: float


@dataclass
class Context:
    name: str
    kind: str  # gauge | count
    tags: FrozenSet[str]
    points: List[Point] = field(default_factory=list)


@dataclass
class Distribution:
    name: str
    tags: FrozenSet[str]
    # (t, lower, upper, count), one row per bucket increase
    buckets: List[Tuple[float, float, float, float]] = field(default_factory=list)


@dataclass
class Status:
    t: float
    status: int  # 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN


class Store:
    """Stored points by metric name and context (tags, host included)."""

    def __init__(self):
        self.contexts: Dict[str, Dict[FrozenSet[str], Context]] = defaultdict(dict)
        self.distributions: Dict[str, Dict[FrozenSet[str], Distribution]] = defaultdict(dict)
        self.service_checks: Dict[str, Dict[FrozenSet[str], List[Status]]] = defaultdict(dict)
        self._monotonic: Dict[tuple, float] = {}  # context -> previous raw value
        self._buckets: Dict[tuple, float] = {}  # bucket context -> previous raw value
        self._last_run: Dict[str, float] = {}  # check id -> time of its previous run

    # -- one check run ------------------------------------------------------------------------
    def flush(self, check_id: str, t: float, host_tags: List[str], metrics, buckets, service_checks, types):
        """Stores one run of one check. `metrics`, `buckets`, `service_checks`: the stub
        aggregator's records of that run; `types`: the stub's metric type constants
        (`{"gauge": ..., "monotonic_count": ...}`)."""
        previous = self._last_run.get(check_id)
        span = t - previous if previous is not None else 0.0
        self._last_run[check_id] = t
        extra = tuple(normalize_tag(tag) for tag in host_tags)
        for stub in metrics:
            tags = self._tags(tuple(stub.tags), extra)
            if stub.type == types["gauge"]:
                self._point(stub.name, GAUGE, tags, Point(t, float(stub.value), span))
            elif stub.type == types["monotonic_count"]:
                value = self._monotonic_delta((check_id, stub.name, tags), float(stub.value), stub.flush_first_value)
                if value is not None:
                    self._point(stub.name, COUNT, tags, Point(t, value, span))
            else:
                raise ValueError(f"{stub.name}: metric type {stub.type} is not one the evaluator stores")
        for stub in buckets:
            raw = tuple(stub.tags)
            bucket_key = (check_id, stub.name, raw, stub.lower_bound, stub.upper_bound)
            value = self._bucket_delta(bucket_key, float(stub.value), stub.flush_first_value)
            if not value:
                continue
            dist_tags = self._tags(tuple(tag for tag in raw if not tag.startswith(BOUND_TAGS)), extra)
            dist = self.distributions[stub.name].get(dist_tags)
            if dist is None:
                dist = self.distributions[stub.name][dist_tags] = Distribution(stub.name, dist_tags)
            upper = stub.upper_bound if stub.upper_bound != float("inf") else stub.lower_bound
            dist.buckets.append((t, stub.lower_bound, upper, value))
        for stub in service_checks:
            tags = self._tags(tuple(stub.tags), extra)
            self.service_checks[stub.name].setdefault(tags, []).append(Status(t, int(stub.status)))

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def _tags(tags: tuple, extra: tuple) -> FrozenSet[str]:
        return frozenset([normalize_tag(tag) for tag in tags] + list(extra))

    def _point(self, name, kind, tags, point):
        context = self.contexts[name].get(tags)
        if context is None:
            context = self.contexts[name][tags] = Context(name, kind, tags)
        context.points.append(point)

    def _monotonic_delta(self, key, value, flush_first_value):
        previous = self._monotonic.get(key)
        self._monotonic[key] = value
        if previous is None:
            return value if flush_first_value else None
        if value >= previous:
            return value - previous
        return value if flush_first_value else 0.0

    def _bucket_delta(self, key, value, flush_first_value):
        previous = self._buckets.get(key)
        self._buckets[key] = value
        if previous is None:
            return value if flush_first_value else 0.0
        delta = value - previous
        return delta if delta > 0 else 0.0
