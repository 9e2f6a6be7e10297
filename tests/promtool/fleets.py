"""Fleets as Prometheus really sees them, for promtool tests of the rendered packs.

`scenarios.yaml` tests each signal on a few hand-picked series. Here whole clusters are written
the way one scrape setup labels them (target labels, unrelated targets sharing the job, HA
copies), through their life cycles (counters born at their first failure, agent restarts with a
missed scrape, pod replacement, two operator replicas, vanished targets), and the test asserts
the exact set of alerts that fire: every failure is caught and its healthy twin stays silent.

A fleet is a dict `series selector -> promtool values` (1m step). The builders below return
the healthy fleet; each case changes a few series of it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
MINUTES = 60  # length of an ordinary case's input
BOOT = 1764800000  # a process start time (seconds since the epoch), long before the case starts


def labels_text(labels: Dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


@dataclasses.dataclass(frozen=True)
class Setup:
    """How one scrape setup labels Cilium's targets and the unrelated targets beside them."""

    name: str
    values: Optional[Path]  # the values file its pack is rendered with; None: the defaults
    agent: Callable[[str, int], Dict[str, str]]  # (cluster, node index) -> target labels
    hubble: Callable[[str, int], Dict[str, str]]
    operator: Callable[[str, str], Dict[str, str]]  # (cluster, replica pod suffix) -> labels
    others: Callable[[str, int], List[Dict[str, str]]]  # unrelated targets of shared jobs, per node
    node_label: str = "node"

    def node_value(self, cluster: str, node) -> str:
        """The node label's value of node `i` (an agent's), or of `("hubble", i)`."""
        if isinstance(node, tuple):
            return self.hubble(cluster, node[1])[self.node_label]
        return self.agent(cluster, node)[self.node_label]


def _ip(i: int) -> str:
    return f"10.0.{i // 250}.{10 + i % 250}"


def _agent_pod(cluster: str, i: int) -> str:
    return f"cilium-{cluster[-2:]}{i:03d}"


def _servicemonitor() -> Setup:
    def agent(c, i):
        return {"cluster": c, "job": "cilium-agent", "namespace": "kube-system", "service": "cilium-agent",
                "endpoint": "metrics", "container": "cilium-agent", "pod": _agent_pod(c, i),
                "instance": f"{_ip(i)}:9962", "node": f"{c}-node-{i}", "k8s_app": "cilium"}

    def hubble(c, i):
        return {"cluster": c, "job": "hubble-metrics", "namespace": "kube-system", "service": "hubble-metrics",
                "endpoint": "hubble-metrics", "container": "cilium-agent", "pod": _agent_pod(c, i),
                "instance": f"{_ip(i)}:9965", "node": f"{c}-node-{i}", "k8s_app": "hubble"}

    def operator(c, suffix):
        return {"cluster": c, "job": "cilium-operator", "namespace": "kube-system", "service": "cilium-operator",
                "endpoint": "metrics", "container": "cilium-operator", "pod": f"cilium-operator-7d9f8-{suffix}",
                "instance": f"10.1.0.{ord(suffix[0]) % 200}:9963", "io_cilium_app": "operator"}

    def others(c, i):
        # Other ServiceMonitors' targets on the same nodes: their own jobs.
        return [{"cluster": c, "job": "node-exporter", "namespace": "monitoring", "service": "node-exporter",
                 "endpoint": "http-metrics", "container": "node-exporter", "pod": f"node-exporter-{i}",
                 "instance": f"{_ip(i)}:9100", "node": f"{c}-node-{i}"}]

    return Setup("servicemonitor", None, agent, hubble, operator, others)


def _annotations() -> Setup:
    """Cilium's monitoring-example.yaml: `kubernetes-pods` with `labelmap` of the pod labels,
    `namespace` and `pod`; Hubble through `kubernetes-endpoints` (Service labels, `service`)."""

    def agent(c, i):
        return {"cluster": c, "job": "kubernetes-pods", "namespace": "kube-system", "pod": _agent_pod(c, i),
                "instance": f"{_ip(i)}:9962", "k8s_app": "cilium", "app_kubernetes_io_name": "cilium-agent",
                "app_kubernetes_io_part_of": "cilium", "controller_revision_hash": "6b9c7d8f5",
                "pod_template_generation": "3"}

    def hubble(c, i):
        return {"cluster": c, "job": "kubernetes-endpoints", "namespace": "kube-system", "service": "hubble-metrics",
                "instance": f"{_ip(i)}:9965", "k8s_app": "hubble", "app_kubernetes_io_name": "hubble",
                "app_kubernetes_io_part_of": "cilium"}

    def operator(c, suffix):
        return {"cluster": c, "job": "kubernetes-pods", "namespace": "kube-system",
                "pod": f"cilium-operator-7d9f8-{suffix}", "instance": f"10.0.9.{ord(suffix[0]) % 200}:9963",
                "io_cilium_app": "operator", "name": "cilium-operator", "app_kubernetes_io_name": "cilium-operator",
                "app_kubernetes_io_part_of": "cilium", "pod_template_hash": "7d9f8"}

    def others(c, i):
        # Every annotated pod of the cluster shares the job: a web app on each node, and an
        # annotated Service's endpoints under `kubernetes-endpoints`.
        return [
            {"cluster": c, "job": "kubernetes-pods", "namespace": "shop", "pod": f"web-5c7b9-{i:03d}",
             "instance": f"10.244.{i}.17:8080", "app": "web", "pod_template_hash": "5c7b9"},
            {"cluster": c, "job": "kubernetes-endpoints", "namespace": "shop", "service": "checkout",
             "instance": f"10.244.{i}.23:9090", "app": "checkout"},
        ]

    return Setup("annotations", EXAMPLES / "values-annotations.yaml", agent, hubble, operator, others,
                 node_label="instance")


def _podmonitor() -> Setup:
    def agent(c, i):
        return {"cluster": c, "job": "kube-system/cilium-agent", "namespace": "kube-system", "container": "cilium-agent",
                "endpoint": "prometheus", "pod": _agent_pod(c, i), "instance": f"{_ip(i)}:9962",
                "node": f"{c}-node-{i}"}

    def hubble(c, i):
        return {**agent(c, i), "endpoint": "hubble-metrics", "instance": f"{_ip(i)}:9965"}

    def operator(c, suffix):
        return {"cluster": c, "job": "kube-system/cilium-operator", "namespace": "kube-system",
                "container": "cilium-operator", "endpoint": "prometheus", "pod": f"cilium-operator-7d9f8-{suffix}",
                "instance": f"10.1.0.{ord(suffix[0]) % 200}:9963", "node": f"{c}-node-{ord(suffix[0]) % 3}"}

    def others(c, i):
        # The agent pod's Envoy metrics port, if a PodMonitor also scrapes it, shares the job.
        return [{**agent(c, i), "endpoint": "envoy-metrics", "instance": f"{_ip(i)}:9964"}]

    return Setup("podmonitor", EXAMPLES / "values-podmonitor.yaml", agent, hubble, operator, others)


def _alloy() -> Setup:
    def base(c, i):
        return {"cluster": c, "job": "integrations/cilium", "namespace": "kube-system", "pod": _agent_pod(c, i),
                "container": "cilium-agent", "node": f"{c}-node-{i}"}

    def agent(c, i):
        return {**base(c, i), "endpoint": "prometheus", "instance": f"{_ip(i)}:9962"}

    def hubble(c, i):
        return {**base(c, i), "endpoint": "hubble-metrics", "instance": f"{_ip(i)}:9965"}

    def operator(c, suffix):
        return {"cluster": c, "job": "integrations/cilium", "namespace": "kube-system", "container": "cilium-operator",
                "endpoint": "prometheus", "pod": f"cilium-operator-7d9f8-{suffix}",
                "instance": f"10.1.0.{ord(suffix[0]) % 200}:9963", "node": f"{c}-node-{ord(suffix[0]) % 3}"}

    def others(c, i):
        return [{**base(c, i), "endpoint": "envoy-metrics", "instance": f"{_ip(i)}:9964"}]

    return Setup("alloy", EXAMPLES / "values-alloy.yaml", agent, hubble, operator, others)


SETUPS = {s.name: s for s in (_servicemonitor(), _annotations(), _podmonitor(), _alloy())}


# --- fleets ---------------------------------------------------------------------------------------


class Fleet:
    """The series of some clusters, healthy, as one setup labels them."""

    def __init__(self, setup: Setup, clusters=("prod-a",), nodes: int = 3, minutes: int = MINUTES):
        self.setup, self.minutes, self.nodes = setup, minutes, nodes
        self.series: Dict[str, str] = {}
        for c in clusters:
            for i in range(nodes):
                self.healthy_node(c, i)
            self.healthy_operators(c)

    # values ---------------------------------------------------------------------------------
    def span(self, body: str, first: int, stale: bool) -> str:
        return ("_x%d " % first if first else "") + body + (" stale" if stale else "")

    def put(self, name: str, labels: Dict[str, str], values: str):
        """One series; a series of the same labels that went stale earlier continues (the same
        target back after a gap, a new process under the same labels)."""
        key = f"{name}{{{labels_text(labels)}}}"
        old = self.series.get(key)
        if old is not None and old.endswith(" stale") and values.startswith("_x"):
            values = old + " " + values.split(" ", 1)[1]
        self.series[key] = values

    # components -----------------------------------------------------------------------------
    def healthy_node(self, c: str, i: int, agent: Optional[Dict[str, str]] = None,
                     hubble: Optional[Dict[str, str]] = None, first: int = 0, last: Optional[int] = None,
                     stale: bool = False, fresh: bool = False):
        """An agent and its Hubble server, healthy from minute `first` to `last` (then stale
        with `stale`); `fresh`: a process started just before `first` (counters from near 0)."""
        a = agent or self.setup.agent(c, i)
        h = hubble or self.setup.hubble(c, i)
        n = (self.minutes - 1 if last is None else last) - first

        def v(body):
            return self.span(body, first, stale)
        start = BOOT + 3600 * 24 + first * 60 if fresh else BOOT + i
        self.put("up", a, v(f"1x{n}"))
        self.put("up", h, v(f"1x{n}"))
        self.put("cilium_version", {**a, "version": "1.18.2"}, v(f"1x{n}"))
        self.put("cilium_process_start_time_seconds", a, v(f"{start}x{n}"))
        self.put("cilium_policy_change_total", {**a, "outcome": "success"}, v(f"{3 if fresh else 40}+2x{n}"))
        self.put("cilium_endpoint_regenerations_total", {**a, "outcome": "success"}, v(f"{20 if fresh else 500}+6x{n}"))
        self.put("cilium_bpf_map_pressure", {**a, "map_name": "ct4_global"}, v(f"0.31x{n}"))
        self.put("cilium_controllers_failing", a, v(f"0x{n}"))
        self.put("hubble_flows_processed_total", {**h, "type": "Trace", "subtype": "to-endpoint",
                                                  "verdict": "FORWARDED", "protocol": "TCP"},
                 v(f"{150 if fresh else 9000}+120x{n}"))
        if first == 0:
            for other in self.setup.others(c, i):
                self.put("up", other, f"1x{self.minutes - 1}")

    def healthy_operators(self, c: str, last: Optional[int] = None, stale: bool = False):
        """Two operator replicas: the leader reports IPAM, the standby only its own process."""
        leader, standby = self.setup.operator(c, "a1b2c"), self.setup.operator(c, "x9y8z")
        n = self.minutes - 1 if last is None else last

        def v(body):
            return self.span(body, 0, stale)
        for op, start in ((leader, BOOT + 50), (standby, BOOT + 60)):
            self.put("up", op, v(f"1x{n}"))
            self.put("cilium_operator_process_start_time_seconds", op, v(f"{start}x{n}"))
        self.put("cilium_operator_ipam_available_ips_per_subnet",
                 {**leader, "subnet_id": "subnet-0a1", "availability_zone": "eu-west-1a"}, v(f"3900x{n}"))
        self.put("cilium_operator_ipam_nodes", {**leader, "category": "in-deficit"}, v(f"0x{n}"))

    def ha(self, replica_label: str = "prometheus_replica") -> Dict[str, str]:
        """The same fleet read from an HA pair without deduplication: every series twice."""
        out = {}
        for sel, values in self.series.items():
            name, rest = sel.split("{", 1)
            for replica in ("prometheus-k8s-0", "prometheus-k8s-1"):
                out[f'{name}{{{rest[:-1]},{replica_label}="{replica}"}}'] = values
        return out


# --- cases ----------------------------------------------------------------------------------------

# An expected alert: (alertname, severity, cluster, node index, `("hubble", index)` or None).
Expected = Tuple[str, str, str, Optional[int]]


@dataclasses.dataclass
class Case:
    name: str
    series: Dict[str, str]
    at: List[int]  # minutes at which the firing set is checked
    fires: List[Expected]
    setup: Setup


def _alert_set(setup: Setup, fires: List[Expected]):
    """(labels dict, count) of `count by (alertname, severity, cluster, node) (ALERTS)` samples."""
    counts: Dict[Tuple, int] = {}
    for alertname, severity, cluster, node in fires:
        key = (alertname, severity, cluster, None if node is None else setup.node_value(cluster, node))
        counts[key] = counts.get(key, 0) + 1
    out = []
    for (alertname, severity, cluster, node), n in sorted(counts.items(), key=str):
        labels = {"alertname": alertname, "cluster": cluster, "severity": severity}
        if node is not None:
            labels[setup.node_label] = node
        out.append((labels, n))
    return out


def cases(setup: Setup) -> List[Case]:
    """The failure classes of a fleet, each with its healthy twin, for one setup."""
    out: List[Case] = []
    c = "prod-a"

    def fleet(**kw) -> Fleet:
        return Fleet(setup, **kw)

    # Healthy twin of everything below: two clusters, every component up, nothing fires.
    out.append(Case("healthy fleet", fleet(clusters=("prod-a", "prod-b")).series, [10, 30, 59], [], setup))

    # A larger cluster: forty nodes, one agent down; the other thirty-nine and their
    # neighbours on the same jobs stay up.
    f = fleet(nodes=40)
    f.put("up", setup.agent(c, 27), "1x20 0x40")
    out.append(Case("forty nodes, one agent down", f.series, [30], [("CiliumAgentDown", "critical", c, 27)], setup))

    # An agent down while every other target of its job (and its node) stays up.
    f = fleet()
    f.put("up", setup.agent(c, 1), "1x20 0x40")
    out.append(Case("agent down beside up targets of the same job", f.series, [30, 45], [
        ("CiliumAgentDown", "critical", c, 1)], setup))

    # Hubble's server down on one node (the agent's own metrics still answer).
    f = fleet()
    f.put("up", setup.hubble(c, 2), "1x20 0x40")
    out.append(Case("hubble metrics down on one node", f.series, [35], [
        ("CiliumHubbleMetricsDown", "critical", c, ("hubble", 2))], setup))

    # The operator deployment scaled to zero: both replicas' targets vanish (no `up` at all)
    # while the agents are scraped.
    f = Fleet(setup, clusters=())
    for i in range(3):
        f.healthy_node(c, i)
    f.healthy_operators(c, last=20, stale=True)
    out.append(Case("operator scaled to zero", f.series, [40, 59], [("CiliumOperatorAbsent", "critical", c, None)], setup))

    # Leader failover: the leader exits (Cilium's operator exits on losing its lease) and comes
    # back as standby; the standby becomes leader and takes over the leader-only families.
    f = fleet()
    leader, standby = setup.operator(c, "a1b2c"), setup.operator(c, "x9y8z")
    f.put("up", leader, "1x30 0 1x28")
    f.put("cilium_operator_process_start_time_seconds", leader, f"{BOOT + 50}x30 _ {BOOT + 3600}x28")
    f.put("cilium_operator_ipam_available_ips_per_subnet",
          {**leader, "subnet_id": "subnet-0a1", "availability_zone": "eu-west-1a"}, "3900x30 stale")
    f.put("cilium_operator_ipam_available_ips_per_subnet",
          {**standby, "subnet_id": "subnet-0a1", "availability_zone": "eu-west-1a"}, "_x31 3880x28")
    f.put("cilium_operator_ipam_nodes", {**leader, "category": "in-deficit"}, "0x30 stale")
    f.put("cilium_operator_ipam_nodes", {**standby, "category": "in-deficit"}, "_x31 0x28")
    out.append(Case("operator leader failover (healthy)", f.series, [31, 40, 59], [], setup))

    # A policy change fails for the first time: the failure counter is born at 1.
    f = fleet()
    f.put("cilium_policy_change_total", {**setup.agent(c, 0), "outcome": "fail"}, "_x30 1x29")
    out.append(Case("first policy failure (counter born at 1)", f.series, [32, 45], [
        ("CiliumPolicyChangeFailing", "warning", c, None)], setup))

    # A counter labelled by its error string: created at the first error.
    f = fleet()
    f.put("cilium_kvstore_quorum_errors_total", {**setup.agent(c, 2), "error": "etcdserver: no leader"}, "_x30 1x29")
    out.append(Case("first kvstore quorum error (counter born at 1)", f.series, [33], [
        ("CiliumKvstoreQuorumErrors", "warning", c, None)], setup))

    # Its twin: failures from long before this Prometheus watched the fleet (the series
    # exists from the first scrape) are not news.
    f = fleet()
    f.put("cilium_policy_change_total", {**setup.agent(c, 0), "outcome": "fail"}, "3x59")
    out.append(Case("old policy failures seen at the first scrape (healthy)", f.series, [5, 20, 45], [], setup))

    # Restart with a missed scrape: counters reset, the start time changes once, the failure
    # series (born at first event) is gone until the next failure.
    f = fleet()
    a = setup.agent(c, 1)
    f.put("up", a, "1x29 0 1x29")
    f.put("cilium_process_start_time_seconds", a, f"{BOOT + 1}x29 _ {BOOT + 7200}x29")
    f.put("cilium_policy_change_total", {**a, "outcome": "success"}, "40+2x29 _ 3+2x29")
    f.put("cilium_endpoint_regenerations_total", {**a, "outcome": "success"}, "500+6x29 _ 20+6x29")
    f.put("cilium_policy_change_total", {**a, "outcome": "fail"}, "2x29 stale")
    out.append(Case("agent restart with a missed scrape (healthy)", f.series, [31, 35, 59], [], setup))

    # The same restart, and a policy change fails right after it: the reborn series counts.
    f2 = Fleet(setup)
    f2.series = dict(f.series)
    f2.put("cilium_policy_change_total", {**a, "outcome": "fail"}, "2x29 _ 1x29")
    out.append(Case("policy failure right after a restart", f2.series, [35], [
        ("CiliumPolicyChangeFailing", "warning", c, None)], setup))

    # Three restarts in the hour, each with a missed scrape: counted three times, not more.
    f = fleet()
    f.put("up", a, "1x9 0 1x9 0 1x9 0 1x29")
    f.put("cilium_process_start_time_seconds", a,
          f"{BOOT}x9 _ {BOOT + 600}x9 _ {BOOT + 1200}x9 _ {BOOT + 1800}x29")
    out.append(Case("three restarts with missed scrapes", f.series, [35, 59], [
        ("CiliumAgentRestarts", "warning", c, 1)], setup))

    # Pod replacement (DaemonSet rollout on node 2): the old pod's series go stale, the new
    # pod's are new series (a new `pod`), its counters start small and grow; one scrape missed.
    f = Fleet(setup, clusters=())
    for i in range(2):
        f.healthy_node(c, i)
    f.healthy_operators(c)
    f.healthy_node(c, 2, last=30, stale=True)
    a_new, h_new = setup.agent(c, 2), setup.hubble(c, 2)
    a_new = {**a_new, "pod": a_new["pod"] + "r"} if "pod" in a_new else a_new
    h_new = {**h_new, "pod": h_new["pod"] + "r"} if "pod" in h_new else h_new
    f.healthy_node(c, 2, agent=a_new, hubble=h_new, first=32, fresh=True)
    out.append(Case("agent pod replaced (healthy)", f.series, [32, 40, 59], [], setup))

    return out


def long_cases(setup: Setup) -> List[Case]:
    """Vanished targets, watched for a day: the absent alert keeps firing for 24 hours."""
    day = 24 * 60 + 40
    out = []
    # One cluster's agents and operator all disappear at minute 30; another cluster stays.
    f = Fleet(setup, clusters=("prod-a",), nodes=2, minutes=day)
    for i in range(2):
        f.healthy_node("prod-b", i, last=30, stale=True)
    f.healthy_operators("prod-b", last=30, stale=True)
    fires = [("CiliumAgentAbsent", "critical", "prod-b", None), ("CiliumOperatorAbsent", "critical", "prod-b", None),
             ("CiliumHubbleMetricsAbsent", "critical", "prod-b", None)]
    out.append(Case("a whole cluster vanishes", f.series, [60, 12 * 60, 24 * 60 + 30], fires, setup))
    return out


def promtool_tests(rules_file: str, groups: List[Tuple[str, Case, Dict[str, str]]], cluster_label: str = "cluster",
                   replica_labels=("prometheus_replica", "replica")) -> dict:
    """A promtool test file: for each case, the exact firing set at each checked minute, no
    alert without its cluster, none carrying a replica label."""
    tests = []
    for name, case, series in groups:
        expected = _alert_set(case.setup, case.fires)
        by = ", ".join(["alertname", "severity", cluster_label, case.setup.node_label])
        exprs = []
        for minute in case.at:
            exprs.append({
                "expr": f'count by ({by}) (ALERTS{{alertstate="firing"}})',
                "eval_time": f"{minute}m",
                "exp_samples": [{"labels": "{" + labels_text(labels) + "}", "value": n} for labels, n in expected],
            })
            exprs.append({"expr": f'ALERTS{{{cluster_label}=""}}', "eval_time": f"{minute}m", "exp_samples": []})
            for label in replica_labels:
                exprs.append({"expr": f'ALERTS{{{label}!=""}}', "eval_time": f"{minute}m", "exp_samples": []})
        tests.append({"name": name, "interval": "1m",
                      "input_series": [{"series": s, "values": v} for s, v in series.items()],
                      "promql_expr_test": exprs})
    return {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests}
