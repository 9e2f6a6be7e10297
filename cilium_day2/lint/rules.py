"""The rule catalog (data/lint_rules.yaml) and the small predicates that decide when a rule fires."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from .formats import HELM, Source
from .model import FIELD_BY_NAME, ClusterConfig, InvalidValue, check_label_pattern

SEVERITIES = ("error", "warning", "info")
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}
CATALOG_PATH = Path(__file__).resolve().parent.parent / "data" / "lint_rules.yaml"


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    area: str
    severity: str
    title: str
    settings: Tuple[str, ...]
    helm: str
    configmap: str
    recommendation: str
    why: str
    article: str
    params: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@lru_cache(maxsize=1)
def catalog() -> Tuple[Rule, ...]:
    data = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))
    rules = []
    for entry in data["rules"]:
        rule = Rule(
            id=entry["id"], name=entry["name"], area=entry["area"], severity=entry["severity"],
            title=entry["title"], settings=tuple(entry.get("settings") or ()), helm=entry["helm"],
            configmap=entry["configmap"], recommendation=" ".join(entry["recommendation"].split()),
            why=" ".join(entry["why"].split()), article=entry["article"], params=dict(entry.get("params") or {}),
        )
        assert rule.severity in SEVERITIES, f"{rule.id}: bad severity {rule.severity}"
        assert all(s in FIELD_BY_NAME for s in rule.settings), f"{rule.id}: unknown setting in {rule.settings}"
        rules.append(rule)
    ids = [r.id for r in rules] + [r.name for r in rules]
    assert len(ids) == len(set(ids)), "duplicate rule id or name in the catalog"
    missing = {r.id for r in rules} - set(PREDICATES) - set(FLEET_RULES) - {"CD001", "CD002", "CD003"}
    assert not missing, f"rules without a predicate: {sorted(missing)}"
    return tuple(rules)


def rules_by_id() -> Dict[str, Rule]:
    return {r.id: r for r in catalog()}


def resolve(token: str) -> Optional[Rule]:
    """A rule by id (case-insensitive) or by name."""
    token = token.strip()
    for rule in catalog():
        if token.upper() == rule.id or token.lower() == rule.name:
            return rule
    return None


def valid_rule_tokens() -> str:
    return ", ".join(f"{r.id} ({r.name})" for r in catalog())


# ---- findings ------------------------------------------------------------------------------

@dataclass
class Hit:
    """What a predicate reports; the engine adds rule metadata, location and severity."""

    message: str
    field: Optional[str] = None  # model attribute the finding is about (location, value, keys)
    severity: Optional[str] = None  # overrides the rule default for this finding only
    setting: Optional[str] = None  # overrides for findings not about a model field
    value: Optional[str] = None
    key: Optional[str] = None
    line: Optional[int] = None
    helm_key: Optional[str] = None
    configmap_key: Optional[str] = None


@dataclass
class Finding:
    rule: Rule
    severity: str
    cluster: str
    file: str
    line: Optional[int]  # line of the key when the file sets it
    anchor_line: int  # where a code-review tool should point when `line` is None
    setting: str
    key: str  # the key as written in the file (or the canonical key when absent)
    value: str
    helm_key: str
    configmap_key: str
    message: str
    related: List[Tuple[str, Optional[int], str]] = field(default_factory=list)  # (file, line, cluster)

    def sort_key(self):
        return (SEVERITY_RANK[self.severity], self.cluster, self.rule.id, self.file, self.line or 0)


@dataclass
class ClusterInput:
    """One linted file and what the rules need to know about it."""

    source: Source
    config: ClusterConfig
    invalid: List[InvalidValue]
    name: str
    network_mtu: Optional[int] = None
    max_pods_per_node: Optional[int] = None


@dataclass
class Ctx:
    params: Dict[str, Any]
    cluster: ClusterInput


Predicate = Callable[[ClusterConfig, Ctx], List[Hit]]
PREDICATES: Dict[str, Predicate] = {}
FLEET_RULES: Dict[str, Callable[[Sequence[ClusterInput], Dict[str, Any]], List["Finding"]]] = {}


def predicate(rule_id: str):
    def register(func: Predicate) -> Predicate:
        PREDICATES[rule_id] = func
        return func
    return register


def evaluate_cluster(cluster: ClusterInput) -> List[Finding]:
    """Run every per-cluster rule on one file (before overrides and suppressions)."""
    rules = rules_by_id()
    findings: List[Finding] = []
    for item in cluster.invalid:
        spec = FIELD_BY_NAME[item.field]
        if item.unresolved:
            findings.append(_finding(rules["CD003"], cluster, Hit(
                message=f"{item.key} = {item.value!r} is unresolved ({item.reason}): not checked, and rules "
                        f"reading it were skipped",
                setting=spec.configmap, value=_short(item.value), key=item.key, line=item.line,
                helm_key=spec.helm, configmap_key=spec.configmap)))
            continue
        findings.append(_finding(rules["CD001"], cluster, Hit(
            message=f"{item.key} = {item.value!r} is not valid: {item.reason}",
            setting=spec.configmap, value=_short(item.value), key=item.key, line=item.line,
            helm_key=spec.helm, configmap_key=spec.configmap)))
    for unknown in cluster.source.unknown:
        helm = cluster.source.format == HELM
        findings.append(_finding(rules["CD002"], cluster, Hit(
            message=f"unknown key {unknown.key}: did you mean {unknown.suggestion}? It is ignored as written",
            setting=unknown.key, value=_short(unknown.value), key=unknown.key, line=unknown.line,
            helm_key=unknown.suggestion if helm else "-", configmap_key="-" if helm else unknown.suggestion)))
    invalid_fields = {i.field for i in cluster.invalid}
    for rule in catalog():
        func = PREDICATES.get(rule.id)
        if func is None:
            continue
        # A rule that reads a setting with an unparsable value would judge a default instead.
        if invalid_fields.intersection(rule.settings):
            continue
        for hit in func(cluster.config, Ctx(rule.params, cluster)):
            findings.append(_finding(rule, cluster, hit))
    return findings


def _finding(rule: Rule, cluster: ClusterInput, hit: Hit) -> Finding:
    config = cluster.config
    spec = FIELD_BY_NAME.get(hit.field) if hit.field else None
    origin = config.origins.get(hit.field) if hit.field else None
    line = hit.line if hit.line is not None else (origin.line if origin else None)
    if spec is not None:
        key = hit.key or (origin.key if origin and origin.explicit else
                          (spec.helm if cluster.source.format == HELM else spec.configmap))
        value = hit.value if hit.value is not None else config.display(hit.field)
    else:
        key = hit.key or "-"
        value = hit.value if hit.value is not None else "-"
    return Finding(
        rule=rule, severity=hit.severity or rule.severity, cluster=cluster.name, file=cluster.source.path,
        line=line, anchor_line=line or cluster.source.anchor_line,
        setting=hit.setting or (spec.configmap if spec else "-"), key=key, value=value,
        helm_key=hit.helm_key or (spec.helm if spec else "-"),
        configmap_key=hit.configmap_key or (spec.configmap if spec else "-"),
        message=hit.message,
    )


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- routing and MTU -----------------------------------------------------------------------

@predicate("CD101")
def _overlay_routing(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if c.routing_mode != "tunnel":
        return []
    return [Hit(f"routing mode is tunnel ({c.tunnel_protocol or 'vxlan'}): every pod packet is encapsulated "
                f"(50 bytes, extra CPU, a second MTU layer); prefer native routing where pod IPs can be "
                f"made routable", field="routing_mode")]


@predicate("CD102")
def _native_cidr_missing(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if c.routing_mode != "native" or c.ipv4_native_routing_cidr or not c.enable_ipv4_masquerade:
        return []
    if c.enable_ip_masq_agent:
        return []  # the eBPF ip-masq-agent's non-masquerade CIDRs take its place
    if c.ipam_mode in ("eni", "alibabacloud"):
        return [Hit(f"native routing with {c.ipam_mode} IPAM and no ipv4-native-routing-cidr: Cilium falls back "
                    f"to the VPC's primary CIDR, so pods on secondary CIDRs would be masqueraded; set it explicitly",
                    field="ipv4_native_routing_cidr", severity="info")]
    return [Hit("routing mode is native and IPv4 masquerading is on, but no ipv4-native-routing-cidr is set: "
                "the agent refuses to start (and east-west traffic would otherwise be NATed)",
                field="ipv4_native_routing_cidr")]


@predicate("CD103")
def _mtu(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if not c.mtu:
        return []  # 0 / unset: Cilium auto-detects the underlying MTU
    overhead, what = c.encap_overhead
    pod_mtu = c.mtu - overhead
    network = ctx.cluster.network_mtu
    if network is None:
        return [Hit(f"MTU pinned to {c.mtu} (pods get {pod_mtu} after {what}); the underlying network MTU is "
                    f"not in the file: pass --network-mtu (or lint.options.network_mtu) to check it",
                    field="mtu", severity="info")]
    expected_pod = network - overhead
    if c.mtu > network:
        after = f" (after {what})" if overhead else ""
        return [Hit(f"mtu {c.mtu} is above the underlying network MTU {network}: pods send {pod_mtu}-byte "
                    f"packets{after} where at most {expected_pod} fit, so large payloads are dropped or "
                    f"fragmented; set it to {network} or leave it to auto-detection", field="mtu", severity="error")]
    if c.mtu == network:
        return []
    if overhead and c.mtu == network - overhead:
        return [Hit(f"mtu {c.mtu} already has the {overhead}-byte overhead ({what}) subtracted, and Cilium "
                    f"subtracts it again: pods get {pod_mtu} instead of {expected_pod}; set mtu to the network "
                    f"MTU {network}", field="mtu")]
    return [Hit(f"mtu {c.mtu} does not match the underlying network MTU {network}: pods get {pod_mtu} "
                f"instead of {expected_pod} ({what}); set mtu to {network}", field="mtu")]


# ---- IPAM ----------------------------------------------------------------------------------

@predicate("CD201")
def _ipam_conventions(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if not c.cloud_ipam:
        return []
    names = ("ipam_pre_allocate", "ipam_min_allocate", "ipam_max_allocate")
    unset = [n for n in names if getattr(c, n) is None]
    if not unset:
        return []
    keys = ", ".join(FIELD_BY_NAME[n].configmap for n in unset)
    tail = " (pre-allocate then defaults to 8 spare IPs per node)" if "ipam_pre_allocate" in unset else ""
    return [Hit(f"{c.ipam_mode} IPAM without a per-node pool convention: {keys} not set{tail}", field=unset[0])]


@predicate("CD202")
def _ipam_rate_limits(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if not c.cloud_ipam:
        return []
    unset = [n for n in ("limit_ipam_api_qps", "limit_ipam_api_burst") if getattr(c, n) is None]
    if not unset:
        return []
    if ctx.cluster.source.agent_view:
        return [Hit("the operator's cloud API rate limits are not part of an agent dump: lint the cilium-config "
                    "ConfigMap or the Helm values to check them", field=unset[0], severity="info",
                    value="(not in agent dump)")]
    keys = " and ".join(FIELD_BY_NAME[n].configmap for n in unset)
    return [Hit(f"{c.ipam_mode} IPAM with {keys} left to the built-in default: the operator's cloud API budget "
                f"was not chosen for this account's quota", field=unset[0])]


@predicate("CD203")
def _prefix_delegation(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if c.ipam_mode != "eni" or c.aws_prefix_delegation:
        return []
    threshold = int(ctx.params["high_density_pods"])
    pods = ctx.cluster.max_pods_per_node
    if pods is None:
        return [Hit(f"AWS ENI IPAM without prefix delegation; pod density is not in the file: pass "
                    f"--max-pods-per-node (above {threshold} pods per node, prefixes are recommended)",
                    field="aws_prefix_delegation", severity="info")]
    if pods <= threshold:
        return []
    return [Hit(f"AWS ENI IPAM without prefix delegation at {pods} pods per node: nodes run out of "
                f"secondary IPs per ENI and every pod start costs an EC2 call", field="aws_prefix_delegation")]


# ---- identity ------------------------------------------------------------------------------

# Cilium's built-in identity label patterns (Documentation: "Limiting Identity-Relevant Labels").
DEFAULT_LABEL_PATTERNS = (
    r"reserved:.*",
    r"io\.kubernetes\.pod\.namespace",
    r"io\.cilium\.k8s\.namespace\.labels",
    r"app\.kubernetes\.io",
    r"io\.cilium\.k8s\.policy\.cluster",
    r"!io\.kubernetes",
    r"!kubernetes\.io",
    r"!statefulset\.kubernetes\.io/pod-name",
    r"!apps\.kubernetes\.io/pod-index",
    r"!batch\.kubernetes\.io/job-completion-index",
    r"!batch\.kubernetes\.io/controller-uid",
    r"!.*beta\.kubernetes\.io",
    r"!k8s\.io",
    r"!pod-template-generation",
    r"!pod-template-hash",
    r"!controller-revision-hash",
    r"!annotation.*",
    r"!controller-uid",
    r"!etcd_node",
)


@dataclass(frozen=True)
class LabelPattern:
    source: str  # "" matches any source
    regex: "re.Pattern[str]"
    ignore: bool


def parse_label_pattern(text: str) -> LabelPattern:
    """`[source:][!]regex`, anchored at the start of the label key, like the agent's filter."""
    source, regex, ignore = check_label_pattern(text)
    return LabelPattern(source, re.compile(regex), ignore)


def identity_relevant(key: str, user_patterns: Sequence[str], source: str = "k8s") -> bool:
    """Whether a pod label key ends up in the security identity, following the agent's rules:
    the longest matching inclusive pattern must beat the shortest matching exclusion, and once any
    user pattern is inclusive, a label must match an inclusive pattern at all."""
    patterns = [parse_label_pattern(p) for p in DEFAULT_LABEL_PATTERNS]
    user = [parse_label_pattern(p) for p in user_patterns]
    allowlist = any(not p.ignore for p in user)
    included = ignored = 0
    for pattern in patterns + user:
        if pattern.source and pattern.source != source:
            continue
        match = pattern.regex.match(key)
        if not match:
            continue
        length = match.end()
        if pattern.ignore:
            ignored = length if ignored == 0 else min(ignored, length)
        else:
            included = max(included, length)
    return (not allowlist and ignored == 0) or included > ignored


@predicate("CD301")
def _labels_no_allowlist(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    patterns = c.labels or []
    if any(not p.split(":", 1)[-1].startswith("!") for p in patterns):
        return []
    leaked = [k for k in _high_cardinality_keys() if identity_relevant(k, patterns)]
    example = f" (e.g. {', '.join(leaked[:2])} enter identities)" if leaked else ""
    what = "no identity label filter is set" if not patterns else "the identity label filter only excludes labels"
    return [Hit(f"{what}: every other pod label becomes identity-relevant{example}", field="labels")]


def _high_cardinality_keys() -> List[str]:
    """CD301 names examples from CD302's list, so there is one list to maintain."""
    return list(rules_by_id()["CD302"].params["high_cardinality_keys"])


@predicate("CD302")
def _labels_high_cardinality(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if c.labels is None:
        return []  # CD301 covers the unset case
    leaked = [k for k in ctx.params["high_cardinality_keys"] if identity_relevant(k, c.labels)]
    if not leaked:
        return []
    return [Hit(f"the label filter lets high-cardinality labels into identities: {', '.join(leaked)}",
                field="labels")]


# ---- datapath ------------------------------------------------------------------------------

STATIC_MAP_FIELDS = ("bpf_ct_global_tcp_max", "bpf_ct_global_any_max", "bpf_nat_global_max", "bpf_neigh_global_max")


@predicate("CD401")
def _static_maps(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    hits = []
    if c.bpf_map_dynamic_size_ratio is None:
        hits.append(Hit("bpf-map-dynamic-size-ratio is not set: older agents then size maps statically "
                        "(newer ones default to 0.0025); set it explicitly", field="bpf_map_dynamic_size_ratio"))
    elif c.bpf_map_dynamic_size_ratio == 0:
        hits.append(Hit("dynamic BPF map sizing is disabled (ratio 0): conntrack, NAT and neighbour maps use "
                        "fixed entry counts whatever the node's memory", field="bpf_map_dynamic_size_ratio"))
    static = [n for n in STATIC_MAP_FIELDS if getattr(c, n) is not None]
    if static:
        listing = ", ".join(f"{FIELD_BY_NAME[n].configmap}={getattr(c, n)}" for n in static)
        hits.append(Hit(f"fixed map sizes override the dynamic ratio for those maps: {listing}", field=static[0],
                        setting=", ".join(FIELD_BY_NAME[n].configmap for n in static),
                        value=", ".join(str(getattr(c, n)) for n in static)))
    return hits


@predicate("CD402")
def _ratio_unusual(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    ratio = c.bpf_map_dynamic_size_ratio
    if not ratio:
        return []
    low, high, usual = float(ctx.params["low"]), float(ctx.params["high"]), float(ctx.params["usual"])
    if low <= ratio <= high:
        return []
    direction = "below" if ratio < low else "above"
    return [Hit(f"bpf-map-dynamic-size-ratio {ratio:g} ({ratio * 100:g}% of node memory) is far {direction} the "
                f"usual {usual:g} ({usual * 100:g}%)", field="bpf_map_dynamic_size_ratio")]


@predicate("CD403")
def _unreachable_routes(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if c.enable_unreachable_routes:
        return []
    return [Hit("enable-unreachable-routes is off: traffic to a deleted pod's IP is silently blackholed and "
                "clients keep retransmitting", field="enable_unreachable_routes")]


@predicate("CD404")
def _kpr_maglev(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if not c.kpr_enabled or c.lb_algorithm == "maglev":
        return []
    return [Hit(f"kube-proxy replacement selects backends with {c.lb_algorithm or 'random'}: adding or removing a "
                f"backend reshuffles flows; use maglev", field="lb_algorithm")]


@predicate("CD405")
def _kpr_bpf_masquerade(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if not c.kpr_enabled or not c.enable_ipv4_masquerade or c.enable_bpf_masquerade:
        return []
    return [Hit("kube-proxy replacement is on but masquerading is done by iptables: use eBPF masquerading",
                field="enable_bpf_masquerade")]


@predicate("CD406")
def _kpr_xdp(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if not c.kpr_enabled or c.lb_acceleration not in (None, "disabled"):
        return []
    return [Hit("kube-proxy replacement without XDP acceleration: where NIC drivers support it, best-effort "
                "XDP cuts service latency and CPU", field="lb_acceleration")]


# ---- observability -------------------------------------------------------------------------

@predicate("CD501")
def _hubble_buffers(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    if not c.hubble_enabled:
        return []
    small = []
    buffer_min = int(ctx.params["min_event_buffer_capacity"])
    queue_min = int(ctx.params["min_event_queue_size"])
    if (c.hubble_event_buffer_capacity or 4095) < buffer_min:
        small.append(("hubble_event_buffer_capacity",
                      f"Hubble's flow buffer holds {c.hubble_event_buffer_capacity or 4095} flows "
                      f"(at least {buffer_min} is recommended on busy nodes)"))
    if c.hubble_event_queue_size is not None and c.hubble_event_queue_size < queue_min:
        small.append(("hubble_event_queue_size",
                      f"Hubble's event queue is capped at {c.hubble_event_queue_size} events "
                      f"(at least {queue_min} is recommended on busy nodes)"))
    if not small:
        return []
    busy = int(ctx.params["busy_node_pods"])
    pods = ctx.cluster.max_pods_per_node
    if pods is not None and pods < busy:
        return []
    if pods is None:
        return [Hit(f"{text}; node load is not in the file: pass --max-pods-per-node to judge it "
                    f"(nodes with {busy}+ pods count as busy)", field=name, severity="info") for name, text in small]
    return [Hit(f"{text}; nodes run up to {pods} pods, so flows will be lost at peak", field=name)
            for name, text in small]


CONTEXT_OPTIONS = ("sourceContext", "sourceEgressContext", "sourceIngressContext", "destinationContext",
                   "destinationEgressContext", "destinationIngressContext")


def unbounded_hubble_options(entry: str, context_values: Sequence[str], label_values: Sequence[str]) -> List[str]:
    """The options of one Hubble metric (`name:opt=a|b;labelsContext=x,y`) that add per-pod series."""
    name, _, options = entry.replace("\\", "").partition(":")
    found = []
    for option in filter(None, options.split(";")):
        key, _, value = option.partition("=")
        if key in CONTEXT_OPTIONS:
            bad = [v for v in value.split("|") if v in context_values]
            if bad:
                found.append(f"{key}={'|'.join(bad)}")
        elif key == "labelsContext":
            bad = [v for v in value.split(",") if v in label_values]
            if bad:
                found.append(f"labelsContext={','.join(bad)}")
        elif name == "dns" and key == "query":
            found.append("query (the DNS name as a label)")
    return found


@predicate("CD502")
def _hubble_unbounded(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    offenders = []
    for entry in c.hubble_metrics or []:
        bad = unbounded_hubble_options(entry, ctx.params["unbounded_context_values"],
                                       ctx.params["unbounded_labels_context"])
        if bad:
            offenders.append(f"{entry.split(':', 1)[0]} ({'; '.join(bad)})")
    if not offenders:
        return []
    return [Hit(f"Hubble metrics labelled per pod, IP or DNS name: {', '.join(offenders)}", field="hubble_metrics")]


@predicate("CD503")
def _metrics_off(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    hits = []
    if not c.prometheus_serve_addr:
        origin = c.origins.get("prometheus_serve_addr")
        if origin and origin.key == "prometheus.enabled":
            value = "false" + ("" if origin.explicit else " (chart default)")
        else:
            value = "(unset)"
        hits.append(Hit("cilium-agent metrics are not exposed (no prometheus-serve-addr): map pressure, drops and "
                        "conntrack GC cannot be alerted on", field="prometheus_serve_addr", value=value))
    if c.hubble_enabled and not c.hubble_metrics:
        hits.append(Hit("Hubble is enabled but serves no metrics (hubble.metrics.enabled is empty): "
                        "hubble_lost_events_total does not exist, so lost flows cannot be alerted on",
                        field="hubble_metrics", value="(empty)"))
    if ctx.cluster.source.agent_view:
        pass  # the agent's dump says nothing about the operator
    elif c.operator_metrics_enabled is False:
        hits.append(Hit("cilium-operator metrics are off: identity GC, IPAM and cloud API throttling are invisible",
                        field="operator_metrics_enabled"))
    return hits


def _metric_name(entry: str) -> str:
    name = entry.lstrip("+-").strip()
    return name if name.startswith("cilium_") else "cilium_" + name


@predicate("CD504")
def _day2_metric_disabled(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    wanted = set(ctx.params["day2_metrics"])
    disabled = [_metric_name(e) for e in (c.metrics or []) if e.startswith("-") and _metric_name(e) in wanted]
    if not disabled:
        return []
    return [Hit(f"Day-2 metrics disabled: {', '.join(disabled)}", field="metrics")]


# ---- cluster mesh --------------------------------------------------------------------------

@predicate("CD601")
def _cluster_id_mark(c: ClusterConfig, ctx: Ctx) -> List[Hit]:
    cid = c.cluster_id or 0
    if not cid & 0x80:
        return []
    eni_like = c.ipam_mode in ("eni", "alibabacloud") or (c.cni_chaining_mode or "") == "aws-cni"
    mode = (f"{c.ipam_mode} IPAM" if c.ipam_mode in ("eni", "alibabacloud") else "aws-cni chaining")
    if eni_like:
        return [Hit(f"cluster-id {cid} has bit 0x80 set, which {mode} overwrites in the packet mark: identities are "
                    f"corrupted and policy drops traffic (cilium/cilium#21330); use an ID from 1 to 127",
                    field="cluster_id")]
    if c.kpr_enabled:
        return [Hit(f"cluster-id {cid} is in the upper half of the range; the article hit a mark-encoding bug with "
                    f"such IDs in ENI/NodePort mode, and upstream only guards ENI and aws-cni: prefer 1-127",
                    field="cluster_id", severity="info")]
    return []


# ---- fleet ---------------------------------------------------------------------------------

def _fleet(rule_id: str):
    def register(func):
        FLEET_RULES[rule_id] = func
        return func
    return register


def evaluate_fleet(clusters: Sequence[ClusterInput]) -> List[Finding]:
    if len(clusters) < 2:
        return []
    rules = rules_by_id()
    findings: List[Finding] = []
    for rule_id, func in FLEET_RULES.items():
        findings.extend(func(clusters, rules[rule_id]))
    return findings


def _fleet_finding(rule: Rule, members: Sequence[ClusterInput], field_name: str, setting: str, value: str,
                   message: str) -> Finding:
    spec = FIELD_BY_NAME[field_name]
    first = members[0]
    origin = first.config.origins.get(field_name)
    line = origin.line if origin else None
    related = []
    for member in members:
        member_origin = member.config.origins.get(field_name)
        related.append((member.source.path, member_origin.line if member_origin else None, member.name))
    return Finding(
        rule=rule, severity=rule.severity, cluster=", ".join(m.name for m in members), file=first.source.path,
        line=line, anchor_line=line or first.source.anchor_line, setting=setting,
        key=spec.helm if first.source.format == HELM else spec.configmap, value=value, helm_key=spec.helm,
        configmap_key=spec.configmap, message=message, related=related,
    )


@_fleet("CD701")
def _id_collisions(clusters: Sequence[ClusterInput], rule: Rule) -> List[Finding]:
    findings = []
    for field_name, ignore in (("cluster_id", (0, None)), ("cluster_name", ("", "default", None))):
        groups: Dict[Any, List[ClusterInput]] = {}
        for cluster in clusters:
            value = getattr(cluster.config, field_name)
            if value not in ignore:
                groups.setdefault(value, []).append(cluster)
        for value, members in groups.items():
            if len(members) > 1:
                names = ", ".join(f"{m.name} ({m.source.path})" for m in members)
                findings.append(_fleet_finding(
                    rule, members, field_name, FIELD_BY_NAME[field_name].configmap, str(value),
                    f"{FIELD_BY_NAME[field_name].configmap} {value} is used by {len(members)} clusters: {names}"))
    return findings


@_fleet("CD702")
def _drift(clusters: Sequence[ClusterInput], rule: Rule) -> List[Finding]:
    findings = []
    for field_name in rule.params["compare"]:
        members = list(clusters)
        if field_name == "max_connected_clusters":
            members = [c for c in clusters if c.config.cluster_id]
        if len(members) < 2:
            continue
        values = {}
        for member in members:
            raw = getattr(member.config, field_name)
            values[member.name] = tuple(raw) if isinstance(raw, list) else raw
        if len(set(values.values())) < 2:
            continue
        listing = "; ".join(f"{m.name}={m.config.display(field_name)}" for m in members)
        distinct = list(dict.fromkeys(m.config.display(field_name) for m in members))
        setting = FIELD_BY_NAME[field_name].configmap
        findings.append(_fleet_finding(rule, members, field_name, setting, " | ".join(distinct),
                                       f"{setting} differs between clusters: {listing}"))
    return findings
