"""Shared fixtures: a real HTTP server on 127.0.0.1 that serves expositions and injected faults."""

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def fixture_text(name):
    return (FIXTURES / name).read_text()


class Route:
    """What one path answers. Tests mutate `body`/`status`/... between check runs."""

    def __init__(self, body="", status=200, content_type="text/plain; version=0.0.4", delay=0.0, truncate=False):
        self.body = body
        self.status = status
        self.content_type = content_type
        self.delay = delay
        self.truncate = truncate
        self.requests = []  # request headers seen, for auth assertions


class MetricsServer:
    def __init__(self):
        self.routes = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404, "no such route")
                    return
                route.requests.append(dict(self.headers))
                if route.delay:
                    time.sleep(route.delay)
                data = route.body.encode()
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.truncate:
                    # Promise more than we send, then hang up: a body cut off mid-line.
                    self.send_header("Content-Length", str(len(data) * 2))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients that hang up early (timeouts, truncation tests) are expected here

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, path, body="", **kwargs):
        self.routes[path] = Route(body, **kwargs)
        return self.url(path)

    def serve_fixture(self, path, fixture_name, **kwargs):
        return self.serve(path, fixture_text(fixture_name), **kwargs)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def metrics_server():
    server = MetricsServer()
    yield server
    server.close()


@pytest.fixture
def refused_url():
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


@pytest.fixture
def shared_fixtures():
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"third-party captures not present at {SHARED_FIXTURES} (only in the project workspace)")
    return SHARED_FIXTURES


@pytest.fixture(autouse=True)
def _quiet_generic_tag_check(monkeypatch):
    # Fail loudly, as ddev does, if a submission carries a reserved tag (host, version, ...).
    monkeypatch.delenv("DDEV_SKIP_GENERIC_TAGS_CHECK", raising=False)
    yield


def pytest_report_header(config):
    return f"shared fixtures: {'present' if SHARED_FIXTURES.is_dir() else 'absent'} ({SHARED_FIXTURES}); pid {os.getpid()}"
