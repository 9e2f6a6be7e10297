"""A simulated Cilium cluster: per-node state as a function of simulated time.

Every gauge is a knob read at the current simulated time. Every counter (and every histogram
bucket) integrates a rate that the knobs give, from one scrape to the next, so counters only
move forward (except when the simulated process restarts, when they start again from zero, as
Cilium's do).

Time compression. `speed` makes simulated time run faster than the wall clock, so a scenario
that develops over an hour plays out in a minute. The simulation is a time-lapse: everything
(gauges, ramps, steps, restarts, GC runs, and the counters, which integrate their per-second rates
over *simulated* seconds) follows the simulated clock. A reader on the wall clock therefore sees
counters move `speed` times faster: `doctor --demo` divides its sampling interval's rates by the
speed, and the end-to-end tests shrink windows and holds by the speed and multiply per-second
thresholds by it (see the README, "Simulator and doctor").
"""

import hashlib
import math
import threading
import time

from ..catalog.buckets import family_layouts
from . import knobs as K
from .exposition import Exposition
from .profiles import Profile, profile_from_spec

AGENT = "agent"
OPERATOR = "operator"
HUBBLE = "hubble"
COMPONENTS = (AGENT, OPERATOR, HUBBLE)

# Spread of the simulated latency distributions (log-normal): p99 = median * e^(2.326 * sigma).
SIGMA = 0.55
_Z99 = 2.326


def _cilium_buckets(family: str) -> tuple:
    """Cilium's own bucket bounds (data/histograms.yaml; the 1.14 to 1.18 layout where it changed)."""
    return family_layouts(family)[0][1]


DEFAULT_BUCKETS = _cilium_buckets("cilium_kvstore_operations_duration_seconds")
GC_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
POLICY_BUCKETS = _cilium_buckets("cilium_policy_implementation_delay")
IPAM_BUCKETS = _cilium_buckets("cilium_operator_ipam_allocation_duration_seconds")
QUEUE_BUCKETS = _cilium_buckets("cilium_kvstore_events_queue_seconds")
CLOUD_API_BUCKETS = _cilium_buckets("cilium_operator_{cloud}_api_duration_seconds")
RATE_LIMIT_BUCKETS = _cilium_buckets("cilium_operator_{cloud}_api_rate_limit_duration_seconds")
INF = float("inf")


def node_name(index):
    """EC2-style private DNS names: the `node` label real setups relabel from the pod's node."""
    return f"ip-10-0-{32 + index // 200}-{10 + index % 200}.ec2.internal"


def _fraction(seed):
    """A stable number in [0, 1) from a string: per-node variation that does not change
    between runs."""
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:6], "big") / float(1 << 48)


def _cdf(le, median):
    if le == INF:
        return 1.0
    if median <= 0:
        return 1.0
    return 0.5 * (1.0 + math.erf((math.log(le) - math.log(median)) / (SIGMA * math.sqrt(2.0))))


_SHAPES = {}


def _shape(p99, buckets):
    """(share of observations under each bound, mean) of the latency distribution with this
    p99. Cached: a p99 only moves during a ramp, and every scrape needs dozens of histograms."""
    key = (p99, buckets)
    shape = _SHAPES.get(key)
    if shape is None:
        median = p99 / math.exp(_Z99 * SIGMA) if p99 > 0 else 0.0
        shape = (tuple(_cdf(le, median) for le in buckets), median * math.exp(SIGMA * SIGMA / 2.0))
        if len(_SHAPES) > 20000:
            _SHAPES.clear()
        _SHAPES[key] = shape
    return shape


def _hist_rates(out, name, labels, rate, p99, buckets):
    """Rates of a histogram's bucket, sum and count series, for observations arriving at `rate`
    per second with the given p99 (seconds)."""
    shares, mean = _shape(p99, buckets)
    bucket = name + "_bucket"
    for le, share in zip(buckets, shares):
        out.append(("counter", bucket, labels + (("le", le),), rate * share))
    out.append(("counter", bucket, labels + (("le", INF),), rate))
    out.append(("counter", name + "_sum", labels, rate * mean))
    out.append(("counter", name + "_count", labels, rate))


class _SeriesCache:
    """The last few evaluations of a series function, by simulated time. Successive scrapes
    integrate counters from the previous scrape's instant, and an agent and its Hubble server
    are advanced together: the same instants come back again and again."""

    def __init__(self, fn, size=4):
        self.fn = fn
        self.size = size
        self.entries = {}

    def __call__(self, t):
        hit = self.entries.get(t)
        if hit is None:
            hit = self.fn(t)
            if len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries)))
            self.entries[t] = hit
        return hit


class Clock:
    """Simulated time: `start + speed * (wall seconds since the clock was made)`."""

    def __init__(self, speed=1.0, start=0.0, wall=None):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self.start = float(start)
        self._t0 = time.monotonic() if wall is None else wall
        self._epoch0 = time.time()

    def now(self, wall=None):
        wall = time.monotonic() if wall is None else wall
        return self.start + self.speed * (wall - self._t0)

    def epoch(self, sim_t):
        """Wall-clock Unix time at which the simulation reached (or will reach) `sim_t`."""
        return self._epoch0 + (sim_t - self.start) / self.speed


class _Counters:
    """Accumulated counter values for one process (an agent with its Hubble server, or the
    operator), advanced from one simulated time to the next."""

    def __init__(self):
        self.values = {}
        self.t = None

    def reset(self):
        self.values = {}


class Node:
    def __init__(self, cluster, index, profiles, strings):
        self.cluster = cluster
        self.index = index
        self.name = node_name(index)
        self._profiles = profiles  # knob -> Profile (node knobs; cluster knobs are read from cluster)
        self._strings = strings  # knob -> [(t, value)]
        self.factor = 0.85 + 0.3 * _fraction(f"{cluster.name}/{index}")
        self.counters = _Counters()
        self.restarts_seen = None
        self.lock = threading.Lock()
        # (agent series, Hubble series) by simulated time; used under `lock`.
        self.series = _SeriesCache(lambda t: (self.agent_series(t), self.hubble_series(t)))

    def knob(self, name, t):
        if K.scope_of(name) == K.CLUSTER:
            return self.cluster.knob(name, t)
        value = self._profiles[name](t)
        if K.KNOBS[name][2] and name in self.cluster.baseline_knobs(self.index):
            value *= self.factor
        return value

    def string(self, name, t):
        value = None
        for at, v in self._strings[name]:
            if at <= t or value is None:
                value = v
        return value

    def restarts(self, t):
        return self._profiles["restarts_per_hour"].integral(max(t, 0.0)) / 3600.0

    def last_start(self, t):
        """Simulated time of the agent's last (re)start."""
        n = math.floor(self.restarts(t) + 1e-9)
        if n <= 0:
            return None
        lo, hi = 0.0, max(t, 0.0)
        for _ in range(60):
            mid = (lo + hi) / 2.0
            if self.restarts(mid) + 1e-9 >= n:
                hi = mid
            else:
                lo = mid
        return hi

    # --- series ---------------------------------------------------------------------------
    def agent_series(self, t):
        """(kind, sample name, labels, value) for gauges; (\"counter\", name, labels, rate) for
        counters and histogram parts."""
        k = self.knob
        out = []
        g = out.append
        for m in K.PRESSURE_MAPS:
            v = k(f"map_pressure.{m}", t)
            # Cilium deletes a map's pressure series while it is below its threshold.
            if v >= 0.1:
                g(("gauge", "cilium_bpf_map_pressure", (("map_name", m),), round(v, 4)))
        for m in K.OPS_MAPS:
            ok = k(f"map_ops.{m}", t)
            g(("counter", "cilium_bpf_map_ops_total", (("map_name", m), ("operation", "update"), ("outcome", "success")), ok * 0.7))
            g(("counter", "cilium_bpf_map_ops_total", (("map_name", m), ("operation", "delete"), ("outcome", "success")), ok * 0.3))
            fail = k(f"map_ops_fail.{m}", t)
            g(("lazy", "cilium_bpf_map_ops_total", (("map_name", m), ("operation", "update"), ("outcome", "fail")), fail))
        for key, (reason, split) in K.DROP_REASONS.items():
            rate = k(f"drop.{key}", t)
            for direction, share in split:
                labels = (("direction", direction), ("reason", reason))
                g(("lazy", "cilium_drop_count_total", labels, rate * share))
                g(("lazy", "cilium_drop_bytes_total", labels, rate * share * 92.0))
        fwd = k("forward_pps", t)
        for direction, share in (("INGRESS", 0.52), ("EGRESS", 0.48)):
            g(("counter", "cilium_forward_count_total", (("direction", direction),), fwd * share))
            g(("counter", "cilium_forward_bytes_total", (("direction", direction),), fwd * share * 710.0))
        # Conntrack garbage collection: one run per protocol per interval.
        runs = 1.0 / max(k("ct_gc.interval", t), 1.0)
        bad = min(max(k("ct_gc.uncompleted_ratio", t), 0.0), 1.0)
        alive, deleted = k("ct_gc.alive", t), k("ct_gc.deleted", t)
        for proto, share in (("TCP", 0.72), ("non-TCP", 0.28)):
            base = (("family", "ipv4"), ("protocol", proto))
            g(("counter", "cilium_datapath_conntrack_gc_runs_total", base + (("status", "completed"),), runs * (1 - bad)))
            g(("lazy", "cilium_datapath_conntrack_gc_runs_total", base + (("status", "uncompleted"),), runs * bad))
            g(("gauge", "cilium_datapath_conntrack_gc_entries", base + (("status", "alive"),), round(alive * share)))
            g(("gauge", "cilium_datapath_conntrack_gc_entries", base + (("status", "deleted"),), round(deleted * share)))
            _hist_rates(
                out,
                "cilium_datapath_conntrack_gc_duration_seconds",
                base + (("status", "completed"),),
                runs,
                k("ct_gc.duration_p99", t),
                GC_BUCKETS,
            )
        # Identities and ipcache
        # An agent counts only the cluster identities it allocated or its endpoints use (the
        # cluster's count is the operator's): a few dozen plus a small share of the cluster's.
        cluster_ids = k("identities.cluster_local", t)
        g(("gauge", "cilium_identity", (("type", "cluster_local"),), round(min(cluster_ids, 45 + 0.03 * cluster_ids) + self.index % 3)))
        g(("gauge", "cilium_identity", (("type", "node_local"),), round(k("identities.node_local", t))))
        g(("gauge", "cilium_identity", (("type", "reserved"),), 12))
        ev = k("ipcache_events", t)
        g(("counter", "cilium_ipcache_events_total", (("type", "upsert"),), ev * 0.6))
        g(("counter", "cilium_ipcache_events_total", (("type", "delete"),), ev * 0.4))
        # Upserts refused because a higher-precedence source owns the entry (Cilium's error label).
        g(("lazy", "cilium_ipcache_errors_total", (("error", "cannot_overwrite_by_source"), ("type", "upsert")), k("ipcache_errors", t)))
        # KVStore
        ops, err = k("kvstore.ops", t), min(max(k("kvstore.error_ratio", t), 0.0), 1.0)
        p99 = k("kvstore.p99", t)
        for scope, action, share in (
            ("cilium/state/identities/v1", "Get", 0.35),
            ("cilium/state/identities/v1", "Update", 0.15),
            ("cilium/state/ip/v1", "Update", 0.3),
            ("cilium/state/nodes/v1", "Update", 0.1),
            ("cilium/state/identities/v1", "Lock", 0.1),
        ):
            base = (("action", action), ("kind", "etcd"))
            _hist_rates(out, "cilium_kvstore_operations_duration_seconds", base + (("outcome", "success"), ("scope", scope)), ops * share * (1 - err), p99, DEFAULT_BUCKETS)
            if err > 0 or self.counters.values.get(("cilium_kvstore_operations_duration_seconds_count", base + (("outcome", "fail"), ("scope", scope)))):
                _hist_rates(out, "cilium_kvstore_operations_duration_seconds", base + (("outcome", "fail"), ("scope", scope)), ops * share * err, p99, DEFAULT_BUCKETS)
        evq = k("kvstore.events", t)
        for scope, share in (("cilium/state/identities/v1", 0.4), ("cilium/state/ip/v1", 0.6)):
            _hist_rates(out, "cilium_kvstore_events_queue_seconds", (("action", "update"), ("scope", scope)), evq * share, k("kvstore.events_queue_p99", t), QUEUE_BUCKETS)
        g(("lazy", "cilium_kvstore_quorum_errors_total", (("error", "timeout while waiting for quorum"),), k("kvstore.quorum_errors", t)))
        src = (("scope", "nodes/v1"), ("source_cluster", self.cluster.name))
        # Pre-created at 0 by the sync store (pkg/kvstore/store/syncstore.go).
        g(("counter", "cilium_kvstore_sync_errors_total", src, k("kvstore.sync_errors", t)))
        g(("gauge", "cilium_kvstore_sync_queue_size", src, round(k("kvstore.sync_queue", t))))
        done = 1 if k("kvstore.initial_sync_completed", t) >= 0.5 else 0
        for scope, action in (("identities/v1", "read"), ("ip/v1", "read"), ("nodes/v1", "write")):
            g(("gauge", "cilium_kvstore_initial_sync_completed", (("action", action), ("scope", scope), ("source_cluster", self.cluster.name)), done))
        # ClusterMesh: each agent's view of the remote clusters. `remote_cluster_failures` is a
        # gauge the agent raises by one per failure (integrated here like a counter).
        mesh = (("source_cluster", self.cluster.name), ("source_node_name", self.name))
        g(("gauge", "cilium_clustermesh_remote_clusters", mesh, len(K.REMOTE_CLUSTERS)))
        g(("gauge", "cilium_clustermesh_global_services", mesh, 12))
        for i, remote in enumerate(K.REMOTE_CLUSTERS):
            labels = mesh + (("target_cluster", remote),)
            ready = 1 if k(f"clustermesh.ready.{i}", t) >= 0.5 else 0
            g(("gauge", "cilium_clustermesh_remote_cluster_readiness_status", labels, ready))
            g(("gauge", "cilium_clustermesh_remote_cluster_nodes", labels, 40 if ready else 0))
            g(("counter", "cilium_clustermesh_remote_cluster_failures", labels, k(f"clustermesh.failures_per_hour.{i}", t) / 3600.0))
        # Node-to-node health. 1.17+ counts peers' paths by type and last status; before 1.17
        # one series per peer and type is 1 or 0; 1.17 reports both. The unreachable peers are
        # the farthest by index, so that a partition splits the node list in two.
        version = _minor(self.string("version", t))
        others = sorted((j for j in range(len(self.cluster.nodes)) if j != self.index),
                        key=lambda j: (-abs(j - self.index), j))
        for ptype, knob in (("endpoint", "unreachable.health_endpoints"), ("node", "unreachable.nodes")):
            down = min(round(k(knob, t)), len(others))
            if version >= (1, 17):
                for status, value in (("reachable", len(others) - down), ("unknown", 0), ("unreachable", down)):
                    g(("gauge", "cilium_node_health_connectivity_status", mesh + (("status", status), ("type", ptype)), value))
            if version <= (1, 17):
                lost = set(others[:down])
                for j in others:
                    peer = (("target_cluster", self.cluster.name), ("target_node_name", node_name(j)),
                            ("target_node_type", "remote_intra_cluster"), ("type", ptype))
                    g(("gauge", "cilium_node_connectivity_status", mesh + peer, 0 if j in lost else 1))
        # Control plane
        failing = k("controllers.failing", t)
        g(("gauge", "cilium_controllers_failing", (), round(failing)))
        g(("counter", "cilium_controllers_runs_total", (("status", "success"),), k("controllers.runs", t)))
        g(("lazy", "cilium_controllers_runs_total", (("status", "failure"),), round(failing) * 0.2))
        g(("gauge", "cilium_unreachable_nodes", (), round(k("unreachable.nodes", t))))
        g(("gauge", "cilium_unreachable_health_endpoints", (), round(k("unreachable.health_endpoints", t))))
        for state, knob in (
            ("ready", "endpoints.ready"),
            ("not-ready", "endpoints.not_ready"),
            ("waiting-for-identity", "endpoints.waiting_for_identity"),
            ("regenerating", "endpoints.regenerating"),
            ("restoring", "endpoints.restoring"),
        ):
            v = round(k(knob, t))
            if v > 0 or state == "ready":
                g(("gauge", "cilium_endpoint_state", (("endpoint_state", state),), v))
        g(("counter", "cilium_endpoint_regenerations_total", (("outcome", "success"),), k("endpoint_regenerations", t)))
        g(("lazy", "cilium_endpoint_regenerations_total", (("outcome", "fail"),), k("endpoint_regenerations_fail", t)))
        g(("gauge", "cilium_policy", (), round(k("policy.count", t))))
        changes, change_fail = k("policy.changes", t), k("policy.change_failures", t)
        g(("counter", "cilium_policy_change_total", (("outcome", "success"),), changes))
        g(("lazy", "cilium_policy_change_total", (("outcome", "fail"),), change_fail))
        _hist_rates(out, "cilium_policy_implementation_delay", (("source", "k8s"),), max(changes, 0.0) + 0.02, k("policy.delay_p99", t), POLICY_BUCKETS)
        ec = k("api_limiter.endpoint_create", t)
        wait = k("api_limiter.endpoint_create_wait", t)
        g(("counter", "cilium_api_limiter_processed_requests_total", (("api_call", "endpoint-create"), ("outcome", "success"), ("return_code", "201")), ec))
        # Requests the limiter gave up on (wait exceeded): the CNI plugin gets 429 and retries.
        g(("lazy", "cilium_api_limiter_processed_requests_total", (("api_call", "endpoint-create"), ("outcome", "fail"), ("return_code", "429")), k("api_limiter.endpoint_create_rejected", t)))
        g(("counter", "cilium_api_limiter_processed_requests_total", (("api_call", "endpoint-delete"), ("outcome", "success"), ("return_code", "200")), ec * 0.95))
        for value, factor in (("max", 3.0), ("mean", 1.0), ("min", 0.0)):
            g(("gauge", "cilium_api_limiter_wait_duration_seconds", (("api_call", "endpoint-create"), ("value", value)), round(wait * factor, 4)))
            g(("gauge", "cilium_api_limiter_wait_duration_seconds", (("api_call", "endpoint-delete"), ("value", value)), 0))
        calls, kerr = k("k8s_api.calls", t), min(max(k("k8s_api.error_ratio", t), 0.0), 1.0)
        for method, code, share in (("GET", "200", 0.55), ("PATCH", "200", 0.25), ("PUT", "200", 0.15), ("POST", "201", 0.05)):
            g(("counter", "cilium_k8s_client_api_calls_total", (("host", "172.20.0.1:443"), ("method", method), ("return_code", code)), calls * share * (1 - kerr)))
        g(("lazy", "cilium_k8s_client_api_calls_total", (("host", "172.20.0.1:443"), ("method", "PATCH"), ("return_code", "500")), calls * kerr * 0.6))
        g(("lazy", "cilium_k8s_client_api_calls_total", (("host", "172.20.0.1:443"), ("method", "GET"), ("return_code", "429")), calls * kerr * 0.4))
        g(("counter", "cilium_errors_warnings_total", (("level", "warning"), ("subsystem", "daemon")), k("errors_warnings", t)))
        return out

    def hubble_series(self, t):
        k = self.knob
        out = []
        g = out.append
        flows = k("hubble.flows", t)
        for ftype, subtype, verdict, proto, share in (
            ("Trace", "to-endpoint", "FORWARDED", "TCP", 0.46),
            ("Trace", "to-stack", "FORWARDED", "TCP", 0.27),
            ("Trace", "to-endpoint", "FORWARDED", "UDP", 0.18),
            ("Trace", "to-stack", "FORWARDED", "ICMPv4", 0.01),
            ("L7", "DNS", "FORWARDED", "DNS", 0.07),
            ("Drop", "", "DROPPED", "TCP", 0.01),
        ):
            labels = (("protocol", proto), ("subtype", subtype), ("type", ftype), ("verdict", verdict))
            g(("counter", "hubble_flows_processed_total", labels, flows * share))
        for source in K.HUBBLE_LOST_SOURCES:
            rate = k(f"hubble_lost.{source}", t)
            if source == "hubble_ring_buffer" and rate < 0:
                # 1.19.x reports ~12 lost events a minute here with no real loss (cilium#46584).
                rate = 0.2 if self.string("version", t).startswith("1.19.") else 0.0
            g(("lazy", "hubble_lost_events_total", (("source", source),), rate))
        # Drop flows come through the same pipeline: when it stalls, they stop too.
        observed = 1.0 if flows > 0 else 0.0
        g(("counter", "hubble_drop_total", (("protocol", "TCP"), ("reason", "POLICY_DENIED")), k("drop.policy_denied", t) * 0.8 * observed))
        g(("counter", "hubble_dns_queries_total", (("ips_returned", "0"), ("qtypes", "A"), ("rcode", "")), flows * 0.02))
        g(("counter", "hubble_dns_responses_total", (("ips_returned", "1"), ("qtypes", "A"), ("rcode", "No Error")), flows * 0.019))
        g(("counter", "hubble_tcp_flags_total", (("family", "IPv4"), ("flag", "SYN")), flows * 0.05))
        return out


class Cluster:
    """One simulated cluster: N nodes (agent + Hubble each) and the leader operator."""

    def __init__(self, name, nodes, knob_specs=(), clock=None, seed_history=3600.0):
        """knob_specs: iterable of (knob, spec, node indexes or None for every node)."""
        self.name = name
        self.clock = clock or Clock()
        self._baseline_set = {}
        node_profiles = [dict() for _ in range(nodes)]
        node_strings = [dict() for _ in range(nodes)]
        self._profiles = {}
        for name_, (scope, baseline, _) in K.KNOBS.items():
            if scope == K.CLUSTER:
                self._profiles[name_] = Profile.constant(baseline)
            else:
                for i in range(nodes):
                    node_profiles[i][name_] = Profile.constant(baseline)
        for name_, (_, baseline) in K.STRING_KNOBS.items():
            for i in range(nodes):
                node_strings[i][name_] = [(0.0, baseline)]
        overridden = [set() for _ in range(nodes)]
        for knob, spec, indexes in knob_specs:
            scope = K.scope_of(knob)
            targets = range(nodes) if indexes is None else indexes
            if knob in K.STRING_KNOBS:
                for i in targets:
                    node_strings[i][knob] = _string_steps(spec, K.STRING_KNOBS[knob][1])
                continue
            baseline = K.KNOBS[knob][1]
            profile = profile_from_spec(spec, baseline, f"knob {knob}")
            if scope == K.CLUSTER:
                self._profiles[knob] = profile
            else:
                for i in targets:
                    node_profiles[i][knob] = profile
                    overridden[i].add(knob)
        self._overridden = overridden
        self.nodes = [Node(self, i, node_profiles[i], node_strings[i]) for i in range(nodes)]
        self.operator_counters = _Counters()
        self.operator_lock = threading.Lock()
        self.operator_restarts_seen = None
        self._operator_series = _SeriesCache(self.operator_series)  # used under operator_lock
        self._seed_history = seed_history
        self._breakpoints = self._collect_breakpoints()
        self._sloped = self._collect_sloped()

    def baseline_knobs(self, index):
        """Node knobs still at their baseline on node `index` (only those vary per node: a
        scenario's values are exact)."""
        cached = self._baseline_set.get(index)
        if cached is None:
            cached = {n for n, (s, _, vary) in K.KNOBS.items() if s == K.NODE and vary} - self._overridden[index]
            self._baseline_set[index] = cached
        return cached

    def knob(self, name, t):
        return self._profiles[name](t)

    def breakpoints(self):
        return self._breakpoints

    def _collect_breakpoints(self):
        pts = set()
        for p in self._profiles.values():
            pts.update(p.breakpoints)
        for node in self.nodes:
            for p in node._profiles.values():
                pts.update(p.breakpoints)
            for steps in node._strings.values():
                pts.update(at for at, _ in steps)
        return sorted(pts)

    def _collect_sloped(self):
        """Time spans over which some knob ramps (everything else is flat between breakpoints)."""
        spans = set()
        profiles = list(self._profiles.values()) + [p for n in self.nodes for p in n._profiles.values()]
        for p in profiles:
            for (t0, v0), (t1, v1) in zip(p.points, p.points[1:]):
                if t1 > t0 and v1 != v0:
                    spans.add((t0, t1))
        return sorted(spans)

    def _flat(self, a, b):
        """Whether every knob holds still between a and b (which no breakpoint separates)."""
        m = (a + b) / 2.0
        return not any(t0 < m < t1 for t0, t1 in self._sloped)

    # --- operator -------------------------------------------------------------------------
    def operator_restarts(self, t):
        return self._profiles["operator_restarts_per_hour"].integral(max(t, 0.0)) / 3600.0

    def operator_series(self, t):
        k = self.knob
        out = []
        g = out.append
        # Identity GC. `identity_gc_runs` is a gauge that only grows: runs happen on the
        # simulated clock, one per interval.
        runs = self._profiles["identity_gc.interval"]
        total_runs = math.floor(_integral_of_inverse(runs, t))
        fail_ratio = self._profiles["identity_gc.fail_ratio"]
        fails = math.floor(_integral_of_ratio_over_interval(fail_ratio, runs, t) + 1e-9)
        fails = min(fails, total_runs)
        alive = round(k("identities.cluster_local", t))
        g(("gauge", "cilium_operator_identity_gc_entries", (("identity_type", "kvstore"), ("status", "alive")), alive))
        g(("gauge", "cilium_operator_identity_gc_entries", (("identity_type", "kvstore"), ("status", "deleted")), round(k("identity_gc.deleted", t))))
        g(("gauge", "cilium_operator_identity_gc_runs", (("identity_type", "kvstore"), ("outcome", "success")), total_runs - fails + 40))
        if fails > 0:
            g(("gauge", "cilium_operator_identity_gc_runs", (("identity_type", "kvstore"), ("outcome", "fail")), fails))
        g(("gauge", "cilium_operator_identity_gc_latency", (("identity_type", "kvstore"), ("outcome", "success")), round(k("identity_gc.latency", t), 3)))
        # Cloud API (EC2). Throttled calls come back as HTTP 503 (RequestLimitExceeded).
        rate = k("cloud_api.rate", t)
        err = min(max(k("cloud_api.error_ratio", t), 0.0), 1.0)
        p99, rl = k("cloud_api.p99", t), k("cloud_api.ratelimit_p99", t)
        for op, share in K.CLOUD_OPERATIONS:
            r = rate * share
            _hist_rates(out, "cilium_operator_ec2_api_duration_seconds", (("operation", op), ("response_code", "OK")), r * (1 - err), p99, CLOUD_API_BUCKETS)
            key = ("cilium_operator_ec2_api_duration_seconds_count", (("operation", op), ("response_code", "503 Service Unavailable")))
            if err > 0 or self.operator_counters.values.get(key):
                _hist_rates(out, "cilium_operator_ec2_api_duration_seconds", (("operation", op), ("response_code", "503 Service Unavailable")), r * err, p99, CLOUD_API_BUCKETS)
            _hist_rates(out, "cilium_operator_ec2_api_rate_limit_duration_seconds", (("operation", op),), r, rl, RATE_LIMIT_BUCKETS)
        # IPAM, per node
        nodes_needing = 0
        at_capacity = 0
        totals = {"available": 0, "used": 0, "needed": 0}
        for node in self.nodes:
            avail, used, needed = round(node.knob("ipam.available", t)), round(node.knob("ipam.used", t)), round(node.knob("ipam.needed", t))
            labels = (("target_node", node.name),)
            g(("gauge", "cilium_operator_ipam_available_ips", labels, avail))
            g(("gauge", "cilium_operator_ipam_used_ips", labels, used))
            g(("gauge", "cilium_operator_ipam_needed_ips", labels, needed))
            nodes_needing += needed > 0
            at_capacity += node.knob("ipam.at_capacity", t) >= 0.5
            totals["available"] += avail
            totals["used"] += used
            totals["needed"] += needed
        for category, value in (("total", len(self.nodes)), ("in-deficit", nodes_needing), ("at-capacity", at_capacity)):
            g(("gauge", "cilium_operator_ipam_nodes", (("category", category),), value))
        for kind, value in totals.items():
            g(("gauge", "cilium_operator_ipam_ips", (("type", kind),), value))
        alloc = k("ipam.alloc_ops", t)
        creations, creation_fail = k("ipam.interface_creations", t), k("ipam.interface_failures", t)
        # ENI creation fails where the subnet has run out of addresses.
        avail = [k(f"subnet.available.{i}", t) for i in range(len(K.SUBNETS))]
        starved = [i for i, a in enumerate(avail) if a < 500] or [0]
        for i, (subnet, zone) in enumerate(K.SUBNETS):
            s = (("subnet_id", subnet),)
            g(("counter", "cilium_operator_ipam_ip_allocation_ops", s, alloc / len(K.SUBNETS)))
            g(("counter", "cilium_operator_ipam_ip_release_ops", s, alloc * 0.9 / len(K.SUBNETS)))
            g(("counter", "cilium_operator_ipam_interface_creation_ops", s, creations / len(K.SUBNETS)))
            g(("gauge", "cilium_operator_ipam_available_ips_per_subnet", (("availability_zone", zone),) + s, round(k(f"subnet.available.{i}", t))))
            # Allocation attempts as Cilium 1.13+ records them (pkg/ipam/node.go): `type` is
            # allocateIP or createInterfaceAndAllocateIP, `status` success, failed (allocateIP)
            # or the cloud's error condition (unableToCreateENI, ...). Failures hit the subnets
            # that have run out of addresses.
            p99 = k("ipam.alloc_p99", t)
            _hist_rates(out, "cilium_operator_ipam_allocation_duration_seconds", (("status", "success"), ("subnet_id", subnet), ("type", "allocateIP")), alloc / len(K.SUBNETS), p99, IPAM_BUCKETS)
            _hist_rates(out, "cilium_operator_ipam_allocation_duration_seconds", (("status", "success"), ("subnet_id", subnet), ("type", "createInterfaceAndAllocateIP")), creations / len(K.SUBNETS), p99, IPAM_BUCKETS)
            for kind, status, knob in (("allocateIP", "failed", "ipam.ip_failures"), ("createInterfaceAndAllocateIP", "unableToCreateENI", "ipam.interface_failures")):
                labels = (("status", status), ("subnet_id", subnet), ("type", kind))
                rate = k(knob, t) / len(starved) if i in starved else 0.0
                if rate > 0 or self.operator_counters.values.get(("cilium_operator_ipam_allocation_duration_seconds_count", labels)):
                    _hist_rates(out, "cilium_operator_ipam_allocation_duration_seconds", labels, rate, p99, IPAM_BUCKETS)
        # CiliumEndpointSlices: syncs by outcome; the `fail` series is born at the first failure.
        syncs, ces_fail = k("ces.syncs", t), min(max(k("ces.fail_ratio", t), 0.0), 1.0)
        g(("counter", "cilium_operator_ces_sync_total", (("outcome", "success"),), syncs * (1 - ces_fail)))
        g(("lazy", "cilium_operator_ces_sync_total", (("outcome", "fail"),), syncs * ces_fail))
        g(("gauge", "cilium_operator_ipam_interface_candidates", (), 3 * len(self.nodes)))
        g(("gauge", "cilium_operator_ipam_empty_interface_slots", (), 2 * len(self.nodes)))
        g(("counter", "cilium_operator_ipam_resync_total", (), 1.0 / 60.0))
        return out

    # --- advancing and rendering ----------------------------------------------------------
    def _advance(self, counters, series_fn, t):
        """Integrate counter rates from the last time seen to t (Simpson's rule between knob
        breakpoints, exact for the ramps used here)."""
        if counters.t is None:
            counters.t = t
            for kind, name, labels, rate in series_fn(t):
                if kind in ("counter", "lazy") and rate > 0:
                    counters.values[(name, labels)] = rate * self._seed_history
            return
        t0 = counters.t
        if t <= t0:
            return
        cuts = [t0] + [b for b in self.breakpoints() if t0 < b < t] + [t]
        for a, b in zip(cuts, cuts[1:]):
            if self._flat(a, b):
                # Rates hold still: the value at a (a step takes effect at its time) is the
                # value over the whole span.
                samples, coeffs, weight = [series_fn(a)], (1.0,), b - a
            else:
                m = (a + b) / 2.0
                samples, coeffs, weight = [series_fn(a), series_fn(m), series_fn(b)], (1.0, 4.0, 1.0), (b - a) / 6.0
            acc = {}
            for coeff, series in zip(coeffs, samples):
                for kind, name, labels, rate in series:
                    if kind in ("counter", "lazy") and rate > 0:
                        key = (name, labels)
                        acc[key] = acc.get(key, 0.0) + coeff * rate
            for key, value in acc.items():
                counters.values[key] = counters.values.get(key, 0.0) + value * weight
        counters.t = t

    def render(self, component, index=None, t=None):
        """The exposition text of one endpoint at simulated time t (default: now)."""
        t = self.clock.now() if t is None else t
        if component == OPERATOR:
            with self.operator_lock:
                n = math.floor(self.operator_restarts(t) + 1e-9)
                if self.operator_restarts_seen is not None and n != self.operator_restarts_seen:
                    self.operator_counters.reset()
                    self.operator_counters.t = self._last_operator_start(t)
                self.operator_restarts_seen = n
                self._advance(self.operator_counters, self._operator_series, t)
                series = self._operator_series(t)
                values = dict(self.operator_counters.values)
            start = self._last_operator_start(t)
            return _render(series, values, OPERATOR, self.clock.epoch(start) if start is not None else self._boot_epoch())
        node = self.nodes[index]
        with node.lock:
            n = math.floor(node.restarts(t) + 1e-9)
            if node.restarts_seen is not None and n != node.restarts_seen:
                node.counters.reset()
                node.counters.t = node.last_start(t)
            node.restarts_seen = n

            def both(tt):
                agent, hubble = node.series(tt)
                return agent + hubble

            self._advance(node.counters, both, t)
            series = node.series(t)[0 if component == AGENT else 1]
            values = dict(node.counters.values)
        if component == HUBBLE:
            return _render(series, values, HUBBLE, None)
        start = node.last_start(t)
        start_epoch = self.clock.epoch(start) if start is not None else self._boot_epoch() - 97 * node.index
        return _render(series, values, AGENT, start_epoch, version=node.string("version", t))

    def is_up(self, component, index=None, t=None):
        """Whether the endpoint's process serves its port. An agent and its Hubble server are
        one process: they go down together."""
        t = self.clock.now() if t is None else t
        if component == OPERATOR:
            return self.knob("operator_up", t) >= 0.5
        return self.nodes[index].knob("up", t) >= 0.5

    def _last_operator_start(self, t):
        n = math.floor(self.operator_restarts(t) + 1e-9)
        if n <= 0:
            return None
        lo, hi = 0.0, max(t, 0.0)
        for _ in range(60):
            mid = (lo + hi) / 2.0
            if self.operator_restarts(mid) + 1e-9 >= n:
                hi = mid
            else:
                lo = mid
        return hi

    def _boot_epoch(self):
        # Processes that never restarted during the simulation started well before it.
        return math.floor(self.clock.epoch(self.clock.start) - 6 * 86400)


def _minor(version):
    """`"1.16.9"` -> (1, 16); anything unreadable counts as new."""
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except (AttributeError, ValueError):
        return (99, 0)


def _integral_of_inverse(interval_profile, t):
    """Number of runs by time t for runs spaced `interval` seconds apart (interval may move)."""
    if interval_profile.is_constant:
        return max(t, 0.0) / max(interval_profile.points[0][1], 1.0)
    steps = 200
    total, prev = 0.0, 0.0
    for i in range(1, steps + 1):
        x = max(t, 0.0) * i / steps
        mid = (prev + x) / 2.0
        total += (x - prev) / max(interval_profile(mid), 1.0)
        prev = x
    return total


def _integral_of_ratio_over_interval(ratio_profile, interval_profile, t):
    if ratio_profile.is_constant and ratio_profile.points[0][1] == 0:
        return 0.0
    steps = 200
    total, prev = 0.0, 0.0
    for i in range(1, steps + 1):
        x = max(t, 0.0) * i / steps
        mid = (prev + x) / 2.0
        total += (x - prev) * min(max(ratio_profile(mid), 0.0), 1.0) / max(interval_profile(mid), 1.0)
        prev = x
    return total


def _string_steps(spec, baseline):
    """`"1.19.1"` or `{at: 2h, value: "1.19.1"}` -> [(t, value)]."""
    from .profiles import parse_duration

    if isinstance(spec, str):
        return [(0.0, spec)]
    if isinstance(spec, dict) and "value" in spec:
        return [(0.0, baseline), (parse_duration(spec.get("at", 0), "version step"), str(spec["value"]))]
    from ..errors import UserError

    raise UserError(f"version: {spec!r} is not a version string or {{at: ..., value: ...}}")


_FAMILIES = {
    # family: (type, help)
    "cilium_bpf_map_pressure": ("gauge", "Fill percentage of map, tagged by map name"),
    "cilium_bpf_map_ops_total": ("counter", "Total operations on map, tagged by map name"),
    "cilium_drop_count_total": ("counter", "Total dropped packets, tagged by drop reason and ingress/egress direction"),
    "cilium_drop_bytes_total": ("counter", "Total dropped bytes, tagged by drop reason and ingress/egress direction"),
    "cilium_forward_count_total": ("counter", "Total forwarded packets, tagged by ingress/egress direction"),
    "cilium_forward_bytes_total": ("counter", "Total forwarded bytes, tagged by ingress/egress direction"),
    "cilium_datapath_conntrack_gc_runs_total": ("counter", "Number of times that the conntrack garbage collector process was run"),
    "cilium_datapath_conntrack_gc_entries": ("gauge", "The number of alive and deleted conntrack entries at the end of a garbage collector run"),
    "cilium_datapath_conntrack_gc_duration_seconds": ("histogram", "Duration in seconds of the garbage collector process"),
    "cilium_identity": ("gauge", "Number of identities currently allocated"),
    "cilium_ipcache_events_total": ("counter", "Number of events interacting with the ipcache"),
    "cilium_ipcache_errors_total": ("counter", "Number of errors interacting with the ipcache"),
    "cilium_kvstore_operations_duration_seconds": ("histogram", "Duration in seconds of kvstore operations"),
    "cilium_kvstore_events_queue_seconds": ("histogram", "Seconds waited before a received event was queued"),
    "cilium_kvstore_quorum_errors_total": ("counter", "Number of quorum errors"),
    "cilium_kvstore_sync_errors_total": ("counter", "Number of times synchronization to the kvstore failed"),
    "cilium_kvstore_sync_queue_size": ("gauge", "Number of elements queued for synchronization in the kvstore"),
    "cilium_kvstore_initial_sync_completed": ("gauge", "Whether the initial synchronization from/to the kvstore has completed"),
    "cilium_clustermesh_remote_clusters": ("gauge", "The total number of remote clusters meshed with the local cluster"),
    "cilium_clustermesh_global_services": ("gauge", "The total number of global services in the cluster mesh"),
    "cilium_clustermesh_remote_cluster_readiness_status": ("gauge", "The readiness status of the remote cluster"),
    "cilium_clustermesh_remote_cluster_nodes": ("gauge", "The total number of nodes in the remote cluster"),
    "cilium_clustermesh_remote_cluster_failures": ("gauge", "The total number of failures related to the remote cluster"),
    "cilium_node_health_connectivity_status": ("gauge", "The number of endpoints with last observed status of both ICMP and HTTP connectivity between the current Cilium agent and other Cilium nodes"),
    "cilium_node_connectivity_status": ("gauge", "The last observed status of both ICMP and HTTP connectivity between the current Cilium agent and other Cilium nodes"),
    "cilium_controllers_failing": ("gauge", "Number of failing controllers"),
    "cilium_controllers_runs_total": ("counter", "Number of times that a controller process was run"),
    "cilium_unreachable_nodes": ("gauge", "Number of nodes that cannot be reached"),
    "cilium_unreachable_health_endpoints": ("gauge", "Number of health endpoints that cannot be reached"),
    "cilium_endpoint_state": ("gauge", "Count of all endpoints, tagged by different endpoint states"),
    "cilium_endpoint_regenerations_total": ("counter", "Count of all endpoint regenerations that have completed, tagged by outcome"),
    "cilium_policy": ("gauge", "Number of policies currently loaded"),
    "cilium_policy_change_total": ("counter", "Number of policy changes by outcome"),
    "cilium_policy_implementation_delay": ("histogram", "Time between a policy change and it being fully deployed into the datapath"),
    "cilium_api_limiter_processed_requests_total": ("counter", "Total number of API requests processed"),
    "cilium_api_limiter_wait_duration_seconds": ("gauge", "Current wait time for api calls"),
    "cilium_k8s_client_api_calls_total": ("counter", "Number of API calls made to kube-apiserver labeled by host, method and return code"),
    "cilium_errors_warnings_total": ("counter", "Number of total errors in cilium-agent instances"),
    "hubble_flows_processed_total": ("counter", "Total number of flows processed"),
    "hubble_lost_events_total": ("counter", "Number of lost events"),
    "hubble_drop_total": ("counter", "Number of drops"),
    "hubble_dns_queries_total": ("counter", "Number of DNS queries observed"),
    "hubble_dns_responses_total": ("counter", "Number of DNS responses observed"),
    "hubble_tcp_flags_total": ("counter", "TCP flag occurrences"),
    "cilium_operator_identity_gc_entries": ("gauge", "The number of alive and deleted identities at the end of a garbage collector run"),
    "cilium_operator_identity_gc_runs": ("gauge", "The number of times identity garbage collector has run"),
    "cilium_operator_identity_gc_latency": ("gauge", "The duration of the last successful identity GC run"),
    "cilium_operator_ec2_api_duration_seconds": ("histogram", "Duration of interactions with API"),
    "cilium_operator_ec2_api_rate_limit_duration_seconds": ("histogram", "Duration of client-side rate limiter blocking"),
    "cilium_operator_ipam_available_ips": ("gauge", "Number of available IPs on a node (taking into account plugin specific NIC/Address limits)."),
    "cilium_operator_ipam_used_ips": ("gauge", "Number of currently used IPs on a node."),
    "cilium_operator_ipam_needed_ips": ("gauge", "Number of IPs needed to satisfy allocation on a node."),
    "cilium_operator_ipam_nodes": ("gauge", "Number of nodes by category { total | in-deficit | at-capacity }"),
    "cilium_operator_ipam_ips": ("gauge", "Number of IPs allocated"),
    "cilium_operator_ipam_ip_allocation_ops": ("counter", "Number of IP allocation operations"),
    "cilium_operator_ipam_ip_release_ops": ("counter", "Number of IP release operations"),
    "cilium_operator_ipam_interface_creation_ops": ("counter", "Number of interfaces creation operations"),
    "cilium_operator_ipam_available_ips_per_subnet": ("gauge", "Number of available IPs per subnet ID"),
    "cilium_operator_ipam_allocation_duration_seconds": ("histogram", "Allocation ip or interface latency in seconds"),
    "cilium_operator_ipam_interface_candidates": ("gauge", "Number of attached interfaces with IPs available for allocation"),
    "cilium_operator_ipam_empty_interface_slots": ("gauge", "Number of empty interface slots available for interfaces to be attached"),
    "cilium_operator_ipam_resync_total": ("counter", "Number of resync operations to synchronize and resolve IP deficit of nodes"),
    "cilium_operator_ces_sync_total": ("counter", "The number of completed CES syncs by outcome"),
}

# Gauges Cilium raises by one per event: integrated like counters, shown as whole numbers.
_COUNTED_GAUGES = {"cilium_clustermesh_remote_cluster_failures"}


_FAMILY_OF = {}


def _family_of(sample_name):
    family = _FAMILY_OF.get(sample_name)
    if family is None:
        family = sample_name
        if sample_name not in _FAMILIES:
            for suffix in ("_bucket", "_sum", "_count"):
                if sample_name.endswith(suffix) and sample_name[: -len(suffix)] in _FAMILIES:
                    family = sample_name[: -len(suffix)]
                    break
        _FAMILY_OF[sample_name] = family
    return family


def _render(series, counters, component, start_epoch, version=None):
    exp = Exposition()
    if component == AGENT:
        exp.family("cilium_version", "gauge", "Cilium version")
        exp.sample("cilium_version", (("version", version),), 1)
        exp.family("cilium_process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
        exp.sample("cilium_process_start_time_seconds", (), round(start_epoch, 2))
    elif component == OPERATOR:
        exp.family("cilium_operator_process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
        exp.sample("cilium_operator_process_start_time_seconds", (), round(start_epoch, 2))
    grouped = {}
    for kind, name, labels, value in series:
        family = _family_of(name)
        if kind == "gauge":
            grouped.setdefault(family, []).append((name, labels, value))
            continue
        current = counters.get((name, labels), 0.0)
        if kind == "lazy" and current <= 0:
            continue  # Cilium creates a labelled series on its first increment
        if _FAMILIES[family][0] == "histogram":
            if name.endswith("_bucket"):
                labels = labels[:-1] + (("le", "+Inf" if labels[-1][1] == INF else _le(labels[-1][1])),)
            grouped.setdefault(family, []).append((name, labels, round(current, 6)))
        else:
            value = math.floor(current) if name.endswith(("_total", "_ops")) or name in _COUNTED_GAUGES else round(current, 6)
            grouped.setdefault(family, []).append((name, labels, value))
    for family, samples in grouped.items():
        ftype, help_text = _FAMILIES[family]
        exp.family(family, ftype, help_text)
        if ftype == "histogram":
            # Text format: every series' buckets, then its _sum and _count, series by series.
            order = {}
            for name, labels, value in samples:
                key = labels[:-1] if name.endswith("_bucket") else labels
                order.setdefault(key, []).append((name, labels, value))
            for group in order.values():
                for name, labels, value in group:
                    exp.sample(name, labels, value)
        else:
            for name, labels, value in samples:
                exp.sample(name, labels, value)
    return exp.text()


_LE = {}


def _le(value):
    text = _LE.get(value)
    if text is None:
        text = repr(float(value))
        text = _LE[value] = text[:-2] if text.endswith(".0") else text
    return text
