"""A synthetic Cilium fleet as OpenMetrics text, shaped by what a Prometheus rule file reads.

Used by `rule_cost.py`; importable on its own:

    pack = RulePack.load("assets/prometheus/cilium-day2.rules.yml")
    fleet = Fleet(nodes=10_000, clusters=20)
    plan = Plan(pack, fleet, anchor=time.time() + 300, end=time.time() + 600, step=30, history=600)
    plan.write_chunk("fleet-0.om", plan.chunks(lines=7_000_000)[0])

What is generated follows the rule file, not a fixed list:

* `RulePack` scans every rule expression (a small PromQL tokenizer, enough for vector selectors,
  their matchers and ranges, and `by`/`on` label lists) and collects the raw selectors: metric
  names that are not recording rules. Those names are the families to generate.
* `FAMILIES` below says how each Cilium family looks on a real node or operator (label values,
  how many series, how they move). Only the families some rule reads are written. A family that
  the rules read and this table does not know gets a generic shape (one series per node with the
  labels the selector mentions) and is reported, so a new signal still gets data until someone
  describes it here. Families of other clouds (`cilium_operator_azure_*`,
  `cilium_operator_alibabacloud_*`) are absent on purpose: the fleet runs on AWS, as a real one
  runs on one cloud, and the rules' `or` branches for the others select nothing.
* Every series gets samples only where some rule can see them: from `history` seconds before the
  start of the longest window that reads it (range, or the 5m lookback of an instant selector)
  up to `end`. Series that no selector matches (successful map operations, non-capacity drop
  reasons, histogram `_sum`s, ...) still exist, with a sample every 4 steps, because they make
  the index and postings lists as large as on a real server.

Shapes follow Cilium 1.17/1.18 (Documentation/observability/metrics.rst and the team fact sheet
`shared/reference/cilium-metrics.md`): the same label names and the label values Cilium emits.
Each node carries the target labels a Prometheus Operator setup gives it (`cluster`, `node`,
`instance`, `job`); other target labels (`namespace`, `pod`, `service`, `endpoint`) are left
out to keep the file small, they do not change what the rules select. A few per cent of the
nodes are "in trouble" (a map near full, capacity drops, a restart, failing controllers, ...),
deterministically chosen, so that alerts fire as they would in a real fleet.
"""

from __future__ import annotations

import ast
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

LOOKBACK = 300  # Prometheus' default lookback delta: what an instant selector can see.
UNREAD_STRIDE = 4  # series no rule reads: one sample every 4 steps.

# --- PromQL scanning ---------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>(?:\d+(?:ms|[smhdwy]))+|0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}@])
)""", re.X)
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                 "topk", "quantile", "limitk", "limit_ratio"}
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _AGGREGATIONS | _GROUPING | {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end"}
_DURATION = re.compile(r"(\d+)(ms|[smhdwy])")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> int:
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a PromQL duration: {text!r}")
    return int(sum(int(n) * _UNIT[u] for n, u in parts))


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str

    def accepts(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = re.fullmatch(self.value, value) is not None  # PromQL regexes are fully anchored
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: Tuple[Matcher, ...]
    range: Optional[int]  # seconds; None for an instant selector

    @property
    def window(self) -> int:
        """How far back this selector reads at one evaluation."""
        return self.range if self.range is not None else LOOKBACK

    def accepts(self, labels: Dict[str, str]) -> bool:
        return all(m.accepts(labels.get(m.label, "")) for m in self.matchers)


@dataclass
class ExprInfo:
    selectors: List[Selector]
    grouping: set


def _tokens(expr: str):
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot tokenize PromQL at {expr[pos:pos + 30]!r}")
        pos = m.end()
        yield m.lastgroup, m.group(m.lastgroup)


def scan_expr(expr: str) -> ExprInfo:
    """Vector selectors (name, matchers, range) and grouping labels of a PromQL expression.

    Subqueries are not expanded (a selector inside one counts as instant); the rule pack has none.
    """
    toks = list(_tokens(expr))
    selectors, grouping = [], set()
    i = 0

    def matchers_at(j):
        out = []
        j += 1  # past "{"
        while toks[j][1] != "}":
            if toks[j][1] == ",":
                j += 1
                continue
            label, op, value = toks[j][1], toks[j + 1][1], ast.literal_eval(toks[j + 2][1])
            out.append(Matcher(label, op, value))
            j += 3
        return j + 1, out

    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "name" and text.lower() in _GROUPING and nxt == "(":
            j = i + 2
            while toks[j][1] != ")":
                if toks[j][0] == "name":
                    grouping.add(toks[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "name" and (nxt == "(" or text.lower() in _KEYWORDS):
            i += 1
            continue
        if kind == "name" or text == "{":
            name = text if kind == "name" else None
            i = i + 1 if kind == "name" else i
            matchers = []
            if i < len(toks) and toks[i][1] == "{":
                i, matchers = matchers_at(i)
            if name is None:
                name = next((m.value for m in matchers if m.label == "__name__" and m.op == "="), "")
                matchers = [m for m in matchers if m.label != "__name__"]
            rng = None
            if i < len(toks) and toks[i][0] == "range":
                inner = toks[i][1][1:-1]
                rng = None if ":" in inner else parse_duration(inner)
                i += 1
            selectors.append(Selector(name, tuple(matchers), rng))
            continue
        i += 1
    return ExprInfo(selectors, grouping)


@dataclass
class Rule:
    group: str
    kind: str  # record | alert
    name: str
    expr: str
    raw: dict


@dataclass
class RulePack:
    path: str
    groups: List[Tuple[str, List[Rule]]]
    raw_groups: List[dict] = field(default_factory=list)

    @classmethod
    def load(cls, path) -> "RulePack":
        with open(path) as f:
            return cls.from_document(yaml.safe_load(f), str(path))

    @classmethod
    def from_document(cls, doc: dict, path: str = "<document>") -> "RulePack":
        groups = []
        for g in doc.get("groups", []) or []:
            rules = [Rule(g["name"], "record" if "record" in r else "alert", r.get("record") or r.get("alert"),
                          str(r["expr"]), r) for r in g.get("rules", [])]
            groups.append((g["name"], rules))
        return cls(path, groups, list(doc.get("groups", []) or []))

    def document(self) -> dict:
        return {"groups": self.raw_groups}

    def depends_on(self, group: str) -> List[str]:
        """The group and every group whose recording rules it reads, transitively, in file order."""
        owner = {r.name: g for g, rules in self.groups for r in rules if r.kind == "record"}
        need, todo = {group}, [group]
        while todo:
            g = todo.pop()
            own = {r.name for r in dict(self.groups)[g] if r.kind == "record"}
            for r in dict(self.groups)[g]:
                for sel in scan_expr(r.expr).selectors:
                    if sel.name in own:  # recorded in this group (sharded packs repeat names per group)
                        continue
                    o = owner.get(sel.name)
                    if o and o not in need:
                        need.add(o)
                        todo.append(o)
        return [g for g, _ in self.groups if g in need]

    @classmethod
    def merged(cls, packs: Sequence["RulePack"]) -> "RulePack":
        """All groups of several rule files (to plan data that serves all of them)."""
        return cls(";".join(p.path for p in packs), [g for p in packs for g in p.groups],
                   [g for p in packs for g in p.raw_groups])

    def rules(self) -> Iterable[Rule]:
        for _, rules in self.groups:
            yield from rules

    @property
    def records(self) -> Dict[str, str]:
        return {r.name: r.expr for r in self.rules() if r.kind == "record"}

    def raw_selectors(self) -> List[Selector]:
        """Selectors of stored series (not recording rules, not ALERTS) across all rules, deduplicated."""
        records = self.records
        seen = {}
        for rule in self.rules():
            for sel in scan_expr(rule.expr).selectors:
                if sel.name in records or sel.name.startswith("ALERTS"):
                    continue
                seen.setdefault(sel, None)
        return list(seen)

    def grouping_by_selector(self) -> Dict[str, set]:
        """Series name -> labels the rules reading it group or join by."""
        out: Dict[str, set] = {}
        records = self.records
        for rule in self.rules():
            info = scan_expr(rule.expr)
            for sel in info.selectors:
                if sel.name not in records:
                    out.setdefault(sel.name, set()).update(info.grouping)
        return out


# --- fleet model -------------------------------------------------------------------------------

HISTOGRAMS_FILE = Path(__file__).resolve().parent.parent / "cilium_day2" / "data" / "histograms.yaml"


def _cilium_buckets(family: str, layout: int = 0) -> Tuple[str, ...]:
    """`le` values of one of Cilium's bucket layouts (the catalog's data file), `+Inf` last."""
    layouts = yaml.safe_load(HISTOGRAMS_FILE.read_text())["families"][family]
    return tuple(f"{float(b):g}" for b in layouts[layout]["buckets"]) + ("+Inf",)


DEF_BUCKETS = _cilium_buckets("cilium_kvstore_operations_duration_seconds")
QUEUE_BUCKETS = _cilium_buckets("cilium_kvstore_events_queue_seconds")
CLOUD_API_BUCKETS = _cilium_buckets("cilium_operator_{cloud}_api_duration_seconds", layout=-1)  # the newer layout
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")
VERSION, NEXT_VERSION = "1.18.2", "1.18.3"
MESH_SIZE = 4  # clusters are meshed in groups of this many (clustermesh peers)


def _frac(*key) -> float:
    """Deterministic pseudo-random number in [0, 1) for a key."""
    return zlib.crc32(repr(key).encode()) / 4294967296.0


@dataclass
class Target:
    """One scrape target's identity: labels every series of it carries."""

    cluster: str
    ci: int
    gi: int  # global index (nodes), or -1 - cluster index (operators)
    node: str
    ip: str
    offset: int = 0  # seconds: where in each scrape interval this target is scraped
    nodes_in_cluster: Sequence[str] = ()
    peers: Sequence[str] = ()
    cluster_size: int = 0  # nodes in this target's cluster

    def labels(self, job: str, port: int) -> str:
        return f'cluster="{self.cluster}",instance="{self.ip}:{port}",job="{job}",node="{self.node}"'

    def is_(self, what: str, share: float) -> bool:
        """Whether this target has a given trouble; about `share` of the targets do."""
        return _frac(self.gi, what) < share

    def pick(self, what: str, n: int) -> int:
        return int(_frac(self.gi, what, "pick") * n)


@dataclass
class Fleet:
    nodes: int = 10_000
    clusters: int = 20

    def cluster_name(self, ci: int) -> str:
        return f"prod-{ci + 1:02d}"

    def cluster_sizes(self) -> List[int]:
        base, extra = divmod(self.nodes, self.clusters)
        return [base + (1 if ci < extra else 0) for ci in range(self.clusters)]

    def node(self, gi: int, step: int) -> Target:
        sizes = self.cluster_sizes()
        ci, ni = 0, gi
        while ni >= sizes[ci]:
            ni -= sizes[ci]
            ci += 1
        ip = f"10.{ci}.{ni // 250}.{ni % 250 + 4}"
        return Target(self.cluster_name(ci), ci, gi, f"ip-{ip.replace('.', '-')}.ec2.internal", ip,
                      offset=int(_frac(gi, "offset") * step), peers=self._peers(ci), cluster_size=sizes[ci])

    def operator(self, ci: int, step: int) -> Target:
        size = self.cluster_sizes()[ci]
        names = [f"ip-10-{ci}-{ni // 250}-{ni % 250 + 4}.ec2.internal" for ni in range(size)]
        return Target(self.cluster_name(ci), ci, -1 - ci, names[0] if names else "none", f"10.{ci}.0.4",
                      offset=int(_frac(ci, "op-offset") * step), nodes_in_cluster=names)

    def _peers(self, ci: int) -> List[str]:
        first = ci - ci % MESH_SIZE
        return [self.cluster_name(p) for p in range(first, min(first + MESH_SIZE, self.clusters)) if p != ci]


# A series: (name suffix, target kind, label pairs, base, slope per step, jumps [(seconds vs anchor, delta)]).
# `base` may be a string (a constant gauge). Values are base + slope * k (k = global sample index).
Series = Tuple[str, str, Tuple[Tuple[str, str], ...], object, object, Tuple[Tuple[int, float], ...]]


def _s(pairs, base, slope=0, jumps=(), suffix="", target="agent") -> Series:
    return (suffix, target, tuple(pairs), base, slope, tuple(jumps))


def _histogram(pairs, per_step, shape, buckets=DEF_BUCKETS, mean=0.05, target="agent") -> List[Series]:
    """Bucket, count and sum series of one histogram label set.

    `shape` is the cumulative share of observations at or below each bucket (last one 1.0).
    """
    out = []
    for le, share in zip(buckets, shape):
        out.append(_s(pairs + (("le", le),), int(per_step * 500 * share), int(round(per_step * share)), (),
                      "_bucket", target))
    out.append(_s(pairs, per_step * 500, per_step, (), "_count", target))
    out.append(_s(pairs, round(per_step * 500 * mean, 3), round(per_step * mean, 4), (), "_sum", target))
    return out


def _shape(p50_index: int, n: int = 12, spread: float = 0.35) -> List[float]:
    """A unimodal cumulative distribution over n buckets centred on bucket p50_index."""
    out = []
    for j in range(n):
        d = j - p50_index
        out.append(1.0 if j == n - 1 else min(1.0, max(0.0, 0.5 + d * spread if d < 0 else 1 - 0.5 * (0.3 ** (d + 1)))))
    for j in range(1, n):
        out[j] = max(out[j], out[j - 1])
    return out


# --- agent families ----------------------------------------------------------------------------

MAPS_V4 = ("ct4_global", "ct_any4_global", "snat_v4_external", "ipcache_v2", "lxc", "lb4_services_v2", "lb4_backends_v3",
           "lb4_reverse_nat")


def bpf_map_pressure(t: Target):
    # Only maps above Cilium's reporting threshold have a series: a few per node.
    maps = [("ct4_global", 0.15 + 0.4 * _frac(t.gi, "ct")), ("snat_v4_external", 0.05 + 0.3 * _frac(t.gi, "snat"))]
    maps += [(f"cilium_policy_{1000 + t.pick('pol', 3000):05d}", 0.1 + 0.3 * _frac(t.gi, "pol"))]
    if t.is_("lxc-map", 0.3):
        maps.append(("lxc", 0.1 + 0.2 * _frac(t.gi, "lxc")))
    if t.is_("map-full", 0.01):
        maps[0] = ("ct4_global", 0.82 + 0.16 * _frac(t.gi, "full"))
    return [_s([("map_name", m)], f"{v:.4f}") for m, v in maps]


def bpf_map_ops_total(t: Target):
    out = [_s([("map_name", m), ("operation", op), ("outcome", "success")], 100_000 + 37 * i, 40 + i)
           for i, (m, op) in enumerate((m, op) for m in MAPS_V4 for op in ("update", "delete"))]
    if t.is_("map-ops-fail", 0.02):
        m = MAPS_V4[t.pick("map-ops-fail", 3)]
        out.append(_s([("map_name", m), ("operation", "update"), ("outcome", "fail")], 10, 1 + t.pick("rate", 60)))
    return out


DROP_REASONS = (("Policy denied", "INGRESS"), ("Policy denied", "EGRESS"), ("Stale or unroutable IP", "INGRESS"),
                ("Service backend not found", "EGRESS"), ("FIB lookup failed", "EGRESS"),
                ("Unsupported L3 protocol", "INGRESS"), ("Invalid source ip", "INGRESS"), ("Missed tail call", "EGRESS"))


def drop_count_total(t: Target):
    out = [_s([("direction", d), ("reason", r)], 1000 + 13 * i, 1 + i % 4) for i, (r, d) in enumerate(DROP_REASONS)]
    if t.is_("ct-full", 0.02):
        out.append(_s([("direction", "EGRESS"), ("reason", "CT: Map insertion failed")], 50, 2 + t.pick("ct-rate", 200)))
    if t.is_("nat-full", 0.005):
        out.append(_s([("direction", "EGRESS"), ("reason", "No mapping for NAT masquerade")], 5, 10))
    return out


def conntrack_gc_runs_total(t: Target):
    out = []
    for proto in ("TCP", "non-TCP"):
        out.append(_s([("family", "ipv4"), ("protocol", proto), ("status", "completed")], 4000, 1))
        if t.is_("gc-ever-incomplete", 0.3):  # counters appear once they were incremented
            bumps = [(-600 * (j + 1), 1) for j in range(2 + t.pick("gc-n", 4))] if t.is_("gc-incomplete", 0.02) else []
            out.append(_s([("family", "ipv4"), ("protocol", proto), ("status", "uncompleted")], 3, 0, bumps))
    return out


def conntrack_gc_entries(t: Target):
    deleted = 2000 + int(8000 * _frac(t.gi, "ct-del"))
    if t.is_("gc-outlier", 0.005):
        deleted *= 60
    out = []
    for proto, share in (("TCP", 0.8), ("non-TCP", 0.2)):
        out.append(_s([("family", "ipv4"), ("protocol", proto), ("status", "alive")], int(60000 * share)))
        out.append(_s([("family", "ipv4"), ("protocol", proto), ("status", "deleted")], int(deleted * share)))
    return out


def ipcache_errors_total(t: Target):
    if not t.is_("ipcache-errors", 0.03):
        return []
    return [_s([("error", "failed to upsert ipcache entry"), ("type", "upsert")], 4, 1 + t.pick("ipc", 40))]


def identity(t: Target):
    cluster_ids = 3000 + int(6000 * _frac(t.ci, "ids"))
    growth = 40 if _frac(t.ci, "id-growth") < 0.1 else int(_frac(t.ci, "id-slow") * 2)
    return [_s([("type", "cluster_local")], cluster_ids, growth),
            _s([("type", "node_local")], 20 + t.pick("nl", 300)),
            _s([("type", "reserved")], 9), _s([("type", "well_known")], 7)]


KV_OPS = (("identities/v1", "read", "Get"), ("identities/v1", "set", "CreateOnly"),
          ("identities/v1", "set", "UpdateIfDifferent"), ("identities/v1", "delete", "Delete"),
          ("nodes/v1", "set", "UpdateIfDifferent"), ("nodes/v1", "read", "ListPrefix"),
          ("ip/v1", "set", "UpdateIfDifferent"), ("ip/v1", "delete", "Delete"))


def kvstore_operations_duration_seconds(t: Target):
    slow = _frac(t.ci, "kv-slow") < 0.1
    out = []
    for i, (scope, kind, action) in enumerate(KV_OPS):
        pairs = (("action", action), ("kind", kind), ("outcome", "success"), ("scope", scope))
        out += _histogram(pairs, 2 + i % 5, _shape(8 if slow else 2 + i % 3))
    if t.is_("kv-fail", 0.02):
        out += _histogram((("action", "Get"), ("kind", "read"), ("outcome", "fail"), ("scope", "identities/v1")), 1,
                          _shape(10))
    return out


def kvstore_events_queue_seconds(t: Target):
    out = []
    for i, scope in enumerate(("nodes/v1", "identities/v1", "ip/v1")):
        for j, action in enumerate(("create", "modify", "delete")):
            out += _histogram((("action", action), ("scope", scope)), 1 + (i + j) % 6, _shape(1 + (i + j) % 3),
                              QUEUE_BUCKETS, mean=0.01)
    return out


def kvstore_quorum_errors_total(t: Target):
    if not t.is_("quorum", 0.01):
        return []
    return [_s([("error", "etcdserver: request timed out")], 2, 0, [(-300, 3)])]


def kvstore_sync_errors_total(t: Target):
    if not t.is_("kv-sync", 0.01):
        return []
    return [_s([("scope", "nodes/v1"), ("source_cluster", t.cluster)], 1, 0, [(-400, 2)])]


def kvstore_initial_sync_completed(t: Target):
    out = [_s([("action", "write"), ("scope", s), ("source_cluster", t.cluster)], "1") for s in ("nodes/v1", "ip/v1")]
    stuck = t.is_("sync-stuck", 0.003)
    for k, peer in enumerate(t.peers):
        for s in ("nodes/v1", "services/v1", "ip/v1"):
            out.append(_s([("action", "read"), ("scope", s), ("source_cluster", peer)], "0" if stuck and k == 0 else "1"))
    return out


def process_start_time_seconds(t: Target, anchor: int):
    start = anchor - 400_000 - t.pick("start", 200_000)
    jumps = []
    if t.is_("restart", 0.01):
        jumps = [(-1500, 398_500)]
        if t.is_("restart-twice", 0.3):
            jumps.append((-600, 900))
    return [_s([], start, 0, jumps)]


def controllers_failing(t: Target):
    return [_s([], str(1 + t.pick("ctl", 7)) if t.is_("controllers", 0.01) else "0")]


def unreachable_nodes(t: Target):
    return [_s([], str(1 + t.pick("unr", 3)) if t.is_("unreachable", 0.01) else "0")]


def unreachable_health_endpoints(t: Target):
    return [_s([], str(1 + t.pick("unh", 8)) if t.is_("unreachable-health", 0.01) else "0")]


def node_health_connectivity_status(t: Target):
    """Cilium 1.17+ (pkg/health/server/prober.go): per node, the count of peers (nodes, and their
    health endpoints) in each status. A node cut off from its peers is rare."""
    peers = max(0, t.cluster_size - 1)
    cut = t.is_("isolated", 0.002)
    out = []
    for typ in ("node", "endpoint"):
        unreachable = peers - t.pick("iso-left", 3) if cut else (1 if t.is_("one-peer-down", 0.02) else 0)
        unreachable = max(0, min(peers, unreachable))
        for status, v in (("reachable", peers - unreachable), ("unreachable", unreachable), ("unknown", 0)):
            out.append(_s([("source_cluster", t.cluster), ("source_node_name", t.node), ("status", status),
                           ("type", typ)], str(v)))
    return out


def endpoint_state(t: Target):
    ready = 20 + t.pick("pods", 60)
    bad = t.is_("ep-unhealthy", 0.02)
    states = (("ready", ready), ("waiting-for-identity", 0), ("regenerating", t.pick("regen", 3)),
              ("waiting-to-regenerate", t.pick("wtr", 2)), ("not-ready", 2 + t.pick("nr", 12) if bad else 0),
              ("invalid", 0), ("disconnecting", 0))
    return [_s([("endpoint_state", s)], str(n)) for s, n in states]


def endpoint_regenerations_total(t: Target):
    out = [_s([("outcome", "success")], 5000, 2 + t.pick("regen-rate", 4))]
    if t.is_("regen-fail-seen", 0.3):
        out.append(_s([("outcome", "fail")], 12, 1 if t.is_("regen-failing", 0.03) else 0))
    return out


def policy_change_total(t: Target):
    # Cilium pre-declares outcome="success"|"failure" (zero until used); failures increment "fail".
    out = [_s([("outcome", "success")], 300, 1 if t.is_("policy-busy", 0.5) else 0), _s([("outcome", "failure")], "0")]
    if t.is_("policy-fail", 0.01):
        out.append(_s([("outcome", "fail")], 1, 0, [(-500, 3)]))
    return out


def policy_implementation_delay(t: Target):
    slow = t.is_("policy-slow", 0.01)
    # Cilium pre-declares the three sources, so each has its buckets on every node.
    return (_histogram((("source", "k8s"),), 3, _shape(10 if slow else 4), mean=0.3)
            + _histogram((("source", "custom-resource"),), 1, _shape(5), mean=0.5)
            + _histogram((("source", "api"),), 0, _shape(5), mean=0.5))


def api_limiter_processed_requests_total(t: Target):
    out = [_s([("api_call", c), ("outcome", "success"), ("return_code", rc)], 900 + 7 * i, 1 + i % 2)
           for i, (c, rc) in enumerate((("endpoint-create", "201"), ("endpoint-delete", "200"),
                                        ("endpoint-get", "200"), ("endpoint-patch", "200")))]
    if t.is_("api-limited", 0.01):
        out.append(_s([("api_call", "endpoint-create"), ("outcome", "fail"), ("return_code", "429")], 4, 0,
                      [(-300, 6 + t.pick("lim", 10))]))
    return out


K8S_CALLS = (("GET", "200", 20), ("GET", "404", 1), ("PUT", "200", 3), ("PUT", "409", 1), ("PATCH", "200", 4),
             ("POST", "201", 2), ("POST", "409", 1), ("DELETE", "200", 1), ("DELETE", "404", 1))


def k8s_client_api_calls_total(t: Target):
    host = "172.20.0.1:443"
    out = [_s([("host", host), ("method", m), ("return_code", rc)], 50_000, r) for m, rc, r in K8S_CALLS]
    if t.is_("k8s-errors", 0.05) or _frac(t.ci, "k8s-bad") < 0.05:
        out.append(_s([("host", host), ("method", "GET"), ("return_code", "500")], 40, 3))
    return out


def version(t: Target):
    rolling = _frac(t.ci, "rollout") < 0.1
    v = NEXT_VERSION if rolling and t.is_("upgraded", 0.3) else VERSION
    return [_s([("arch", "amd64"), ("revision", "a1b2c3d4" if v == VERSION else "e5f6a7b8"), ("version", v)], "1")]


def hubble_lost_events_total(t: Target):
    # Served by the Hubble metrics endpoint (port 9965), like the flow families.
    out = [_s([("source", "hubble_ring_buffer")], 3000, 6, target="hubble")]  # ~12/min on 1.19 even without loss
    if t.is_("perf-lost", 0.02):
        out.append(_s([("source", "perf_event_ring_buffer")], 500, 150, target="hubble"))
    if t.is_("observer-lost", 0.005):
        out.append(_s([("source", "observer_events_queue")], 900, 2000, target="hubble"))
    return out


# Hubble flow metrics as a fleet typically enables them:
#   hubble.metrics.enabled: ["flow:labelsContext=source_namespace,source_workload,destination_namespace,
#                             destination_workload,traffic_direction", "drop:<same>"]
# Cilium (pkg/hubble/metrics/flow/handler.go) labels every flow series protocol, type, subtype,
# verdict, then the context labels in a fixed order; drop (pkg/hubble/metrics/drop/handler.go)
# labels reason (the DropReason enum name) and protocol. A context value Hubble does not know
# (world, host, remote node) is the empty string, which Prometheus stores as no label at all.
# Each node runs a handful of workloads out of its cluster's catalogue; each talks to a few peers,
# to DNS and to the world, so a node carries roughly 60-200 flow series.
HUBBLE_CONTEXT = ("source_namespace", "source_workload", "destination_namespace", "destination_workload",
                  "traffic_direction")
APP_NAMESPACES = ("payments", "checkout", "catalog", "search", "accounts", "orders", "shipping", "inventory",
                  "notifications", "analytics", "frontend", "auth")
APP_WORKLOADS = ("api", "worker", "cache", "db-proxy")
DNS_PEER = ("kube-system", "coredns")
NODE_FLOWS = (("Trace", "to-host", "TCP", "ingress"), ("Trace", "from-host", "TCP", "egress"),
              ("Trace", "from-network", "UDP", "ingress"), ("Trace", "to-network", "TCP", "egress"),
              ("Trace", "from-stack", "TCP", "egress"))


def _workload(ci: int, k: int) -> Tuple[str, str]:
    n = len(APP_NAMESPACES) * len(APP_WORKLOADS)
    k = (k + ci * 7) % n
    return APP_NAMESPACES[k // len(APP_WORKLOADS)], APP_WORKLOADS[k % len(APP_WORKLOADS)]


def hubble_conversations(t: Target):
    """(type, subtype, verdict, protocol, source ns/workload, destination ns/workload, direction) on one node."""
    n = len(APP_NAMESPACES) * len(APP_WORKLOADS)
    local = sorted({int(_frac(t.gi, "wl", j) * n) for j in range(6 + t.pick("wl-count", 10))})
    world = ("", "")
    out = []
    for k in local:
        me = _workload(t.ci, k)
        peers = [_workload(t.ci, int(_frac(t.ci, k, "peer", j) * n)) for j in range(2 + int(_frac(t.ci, k, "np") * 2))]
        for p in peers:
            if p == me:
                continue
            out += [("Trace", "to-overlay", "FORWARDED", "TCP", me, p, "egress"),
                    ("PolicyVerdict", "", "FORWARDED", "TCP", me, p, "egress"),
                    ("Trace", "to-endpoint", "FORWARDED", "TCP", p, me, "ingress"),
                    ("PolicyVerdict", "", "FORWARDED", "TCP", p, me, "ingress")]
        out += [("Trace", "to-endpoint", "FORWARDED", "UDP", me, DNS_PEER, "egress"),
                ("L7", "DNS", "FORWARDED", "DNS", me, DNS_PEER, "egress"),
                ("Trace", "to-stack", "FORWARDED", "TCP", me, world, "egress")]
        if me[1] == "api":
            out.append(("L7", "HTTP", "FORWARDED", "HTTP", world, me, "ingress"))
        if _frac(t.ci, k, "denied") < 0.3:  # a peer the policy does not allow
            bad = _workload(t.ci, k + 5)
            if bad != me:
                out += [("PolicyVerdict", "", "DROPPED", "TCP", bad, me, "ingress"),
                        ("Drop", "", "DROPPED", "TCP", bad, me, "ingress")]
    for typ, sub, proto, direction in NODE_FLOWS:
        out.append((typ, sub, "FORWARDED", proto, world, world, direction))
    return list(dict.fromkeys(out))


def _context_pairs(src, dst, direction):
    values = (src[0], src[1], dst[0], dst[1], direction)
    return [(k, v) for k, v in zip(HUBBLE_CONTEXT, values) if v]


def hubble_flows_processed_total(t: Target):
    stalled = t.is_("flows-stalled", 0.002)
    out = []
    for i, (typ, sub, verdict, proto, src, dst, direction) in enumerate(hubble_conversations(t)):
        pairs = [("protocol", proto), ("type", typ)] + ([("subtype", sub)] if sub else []) + [("verdict", verdict)]
        pairs += _context_pairs(src, dst, direction)
        out.append(_s(pairs, 10_000 + 7 * i, 0 if stalled else 1 + (5 * i) % 40, (), "", "hubble"))
    return out


def hubble_drop_total(t: Target):
    out = []
    for typ, _sub, verdict, proto, src, dst, direction in hubble_conversations(t):
        if typ == "Drop":
            out.append(_s([("protocol", proto), ("reason", "POLICY_DENIED")] + _context_pairs(src, dst, direction),
                          40, 1, target="hubble"))
    out.append(_s([("protocol", "UDP"), ("reason", "STALE_OR_UNROUTABLE_IP"), ("traffic_direction", "ingress")], 12, 0,
                  target="hubble"))
    if t.is_("ct-full", 0.02):
        out.append(_s([("protocol", "TCP"), ("reason", "CT_MAP_INSERTION_FAILED"), ("traffic_direction", "egress")], 50,
                      2 + t.pick("ct-rate", 200), target="hubble"))
    return out


def up_node(t: Target):
    return [_s([], "0" if t.is_("agent-down", 0.001) else "1", target="agent"),
            _s([], "0" if t.is_("hubble-down", 0.001) else "1", target="hubble")]


# --- operator families (one leader per cluster) -----------------------------------------------

EC2_OPS = ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "CreateNetworkInterface", "AttachNetworkInterface",
           "DeleteNetworkInterface", "ModifyNetworkInterfaceAttribute", "DescribeNetworkInterfaces", "DescribeSubnets",
           "DescribeVpcs", "DescribeSecurityGroups", "DescribeInstanceTypes")


def _subnets(t: Target):
    return [(f"subnet-{t.ci:02d}{k:02d}a1b2c3d4e5f6", AZS[k % 3]) for k in range(6)]


def op_identity_gc_entries(t: Target):
    alive = 3000 + int(6000 * _frac(t.ci, "ids"))
    deleted = int(alive * (0.3 if _frac(t.ci, "churn") < 0.1 else 0.02))
    return [_s([("identity_type", "kvstore"), ("status", "alive")], str(alive), target="operator"),
            _s([("identity_type", "kvstore"), ("status", "deleted")], str(deleted), target="operator")]


def op_identity_gc_runs(t: Target):
    failing = _frac(t.ci, "gc-fail") < 0.1
    return [_s([("identity_type", "kvstore"), ("outcome", "success")], 2000, 0,
               [(-300 * j, 1) for j in range(1, 12)], target="operator"),
            _s([("identity_type", "kvstore"), ("outcome", "fail")], 3, 0,
               [(-400 * j, 1) for j in range(1, 4)] if failing else [], target="operator")]


def op_identity_gc_latency(t: Target):
    slow = _frac(t.ci, "gc-slow") < 0.1
    return [_s([("identity_type", "kvstore"), ("outcome", "success")], "95.2" if slow else "4.8", target="operator")]


def op_ec2_api_duration_seconds(t: Target):
    out = []
    throttled = _frac(t.ci, "ec2-throttle") < 0.15
    n = len(CLOUD_API_BUCKETS)
    for i, op in enumerate(EC2_OPS):
        out += _histogram((("operation", op), ("response_code", "OK")), 1 + i % 3, _shape(6 + i % 4, n), CLOUD_API_BUCKETS,
                          mean=0.2, target="operator")
        if throttled and op in ("AssignPrivateIpAddresses", "CreateNetworkInterface"):
            out += _histogram((("operation", op), ("response_code", "503 Service Unavailable")), 2, _shape(8, n),
                              CLOUD_API_BUCKETS, mean=0.3, target="operator")
        if i < 2 and _frac(t.ci, "ec2-400") < 0.2:
            out += _histogram((("operation", op), ("response_code", "400 Bad Request")), 1, _shape(5, n),
                              CLOUD_API_BUCKETS, mean=0.1, target="operator")
    return out


def op_ec2_api_rate_limit_duration_seconds(t: Target):
    waiting = _frac(t.ci, "ec2-limiter") < 0.1
    return [s for i, op in enumerate(EC2_OPS)
            for s in _histogram((("operation", op),), 1 + i % 3, _shape(9 if waiting and i < 2 else 0), mean=0.01,
                                target="operator")]


def op_ipam_needed_ips(t: Target):
    return [_s([("target_node", n)], str(3 + int(_frac(n, "need") * 20)) if _frac(n, "deficit") < 0.01 else "0",
               target="operator") for n in t.nodes_in_cluster]


def op_ipam_nodes(t: Target):
    total = len(t.nodes_in_cluster)
    deficit = sum(1 for n in t.nodes_in_cluster if _frac(n, "deficit") < 0.01)
    return [_s([("category", c)], str(v), target="operator")
            for c, v in (("total", total), ("in-deficit", deficit), ("at-capacity", deficit // 2))]


def op_ipam_available_ips_per_subnet(t: Target):
    low = _frac(t.ci, "subnet-low") < 0.15
    return [_s([("availability_zone", az), ("subnet_id", sid)], str(90 if low and k == 0 else 1500 + 37 * k),
               target="operator") for k, (sid, az) in enumerate(_subnets(t))]


def op_ipam_interface_creation_ops(t: Target):
    out = [_s([("status", "success"), ("subnet_id", sid)], 400 + k, 0, [(-700, 1)], target="operator")
           for k, (sid, _az) in enumerate(_subnets(t))]
    if _frac(t.ci, "eni-fail") < 0.1:
        out.append(_s([("status", "unable to create ENI"), ("subnet_id", _subnets(t)[0][0])], 2, 0, [(-500, 2)],
                      target="operator"))
    return out


def op_ipam_allocation_duration_seconds(t: Target):
    slow = _frac(t.ci, "alloc-slow") < 0.1
    return [s for k, (sid, _az) in enumerate(_subnets(t)) for typ in ("ip", "interface")
            for s in _histogram((("status", "success"), ("subnet_id", sid), ("type", typ)), 1 + k % 2,
                                _shape(10 if slow else 6), mean=1.5, target="operator")]


def op_ipam_allocation_ops(t: Target):
    """IPs allocated per subnet (counter, pkg/ipam/metrics): the subnets Cilium allocates from."""
    return [_s([("subnet_id", sid)], 20_000 + 500 * k, 0.5, target="operator") for k, (sid, _az) in enumerate(_subnets(t))]


def op_ces_sync_total(t: Target):
    """CiliumEndpointSlice syncs by outcome (counter, operator/pkg/ciliumendpointslice/metrics.go)."""
    out = [_s([("outcome", "success")], 80_000, 3, target="operator")]
    if _frac(t.ci, "ces-fail") < 0.05:
        out.append(_s([("outcome", "fail")], 30, 0.02, target="operator"))
    return out


def op_process_start_time_seconds(t: Target, anchor: int):
    restarts = _frac(t.ci, "op-restart") < 0.1
    return [_s([], anchor - 900_000, 0, [(-1800 + 400 * j, 300_000 + j) for j in range(3)] if restarts else [],
               target="operator")]


def up_operator(t: Target):
    return [_s([], "1", target="operator")]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter | gauge | histogram | unknown
    node: Optional[Callable] = None  # series of one agent node (agent and hubble targets)
    operator: Optional[Callable] = None  # series of one cluster's operator
    needs_anchor: bool = False

    @property
    def series_names(self) -> Tuple[str, ...]:
        if self.kind == "histogram":
            return (self.name + "_bucket", self.name + "_count", self.name + "_sum")
        return (self.name,)

    def header(self) -> str:
        if self.kind == "counter" and self.name.endswith("_total"):
            return f"# HELP {self.name[:-6]} synthetic\n# TYPE {self.name[:-6]} counter\n"
        return f"# HELP {self.name} synthetic\n# TYPE {self.name} {self.kind}\n"


FAMILIES: Dict[str, Family] = {f.name: f for f in (
    Family("cilium_bpf_map_pressure", "gauge", bpf_map_pressure),
    Family("cilium_bpf_map_ops_total", "counter", bpf_map_ops_total),
    Family("cilium_drop_count_total", "counter", drop_count_total),
    Family("cilium_datapath_conntrack_gc_runs_total", "counter", conntrack_gc_runs_total),
    Family("cilium_datapath_conntrack_gc_entries", "gauge", conntrack_gc_entries),
    Family("cilium_ipcache_errors_total", "counter", ipcache_errors_total),
    Family("cilium_identity", "gauge", identity),
    Family("cilium_kvstore_operations_duration_seconds", "histogram", kvstore_operations_duration_seconds),
    Family("cilium_kvstore_events_queue_seconds", "histogram", kvstore_events_queue_seconds),
    Family("cilium_kvstore_quorum_errors_total", "counter", kvstore_quorum_errors_total),
    Family("cilium_kvstore_sync_errors_total", "counter", kvstore_sync_errors_total),
    Family("cilium_kvstore_initial_sync_completed", "gauge", kvstore_initial_sync_completed),
    Family("cilium_process_start_time_seconds", "gauge", process_start_time_seconds, needs_anchor=True),
    Family("cilium_controllers_failing", "gauge", controllers_failing),
    Family("cilium_unreachable_nodes", "gauge", unreachable_nodes),
    Family("cilium_unreachable_health_endpoints", "gauge", unreachable_health_endpoints),
    Family("cilium_endpoint_state", "gauge", endpoint_state),
    Family("cilium_node_health_connectivity_status", "gauge", node_health_connectivity_status),
    Family("cilium_endpoint_regenerations_total", "counter", endpoint_regenerations_total),
    Family("cilium_policy_change_total", "counter", policy_change_total),
    Family("cilium_policy_implementation_delay", "histogram", policy_implementation_delay),
    Family("cilium_api_limiter_processed_requests_total", "counter", api_limiter_processed_requests_total),
    Family("cilium_k8s_client_api_calls_total", "counter", k8s_client_api_calls_total),
    Family("cilium_version", "gauge", version),
    Family("hubble_lost_events_total", "counter", hubble_lost_events_total),
    Family("hubble_flows_processed_total", "counter", hubble_flows_processed_total),
    Family("hubble_drop_total", "counter", hubble_drop_total),
    Family("up", "gauge", up_node, up_operator),
    Family("cilium_operator_identity_gc_entries", "gauge", None, op_identity_gc_entries),
    Family("cilium_operator_identity_gc_runs", "gauge", None, op_identity_gc_runs),
    Family("cilium_operator_identity_gc_latency", "gauge", None, op_identity_gc_latency),
    Family("cilium_operator_ec2_api_duration_seconds", "histogram", None, op_ec2_api_duration_seconds),
    Family("cilium_operator_ec2_api_rate_limit_duration_seconds", "histogram", None,
           op_ec2_api_rate_limit_duration_seconds),
    Family("cilium_operator_ipam_needed_ips", "gauge", None, op_ipam_needed_ips),
    Family("cilium_operator_ipam_nodes", "gauge", None, op_ipam_nodes),
    Family("cilium_operator_ipam_available_ips_per_subnet", "gauge", None, op_ipam_available_ips_per_subnet),
    Family("cilium_operator_ipam_interface_creation_ops", "unknown", None, op_ipam_interface_creation_ops),
    Family("cilium_operator_ipam_allocation_duration_seconds", "histogram", None, op_ipam_allocation_duration_seconds),
    Family("cilium_operator_ipam_allocation_ops", "counter", None, op_ipam_allocation_ops),
    Family("cilium_operator_ces_sync_total", "counter", None, op_ces_sync_total),
    Family("cilium_operator_process_start_time_seconds", "gauge", None, op_process_start_time_seconds,
           needs_anchor=True),
)}
# Exported by every node whether or not a rule reads them: they size the index as on a real server.
ALWAYS = ("hubble_flows_processed_total", "hubble_drop_total")
# Read by the rules' `or` branches, absent in an AWS fleet; and the families of Cilium before
# 1.17 that the fleet's version no longer exports (`cilium_node_connectivity_status` had one
# series per peer, which is why 1.17 replaced it with per-status counts).
ABSENT = re.compile(r"^cilium_operator_(azure|alibabacloud)_|^cilium_node_connectivity_status$")
JOBS = {"agent": ("cilium-agent", 9962), "hubble": ("hubble-metrics", 9965), "operator": ("cilium-operator", 9963)}


def _generic_family(name: str, selectors: Sequence[Selector]) -> Family:
    """A family the table does not describe: one series per node (or operator) satisfying the selectors."""
    base = re.sub(r"_(bucket|count|sum)$", "", name)
    kind = "histogram" if name.endswith("_bucket") else ("counter" if name.endswith("_total") else "gauge")
    labels = {}
    for sel in selectors:
        for m in sel.matchers:
            if m.label in ("cluster", "node", "job", "instance", "le"):
                continue
            if m.op == "=":
                labels[m.label] = m.value
            elif m.op == "=~":
                labels.setdefault(m.label, m.value.split("|")[0].replace(".*", "x"))
            else:
                labels.setdefault(m.label, "other")
    pairs = tuple(sorted(labels.items()))
    target = "operator" if name.startswith("cilium_operator_") else ("hubble" if name.startswith("hubble_") else "agent")

    def series(t: Target):
        if kind == "histogram":
            return _histogram(pairs, 2, _shape(4), target=target)
        return [_s(pairs, 100, 1 if kind == "counter" else 0, target=target)]

    if target == "operator":
        return Family(base if kind == "histogram" else name, kind, None, series)
    return Family(base if kind == "histogram" else name, kind, series, None)


# --- plan and writer ---------------------------------------------------------------------------


@dataclass
class Chunk:
    index: int
    first: int  # global node index
    stop: int
    operators: bool
    lines: int = 0
    series: int = 0
    by_name: Dict[str, int] = field(default_factory=dict)
    by_name_first_cluster: Dict[str, int] = field(default_factory=dict)  # series of the first cluster only


@dataclass
class Plan:
    """Which families to write, and on which time grid.

    anchor: first evaluation time that is measured (epoch s); end: last sample (epoch s);
    history: seconds of samples before the start of each window (see rule_cost.py).
    """

    pack: RulePack
    fleet: Fleet
    anchor: int
    end: int
    step: int = 30
    history: int = 600
    families: List[Family] = field(default_factory=list)
    generic: List[str] = field(default_factory=list)
    absent: List[str] = field(default_factory=list)
    _window_cache: Dict = field(default_factory=dict)
    _grid_cache: Dict = field(default_factory=dict)

    def __post_init__(self):
        self.selectors = self.pack.raw_selectors()
        self.by_name: Dict[str, List[Selector]] = {}
        for sel in self.selectors:
            self.by_name.setdefault(sel.name, []).append(sel)
        known = {}
        for fam in FAMILIES.values():
            for sn in fam.series_names:
                known[sn] = fam
        chosen = {}
        for name, sels in self.by_name.items():
            if name in known:
                chosen.setdefault(known[name].name, known[name])
            elif ABSENT.match(name):
                self.absent.append(name)
            else:
                fam = _generic_family(name, sels)
                chosen.setdefault(fam.name, fam)
                self.generic.append(name)
        for name in ALWAYS:
            chosen.setdefault(name, FAMILIES[name])
        self.families = list(chosen.values())
        self.max_window = max([s.window for s in self.selectors] + [LOOKBACK])
        # Global grid: k = 0 .. K; time of sample k of a target with offset o is origin + o + k * step.
        self.origin = (self.anchor - self.max_window - self.history - 2 * self.step) // self.step * self.step
        self.last_k = (self.end - self.origin) // self.step

    # -- which samples a series gets ----------------------------------------------------------

    def window(self, name: str, job: str, pairs) -> Optional[int]:
        key = (name, job, pairs)
        hit = self._window_cache.get(key, -1)
        if hit != -1:
            return hit
        labels = dict(pairs)
        labels["job"] = job
        best = None
        for sel in self.by_name.get(name, ()):
            if sel.accepts(labels):
                best = max(best or 0, sel.window)
        self._window_cache[key] = best
        return best

    def grid(self, offset: int, window: Optional[int]):
        """(global indices, timestamp suffixes) of a series with this scrape offset and read window."""
        key = (offset, window)
        hit = self._grid_cache.get(key)
        if hit is None:
            if window is None:
                first = (self.anchor - LOOKBACK - self.origin - offset) // self.step
                ks = range(max(0, first), self.last_k + 1, UNREAD_STRIDE)
            else:
                first = (self.anchor - window - self.history - self.origin - offset) // self.step
                ks = range(max(0, first), self.last_k + 1)
            hit = (ks, [f" {self.origin + offset + k * self.step}\n" for k in ks])
            self._grid_cache[key] = hit
        return hit

    def jump_k(self, offset: int, rel: int) -> int:
        return -(-(self.anchor + rel - self.origin - offset) // self.step)

    # -- chunks -----------------------------------------------------------------------------------

    def targets(self, chunk: Chunk):
        for gi in range(chunk.first, chunk.stop):
            yield self.fleet.node(gi, self.step)

    def _series_of(self, fam: Family, target: Target, operator: bool):
        fn = fam.operator if operator else fam.node
        if fn is None:
            return ()
        return fn(target, self.anchor) if fam.needs_anchor else fn(target)

    def estimate(self, sample_nodes: int = 200) -> Tuple[float, float, float]:
        """(series, samples, bytes) per agent node, averaged over a sample of nodes (operators excluded)."""
        series = samples = size = 0
        n = min(sample_nodes, self.fleet.nodes)
        stride = max(1, self.fleet.nodes // n)
        for gi in range(0, stride * n, stride):
            t = self.fleet.node(gi, self.step)
            for fam in self.families:
                for suffix, target, pairs, *_ in self._series_of(fam, t, False):
                    job, port = JOBS[target]
                    w = self.window(fam.name + suffix, job, pairs)
                    ks, _ = self.grid(t.offset, w)
                    line = len(fam.name + suffix) + len(t.labels(job, port)) + sum(len(k) + len(v) + 4 for k, v in pairs) + 25
                    series += 1
                    samples += len(ks)
                    size += len(ks) * line
        return series / n, samples / n, size / n

    def matched_series(self, sample_nodes: int = 200) -> Dict[Selector, float]:
        """Selector -> series it matches across the fleet (agents estimated from a sample, operators exact)."""
        out: Dict[Selector, float] = {sel: 0.0 for sel in self.selectors}
        n = min(sample_nodes, self.fleet.nodes)
        stride = max(1, self.fleet.nodes // max(n, 1))
        scale = self.fleet.nodes / max(n, 1)
        groups = [([self.fleet.node(gi, self.step) for gi in range(0, stride * n, stride)], False, scale),
                  ([self.fleet.operator(ci, self.step) for ci in range(self.fleet.clusters)], True, 1.0)]
        for targets, is_op, weight in groups:
            for t in targets:
                for fam in self.families:
                    for suffix, target, pairs, *_ in self._series_of(fam, t, is_op):
                        labels = dict(pairs)
                        labels["job"] = JOBS[target][0]
                        labels.setdefault("cluster", t.cluster)  # target labels: a selector may filter on them
                        labels.setdefault("node", t.node)
                        for sel in self.by_name.get(fam.name + suffix, ()):
                            if sel.accepts(labels):
                                out[sel] += weight
        return out

    def chunks(self, max_lines: int) -> List[Chunk]:
        _, samples_per_node, _ = self.estimate()
        per_chunk = max(1, int(max_lines // max(samples_per_node, 1)))
        out = []
        for first in range(0, self.fleet.nodes, per_chunk):
            out.append(Chunk(len(out), first, min(self.fleet.nodes, first + per_chunk), operators=(first == 0)))
        if not out:
            out.append(Chunk(0, 0, 0, operators=True))
        return out

    def write_chunk(self, path, chunk: Chunk) -> Chunk:
        """Write one chunk as OpenMetrics; returns it with line and series counts filled in."""
        lines = nseries = 0
        by_name: Dict[str, int] = {}
        first: Dict[str, int] = {}
        labels_cache: Dict = {}
        operators = [self.fleet.operator(ci, self.step) for ci in range(self.fleet.clusters)] if chunk.operators else []
        nodes = list(self.targets(chunk))
        with open(path, "w", buffering=1 << 22) as out:
            write = out.write
            for fam in self.families:
                write(fam.header())
                for targets, is_op in ((nodes, False), (operators, True)):
                    for t in targets:
                        target_labels = {kind: t.labels(job, port) for kind, (job, port) in JOBS.items()}
                        for suffix, target, pairs, base, slope, jumps in self._series_of(fam, t, is_op):
                            name = fam.name + suffix
                            job = JOBS[target][0]
                            ks, stamps = self.grid(t.offset, self.window(name, job, pairs))
                            extra = labels_cache.get(pairs)
                            if extra is None:
                                extra = "".join(f',{k}="{v}"' for k, v in pairs)
                                labels_cache[pairs] = extra
                            prefix = f"{name}{{{target_labels[target]}{extra}}} "
                            values = _values(base, slope, [(self.jump_k(t.offset, rel), d) for rel, d in jumps], ks)
                            write("".join([prefix + v + s for v, s in zip(values, stamps)]))
                            lines += len(ks)
                            nseries += 1
                            by_name[name] = by_name.get(name, 0) + 1
                            if t.ci == 0:
                                first[name] = first.get(name, 0) + 1
            write("# EOF\n")
        chunk.lines, chunk.series, chunk.by_name, chunk.by_name_first_cluster = lines, nseries, by_name, first
        return chunk


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.6g}" if abs(x) < 1e6 else f"{x:.1f}"
    return str(x)


def _values(base, slope, jumps, ks: range) -> List[str]:
    n = len(ks)
    if isinstance(base, str):
        return [base] * n
    if not jumps:
        if slope == 0:
            return [_fmt(base)] * n
        if isinstance(base, int) and isinstance(slope, int):
            step = slope * ks.step
            return list(map(str, range(base + slope * ks.start, base + slope * ks.start + step * n, step)))
        return [_fmt(base + slope * k) for k in ks]
    return [_fmt(base + slope * k + sum(d for kj, d in jumps if k >= kj)) for k in ks]
