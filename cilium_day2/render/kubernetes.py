"""Kubernetes objects for the operator world: `PrometheusRule` objects cut to a size the API
server and `kubectl apply` accept, an `AlertmanagerConfig` of the pack's routing, and the
ConfigMap that Grafana's dashboard sidecar loads.

Sizes. Client-side `kubectl apply` copies the whole object into the annotation
`kubectl.kubernetes.io/last-applied-configuration`, and the API server refuses an object whose
annotations exceed 262,144 bytes (256 KiB); the operator refuses rendered rules over 512 KiB.
So no object here may serialise to more than `MAX_OBJECT_BYTES`, measured both as the YAML
document we write and as the compact JSON `kubectl` stores.

This module only converts what the target modules built (rule groups, an Alertmanager
configuration, a dashboard); it imports none of them.
"""

from __future__ import annotations

import json
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from ..errors import UserError
from .text import env, to_json

# The annotation limit (262,144 bytes) less room for the annotation's key, kubectl's own
# metadata and the escaping of the JSON inside the annotation's value.
KIB = 1024
ANNOTATION_LIMIT = 256 * KIB
# Measured as compact JSON; the YAML we write is about a tenth larger, still under the limit
# (render checks every written document against ANNOTATION_LIMIT too).
MAX_OBJECT_BYTES = 220_000
PACK_LABELS = {"app.kubernetes.io/name": "cilium-day2", "app.kubernetes.io/part-of": "cilium-day2"}
GRAFANA_SIDECAR_LABEL = ("grafana_dashboard", "1")
_DNS_LABEL_RE = re.compile(r"[^a-z0-9-]+")


def k8s_name_part(text: str) -> str:
    """A cluster name as part of an object name (RFC 1123: lowercase letters, digits, `-`)."""
    return _DNS_LABEL_RE.sub("-", text.lower()).strip("-") or "x"


def object_bytes(obj: dict) -> int:
    """What an object costs in kubectl's last-applied annotation: its compact JSON."""
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def check_documents(path: str, text: str) -> None:
    """Every document of a multi-document file within the annotation limit, as written."""
    for i, doc in enumerate(text.split("\n---\n")):
        size = len(doc.encode())
        if size > ANNOTATION_LIMIT:
            raise UserError(f"{path}: document {i} is {size} bytes, above the {ANNOTATION_LIMIT} bytes `kubectl apply` "
                            f"can store; lower settings.max_rules_per_group")


# --- PrometheusRule ----------------------------------------------------------------------------------


def prometheusrule_object(name: str, groups: List[dict], labels: Dict[str, str], namespace: str) -> dict:
    """The object as the API server sees it (for measuring; the file is written by the template)."""
    meta = {"name": name, **({"namespace": namespace} if namespace else {}), "labels": labels}
    spec_groups = []
    for g in groups:
        rules = [{k: v for k, v in r.items() if v not in (None, {}, "")} for r in g["rules"]]
        spec_groups.append({"name": g["name"], **({"interval": g["interval"]} if g.get("interval") else {}),
                            "rules": rules})
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": meta,
            "spec": {"groups": spec_groups}}


def split_by_size(base: str, groups: List[dict], labels: Dict[str, str], namespace: str,
                  limit: Optional[int] = None) -> List[Tuple[str, List[dict]]]:
    """Consecutive groups into as few objects as fit under `limit` (MAX_OBJECT_BYTES): one
    object `base` when all fit, else `base-1`, `base-2`, ... A group is never split (its rules
    run in order)."""
    limit = MAX_OBJECT_BYTES if limit is None else limit
    if object_bytes(prometheusrule_object(base, groups, labels, namespace)) <= limit:
        return [(base, groups)]
    parts: List[List[dict]] = []
    current: List[dict] = []
    for group in groups:
        candidate = current + [group]
        if current and object_bytes(prometheusrule_object(f"{base}-{len(parts) + 1}", candidate, labels,
                                                          namespace)) > limit:
            parts.append(current)
            candidate = [group]
        if object_bytes(prometheusrule_object(f"{base}-{len(parts) + 1}", candidate, labels, namespace)) > limit:
            raise UserError(f"rule group {group['name']} alone exceeds {limit} bytes as a PrometheusRule; "
                            f"lower settings.max_rules_per_group")
        current = candidate
    parts.append(current)
    return [(f"{base}-{i}", part) for i, part in enumerate(parts, start=1)]


def prometheusrule_objects(shards: Sequence[Optional[str]], groups_of: Callable[[Optional[str]], List[dict]],
                           labels: Dict[str, str], namespace: str) -> List[Tuple[str, List[dict]]]:
    """(name, groups) per object: `cilium-day2` for an unsharded render, `cilium-day2-<cluster>`
    per cluster with `shard_by_cluster`; either split into numbered parts when too large."""
    objects, seen = [], {}
    for shard in shards:
        base = "cilium-day2" if shard is None else f"cilium-day2-{k8s_name_part(shard)}"
        if base in seen:
            raise UserError(f"settings.shard_by_cluster: `{shard}` and `{seen[base]}` give the same PrometheusRule "
                            f"name {base}; list each cluster once")
        seen[base] = shard
        objects.extend(split_by_size(base, groups_of(shard), labels, namespace))
    return objects


def render_prometheusrules(path: str, objects: List[Tuple[str, List[dict]]], labels: Dict[str, str],
                           namespace: str) -> str:
    text = env.get_template("prometheusrule.yaml.j2").render(objects=objects, labels=labels, namespace=namespace)
    check_documents(path, text)
    return text


# --- AlertmanagerConfig ------------------------------------------------------------------------------

_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def crd_matcher(text: str) -> dict:
    """`signal=~"a|b"` -> the AlertmanagerConfig matcher `{name, value, matchType}`."""
    m = _MATCHER_RE.match(text)
    if not m:
        raise ValueError(f"not a matcher: {text}")
    name, op, value = m.groups()
    return {"name": name, "value": value, "matchType": op}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _crd_route(route: dict) -> dict:
    out = {}
    for key, value in route.items():
        if key == "matchers":
            out["matchers"] = [crd_matcher(m) for m in value]
        elif key == "routes":
            out["routes"] = [_crd_route(r) for r in value]
        else:
            out[_camel(key)] = value
    return out


def alertmanagerconfig_object(config: dict, namespace: str, labels: Dict[str, str]) -> dict:
    """The pack's route, receivers and inhibit rules as a `monitoring.coreos.com/v1alpha1`
    AlertmanagerConfig. The operator prefixes its top route with `namespace="<namespace>"` (and
    adds the same to both sides of each inhibit rule): the alerts must carry that label, which
    `settings.alert_labels: {namespace: <namespace>}` gives them."""
    pack_route = config["route"]["routes"][0]
    used = {pack_route["receiver"]} | {r["receiver"] for r in pack_route.get("routes", [])}
    receivers = []
    for r in config["receivers"]:
        if r["name"] not in used:
            continue
        crd = {"name": r["name"]}
        if r.get("webhook_configs"):
            crd["webhookConfigs"] = [{"url": w["url"], "sendResolved": w.get("send_resolved", True)}
                                     for w in r["webhook_configs"]]
        receivers.append(crd)
    inhibit = [{"sourceMatch": [crd_matcher(m) for m in rule["source_matchers"]],
                "targetMatch": [crd_matcher(m) for m in rule["target_matchers"]],
                "equal": list(rule["equal"])} for rule in config["inhibit_rules"]]
    meta = {"name": "cilium-day2", **({"namespace": namespace} if namespace else {}), "labels": labels}
    return {"apiVersion": "monitoring.coreos.com/v1alpha1", "kind": "AlertmanagerConfig", "metadata": meta,
            "spec": {"route": _crd_route(pack_route), "receivers": receivers, "inhibitRules": inhibit}}


# --- Grafana sidecar ConfigMap ---------------------------------------------------------------------


def dashboard_configmap(name: str, file_name: str, dashboard: dict, namespace: str) -> dict:
    """A ConfigMap that kube-prometheus-stack's Grafana sidecar picks up: it loads every
    ConfigMap labelled `grafana_dashboard: "1"` (the chart's default `sidecar.dashboards.label`
    and `labelValue`) in the namespaces it watches."""
    key, value = GRAFANA_SIDECAR_LABEL
    meta = {"name": name, **({"namespace": namespace} if namespace else {}),
            "labels": {**PACK_LABELS, key: value}}
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {file_name: to_json(dashboard)}}
    size = object_bytes(obj)
    if size > MAX_OBJECT_BYTES:
        raise UserError(f"the Grafana dashboard ConfigMap is {size} bytes, above the {MAX_OBJECT_BYTES} that "
                        f"`kubectl apply` can store; disable signals or use server-side apply")
    return obj


def dump_objects(objects: List[dict], header: str) -> str:
    return header + "".join("---\n" + yaml.safe_dump(o, sort_keys=False, width=1000, allow_unicode=True)
                            for o in objects)
