"""One typed model of the Cilium settings the rules read, whatever file they came from.

Every input format is first normalised to cilium-config keys (the agent's flag names), because
that is the one vocabulary all three formats share: the Helm chart renders its values into these
keys, `cilium config view` prints them, and `cilium-dbg config` prints the agent's view of them.
`build_config` then parses each key into a typed attribute of `ClusterConfig` and records where
the value came from (key as written, line, explicit or default) for the report.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class RawValue:
    """A value as found in the input, already keyed by its cilium-config name."""

    value: Any
    key: str  # the key as written in the file (Helm path, ConfigMap key, ...)
    line: Optional[int] = None
    explicit: bool = True  # False: a chart or agent default, not written by the user
    note: str = ""  # e.g. "implied by eni.enabled"


@dataclass(frozen=True)
class Origin:
    key: str
    line: Optional[int]
    explicit: bool
    note: str = ""


@dataclass(frozen=True)
class FieldSpec:
    name: str  # ClusterConfig attribute
    kind: str  # bool | int | float | str | enum | list | labels | cidr
    configmap: str  # canonical cilium-config key
    helm: str  # canonical Helm key, for fix hints
    default: Any = None  # what the agent uses when the key is absent (None: unknown/unset)
    choices: Tuple[str, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    aliases: Tuple[str, ...] = ()  # older or alternative cilium-config keys


# The settings the rules read. Defaults are the agent's behaviour when the key is absent from
# cilium-config; the Helm loader fills in chart defaults separately (formats.helm_to_configmap).
FIELDS: Tuple[FieldSpec, ...] = (
    FieldSpec("cluster_name", "str", "cluster-name", "cluster.name", default="default"),
    FieldSpec("cluster_id", "int", "cluster-id", "cluster.id", default=0, minimum=0, maximum=511),
    FieldSpec("max_connected_clusters", "int", "max-connected-clusters", "clustermesh.maxConnectedClusters",
              default=255, minimum=255, maximum=511),
    FieldSpec("routing_mode", "enum", "routing-mode", "routingMode", default="tunnel", choices=("native", "tunnel")),
    FieldSpec("tunnel_protocol", "enum", "tunnel-protocol", "tunnelProtocol", default="vxlan",
              choices=("vxlan", "geneve")),
    FieldSpec("ipv4_native_routing_cidr", "cidr", "ipv4-native-routing-cidr", "ipv4NativeRoutingCIDR"),
    FieldSpec("enable_ipv4_masquerade", "bool", "enable-ipv4-masquerade", "enableIPv4Masquerade", default=True,
              aliases=("masquerade",)),
    FieldSpec("enable_ip_masq_agent", "bool", "enable-ip-masq-agent", "ipMasqAgent.enabled", default=False),
    FieldSpec("enable_bpf_masquerade", "bool", "enable-bpf-masquerade", "bpf.masquerade", default=False),
    FieldSpec("ipam_mode", "enum", "ipam", "ipam.mode", default="cluster-pool",
              choices=("cluster-pool", "cluster-pool-v2beta", "kubernetes", "crd", "eni", "azure", "alibabacloud",
                       "multi-pool", "delegated-plugin")),
    FieldSpec("cni_chaining_mode", "str", "cni-chaining-mode", "cni.chainingMode", default="none"),
    FieldSpec("ipam_pre_allocate", "int", "ipam-pre-allocate", "ipam.nodeSpec.ipamPreAllocate", minimum=0),
    FieldSpec("ipam_min_allocate", "int", "ipam-min-allocate", "ipam.nodeSpec.ipamMinAllocate", minimum=0),
    FieldSpec("ipam_max_allocate", "int", "ipam-max-allocate", "ipam.nodeSpec.ipamMaxAllocate", minimum=0),
    FieldSpec("limit_ipam_api_qps", "float", "limit-ipam-api-qps", "ipam.operator.externalAPILimitQPS", minimum=0),
    FieldSpec("limit_ipam_api_burst", "int", "limit-ipam-api-burst", "ipam.operator.externalAPILimitBurstSize",
              minimum=0),
    FieldSpec("aws_prefix_delegation", "bool", "aws-enable-prefix-delegation", "eni.awsEnablePrefixDelegation",
              default=False),
    FieldSpec("labels", "labels", "labels", "labels"),
    FieldSpec("bpf_map_dynamic_size_ratio", "float", "bpf-map-dynamic-size-ratio", "bpf.mapDynamicSizeRatio",
              minimum=0, maximum=1),
    FieldSpec("bpf_ct_global_tcp_max", "int", "bpf-ct-global-tcp-max", "bpf.ctTcpMax", minimum=0),
    FieldSpec("bpf_ct_global_any_max", "int", "bpf-ct-global-any-max", "bpf.ctAnyMax", minimum=0),
    FieldSpec("bpf_nat_global_max", "int", "bpf-nat-global-max", "bpf.natMax", minimum=0),
    FieldSpec("bpf_neigh_global_max", "int", "bpf-neigh-global-max", "bpf.neighMax", minimum=0),
    FieldSpec("enable_unreachable_routes", "bool", "enable-unreachable-routes",
              "extraConfig.enable-unreachable-routes", default=False),
    FieldSpec("kube_proxy_replacement", "enum", "kube-proxy-replacement", "kubeProxyReplacement", default="false",
              choices=("true", "false", "strict", "partial", "probe", "disabled")),
    FieldSpec("enable_node_port", "bool", "enable-node-port", "nodePort.enabled", default=False),
    FieldSpec("lb_algorithm", "enum", "bpf-lb-algorithm", "loadBalancer.algorithm", default="random",
              choices=("random", "maglev")),
    FieldSpec("lb_acceleration", "enum", "bpf-lb-acceleration", "loadBalancer.acceleration", default="disabled",
              choices=("disabled", "native", "best-effort", "generic")),
    FieldSpec("hubble_enabled", "bool", "enable-hubble", "hubble.enabled", default=False),
    FieldSpec("hubble_event_queue_size", "int", "hubble-event-queue-size", "hubble.eventQueueSize", minimum=1),
    FieldSpec("hubble_event_buffer_capacity", "int", "hubble-event-buffer-capacity", "hubble.eventBufferCapacity",
              default=4095, minimum=1, maximum=65535),
    FieldSpec("hubble_metrics", "list", "hubble-metrics", "hubble.metrics.enabled"),
    FieldSpec("prometheus_serve_addr", "str", "prometheus-serve-addr", "prometheus.enabled", default=""),
    FieldSpec("operator_metrics_enabled", "bool", "enable-metrics", "operator.prometheus.enabled", default=False),
    FieldSpec("metrics", "list", "metrics", "prometheus.metrics"),
    FieldSpec("mtu", "int", "mtu", "MTU", default=0, minimum=0, maximum=65520),
    FieldSpec("enable_ipsec", "bool", "enable-ipsec", "encryption.enabled + encryption.type=ipsec", default=False),
    FieldSpec("enable_wireguard", "bool", "enable-wireguard", "encryption.enabled + encryption.type=wireguard",
              default=False),
)

FIELD_BY_NAME: Dict[str, FieldSpec] = {f.name: f for f in FIELDS}
FIELD_BY_KEY: Dict[str, FieldSpec] = {}
for _f in FIELDS:
    FIELD_BY_KEY[_f.configmap] = _f
    for _alias in _f.aliases:
        FIELD_BY_KEY[_alias] = _f

# Older agents used `tunnel: vxlan|geneve|disabled` instead of routing-mode + tunnel-protocol.
LEGACY_TUNNEL_KEY = "tunnel"


@dataclass
class ClusterConfig:
    """The settings of one cluster, typed. None means "not set and no known default"."""

    cluster_name: Optional[str] = None
    cluster_id: Optional[int] = None
    max_connected_clusters: Optional[int] = None
    routing_mode: Optional[str] = None
    tunnel_protocol: Optional[str] = None
    ipv4_native_routing_cidr: Optional[str] = None
    enable_ipv4_masquerade: Optional[bool] = None
    enable_ip_masq_agent: Optional[bool] = None
    enable_bpf_masquerade: Optional[bool] = None
    ipam_mode: Optional[str] = None
    cni_chaining_mode: Optional[str] = None
    ipam_pre_allocate: Optional[int] = None
    ipam_min_allocate: Optional[int] = None
    ipam_max_allocate: Optional[int] = None
    limit_ipam_api_qps: Optional[float] = None
    limit_ipam_api_burst: Optional[int] = None
    aws_prefix_delegation: Optional[bool] = None
    labels: Optional[List[str]] = None
    bpf_map_dynamic_size_ratio: Optional[float] = None
    bpf_ct_global_tcp_max: Optional[int] = None
    bpf_ct_global_any_max: Optional[int] = None
    bpf_nat_global_max: Optional[int] = None
    bpf_neigh_global_max: Optional[int] = None
    enable_unreachable_routes: Optional[bool] = None
    kube_proxy_replacement: Optional[str] = None
    enable_node_port: Optional[bool] = None
    lb_algorithm: Optional[str] = None
    lb_acceleration: Optional[str] = None
    hubble_enabled: Optional[bool] = None
    hubble_event_queue_size: Optional[int] = None
    hubble_event_buffer_capacity: Optional[int] = None
    hubble_metrics: Optional[List[str]] = None
    prometheus_serve_addr: Optional[str] = None
    operator_metrics_enabled: Optional[bool] = None
    metrics: Optional[List[str]] = None
    mtu: Optional[int] = None
    enable_ipsec: Optional[bool] = None
    enable_wireguard: Optional[bool] = None
    # Where each value came from; attributes without an entry were absent with no default.
    origins: Dict[str, Origin] = field(default_factory=dict, repr=False, compare=False)

    # -- small derived views the rules share ------------------------------------------------
    def explicit(self, name: str) -> bool:
        origin = self.origins.get(name)
        return bool(origin and origin.explicit)

    @property
    def kpr_enabled(self) -> bool:
        """kube-proxy replacement handles services (new true/false, or old strict/partial+NodePort)."""
        if self.kube_proxy_replacement == "probe":
            return True  # probe switches NodePort on wherever the kernel supports it
        return self.kpr_mode == "full" or (self.kpr_mode == "partial" and bool(self.enable_node_port))

    @property
    def kpr_mode(self) -> str:
        """"full", "partial" or "off". Before 1.15 (deprecated in 1.14): `strict` is the full
        replacement (today's `true`); `partial` replaces what is enabled one by one (NodePort,
        host port, ...), and `probe` (1.12 and older) is partial with the features the kernel
        supports switched on, NodePort included; `disabled` is off."""
        kpr = self.kube_proxy_replacement
        if kpr in ("true", "strict"):
            return "full"
        if kpr in ("partial", "probe"):
            return "partial"
        return "off"

    @property
    def cloud_ipam(self) -> bool:
        return self.ipam_mode in ("eni", "azure", "alibabacloud")

    @property
    def encap_overhead(self) -> Tuple[int, str]:
        """Bytes Cilium subtracts from the base MTU for pod routes, and what they are for."""
        parts = []
        total = 0
        if self.routing_mode == "tunnel":
            total += 50
            parts.append(f"{self.tunnel_protocol or 'vxlan'} 50")
        if self.enable_wireguard:
            total += 80
            parts.append("WireGuard 80")
        elif self.enable_ipsec:
            total += 77
            parts.append("IPsec ~77")
        return total, (" + ".join(parts) if parts else "no encapsulation")

    def display(self, name: str) -> str:
        """The value as a short string for reports: marks defaults and unset values."""
        value = getattr(self, name)
        origin = self.origins.get(name)
        if value is None:
            return "(unset)"
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = " ".join(value) if value else "(empty)"
        elif isinstance(value, float):
            text = f"{value:g}"
        else:
            text = str(value) if value != "" else "(empty)"
        if origin is not None and not origin.explicit:
            text += f" ({origin.note or 'default'})"
        return text


def model_field_names() -> List[str]:
    return [f.name for f in fields(ClusterConfig) if f.name != "origins"]


# ---- value parsing -------------------------------------------------------------------------

# Go's strconv.ParseBool, which Cilium's configuration uses: exactly these spellings (case
# matters: `tRUE` is not one). `yes`, `on` or `enabled` are not booleans to Cilium.
TRUE_WORDS = ("1", "t", "T", "TRUE", "true", "True")
FALSE_WORDS = ("0", "f", "F", "FALSE", "false", "False")
BOOL_SPELLINGS = ", ".join(TRUE_WORDS + FALSE_WORDS)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def parse_value(spec: FieldSpec, value: Any) -> Any:
    """Parse one raw value into the field's type; raise ValueError with a readable reason.

    An empty value means "not set" (None): dumps print keys that are present but empty."""
    if spec.kind != "str" and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        text = _as_text(value)
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise ValueError(f"not a boolean to Cilium (Go's strconv.ParseBool accepts {BOOL_SPELLINGS})")
    if spec.kind == "int":
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            number = value
        else:
            text = _as_text(value)
            try:
                number = int(text, 10)
            except ValueError:
                raise ValueError("expected an integer") from None
        _check_range(spec, number)
        return number
    if spec.kind == "float":
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            number = float(_as_text(value))
        except ValueError:
            raise ValueError("expected a number") from None
        if number != number:  # NaN
            raise ValueError("expected a number")
        _check_range(spec, number)
        return number
    if spec.kind == "enum":
        text = _as_text(value).lower()
        if text not in spec.choices:
            raise ValueError("expected one of " + ", ".join(spec.choices))
        return text
    if spec.kind == "cidr":
        text = _as_text(value)
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError("expected a CIDR such as 10.0.0.0/8") from None
        return text
    if spec.kind == "list":
        return parse_list(value)
    if spec.kind == "labels":
        patterns = parse_list(value)
        for pattern in patterns:
            check_label_pattern(pattern)
        return patterns
    if spec.kind == "str":
        if isinstance(value, (dict, list)):
            raise ValueError("expected a string")
        return _as_text(value)
    raise AssertionError(f"unknown field kind {spec.kind}")  # pragma: no cover - catalog bug


def parse_list(value: Any) -> List[str]:
    """Space-separated string, YAML list, or `[a b]` as printed by `cilium-dbg config`."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items: List[str] = []
        for item in value:
            if isinstance(item, (dict, list, tuple)):
                raise ValueError("expected a list of strings")
            items.extend(parse_list(item))
        return [i for i in items if i]
    if isinstance(value, dict):
        raise ValueError("expected a list or a space-separated string")
    text = _as_text(value)
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part for part in text.replace("\n", " ").split(" ") if part]


def check_label_pattern(text: str) -> Tuple[str, str, bool]:
    """`[source:][!]regex` as the agent's identity label filter reads it: (source, regex, exclude)."""
    source, sep, rest = text.partition(":")
    if not sep:
        source, rest = "", text
    exclude = rest.startswith("!")
    if exclude:
        rest = rest[1:]
    if not rest:
        raise ValueError(f"label pattern {text!r} has an empty prefix")
    try:
        re.compile(rest)
    except re.error as exc:
        raise ValueError(f"label pattern {text!r} is not a valid regular expression ({exc})") from None
    return ("" if source == "any" else source), rest, exclude


def _check_range(spec: FieldSpec, number: float) -> None:
    if spec.minimum is not None and number < spec.minimum:
        raise ValueError(f"must be at least {spec.minimum:g}")
    if spec.maximum is not None and number > spec.maximum:
        raise ValueError(f"must be at most {spec.maximum:g}")


@dataclass(frozen=True)
class InvalidValue:
    field: str
    key: str
    value: Any
    line: Optional[int]
    reason: str
    unresolved: bool = False  # a deploy-time placeholder, not a wrong value


# `${VAR}` (Flux post-build substitution, envsubst) and `{{ ... }}` (Helm, Go templates).
PLACEHOLDER_RE = re.compile(r"\$\{[^}]*\}|\{\{.*?\}\}")


def _placeholder(value: Any) -> Optional[str]:
    """The first unresolved placeholder in a value (or in a list of values), if any."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            match = PLACEHOLDER_RE.search(item)
            if match:
                return match.group(0)
    return None


def build_config(raw: Dict[str, RawValue]) -> Tuple[ClusterConfig, List[InvalidValue]]:
    """Turn normalised raw values into a typed ClusterConfig; collect values that do not parse."""
    config = ClusterConfig()
    invalid: List[InvalidValue] = []

    legacy = raw.get(LEGACY_TUNNEL_KEY)
    for spec in FIELDS:
        # The canonical key wins over an older alias when both are present.
        item = raw.get(spec.configmap)
        for alias in spec.aliases:
            if item is None:
                item = raw.get(alias)
        if item is None:
            continue
        placeholder = _placeholder(item.value)
        if placeholder is not None:
            invalid.append(InvalidValue(spec.name, item.key, item.value, item.line,
                                        f"{placeholder} is filled in at deploy time", unresolved=True))
            continue
        try:
            parsed = parse_value(spec, item.value)
        except ValueError as exc:
            invalid.append(InvalidValue(spec.name, item.key, item.value, item.line, str(exc)))
            continue
        if parsed is None:
            continue  # present but empty: same as absent
        setattr(config, spec.name, parsed)
        config.origins[spec.name] = Origin(item.key, item.line, item.explicit, item.note)

    # Pre-1.14 agents: `tunnel: vxlan|geneve|disabled` stands for routing mode + protocol.
    if legacy is not None and "routing-mode" not in raw:
        text = _as_text(legacy.value).lower()
        if text in ("vxlan", "geneve"):
            config.routing_mode = "tunnel"
            config.tunnel_protocol = text
            for name in ("routing_mode", "tunnel_protocol"):
                config.origins[name] = Origin(legacy.key, legacy.line, legacy.explicit, legacy.note)
        elif text in ("disabled", "native", ""):
            config.routing_mode = "native"
            config.origins["routing_mode"] = Origin(legacy.key, legacy.line, legacy.explicit, legacy.note)
        else:
            invalid.append(InvalidValue("routing_mode", legacy.key, legacy.value, legacy.line,
                                        "expected vxlan, geneve or disabled"))

    # Agent defaults for what the file does not say.
    for spec in FIELDS:
        if getattr(config, spec.name) is None and spec.default is not None and spec.name not in config.origins:
            if any(i.field == spec.name for i in invalid):
                continue
            setattr(config, spec.name, spec.default)
            config.origins[spec.name] = Origin(spec.configmap, None, False, "default")
    return config, invalid
