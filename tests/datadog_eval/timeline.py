"""A scenario's timeline through the real check: what Datadog would hold at the end of it.

The simulator serves the scenario's endpoints over HTTP on 127.0.0.1 (its own server, on a
clock the test moves by hand), and one instance of the real check per node (agent and Hubble
endpoints) plus one for the operator scrapes them, as the Agents of a cluster would. Each check
run is stored as one Agent flush (`store.Store.flush`), with the Agent's `host` and the
cluster's `kube_cluster_name` host tag.

Sampling: every check interval (15 s) over the last `fine` seconds before the evaluation time,
where service-check monitors count consecutive runs and short windows look; every `coarse`
seconds before that, back to the longest look-back a monitor needs. Coarse runs model an Agent
with a longer collection interval: counts cover their whole span (`as_rate` divides by it,
`avg` weighs points by it), so the totals, rates and percentiles of a window do not depend on
the sampling; gauges are seen at fewer instants.
"""

from __future__ import annotations

from cilium_day2.simulator.model import OPERATOR, Clock
from cilium_day2.simulator.server import Simulation
from datadog_checks.base.stubs import aggregator
from datadog_checks.cilium_day2 import CiliumDay2Check

from .store import Store

CLUSTER_TAG = "kube_cluster_name"
TYPES = {"gauge": aggregator.GAUGE, "monotonic_count": aggregator.MONOTONIC_COUNT}


class ManualClock(Clock):
    """Simulated time that moves only when told."""

    def __init__(self, t: float):
        super().__init__(speed=1.0, start=t)
        self.t = t

    def now(self, wall=None):
        return self.t


def sample_times(end: float, lookback: float, fine: float, interval: float, coarse: float):
    """Run times ending at `end`: every `interval` over the last `fine` seconds, every `coarse`
    before, starting `lookback` seconds before `end` (plus one run to start counters)."""
    times = []
    t = end
    while t > end - fine:
        times.append(t)
        t -= interval
    while t > end - lookback - coarse:
        times.append(t)
        t -= coarse
    return sorted(times)


def record(scenario, times, interval: float = 15.0) -> Store:
    """Runs the check at each simulated time of `times`; returns the stored points."""
    clock = ManualClock(times[0])
    cluster = scenario.build(clock=clock)
    store = Store()
    with Simulation([cluster]) as sim:
        checks = []
        for node in cluster.nodes:
            instance = {f"{t.component}_endpoint": t.url for t in sim.targets if t.node == node.name}
            instance.update(min_collection_interval=interval, persist_connections=True)
            checks.append((f"node-{node.index}", node.name, CiliumDay2Check("cilium_day2", {}, [instance])))
        operator = sim.targets_of(OPERATOR)[0]
        # The operator's leader runs on some node; the Agent there scrapes it.
        instance = {"operator_endpoint": operator.url, "min_collection_interval": interval, "persist_connections": True}
        checks.append(("operator", cluster.nodes[0].name, CiliumDay2Check("cilium_day2", {}, [instance])))
        for t in times:
            clock.t = t
            for check_id, host, check in checks:
                aggregator.reset()
                error = check.run()
                assert not error, f"{check_id} at t={t}: {error}"
                store.flush(
                    check_id,
                    t,
                    [f"host:{host}", f"{CLUSTER_TAG}:{cluster.name}"],
                    [s for stubs in aggregator._metrics.values() for s in stubs],
                    [s for stubs in aggregator._histogram_buckets.values() for s in stubs],
                    [s for stubs in aggregator._service_checks.values() for s in stubs],
                    TYPES,
                )
        aggregator.reset()
    return store
