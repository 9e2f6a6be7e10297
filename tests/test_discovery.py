"""`doctor --discover`: Cilium's endpoints found through the Kubernetes API, tested against a fake
API server on 127.0.0.1 that serves pod lists shaped like the Cilium chart's pods (labels, named
container ports, host network), filters them by label selector and pages them like the real one."""

import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from cilium_day2 import cli
from cilium_day2.doctor import discovery
from cilium_day2.errors import UserError
from cilium_day2.simulator.model import Clock
from cilium_day2.simulator.scenarios import load_scenarios
from cilium_day2.simulator.server import Simulation

from .local_server import BackgroundHTTPServer

TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.fake-service-account-token"


def agent_pod(i, node, ip, prometheus=9962, hubble=9965, phase="Running"):
    ports = [{"name": "peer-service", "containerPort": 4244, "hostPort": 4244, "protocol": "TCP"}]
    if prometheus:
        ports.append({"name": "prometheus", "containerPort": prometheus, "hostPort": prometheus, "protocol": "TCP"})
    if hubble:
        ports.append({"name": "hubble-metrics", "containerPort": hubble, "hostPort": hubble, "protocol": "TCP"})
    return {
        "metadata": {"name": f"cilium-{i:05x}", "namespace": "kube-system",
                     "labels": {"k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent",
                                "app.kubernetes.io/part-of": "cilium", "controller-revision-hash": "6d9f7c8b5"}},
        "spec": {"nodeName": node, "hostNetwork": True, "serviceAccountName": "cilium",
                 "initContainers": [{"name": "config", "ports": []}],
                 "containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.18.4", "ports": ports}]},
        "status": {"phase": phase, "hostIP": ip, "podIP": ip if phase == "Running" else "",
                   "podIPs": [{"ip": ip}] if phase == "Running" else []},
    }


def operator_pod(name, ip, port=9963):
    return {
        "metadata": {"name": name, "namespace": "kube-system",
                     "labels": {"io.cilium/app": "operator", "name": "cilium-operator",
                                "app.kubernetes.io/name": "cilium-operator", "app.kubernetes.io/part-of": "cilium"}},
        "spec": {"nodeName": "ip-10-0-0-5.ec2.internal", "hostNetwork": True,
                 "containers": [{"name": "cilium-operator", "ports": [
                     {"name": "prometheus", "containerPort": port, "hostPort": port, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": ip},
    }


class FakeApiServer:
    """GET /api/v1/namespaces/NS/pods?labelSelector=k=v&limit=N&continue=T, with a bearer token."""

    def __init__(self, pods, token=TOKEN, status=None):
        self.pods = pods
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                fake.requests.append((self.path, self.headers.get("Authorization")))
                if status:
                    return self._send(status, {"kind": "Status", "code": status, "reason": "Forbidden"})
                if self.headers.get("Authorization") != f"Bearer {token}":
                    return self._send(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
                url = urlsplit(self.path)
                parts = url.path.split("/")
                if len(parts) != 6 or parts[1:4] != ["api", "v1", "namespaces"] or parts[5] != "pods":
                    return self._send(404, {"kind": "Status", "code": 404})
                query = parse_qs(url.query)
                key, _, value = query.get("labelSelector", [""])[0].partition("=")
                matching = [p for p in fake.pods if p["metadata"]["namespace"] == parts[4]
                            and p["metadata"]["labels"].get(key) == value]
                start = int(query.get("continue", ["0"])[0])
                limit = int(query.get("limit", ["500"])[0])
                page = matching[start:start + limit]
                more = start + limit < len(matching)
                return self._send(200, {"kind": "PodList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": "81234", "continue": str(start + limit) if more else ""},
                                        "items": page})

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = BackgroundHTTPServer(Handler)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        return self.server.__exit__(*exc)


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


def config(url, token_file):
    return discovery.api_config(url, token_file)


def test_a_300_node_cluster_is_found_page_by_page(token_file, monkeypatch):
    monkeypatch.setattr(discovery, "PAGE_SIZE", 100)
    pods = [agent_pod(i, f"ip-10-1-{i // 250}-{i % 250}.ec2.internal", f"10.1.{i // 250}.{i % 250}") for i in range(300)]
    pods += [agent_pod(999, "ip-10-9-9-9.ec2.internal", "10.9.9.9", phase="Pending")]
    pods += [operator_pod("cilium-operator-7c9d8f6b4-abcde", "10.0.0.5"), operator_pod("cilium-operator-7c9d8f6b4-fghij", "10.0.0.6")]
    with FakeApiServer(pods) as api:
        targets, notes = discovery.discover(config(api.url, token_file), "kube-system")
    kinds = [t.component for t in targets]
    assert kinds.count("agent") == 300 and kinds.count("hubble") == 300 and kinds.count("operator") == 2
    first = next(t for t in targets if t.component == "agent")
    assert first.name == "ip-10-1-0-0.ec2.internal" and first.url == "http://10.1.0.0:9962/metrics"
    assert next(t for t in targets if t.component == "hubble").url == "http://10.1.0.0:9965/metrics"
    assert {t.url for t in targets if t.component == "operator"} == {"http://10.0.0.5:9963/metrics", "http://10.0.0.6:9963/metrics"}
    # The agent list took 4 pages of 100 (301 pods), the operator list one; every request carried the token.
    agent_requests = [p for p, _ in api.requests if "k8s-app%3Dcilium" in p]
    assert len(agent_requests) == 4 and "continue=" in agent_requests[-1]
    assert all(auth == f"Bearer {TOKEN}" for _, auth in api.requests)
    assert any("not Running" in n and "cilium-003e7" in n for n in notes)


def test_ports_come_from_the_pod_spec_and_ipv6_is_bracketed(token_file):
    pods = [agent_pod(1, "node-a", "fd00:10:1::7", prometheus=19962, hubble=None), operator_pod("op", "10.0.0.5", 29963)]
    with FakeApiServer(pods) as api:
        targets, notes = discovery.discover(config(api.url, token_file), "kube-system")
    assert [(t.component, t.url) for t in targets] == [
        ("agent", "http://[fd00:10:1::7]:19962/metrics"), ("operator", "http://10.0.0.5:29963/metrics")]
    assert any("Hubble metrics are off" in n for n in notes)


def test_metrics_off_is_named_with_the_chart_value(token_file):
    with FakeApiServer([agent_pod(1, "node-a", "10.0.0.7", prometheus=None)]) as api:
        with pytest.raises(UserError, match="prometheus.enabled=true"):
            discovery.discover(config(api.url, token_file), "kube-system")


def test_wrong_namespace_says_so(token_file):
    with FakeApiServer([agent_pod(1, "node-a", "10.0.0.7")]) as api:
        with pytest.raises(UserError, match="no Cilium agent pods .* in namespace cilium"):
            discovery.discover(config(api.url, token_file), "cilium")


def test_forbidden_points_at_the_rbac_and_never_shows_the_token(token_file):
    with FakeApiServer([], status=403) as api:
        with pytest.raises(UserError) as info:
            discovery.discover(config(api.url, token_file), "kube-system")
    message = str(info.value)
    assert "403" in message and "doctor-rbac.yaml" in message and TOKEN not in message


def test_unreachable_api_server_is_one_line(token_file, refused_url):
    server = refused_url.rsplit("/", 1)[0]
    with pytest.raises(UserError, match="cannot reach the API server"):
        discovery.discover(config(server, token_file), "kube-system")


def test_in_cluster_configuration_from_the_environment():
    cfg = discovery.api_config(environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert cfg.server == "https://10.96.0.1:443"
    cfg = discovery.api_config(environ={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"})
    assert cfg.server == "https://[fd00::1]:6443"
    with pytest.raises(UserError, match="not running in a pod"):
        discovery.api_config(environ={})


def test_doctor_discover_gates_a_simulated_cluster(capsys, token_file):
    """The whole path: pod list -> endpoints -> scrapes -> verdict, with preflight and connectivity."""
    scenario = load_scenarios()["healthy"]
    with Simulation([scenario.build(nodes=3, clock=Clock(speed=1.0, start=0))]) as sim:
        pods = []
        for i, node in enumerate(sorted({t.node for t in sim.targets if t.node})):
            agent = next(t for t in sim.targets if t.node == node and t.component == "agent")
            hubble = next(t for t in sim.targets if t.node == node and t.component == "hubble")
            pods.append(agent_pod(i, node, "127.0.0.1", prometheus=agent.port, hubble=hubble.port))
        operator = next(t for t in sim.targets if t.component == "operator")
        pods.append(operator_pod("cilium-operator-5f7d9c6d8-x2k4q", "127.0.0.1", operator.port))
        with FakeApiServer(pods) as api:
            code = cli.main(["doctor", "--discover", "--api-server", api.url, "--api-token-file", token_file,
                             "--samples", "2", "--interval", "1s", "--format", "json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == 0, doc.get("reason")
    assert sorted(e["component"] for e in doc["endpoints"]) == ["agent"] * 3 + ["hubble"] * 3 + ["operator"]
    assert {e["name"] for e in doc["endpoints"] if e["component"] == "agent"} == {
        t.node for t in sim.targets if t.component == "agent"}
    assert TOKEN not in out + err


def test_api_flags_need_discover(capsys, token_file):
    code = cli.main(["doctor", "--api-server", "http://127.0.0.1:1", "--demo"])
    _, err = capsys.readouterr()
    assert code == 2 and "add --discover" in err
