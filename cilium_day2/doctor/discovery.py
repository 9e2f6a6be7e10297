"""`doctor --discover`: the agent, Hubble and operator metrics endpoints of a cluster, found through
the Kubernetes API, so that a gate running in the cluster (the Helm post-upgrade hook in
`assets/kubernetes/`) needs no list of URLs.

It lists the pods of the Cilium chart by the chart's own labels (`k8s-app=cilium` on the agent
DaemonSet's pods, `io.cilium/app=operator` on the operator's), pages through large clusters with
`limit`/`continue`, and takes each pod's metrics ports by the names the chart gives them: the
agent container's `prometheus` (9962 by default) and `hubble-metrics` (9965), the operator's
`prometheus` (9963). Only Running pods with an IP are kept. The endpoints are the pods' IPs
(the agent and the operator run on the host network, the ports are host ports), so the gate
scrapes them directly rather than through the API server's proxy.

In a pod it authenticates with its service account (`KUBERNETES_SERVICE_HOST`, the mounted token
and CA); `--api-server`, `--api-token-file` and `--api-ca-file` point it elsewhere. The token is sent
only to the API server and never printed.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple
from urllib.parse import quote

from ..errors import UserError
from ..urls import safe_url

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
AGENT_SELECTOR = "k8s-app=cilium"
OPERATOR_SELECTOR = "io.cilium/app=operator"
AGENT_CONTAINER = "cilium-agent"
AGENT_PORT_NAME = "prometheus"
HUBBLE_PORT_NAME = "hubble-metrics"
OPERATOR_PORT_NAME = "prometheus"
PAGE_SIZE = 500
MAX_PAGES = 200  # 100,000 pods
MAX_LIST_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    component: str  # agent, hubble, operator
    name: str  # node name (agent, hubble) or "operator"
    url: str
    pod: str


@dataclass
class ApiConfig:
    server: str
    token: Optional[str] = None
    ca_file: Optional[str] = None


def _read_small(path, what):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read(64 * 1024).strip()
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file; check the path") from None
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot read ({exc.strerror or exc}); check permissions") from None


def api_config(api_server=None, token_file=None, ca_file=None, environ=None) -> ApiConfig:
    """Where the API server is and how to authenticate: the flags, else the pod's service account."""
    env = os.environ if environ is None else environ
    if api_server is None:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise UserError("--discover: not running in a pod (no KUBERNETES_SERVICE_HOST); give --api-server URL "
                            "and --api-token-file, or use --kubernetes with a kubeconfig")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        api_server = f"https://{host}:{port}"
        if token_file is None and os.path.exists(f"{SERVICE_ACCOUNT}/token"):
            token_file = f"{SERVICE_ACCOUNT}/token"
        if ca_file is None and os.path.exists(f"{SERVICE_ACCOUNT}/ca.crt"):
            ca_file = f"{SERVICE_ACCOUNT}/ca.crt"
    if not api_server.startswith(("http://", "https://")):
        raise UserError(f"--api-server {safe_url(api_server)!r}: not an http(s) URL; write e.g. https://10.96.0.1:443")
    token = _read_small(token_file, "--api-token-file") if token_file else None
    if ca_file and not os.path.isfile(ca_file):
        raise UserError(f"--api-ca-file {ca_file}: no such file; check the path")
    return ApiConfig(api_server.rstrip("/"), token, ca_file)


def _get_json(config: ApiConfig, path: str, timeout: float):
    import requests

    headers = {"Accept": "application/json"}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    verify = config.ca_file if config.ca_file else True
    shown = f"{safe_url(config.server)}{path.split('?', 1)[0]}"
    try:
        response = requests.get(config.server + path, headers=headers, timeout=timeout, verify=verify, stream=True)
    except Exception as exc:  # requests' whole family
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--discover: cannot reach the API server at {safe_url(config.server)} ({first[:200]}); "
                        f"check --api-server and the network policy of the gate's pod") from None
    try:
        if response.status_code in (401, 403):
            raise UserError(f"--discover: the API server refused to list pods ({response.status_code} at {shown}); "
                            f"give the gate's service account `list pods` in the Cilium namespace "
                            f"(assets/kubernetes/doctor-rbac.yaml)")
        if response.status_code != 200:
            raise UserError(f"--discover: HTTP {response.status_code} from {shown}; check --api-server and --namespace")
        body = response.raw.read(MAX_LIST_BYTES + 1, decode_content=True)
        if len(body) > MAX_LIST_BYTES:
            raise UserError(f"--discover: the pod list from {shown} is larger than {MAX_LIST_BYTES >> 20} MiB")
        try:
            return json.loads(body)
        except ValueError:
            raise UserError(f"--discover: {shown} did not answer with JSON; is --api-server a Kubernetes API server?") from None
    finally:
        response.close()


def list_pods(config: ApiConfig, namespace: str, selector: str, timeout: float = 10.0) -> Iterator[dict]:
    """Every pod matching `selector` in `namespace`, page by page."""
    token = ""
    for _ in range(MAX_PAGES):
        path = (f"/api/v1/namespaces/{quote(namespace, safe='')}/pods?labelSelector={quote(selector, safe='')}"
                f"&limit={PAGE_SIZE}" + (f"&continue={quote(token, safe='')}" if token else ""))
        data = _get_json(config, path, timeout)
        if not isinstance(data, dict) or data.get("kind", "PodList") != "PodList" or not isinstance(data.get("items", []), list):
            raise UserError(f"--discover: the API server's answer is not a PodList; is --api-server a Kubernetes API server?")
        for pod in data.get("items") or []:
            if isinstance(pod, dict):
                yield pod
        token = ((data.get("metadata") or {}).get("continue") or "")
        if not token:
            return
    raise UserError(f"--discover: more than {MAX_PAGES * PAGE_SIZE} pods match {selector}; narrow --namespace")


def _host(ip: str) -> str:
    try:
        return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:
        return ip


def _ports(pod: dict, container_name: Optional[str]) -> dict:
    """{port name: port} of the pod's containers (only `container_name` when it exists)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    chosen = [c for c in containers if c.get("name") == container_name] or containers
    out = {}
    for c in chosen:
        for p in c.get("ports") or []:
            if p.get("name") and isinstance(p.get("containerPort"), int):
                out.setdefault(p["name"], p["containerPort"])
    return out


def _running(pod: dict) -> Tuple[bool, str]:
    status = pod.get("status") or {}
    ip = status.get("podIP") or ""
    return status.get("phase") == "Running" and bool(ip), ip


def discover(config: ApiConfig, namespace: str = "kube-system", timeout: float = 10.0) -> Tuple[List[Target], List[str]]:
    """(targets, notes): the metrics endpoints of the Cilium pods, and what was left out and why."""
    targets, notes = [], []
    agents = list(list_pods(config, namespace, AGENT_SELECTOR, timeout))
    operators = list(list_pods(config, namespace, OPERATOR_SELECTOR, timeout))
    not_running, no_port = [], []
    hubble_off = 0
    for pod in agents:
        name = (pod.get("metadata") or {}).get("name", "?")
        ok, ip = _running(pod)
        if not ok:
            not_running.append(name)
            continue
        node = (pod.get("spec") or {}).get("nodeName") or name
        ports = _ports(pod, AGENT_CONTAINER)
        if AGENT_PORT_NAME in ports:
            targets.append(Target("agent", node, f"http://{_host(ip)}:{ports[AGENT_PORT_NAME]}/metrics", name))
        else:
            no_port.append(name)
        if HUBBLE_PORT_NAME in ports:
            targets.append(Target("hubble", node, f"http://{_host(ip)}:{ports[HUBBLE_PORT_NAME]}/metrics", name))
        else:
            hubble_off += 1
    for pod in operators:
        name = (pod.get("metadata") or {}).get("name", "?")
        ok, ip = _running(pod)
        if not ok:
            not_running.append(name)
            continue
        ports = _ports(pod, None)
        if OPERATOR_PORT_NAME in ports:
            targets.append(Target("operator", "operator", f"http://{_host(ip)}:{ports[OPERATOR_PORT_NAME]}/metrics", name))
        else:
            no_port.append(name)
    if not agents:
        raise UserError(f"--discover: no Cilium agent pods ({AGENT_SELECTOR}) in namespace {namespace}; check --namespace")
    if not any(t.component == "agent" for t in targets):
        if no_port:
            raise UserError(f"--discover: the agent pods expose no `{AGENT_PORT_NAME}` port: the agents' metrics are "
                            f"off; set prometheus.enabled=true in the Cilium chart")
        raise UserError(f"--discover: no agent pod in {namespace} is Running with an IP ({len(not_running)} not running)")
    if not_running:
        notes.append(f"{len(not_running)} Cilium pods not Running, left out: {', '.join(not_running[:5])}"
                     + (" ..." if len(not_running) > 5 else ""))
    if no_port:
        notes.append(f"{len(no_port)} pods without a `{AGENT_PORT_NAME}` port (metrics off), left out: {', '.join(no_port[:5])}")
    if hubble_off and hubble_off == len(agents) - len(not_running):
        notes.append("no agent exposes `hubble-metrics`: Hubble metrics are off (hubble.metrics.enabled)")
    if not operators:
        notes.append(f"no operator pods ({OPERATOR_SELECTOR}) in {namespace}: operator signals are not evaluated")
    return targets, notes
