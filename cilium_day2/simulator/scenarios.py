"""Scenarios: which knobs move, on which nodes, and which catalog signals that must trip.

Scenarios are data (`cilium_day2/data/scenarios.yaml`); this module validates them into typed
objects so that a typo in a knob or a node index fails at load time with a message.
"""

import os
from dataclasses import dataclass, field

from ..errors import UserError
from ..userfiles import load_yaml_file
from . import knobs as K
from .model import Clock, Cluster, node_name
from .profiles import parse_duration

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "scenarios.yaml")
SEVERITIES = ("warning", "critical")


@dataclass(frozen=True)
class Expectation:
    signal: str
    severity: str
    nodes: tuple = ()  # node indexes of the culprits; empty: cluster-wide or per other labels
    node_label: str = "node"
    labels: dict = field(default_factory=dict)
    per: tuple = ()  # labels the alert is split by, whose values are not pinned (e.g. `operation`)

    def culprits(self, node_names):
        """Label sets the alert must carry, one per culprit node (or one without a node)."""
        if not self.nodes:
            return [dict(self.labels)]
        return [dict(self.labels, **{self.node_label: node_names[i]}) for i in self.nodes]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    description: str
    steady: float
    effects: tuple  # (knob, spec, node indexes or None)
    expect: tuple
    min_nodes: int

    @property
    def signals(self):
        return sorted({e.signal for e in self.expect})

    def build(self, nodes=None, cluster=None, speed=1.0, start=None, clock=None):
        nodes = nodes or DEFAULT_NODES
        if nodes < self.min_nodes:
            raise UserError(
                f"scenario {self.name} acts on node index {self.min_nodes - 1}: run it with --nodes {self.min_nodes} or more"
            )
        clock = clock or Clock(speed=speed, start=self.steady if start is None else start)
        return Cluster(cluster or self.name, nodes, self.effects, clock=clock)

    def node_names(self, nodes):
        return [node_name(i) for i in range(nodes)]


DEFAULT_NODES = 6


def _fail(path, where, message):
    raise UserError(f"{path}: {where}: {message}")


def load_scenarios(path=None):
    path = path or DEFAULT_PATH
    doc = load_yaml_file(path, f"{path}")
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), dict):
        _fail(path, "top level", "needs a `scenarios:` mapping")
    global DEFAULT_NODES
    DEFAULT_NODES = int((doc.get("defaults") or {}).get("nodes", DEFAULT_NODES))
    out = {}
    for name, body in doc["scenarios"].items():
        out[name] = _scenario(path, name, body or {})
    return out


def _scenario(path, name, body):
    where = f"scenario {name}"
    unknown = set(body) - {"summary", "description", "steady", "effects", "expect"}
    if unknown:
        _fail(path, where, f"unknown keys {sorted(unknown)}")
    effects = []
    max_index = -1
    for i, effect in enumerate(body.get("effects") or []):
        ew = f"{where} effect {i + 1}"
        if not isinstance(effect, dict) or not isinstance(effect.get("knobs"), dict):
            _fail(path, ew, "needs a `knobs:` mapping")
        nodes = effect.get("nodes")
        if nodes is not None:
            if not isinstance(nodes, list) or not all(isinstance(n, int) and n >= 0 for n in nodes):
                _fail(path, ew, "`nodes` must be a list of node indexes (0, 1, ...)")
            max_index = max([max_index] + nodes)
        for knob, spec in effect["knobs"].items():
            scope = K.scope_of(knob)
            if scope is None:
                _fail(path, ew, f"unknown knob {knob!r}; see cilium_day2/simulator/knobs.py")
            if scope == K.CLUSTER and nodes is not None:
                _fail(path, ew, f"{knob} is a cluster knob; move it to an effect without `nodes`")
            effects.append((knob, spec, tuple(nodes) if nodes is not None else None))
    expect = []
    for i, item in enumerate(body.get("expect") or []):
        xw = f"{where} expect {i + 1}"
        if not isinstance(item, dict) or "signal" not in item or item.get("severity") not in SEVERITIES:
            _fail(path, xw, "needs `signal` and `severity` (warning or critical)")
        nodes = item.get("nodes") or []
        max_index = max([max_index] + list(nodes))
        expect.append(
            Expectation(
                signal=item["signal"],
                severity=item["severity"],
                nodes=tuple(nodes),
                node_label=item.get("node_label", "node"),
                labels=dict(item.get("labels") or {}),
                per=tuple(item.get("per") or ()),
            )
        )
    scenario = Scenario(
        name=name,
        summary=str(body.get("summary", "")).strip(),
        description=" ".join(str(body.get("description", "")).split()),
        steady=parse_duration(body.get("steady", 0), f"{where} steady"),
        effects=tuple(effects),
        expect=tuple(expect),
        min_nodes=max_index + 1,
    )
    # Build once so that bad profiles fail now, not on the first scrape.
    scenario.build(nodes=max(DEFAULT_NODES, scenario.min_nodes))
    return scenario


def scenario_names(path=None):
    return sorted(load_scenarios(path))


def get_scenario(name, path=None):
    scenarios = load_scenarios(path)
    if name not in scenarios:
        raise UserError(f"unknown scenario {name!r}; choose one of: {', '.join(sorted(scenarios))}")
    return scenarios[name]
