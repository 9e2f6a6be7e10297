"""Read one input file, detect its format and normalise it to cilium-config keys.

Accepted inputs:
  * Helm values (`values.yaml`, `helm get values cilium -o yaml`, with or without `--all`);
  * the `cilium-config` ConfigMap as YAML or JSON (`kubectl get cm cilium-config -o yaml`), also
    inside a `kind: List` or a multi-document stream such as `helm template` output;
  * text dumps: `cilium config view` (key, spaces, value), `cilium-dbg config --all`
    (`Key : value` with the agent's Go field names), `--flag=value` lines or agent start-up logs.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..errors import UserError
from ..userfiles import MAX_LINT_INPUT_BYTES, BoundedLoader, read_text, yaml_error
from .model import FIELD_BY_KEY, LEGACY_TUNNEL_KEY, InvalidValue, RawValue

HELM, CONFIGMAP, TEXT = "helm", "configmap", "text"
FORMAT_LABELS = {
    HELM: "Helm values",
    CONFIGMAP: "cilium-config ConfigMap",
    TEXT: "config dump",
}

SUPPRESS_RE = re.compile(r"#\s*cilium-day2\s*:\s*disable\s*=\s*([A-Za-z0-9_,\- \t]+)")


@dataclass(frozen=True)
class UnknownKey:
    key: str
    suggestion: str  # the known key it probably meant (as written in this format)
    value: Any
    line: Optional[int]


@dataclass
class Source:
    path: str
    format: str
    raw: Dict[str, RawValue]
    anchor_line: int = 1  # where to point when a finding is about an absent key
    suppressions: Dict[str, int] = field(default_factory=dict)  # rule token -> line of the comment
    unknown: List[UnknownKey] = field(default_factory=list)
    stem: str = ""
    # True for `cilium-dbg config` dumps: the agent's own view, which has no operator settings.
    agent_view: bool = False
    # Values rejected before they reach cilium-config (a chart switch that is not a boolean).
    invalid: List[InvalidValue] = field(default_factory=list)

    @property
    def format_label(self) -> str:
        return FORMAT_LABELS[self.format]


# ---- entry point ---------------------------------------------------------------------------

def load_source(path: str) -> Source:
    text = _read(path)
    stem = "stdin" if path == "-" else Path(path).stem
    if not text.strip():
        raise UserError(f"{path}: file is empty; pass Cilium Helm values, the cilium-config ConfigMap "
                        f"or `cilium config view` output")
    suppressions = _suppressions(text)
    if _looks_like_text_dump(text):
        source = _from_text(path, text)
    else:
        source = _from_yaml(path, text)
    source.suppressions = suppressions
    source.stem = stem
    return source


def _read(path: str) -> str:
    return read_text(path, path, MAX_LINT_INPUT_BYTES, dir_hint=f"the files inside it (e.g. {path}/*.yaml)")


def _suppressions(text: str) -> Dict[str, int]:
    found: Dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = SUPPRESS_RE.search(line)
        if match:
            for token in re.split(r"[,\s]+", match.group(1).strip()):
                if token:
                    found.setdefault(token, number)
    return found


# ---- YAML inputs ---------------------------------------------------------------------------

def _from_yaml(path: str, text: str) -> Source:
    try:
        # Both through the bounded loader: an alias bomb is refused before anything walks it.
        nodes = list(yaml.compose_all(text, Loader=BoundedLoader))
        docs = list(yaml.load_all(text, Loader=BoundedLoader))  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc, "fix the syntax, or pass `cilium config view` output as plain text") from None

    pairs = [(doc, node) for doc, node in zip(docs, nodes) if doc is not None]
    if not pairs:
        raise UserError(f"{path}: contains no YAML document; pass Cilium Helm values or the cilium-config ConfigMap")

    # A ConfigMap anywhere in the stream (single object, kind: List, helm template output).
    configmap = _find_configmap(pairs)
    if configmap is not None:
        data, lines, prefix = configmap
        return _from_configmap_data(path, data, lines, prefix)

    if len(pairs) == 1 and isinstance(pairs[0][0], str):
        # `key value` lines parse as one long YAML scalar.
        return _from_text(path, text)

    dicts = [(doc, node) for doc, node in pairs if isinstance(doc, dict)]
    if len(dicts) != 1:
        raise _unknown_format(path, "expected one YAML mapping")
    doc, node = dicts[0]
    if "kind" in doc and "apiVersion" in doc:
        raise _unknown_format(path, f"a Kubernetes {doc.get('kind')} object, not the cilium-config ConfigMap")
    lines = _line_index(node)
    # `helm get values` without -o yaml starts with a "USER-SUPPLIED VALUES:" header line.
    doc = {k: v for k, v in doc.items() if not (isinstance(k, str) and k.endswith("VALUES") and v is None)}

    kind = _classify_mapping(doc)
    if kind == HELM:
        return _from_helm(path, _helm_booleans(doc, node), lines)
    if kind == CONFIGMAP:
        return _from_configmap_data(path, doc, lines, ())
    if kind == TEXT:  # a mapping of the agent's Go field names (cilium-dbg config -o yaml)
        raw, unknown = _from_pairs([(str(k), v, lines.get((k,))) for k, v in doc.items()])
        return Source(path, TEXT, raw, 1, unknown=unknown, agent_view=True)
    raise _unknown_format(path, "no known Cilium keys found")


def _unknown_format(path: str, why: str) -> UserError:
    return UserError(f"{path}: unknown format ({why}); pass Cilium Helm values, the cilium-config ConfigMap "
                     f"(kubectl get cm cilium-config -o yaml) or `cilium config view` output")


def _find_configmap(pairs) -> Optional[Tuple[dict, Dict[tuple, int], tuple]]:
    candidates = []
    for doc, node in pairs:
        if not isinstance(doc, dict):
            continue
        lines = _line_index(node)
        if doc.get("kind") == "ConfigMap":
            candidates.append((doc, lines, ()))
        elif doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            for index, item in enumerate(doc["items"]):
                if isinstance(item, dict) and item.get("kind") == "ConfigMap":
                    candidates.append((item, lines, ("items", index)))
    if not candidates:
        return None
    named = [c for c in candidates if isinstance(c[0].get("metadata"), dict)
             and c[0]["metadata"].get("name") == "cilium-config"]
    chosen = named[0] if named else None
    if chosen is None:
        known = [c for c in candidates if isinstance(c[0].get("data"), dict) and _configmap_score(c[0]["data"]) > 0]
        if len(known) != 1:
            return None
        chosen = known[0]
    doc, lines, prefix = chosen
    return doc.get("data"), lines, prefix + ("data",)


def _classify_mapping(doc: dict) -> Optional[str]:
    keys = [k for k in doc if isinstance(k, str)]
    if not keys:
        return None
    helm = sum(1 for k in keys if k in KNOWN_HELM_TOP)
    cm = _configmap_score(doc)
    daemon = sum(1 for k in keys if k in DAEMON_KEYS)
    kebab = sum(1 for k in keys if "-" in k)
    if cm and kebab * 2 >= len(keys):
        return CONFIGMAP
    best = max(helm, cm, daemon)
    if best == 0:
        return None
    if best == helm:
        return HELM
    if best == cm:
        return CONFIGMAP
    return TEXT


def _configmap_score(data: dict) -> int:
    return sum(1 for k in data if isinstance(k, str) and (k in KNOWN_CONFIGMAP_KEYS))


# Helm reads values files as YAML 1.1 (sigs.k8s.io/yaml over go-yaml v2): an unquoted `yes`, `on`
# or `y` is a boolean there, and the chart renders it `"true"` into cilium-config.
_YAML11_BOOLS = {**{w: True for w in ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")},
                 **{w: False for w in ("n", "N", "no", "No", "NO", "off", "Off", "OFF")}}


def _helm_booleans(value: Any, node, active: Optional[set] = None) -> Any:
    """`value` with every unquoted YAML 1.1 boolean word turned into the boolean Helm reads."""
    active = set() if active is None else active
    if id(node) in active:
        return value
    if isinstance(node, yaml.ScalarNode):
        if node.style is None and isinstance(value, str) and value in _YAML11_BOOLS:
            return _YAML11_BOOLS[value]
        return value
    active.add(id(node))
    try:
        if isinstance(node, yaml.MappingNode) and isinstance(value, dict):
            children = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
            return {k: _helm_booleans(v, children[k], active) if isinstance(k, str) and k in children else v
                    for k, v in value.items()}
        if isinstance(node, yaml.SequenceNode) and isinstance(value, list) and len(node.value) == len(value):
            return [_helm_booleans(v, n, active) for v, n in zip(value, node.value)]
        return value
    finally:
        active.discard(id(node))


def _line_index(node, prefix: tuple = (), out: Optional[Dict[tuple, int]] = None,
                active: Optional[set] = None) -> Dict[tuple, int]:
    """Map each key path (strings for mapping keys, ints for list items) to its 1-based line."""
    if out is None:
        out, active = {}, set()
    if id(node) in active:  # a YAML alias that refers to one of its own parents
        return out
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = prefix + (key_node.value,)
                out.setdefault(path, key_node.start_mark.line + 1)
                _line_index(value_node, path, out, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = prefix + (index,)
            out.setdefault(path, item.start_mark.line + 1)
            _line_index(item, path, out, active)
    active.discard(id(node))
    return out


def _from_configmap_data(path: str, data: Any, lines: Dict[tuple, int], prefix: tuple) -> Source:
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: the cilium-config ConfigMap has no data; export it with "
                        f"`kubectl -n kube-system get cm cilium-config -o yaml`")
    raw: Dict[str, RawValue] = {}
    unknown: List[UnknownKey] = []
    for key, value in data.items():
        key = str(key)
        line = lines.get(prefix + (key,))
        raw[key] = RawValue(value, key, line)
        suggestion = _suggest_configmap(key)
        if suggestion:
            unknown.append(UnknownKey(key, suggestion, value, line))
    anchor = lines.get(prefix, 1) if prefix else 1
    return Source(path, CONFIGMAP, raw, anchor, unknown=unknown)


# ---- text dumps ----------------------------------------------------------------------------

_FLAG_RE = re.compile(r"^\s*--(?P<key>[A-Za-z0-9][\w.\-]*)(?:[= ](?P<value>.*))?$")
_LOG_FLAG_RE = re.compile(r"--(?P<key>[a-z0-9][a-z0-9\-]*)='(?P<value>[^']*)'")
# `cilium-dbg config` pads keys then prints ": value"; a colon glued to the value (":9962") is a value.
_DAEMON_RE = re.compile(r"^\s*(?P<key>[A-Za-z][\w.\-/]*)\s*:(?:\s+(?P<value>.*))?$")
_SPACED_RE = re.compile(r"^\s*(?P<key>[A-Za-z][\w.\-/]*)(?:\s+(?P<value>.*))?$")
_YAML_KEY_RE = re.compile(r"^\s*[\"']?[\w.\-/]+[\"']?:(\s|$)")


def _content_lines(text: str) -> List[Tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]


def _looks_like_text_dump(text: str) -> bool:
    lines = _content_lines(text)
    if not lines:
        return False
    yamlish = sum(1 for _, line in lines if _YAML_KEY_RE.match(line) or line.lstrip().startswith(("- ", "---")))
    dumpish = sum(1 for _, line in lines
                  if _FLAG_RE.match(line) or _LOG_FLAG_RE.search(line) or _DAEMON_RE.match(line)
                  or (_SPACED_RE.match(line) and not _YAML_KEY_RE.match(line)))
    return dumpish >= 0.8 * len(lines) and yamlish <= 0.2 * len(lines)


def _from_text(path: str, text: str) -> Source:
    pairs: List[Tuple[str, Any, int]] = []
    for number, line in _content_lines(text):
        if "msg=" in line and _LOG_FLAG_RE.search(line):  # agent start-up log: msg="  --key='value'"
            for match in _LOG_FLAG_RE.finditer(line):
                pairs.append((match.group("key"), match.group("value"), number))
            continue
        match = _FLAG_RE.match(line) or _DAEMON_RE.match(line) or _SPACED_RE.match(line)
        if not match:
            continue
        value = (match.group("value") or "").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        pairs.append((match.group("key"), value, number))
    if not pairs:
        raise _unknown_format(path, "no key/value lines found")
    raw, unknown = _from_pairs(pairs)
    if not any(key in KNOWN_CONFIGMAP_KEYS for key in raw):
        raise _unknown_format(path, "no known Cilium keys found")
    first = pairs[0][2]
    agent_view = sum(1 for key, _, _ in pairs if _is_camel(key)) * 2 > len(pairs)
    return Source(path, TEXT, raw, first, unknown=unknown, agent_view=agent_view)


def _from_pairs(pairs) -> Tuple[Dict[str, RawValue], List[UnknownKey]]:
    """Key/value pairs from a dump: kebab-case flag names or the agent's Go field names."""
    raw: Dict[str, RawValue] = {}
    unknown: List[UnknownKey] = []
    for key, value, line in pairs:
        cm_key = DAEMON_KEYS.get(key) or (_camel_to_kebab(key) if _is_camel(key) else key)
        raw[cm_key] = RawValue(value, key, line)
        if not _is_camel(key):
            suggestion = _suggest_configmap(key)
            if suggestion:
                unknown.append(UnknownKey(key, suggestion, value, line))
    return raw, unknown


def _is_camel(key: str) -> bool:
    return "-" not in key and any(c.isupper() for c in key)


def _camel_to_kebab(key: str) -> str:
    step = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", key)
    step = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", step)
    return step.lower()


def _suggest_configmap(key: str) -> str:
    if key in KNOWN_CONFIGMAP_KEYS:
        return ""
    close = difflib.get_close_matches(key, MODELED_CONFIGMAP_KEYS, n=1, cutoff=0.85)
    return close[0] if close else ""


# ---- Helm values ---------------------------------------------------------------------------

_MISSING = object()


# Chart switches that only steer the templates, and the setting each one decides.
CHART_SWITCH_FIELDS = {"prometheus.enabled": "prometheus_serve_addr", "encryption.enabled": "enable_ipsec",
                       "eni.enabled": "ipam_mode", "gke.enabled": "routing_mode"}
CHART_SWITCH_REASON = ("the chart wants true or false: its schema (Cilium 1.16 and later) refuses anything else, "
                       "and older charts' templates read any non-empty string, \"false\" included, as true")


class _Helm:
    def __init__(self, values: dict, lines: Dict[tuple, int]):
        self.values = values
        self.lines = lines
        self.raw: Dict[str, RawValue] = {}
        self.invalid: List[InvalidValue] = []

    def get(self, dotted: str) -> Any:
        current: Any = self.values
        for part in dotted.split("."):
            if not isinstance(current, dict) or part not in current:
                return _MISSING
            current = current[part]
        if current is None or current == "":
            return _MISSING  # null and "" mean "use the chart default"
        return current

    def line(self, dotted: str) -> Optional[int]:
        return self.lines.get(tuple(dotted.split(".")))

    def truthy(self, dotted: str) -> bool:
        """A chart switch as the chart's templates read it (Go's `if`). A value that is not a
        YAML boolean (`"yes"`, `"false"` quoted, `1`) is also recorded as invalid."""
        value = self.get(dotted)
        if value is _MISSING:
            return False
        if isinstance(value, bool):
            return value
        self.invalid.append(InvalidValue(CHART_SWITCH_FIELDS[dotted], dotted, value, self.line(dotted),
                                         CHART_SWITCH_REASON))
        return bool(value.strip()) if isinstance(value, str) else bool(value)

    def put(self, cm_key: str, dotted: str, default: Any = _MISSING, note: str = "chart default") -> None:
        value = self.get(dotted)
        if value is not _MISSING:
            self.raw[cm_key] = RawValue(value, dotted, self.line(dotted))
        elif default is not _MISSING:
            self.raw[cm_key] = RawValue(default, dotted, None, False, note)

    def implied(self, cm_key: str, value: Any, dotted: str) -> None:
        self.raw[cm_key] = RawValue(value, dotted, self.line(dotted), False, f"implied by {dotted}")


def _from_helm(path: str, values: dict, lines: Dict[tuple, int]) -> Source:
    """Emulate the chart's cilium-configmap template for the keys the rules read."""
    helm = _Helm(values, lines)
    eni = helm.truthy("eni.enabled")
    gke = helm.truthy("gke.enabled")

    helm.put("cluster-name", "cluster.name", "default")
    helm.put("cluster-id", "cluster.id", 0)
    helm.put("max-connected-clusters", "clustermesh.maxConnectedClusters", 255)

    if helm.get("routingMode") is not _MISSING:
        helm.put("routing-mode", "routingMode")
    elif helm.get("tunnel") is not _MISSING:  # charts before 1.15
        helm.put(LEGACY_TUNNEL_KEY, "tunnel")
    elif eni or gke:
        helm.implied("routing-mode", "native", "eni.enabled" if eni else "gke.enabled")
    else:
        helm.put("routing-mode", "routingMode", "tunnel")
    helm.put("tunnel-protocol", "tunnelProtocol", "vxlan")
    helm.put("ipv4-native-routing-cidr", "ipv4NativeRoutingCIDR")
    # Charts from 1.18 default IPv4 masquerading off in ENI mode.
    helm.put("enable-ipv4-masquerade", "enableIPv4Masquerade", not eni)
    helm.put("enable-ip-masq-agent", "ipMasqAgent.enabled", False)
    helm.put("enable-bpf-masquerade", "bpf.masquerade", False)

    if eni:
        helm.implied("ipam", "eni", "eni.enabled")
    else:
        helm.put("ipam", "ipam.mode", "cluster-pool")
    helm.put("cni-chaining-mode", "cni.chainingMode", "none")
    helm.put("ipam-pre-allocate", "ipam.nodeSpec.ipamPreAllocate")
    helm.put("ipam-min-allocate", "ipam.nodeSpec.ipamMinAllocate")
    helm.put("ipam-max-allocate", "ipam.nodeSpec.ipamMaxAllocate")
    helm.put("limit-ipam-api-qps", "ipam.operator.externalAPILimitQPS")
    helm.put("limit-ipam-api-burst", "ipam.operator.externalAPILimitBurstSize")
    helm.put("aws-enable-prefix-delegation", "eni.awsEnablePrefixDelegation", False)

    helm.put("labels", "labels")

    # The chart renders 0.0025 unless upgradeCompatibility predates 1.8; an explicit 0 also
    # falls back to that default because the template only emits non-zero ratios.
    ratio_default = 0.0025 if not _compat_before(helm.get("upgradeCompatibility"), (1, 8)) else 0.0
    ratio = helm.get("bpf.mapDynamicSizeRatio")
    if ratio is not _MISSING and _is_zero(ratio):
        helm.raw["bpf-map-dynamic-size-ratio"] = RawValue(ratio_default, "bpf.mapDynamicSizeRatio",
                                                          helm.line("bpf.mapDynamicSizeRatio"), False,
                                                          "0 falls back to the chart default")
    else:
        helm.put("bpf-map-dynamic-size-ratio", "bpf.mapDynamicSizeRatio", ratio_default)
    helm.put("bpf-ct-global-tcp-max", "bpf.ctTcpMax")
    helm.put("bpf-ct-global-any-max", "bpf.ctAnyMax")
    helm.put("bpf-nat-global-max", "bpf.natMax")
    helm.put("bpf-neigh-global-max", "bpf.neighMax")

    helm.put("kube-proxy-replacement", "kubeProxyReplacement", "false")
    helm.put("enable-node-port", "nodePort.enabled", False)
    helm.put("bpf-lb-algorithm", "loadBalancer.algorithm")
    helm.put("bpf-lb-acceleration", "loadBalancer.acceleration", "disabled")

    helm.put("enable-hubble", "hubble.enabled", True)
    helm.put("hubble-event-queue-size", "hubble.eventQueueSize")
    helm.put("hubble-event-buffer-capacity", "hubble.eventBufferCapacity")
    helm.put("hubble-metrics", "hubble.metrics.enabled")

    if helm.get("prometheus.enabled") is not _MISSING:
        on = helm.truthy("prometheus.enabled")
        port = helm.get("prometheus.port")
        address = f":{9962 if port is _MISSING else port}" if on else ""
        helm.raw["prometheus-serve-addr"] = RawValue(address, "prometheus.enabled", helm.line("prometheus.enabled"))
    else:
        helm.raw["prometheus-serve-addr"] = RawValue("", "prometheus.enabled", None, False, "chart default")
    helm.put("metrics", "prometheus.metrics")
    helm.put("enable-metrics", "operator.prometheus.enabled", True)

    mtu = helm.get("MTU")
    if mtu is _MISSING or _is_zero(mtu):
        helm.raw["mtu"] = RawValue(0, "MTU", helm.line("MTU"), False, "auto-detect")
    else:
        helm.put("mtu", "MTU")

    if helm.truthy("encryption.enabled"):
        kind = helm.get("encryption.type")
        kind = "ipsec" if kind is _MISSING else str(kind).lower()
        if kind in ("ipsec", "wireguard"):
            helm.raw[f"enable-{kind}"] = RawValue(True, "encryption.enabled", helm.line("encryption.enabled"))

    # Escape hatches: extraConfig is rendered verbatim into cilium-config, extraArgs become flags.
    extra = values.get("extraConfig")
    if isinstance(extra, dict):
        for key, value in extra.items():
            helm.raw[str(key)] = RawValue(value, f"extraConfig.{key}", lines.get(("extraConfig", key)))
    for section in (("extraArgs",), ("operator", "extraArgs")):
        args = values
        for part in section:
            args = args.get(part) if isinstance(args, dict) else None
        if isinstance(args, list):
            for index, arg in enumerate(args):
                match = _FLAG_RE.match(str(arg))
                if match:
                    value = match.group("value")
                    helm.raw[match.group("key")] = RawValue(
                        "true" if value is None else value.strip().strip("'\""),
                        f"{'.'.join(section)}[{index}]", lines.get(section + (index,)))

    return Source(path, HELM, helm.raw, 1, unknown=_helm_typos(values, lines), invalid=helm.invalid)


def _compat_before(value: Any, version: Tuple[int, int]) -> bool:
    if value is _MISSING:
        return False
    match = re.match(r"^\s*v?(\d+)\.(\d+)", str(value))
    return bool(match) and (int(match.group(1)), int(match.group(2))) < version


def _is_zero(value: Any) -> bool:
    try:
        return float(str(value)) == 0.0
    except ValueError:
        return False


def _helm_typos(values: dict, lines: Dict[tuple, int]) -> List[UnknownKey]:
    found: List[UnknownKey] = []
    for key, value in values.items():
        if not isinstance(key, str) or key in KNOWN_HELM_TOP:
            continue
        close = difflib.get_close_matches(key, sorted(KNOWN_HELM_TOP), n=1, cutoff=0.85)
        if close:
            found.append(UnknownKey(key, close[0], value, lines.get((key,))))
    for section, children in HELM_SECTIONS_READ.items():
        block = values.get(section)
        if not isinstance(block, dict):
            continue
        for key, value in block.items():
            if not isinstance(key, str) or key in children or key in HELM_SECTIONS_OTHER.get(section, ()):
                continue
            close = difflib.get_close_matches(key, sorted(children), n=1, cutoff=0.8)
            if close:
                found.append(UnknownKey(f"{section}.{key}", f"{section}.{close[0]}", value,
                                        lines.get((section, key))))
    return found


# ---- vocabularies --------------------------------------------------------------------------

MODELED_CONFIGMAP_KEYS = sorted(set(FIELD_BY_KEY) | {LEGACY_TUNNEL_KEY})

# Real cilium-config keys the rules do not read: known, so never reported as misspellings.
KNOWN_CONFIGMAP_KEYS = set(MODELED_CONFIGMAP_KEYS) | {
    "agent-health-port", "agent-not-ready-taint-key", "annotate-k8s-node", "api-rate-limit", "arping-refresh-period",
    "auto-create-cilium-node-resource", "auto-direct-node-routes", "azure-use-primary-address", "bpf-auth-map-max",
    "bpf-distributed-lru", "bpf-events-drop-enabled", "bpf-events-policy-verdict-enabled", "bpf-events-trace-enabled",
    "bpf-lb-acceleration", "bpf-lb-dsr-dispatch", "bpf-lb-external-clusterip", "bpf-lb-maglev-hash-seed",
    "bpf-lb-maglev-table-size", "bpf-lb-map-max", "bpf-lb-mode", "bpf-lb-sock", "bpf-lb-sock-hostns-only",
    "bpf-node-map-max", "bpf-policy-map-max", "bpf-policy-map-pressure-metrics-threshold", "bpf-root",
    "bpf-sock-rev-map-max", "cgroup-root", "cilium-endpoint-gc-interval", "clean-cilium-bpf-state",
    "clean-cilium-state", "cluster-pool-ipv4-cidr", "cluster-pool-ipv4-mask-size", "cluster-pool-ipv6-cidr",
    "cluster-pool-ipv6-mask-size", "cni-exclusive", "cni-log-file", "controller-group-metrics", "custom-cni-conf",
    "datapath-mode", "debug", "debug-verbose", "default-lb-service-ipam", "devices", "direct-routing-device",
    "direct-routing-skip-unreachable", "disable-endpoint-crd", "dnsproxy-enable-transparent-mode",
    "ec2-api-endpoint", "egress-gateway-reconciliation-trigger-interval", "egress-masquerade-interfaces",
    "enable-auto-protect-node-port-range", "enable-bandwidth-manager", "enable-bbr", "enable-bgp-control-plane",
    "enable-bpf-clock-probe", "enable-bpf-tproxy", "enable-cilium-endpoint-slice", "enable-endpoint-health-checking",
    "enable-endpoint-routes", "enable-envoy-config", "enable-external-ips", "enable-health-check-loadbalancer-ip",
    "enable-health-check-nodeport", "enable-health-checking", "enable-host-firewall", "enable-host-legacy-routing",
    "enable-host-port", "enable-hubble-open-metrics", "enable-identity-mark", "enable-ipv4", "enable-ipv4-big-tcp",
    "enable-ipv4-egress-gateway", "enable-ipv4-fragment-tracking", "enable-ipv6", "enable-ipv6-big-tcp",
    "enable-ipv6-masquerade", "enable-k8s-networkpolicy", "enable-k8s-terminating-endpoint", "enable-l2-neigh-discovery",
    "enable-l7-proxy", "enable-local-node-route", "enable-local-redirect-policy", "enable-masquerade-to-route-source",
    "enable-node-selector-labels", "enable-policy", "enable-sctp", "enable-service-topology", "enable-svc-source-range-check",
    "enable-tcx", "enable-tunnel-big-tcp", "enable-vtep", "enable-well-known-identities", "enable-xt-socket-fallback",
    "encrypt-node", "eni-tags", "external-envoy-proxy", "hubble-disable-tls", "hubble-export-file-max-backups",
    "hubble-export-file-max-size-mb", "hubble-listen-address", "hubble-metrics-server", "hubble-socket-path",
    "hubble-tls-cert-file", "hubble-tls-client-ca-files", "hubble-tls-key-file", "identity-allocation-mode",
    "identity-change-grace-period", "identity-gc-interval", "identity-heartbeat-timeout", "install-iptables-rules",
    "install-no-conntrack-iptables-rules", "ipam-cilium-node-update-rate", "ipsec-key-file", "ipv6-native-routing-cidr",
    "k8s-client-burst", "k8s-client-qps", "k8s-require-ipv4-pod-cidr", "k8s-require-ipv6-pod-cidr",
    "kube-proxy-replacement-healthz-bind-address", "kvstore", "kvstore-opt", "local-router-ipv4", "log-opt",
    "mesh-auth-enabled", "monitor-aggregation", "monitor-aggregation-flags", "monitor-aggregation-interval",
    "node-port-bind-protection", "node-port-range", "nodes-gc-interval", "operator-api-serve-addr",
    "operator-prometheus-serve-addr", "policy-audit-mode", "policy-cidr-match-mode", "preallocate-bpf-maps", "procfs",
    "proxy-prometheus-port", "remove-cilium-node-taints", "set-cilium-is-up-condition", "set-cilium-node-taints",
    "skip-cnp-status-startup-clean", "synchronize-k8s-nodes", "tofqdns-dns-reject-response-code",
    "tofqdns-enable-dns-compression", "tofqdns-endpoint-max-ip-per-hostname", "tofqdns-idle-connection-grace-period",
    "tofqdns-max-deferred-connection-deletes", "tofqdns-proxy-response-max-delay", "tunnel-port",
    "tunnel-source-port-range", "unmanaged-pod-watcher-interval", "vtep-cidr", "vtep-endpoint", "vtep-mac",
    "vtep-mask", "write-cni-conf-when-ready", "eni-gc-interval", "eni-gc-tags", "aws-release-excess-ips",
    "subnet-ids-filter", "subnet-tags-filter", "instance-tags-filter", "azure-interface-name",
    "max-connected-clusters", "clustermesh-enable-endpoint-sync", "clustermesh-enable-mcs-api",
    "enable-ipsec-key-watcher", "enable-ipsec-encrypted-overlay", "ipsec-key-rotation-duration",
    "hubble-redact-enabled", "hubble-export-file-path", "hubble-drop-events", "nodeport-addresses",
    "enable-hubble-recorder-api", "hubble-recorder-storage-path", "enable-runtime-device-detection",
    "enable-ipv6-ndp", "enable-k8s-endpoint-slice", "kvstore-periodic-sync", "conntrack-gc-interval",
    "conntrack-gc-max-interval", "sidecar-istio-proxy-image", "single-cluster-route", "label-prefix-file",
    "node-labels", "enable-l2-announcements", "enable-l2-pod-announcements", "enable-node-ipam",
    "bpf-lb-algorithm-annotation", "bpf-lb-mode-annotation", "identity-management-mode",
    "enable-wireguard-userspace-fallback", "wireguard-persistent-keepalive", "bpf-lb-dsr-l4-xlate",
    "routing-mode", "tunnel-protocol", "ipv6-range", "ipv4-range",
}

# cilium-dbg config prints the agent's Go field names; these are the ones the rules read.
DAEMON_KEYS: Dict[str, str] = {
    "ClusterName": "cluster-name",
    "ClusterID": "cluster-id",
    "MaxConnectedClusters": "max-connected-clusters",
    "RoutingMode": "routing-mode",
    "TunnelProtocol": "tunnel-protocol",
    "Tunnel": "tunnel",
    "IPv4NativeRoutingCIDR": "ipv4-native-routing-cidr",
    "EnableIPv4Masquerade": "enable-ipv4-masquerade",
    "EnableIPMasqAgent": "enable-ip-masq-agent",
    "EnableBPFMasquerade": "enable-bpf-masquerade",
    "IPAM": "ipam",
    "IPAMMode": "ipam",
    "ChainingMode": "cni-chaining-mode",
    "CNIChainingMode": "cni-chaining-mode",
    "AWSEnablePrefixDelegation": "aws-enable-prefix-delegation",
    "IPAMAPIQPSLimit": "limit-ipam-api-qps",
    "IPAMAPIBurst": "limit-ipam-api-burst",
    "Labels": "labels",
    "BPFMapsDynamicSizeRatio": "bpf-map-dynamic-size-ratio",
    "CTMapEntriesGlobalTCP": "bpf-ct-global-tcp-max",
    "CTMapEntriesGlobalAny": "bpf-ct-global-any-max",
    "NATMapEntriesGlobal": "bpf-nat-global-max",
    "NeighMapEntriesGlobal": "bpf-neigh-global-max",
    "EnableUnreachableRoutes": "enable-unreachable-routes",
    "KubeProxyReplacement": "kube-proxy-replacement",
    "EnableNodePort": "enable-node-port",
    "NodePortAlg": "bpf-lb-algorithm",
    "LoadBalancerAlgorithm": "bpf-lb-algorithm",
    "NodePortAcceleration": "bpf-lb-acceleration",
    "LoadBalancerAcceleration": "bpf-lb-acceleration",
    "EnableHubble": "enable-hubble",
    "HubbleEventQueueSize": "hubble-event-queue-size",
    "HubbleEventBufferCapacity": "hubble-event-buffer-capacity",
    "HubbleMetrics": "hubble-metrics",
    "PrometheusServeAddr": "prometheus-serve-addr",
    "MetricsConfig": "metrics",
    "MTU": "mtu",
    "EnableIPSec": "enable-ipsec",
    "EnableWireguard": "enable-wireguard",
}

KNOWN_CONFIGMAP_KEYS |= set(DAEMON_KEYS.values())

# Top-level keys of the Cilium chart (1.14-1.18), for format detection and typo hints.
KNOWN_HELM_TOP = {
    "upgradeCompatibility", "debug", "rbac", "imagePullSecrets", "kubeConfigPath", "k8sServiceHost",
    "k8sServicePort", "k8sClientRateLimit", "cluster", "serviceAccounts", "terminationGracePeriodSeconds", "agent",
    "name", "rollOutCiliumPods", "image", "affinity", "nodeSelector", "tolerations", "priorityClassName", "dnsPolicy",
    "extraContainers", "extraInitContainers", "extraArgs", "extraEnv", "extraHostPathMounts", "extraVolumes",
    "extraVolumeMounts", "extraConfig", "annotations", "podSecurityContext", "podAnnotations", "podLabels",
    "resources", "initResources", "securityContext", "updateStrategy", "aksbyocni", "autoDirectNodeRoutes",
    "directRoutingSkipUnreachable", "annotateK8sNode", "azure", "alibabacloud", "bandwidthManager",
    "nat46x64Gateway", "highScaleIPcache", "l2announcements", "l2podAnnouncements", "bgp", "bgpControlPlane",
    "pmtuDiscovery", "bpf", "bpfClockProbe", "cleanBpfState", "cleanState", "waitForKubeProxy", "cni",
    "conntrackGCInterval", "conntrackGCMaxInterval", "crdWaitTimeout", "customCalls", "daemon",
    "enableRuntimeDeviceDetection", "forceDeviceDetection", "enableCiliumEndpointSlice", "ciliumEndpointSlice",
    "envoyConfig", "ingressController", "gatewayAPI", "enableXTSocketFallback", "encryption",
    "endpointHealthChecking", "endpointRoutes", "k8sNetworkPolicy", "eni", "externalIPs", "gke", "healthChecking",
    "healthPort", "hostFirewall", "hostPort", "socketLB", "certgen", "hubble", "identityAllocationMode",
    "identityChangeGracePeriod", "installNoConntrackIptablesRules", "ipam", "nodeIPAM", "LBIPAM", "apiRateLimit",
    "ipMasqAgent", "ipv4", "ipv6", "k8s", "keepDeprecatedLabels", "keepDeprecatedProbes", "startupProbe",
    "livenessProbe", "readinessProbe", "kubeProxyReplacement", "kubeProxyReplacementHealthzBindAddr",
    "l2NeighDiscovery", "l7Proxy", "localRedirectPolicy", "localRedirectPolicies", "labels", "logOptions",
    "logSystemLoad", "maglev", "enableIPv4Masquerade", "enableIPv6Masquerade", "enableMasqueradeRouteSource",
    "enableIPv4BIGTCP", "enableIPv6BIGTCP", "enableTunnelBIGTCP", "egressGateway", "vtep", "ipv4NativeRoutingCIDR",
    "ipv6NativeRoutingCIDR", "monitor", "loadBalancer", "nodePort", "policyEnforcementMode", "policyCIDRMatchMode",
    "pprof", "prometheus", "dashboards", "envoy", "nodeSelectorLabels", "resourceQuotas", "sleepAfterInit",
    "svcSourceRangeCheck", "synchronizeK8sNodes", "tls", "tunnelProtocol", "routingMode", "tunnelPort",
    "tunnelSourcePortRange", "serviceNoBackendResponse", "MTU", "disableEndpointCRD", "wellKnownIdentities", "etcd",
    "operator", "nodeinit", "preflight", "enableCriticalPriorityClass", "clustermesh", "externalWorkloads",
    "authentication", "tunnel", "devices", "installIptablesRules", "commonLabels", "nodeLabels", "sctp",
    "dnsProxy", "dnsPolicy", "enableIPv4", "enableIPv6", "hostServices", "fragmentTracking", "policyAuditMode",
    "global", "config", "endpointStatus", "enableK8sEndpointSlice", "iptablesRandomFully", "iptablesLockTimeout",
    "egressMasqueradeInterfaces", "enableIdentityMark", "disableIptablesFeederRules", "defaultLBServiceIPAM",
    "identityManagementMode", "endpointLockdownOnMapOverflow", "k8sClusterNetworkPolicy", "standaloneDnsProxy",
    "cgroup", "hubbleRelay", "enableNoServiceEndpointsRoutable", "clusterHealthPort", "healthCheckICMPFailureThreshold",
    "policyDenyResponse", "underlayProtocol", "agentNotReadyTaintKey", "dnsPolicyUnloadOnShutdown", "ztunnel",
}

# Nested Helm keys the loader reads, for typo hints inside those sections.
HELM_SECTIONS_READ: Dict[str, set] = {
    "hubble": {"enabled", "eventQueueSize", "eventBufferCapacity", "metrics"},
    "bpf": {"mapDynamicSizeRatio", "ctTcpMax", "ctAnyMax", "natMax", "neighMax", "masquerade"},
    "eni": {"enabled", "awsEnablePrefixDelegation"},
    "ipam": {"mode", "nodeSpec", "operator"},
    "loadBalancer": {"algorithm", "acceleration"},
    "prometheus": {"enabled", "metrics", "port"},
    "cluster": {"name", "id"},
    "clustermesh": {"maxConnectedClusters"},
    "encryption": {"enabled", "type"},
    "nodePort": {"enabled"},
}
# Other real children of those sections, so that they are never reported.
HELM_SECTIONS_OTHER: Dict[str, set] = {
    "hubble": {"annotations", "socketPath", "redact", "listenAddress", "preferIpv6", "skipUnknownCGroupIDs",
               "peerService", "tls", "relay", "ui", "export", "dropEventEmitter", "lostEventSendInterval",
               "networkPolicyCorrelation", "podAnnotations"},
    "bpf": {"autoMount", "root", "preallocateMaps", "authMapMax", "events", "lbMapMax", "nodeMapMax", "policyMapMax",
            "monitorAggregation", "monitorInterval", "monitorFlags", "lbExternalClusterIP", "hostLegacyRouting",
            "tproxy", "vlanBypass", "disableExternalIPMitigation", "enableTCX", "datapathMode", "distributedLRU",
            "ctAccounting", "policyMapPressureMetricsThreshold", "policyStatsMapMax", "lbSourceRangeAllTypes",
            "lbAlgorithmAnnotation", "lbModeAnnotation", "waitForMount", "monitorTraceIPOption"},
    "eni": {"updateEC2AdapterLimitViaAPI", "awsReleaseExcessIPs", "ec2APIEndpoint", "eniTags", "gcInterval", "gcTags",
            "iamRole", "subnetIDsFilter", "subnetTagsFilter", "instanceTagsFilter", "nodeSpec"},
    "ipam": {"ciliumNodeUpdateRate", "multiPoolPreAllocation", "installUplinkRoutesForDelegatedIPAM"},
    "loadBalancer": {"standalone", "mode", "dsrDispatch", "serviceTopology", "l7"},
    "prometheus": {"serviceMonitor", "controllerGroupMetrics", "tls"},
    "clustermesh": {"useAPIServer", "enableEndpointSliceSynchronization", "enableMCSAPISupport", "annotations",
                    "config", "apiserver", "policyDefaultLocalCluster", "cacheTTL"},
    "encryption": {"nodeEncryption", "strictMode", "ipsec", "wireguard"},
    "nodePort": {"range", "addresses", "bindProtection", "autoProtectPortRange", "enableHealthCheck",
                 "enableHealthCheckLoadBalancerIP", "directRoutingDevice"},
}
