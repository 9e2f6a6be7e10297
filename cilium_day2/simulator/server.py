"""Serving simulated clusters over HTTP on the loopback interface.

One HTTP server per endpoint, as in a real cluster: an agent and a Hubble metrics server per
node, one (leader) operator per cluster. Port 0 lets the OS choose; the chosen ports are listed
by `targets` and can be written as a Prometheus scrape configuration or `file_sd` file that
carries the `cluster` and `node` labels real setups relabel from the pod.
"""

import asyncio
import json
import socket
import threading
from dataclasses import dataclass
from email.utils import formatdate

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


SERVER = "cilium-day2-simulator"
TEXT = "text/plain; charset=utf-8"
MAX_REQUEST_HEAD = 16 * 1024  # bytes of request line and headers; more is not a scraper
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class _Endpoint(asyncio.Protocol):
    """One connection to one simulated endpoint: HTTP/1.1 GET with keep-alive, nothing more.

    Every endpoint of every cluster is served by one event loop on one thread: a few hundred
    endpoints scraped every second would otherwise be a few hundred threads queueing for the
    interpreter lock, which costs more than rendering the expositions.
    """

    def __init__(self, simulation, endpoint):
        self.simulation = simulation
        self.endpoint = endpoint  # (cluster, component, index)
        self.transport = None
        self.buffer = b""

    def _up(self):
        cluster, component, index = self.endpoint
        try:
            return cluster.is_up(component, index)
        except Exception:  # pragma: no cover - a model bug must not stop serving
            return True

    def connection_made(self, transport):
        self.transport = transport
        if not self._up():
            # A simulated process that is down (a crash-looping or unscheduled pod) does not
            # serve its port: the connection is closed before any byte is read, so Prometheus'
            # `up` is 0 and doctor reports the endpoint as unreachable.
            _hang_up(transport)
            return
        self.simulation._transports.add(transport)

    def connection_lost(self, exc):
        self.simulation._transports.discard(self.transport)

    def data_received(self, data):
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                if len(self.buffer) > MAX_REQUEST_HEAD:
                    self._send(400, TEXT, "request headers too large\n", close=True)
                return
            self.buffer = rest
            if not self._answer(head.decode("latin-1")):
                return

    def _answer(self, head):
        """Answers one request; False when the connection is closed."""
        lines = head.split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._send(400, TEXT, "bad request line\n", close=True)
            return False
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        connection = headers.get("connection", "")
        close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if method not in ("GET", "HEAD") or "content-length" in headers or "transfer-encoding" in headers:
            self._send(405, TEXT, "only GET is served\n", close=True)
            return False
        if target.split("?")[0] not in ("/metrics", "/metrics/"):
            self._send(404, TEXT, "not found: metrics are served on /metrics\n", close=close, head_only=method == "HEAD")
            return not close
        if not self._up():
            # The process is gone: a kept-alive connection opened while it was up is closed
            # without a response.
            _hang_up(self.transport)
            return False
        cluster, component, index = self.endpoint
        try:
            body = cluster.render(component, index)
        except Exception as exc:  # a bug in the model must not stop serving
            self._send(500, TEXT, f"simulator error: {exc}\n", close=True)
            return False
        self._send(200, CONTENT_TYPE, body, close=close, head_only=method == "HEAD")
        return not close

    def _send(self, code, ctype, text, close=False, head_only=False):
        data = text.encode("utf-8")
        head = (
            f"HTTP/1.1 {code} {REASONS[code]}\r\nServer: {SERVER}\r\nDate: {formatdate(usegmt=True)}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        ).encode("latin-1")
        self.transport.write(head if head_only else head + data)
        if close:
            self.transport.close()


def _hang_up(transport):
    """Close without answering, as a process that went away: the peer reads end-of-stream (FIN
    first, not a reset), as from a listener that closes what it accepts."""
    try:
        transport.write_eof()
    except OSError:  # pragma: no cover - the peer is already gone
        pass
    transport.close()


class Simulation:
    """Serves one or more simulated clusters. Use as a context manager, or start()/stop()."""

    def __init__(self, clusters, host="127.0.0.1", base_ports=None):
        """base_ports: {component: first port} (the n-th node gets first + n); 0 or missing
        lets the OS choose each port."""
        self.clusters = list(clusters)
        self.host = host
        self.base_ports = dict(base_ports or {})
        self.targets = []
        self._loop = None
        self._thread = None
        self._servers = []
        self._transports = set()

    def _port(self, component, offset):
        base = self.base_ports.get(component) or 0
        return base + offset if base else 0

    def start(self):
        # Bind every port first, in this thread, so that a port in use fails here (OSError).
        sockets = []
        bound = []  # (socket, (cluster, component, index))
        offsets = {AGENT: 0, HUBBLE: 0, OPERATOR: 0}
        try:
            for cluster in self.clusters:
                endpoints = [(OPERATOR, None)]
                for node in cluster.nodes:
                    endpoints.append((AGENT, node.index))
                    endpoints.append((HUBBLE, node.index))
                for component, index in endpoints:
                    sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
                    sockets.append(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((self.host, self._port(component, offsets[component])))
                    sock.listen(128)
                    sock.setblocking(False)
                    offsets[component] += 1
                    bound.append((sock, (cluster, component, index)))
                    node = cluster.nodes[index].name if index is not None else None
                    self.targets.append(Target(cluster.name, component, node, self.host, sock.getsockname()[1]))
        except OSError:
            for sock in sockets:
                sock.close()
            self.targets = []
            raise
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cilium-day2-simulator", daemon=True)
        self._thread.start()

        async def serve():
            for sock, endpoint in bound:
                self._servers.append(
                    await self._loop.create_server(lambda e=endpoint: _Endpoint(self, e), sock=sock)
                )

        try:
            asyncio.run_coroutine_threadsafe(serve(), self._loop).result(timeout=60)
        except BaseException:
            self.stop()
            raise
        return self.targets

    def stop(self):
        if self._loop is None:
            return
        loop = self._loop

        async def close():
            for server in self._servers:
                server.close()
            for transport in list(self._transports):
                transport.abort()
            for server in self._servers:
                await server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
        except Exception:  # pragma: no cover - stopping must not raise over the caller's error
            pass
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            loop.close()
        self._loop, self._thread, self._servers = None, None, []
        self._transports.clear()

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
            static_targets = [
                {"targets": [t.address], "labels": t.labels(cluster_label, node_label)}
                for t in self.targets
                if t.component == component
            ]
            if not static_targets:
                continue
            job = {"job_name": JOBS[component], "scrape_interval": interval, "static_configs": static_targets}
            if timeout:
                job["scrape_timeout"] = timeout
            configs.append(job)
        return configs

    def targets_json(self):
        return json.dumps([t.as_dict() for t in self.targets], indent=2)

