"""Serving simulated clusters over HTTP on the loopback interface.

One HTTP server per endpoint, as in a real cluster: an agent and a Hubble metrics server per
node, one (leader) operator per cluster. Port 0 lets the OS choose; the chosen ports are listed
by `targets` and can be written as a Prometheus scrape configuration or `file_sd` file that
carries the `cluster` and `node` labels real setups relabel from the pod.
"""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .exposition import CONTENT_TYPE
from .model import AGENT, HUBBLE, OPERATOR

# Job names of the generated scrape configuration (the names Cilium's Helm chart and most
# kube-prometheus setups use).
JOBS = {AGENT: "cilium-agent", OPERATOR: "cilium-operator", HUBBLE: "hubble-metrics"}


@dataclass(frozen=True)
class Target:
    cluster: str
    component: str
    node: str  # None for the operator
    host: str
    port: int

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    @property
    def url(self):
        return f"http://{self.host}:{self.port}/metrics"

    def labels(self, cluster_label="cluster", node_label="node"):
        out = {cluster_label: self.cluster}
        if self.node:
            out[node_label] = self.node
        return out

    def as_dict(self):
        return {"cluster": self.cluster, "component": self.component, "node": self.node, "url": self.url}


class _Handler(BaseHTTPRequestHandler):
    server_version = "cilium-day2-simulator"
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        cluster, component, index = self.server.endpoint
        if self.path.split("?")[0] not in ("/metrics", "/metrics/"):
            self._send(404, "text/plain; charset=utf-8", "not found: metrics are served on /metrics\n")
            return
        try:
            if not cluster.is_up(component, index):
                # The process is gone: nothing answers. A kept-alive connection opened while it
                # was up is closed without a response; new connections are refused at accept.
                self.close_connection = True
                return
            body = cluster.render(component, index)
        except Exception as exc:  # a bug in the model must not kill the server thread
            self._send(500, "text/plain; charset=utf-8", f"simulator error: {exc}\n")
            return
        self._send(200, CONTENT_TYPE, body)

    def _send(self, code, ctype, text):
        data = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet: Prometheus scrapes every second in the tests
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def verify_request(self, request, client_address):
        # A simulated process that is down (a crash-looping or unscheduled pod) does not serve
        # its port: the connection is closed before any byte is read, so Prometheus' `up` is 0
        # and doctor reports the endpoint as unreachable.
        cluster, component, index = self.endpoint
        try:
            return cluster.is_up(component, index)
        except Exception:  # pragma: no cover - a model bug must not stop the accept loop
            return True

    def handle_error(self, request, client_address):
        # A scraper that gave up (its timeout) closes the connection while the answer is being
        # written: that is the scraper's business, not a simulator error worth a traceback.
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class Simulation:
    """Serves one or more simulated clusters. Use as a context manager, or start()/stop()."""

    def __init__(self, clusters, host="127.0.0.1", base_ports=None):
        """base_ports: {component: first port} (the n-th node gets first + n); 0 or missing
        lets the OS choose each port."""
        self.clusters = list(clusters)
        self.host = host
        self.base_ports = dict(base_ports or {})
        self._servers = []
        self._threads = []
        self.targets = []

    def _port(self, component, offset):
        base = self.base_ports.get(component) or 0
        return base + offset if base else 0

    def start(self):
        offsets = {AGENT: 0, HUBBLE: 0, OPERATOR: 0}
        try:
            for cluster in self.clusters:
                endpoints = [(OPERATOR, None)]
                for node in cluster.nodes:
                    endpoints.append((AGENT, node.index))
                    endpoints.append((HUBBLE, node.index))
                for component, index in endpoints:
                    server = _Server((self.host, self._port(component, offsets[component])), _Handler)
                    offsets[component] += 1
                    server.endpoint = (cluster, component, index)
                    self._servers.append(server)
                    node = cluster.nodes[index].name if index is not None else None
                    self.targets.append(Target(cluster.name, component, node, self.host, server.server_address[1]))
        except OSError:
            self.stop()
            raise
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self.targets

    def stop(self):
        # shutdown() waits for the serve loop's next poll (0.2 s): ask every server at once, not
        # one after the other (a few hundred servers in the end-to-end test).
        def shutdown(server):
            try:
                server.shutdown()
            except Exception:  # pragma: no cover
                pass

        stoppers = [threading.Thread(target=shutdown, args=(s,), daemon=True) for s in self._servers if self._threads]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout=5)
        for server in self._servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._servers, self._threads = [], []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- outputs --------------------------------------------------------------------------
    def targets_of(self, component, cluster=None):
        return [t for t in self.targets if t.component == component and (cluster is None or t.cluster == cluster)]

    def file_sd(self, cluster_label="cluster", node_label="node"):
        """Prometheus `file_sd_configs` content: one group per target, labelled like a real
        setup after relabelling (plus `component`, to split jobs with a relabel rule)."""
        groups = []
        for t in self.targets:
            labels = t.labels(cluster_label, node_label)
            labels["component"] = t.component
            groups.append({"targets": [t.address], "labels": labels})
        return groups

    def scrape_configs(self, interval="15s", cluster_label="cluster", node_label="node", timeout=None):
        """`scrape_configs` entries (one job per component) with static targets and labels."""
        configs = []
        for component in (AGENT, OPERATOR, HUBBLE):
            statics = [
                {"targets": [t.address], "labels": t.labels(cluster_label, node_label)}
                for t in self.targets
                if t.component == component
            ]
            if not statics:
                continue
            job = {"job_name": JOBS[component], "scrape_interval": interval, "static_configs": statics}
            if timeout:
                job["scrape_timeout"] = timeout
            configs.append(job)
        return configs

    def targets_json(self):
        return json.dumps([t.as_dict() for t in self.targets], indent=2)
