"""`cilium-day2 doctor`: scrape live Cilium endpoints and check every catalog signal now.

    cilium-day2 doctor --demo map-pressure
    cilium-day2 doctor --agent http://10.0.1.7:9962/metrics --operator http://10.0.1.9:9963/metrics
    cilium-day2 doctor --kubernetes --context prod-eu1 --format json

Doctor takes `--samples` snapshots `--interval` apart from every endpoint, evaluates each enabled
signal of the catalog (with `--values` overrides) through the same query model the Prometheus
rules and Datadog monitors are rendered from, and prints one line per signal. Its exit status is
a gate for a Helm post-upgrade hook or a CI job:

    0  every enabled signal evaluated and OK, or not applicable with its reason (IPAM and
       cloud-API signals under cluster-pool IPAM, see doctor/applicability.py)
    1  at least one WARNING
    2  at least one CRITICAL
    3  could not evaluate, and nothing is WARNING or CRITICAL: a signal has no data (its
       families were not exposed, or a component was not given or gave no Cilium metrics).
       No data is never OK. A signal whose samples span less than its window is judged on
       what they saw and said to be so.

Every endpoint is read through the shared bounded reader (cilium_day2.exposition):
`--timeout` bounds each whole response, bodies and lines have size limits (docs/limits.md), and a
repeated series keeps its first value, exactly as in the Agent check.
"""

from __future__ import annotations

import json
import math
import sys
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, List, Optional

from urllib.parse import urlsplit

from .. import metrics
from . import gate
from . import transport as transports
from .applicability import FEATURE_FAMILIES, NOT_APPLICABLE, mark_not_applicable
from .units import format_value
from ..exposition import body
from ..errors import UserError
from ..catalog.evaluate import CRITICAL, NO_DATA, OK, PARTIAL, WARNING, evaluate_catalog, overall
from ..catalog.query import (
    Distinct, Increase, Outlier, Quantile, Rate, Sample, Snapshot, iter_nodes, iter_selectors,
)
from ..exposition.reader import ExpositionReader, FamilyPlan, looks_like_exposition
from ..urls import safe_url

EXIT = {OK: 0, WARNING: 1, CRITICAL: 2}
EXIT_UNEVALUATED = 3
COMPONENTS = ("agent", "operator", "hubble")
DEFAULT_DEMO = "map-pressure"
# Demo timing: 600x turns the 7 samples one second apart into an hour of simulated time, the
# longest window in the catalog (restart counts, identity growth).
DEMO_SPEED = 600.0
DEMO_SAMPLES = 7
DEMO_INTERVAL = 1.0
# What a family name of each component starts with: an endpoint showing none of its component's
# families is not a Cilium endpoint of that kind.
COMPONENT_PREFIXES = {"agent": ("cilium_",), "operator": ("cilium_operator_",), "hubble": ("hubble_",)}
COMPONENT_PORTS = {"agent": 9962, "operator": 9963, "hubble": 9965}
# Requests in flight at once, and how long past --timeout a request may take to report its own
# timeout before it is abandoned.
MAX_PARALLEL = 16
DEADLINE_GRACE = 0.25


@dataclass
class Endpoint:
    component: str
    name: str  # node name for agents and Hubble, "operator" for the operator
    url: str
    fetch: Optional[Callable[[float], str]] = None  # Kubernetes proxy; None: plain HTTP GET

    @property
    def shown(self) -> str:
        """The URL for people: credentials and query strings removed."""
        return self.url if self.url.startswith("k8s://") else safe_url(self.url)


@dataclass
class EndpointStatus:
    endpoint: Endpoint
    ok_samples: int = 0
    error: str = ""
    missing: tuple = ()
    bad_histograms: dict = field(default_factory=dict)  # family -> why its buckets were refused


def add_arguments(parser):
    src = parser.add_argument_group("endpoints")
    src.add_argument("--agent", action="append", default=[], metavar="[NODE=]URL",
                     help="agent metrics URL (port 9962), repeatable; NODE names the node (default: host:port)")
    src.add_argument("--operator", action="append", default=[], metavar="URL", help="operator metrics URL (port 9963)")
    src.add_argument("--hubble", action="append", default=[], metavar="[NODE=]URL",
                     help="Hubble metrics URL (port 9965), repeatable")
    src.add_argument("--cluster", default=None, metavar="NAME", help="cluster name shown in the report")
    src.add_argument("--kubernetes", action="store_true",
                     help="find the agent, operator and Hubble endpoints through the API server (needs the `kubernetes` package)")
    src.add_argument("--context", default=None, help="kubeconfig context for --kubernetes (default: current)")
    src.add_argument("--namespace", default="kube-system", help="namespace of the Cilium pods (default kube-system)")
    src.add_argument("--demo", nargs="?", const=DEFAULT_DEMO, default=None, metavar="SCENARIO",
                     help=f"run against an in-process simulator playing SCENARIO (default {DEFAULT_DEMO}); see `cilium-day2 simulate --list`")
    parser.add_argument("--samples", type=int, default=None, help="snapshots to take (default 2; rates need 2)")
    parser.add_argument("--interval", default=None, metavar="DURATION", help="time between snapshots (default 15s)")
    parser.add_argument("--timeout", default="10s", metavar="DURATION", help="per-request timeout (default 10s)")
    parser.add_argument("--values", metavar="FILE", help="the overrides file `render` takes (thresholds, windows, label names)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    transports.add_arguments(parser)
    parser.add_argument("--all", action="store_true", help="with --format table, also list signals that are OK or NO DATA")
    gate.add_arguments(parser)  # upgrade gate: --preflight, --connectivity, --baseline, --discover (gate.py)


# --- endpoints -----------------------------------------------------------------------------


def _named(value, component):
    if "=" in value.split("://", 1)[0]:
        name, url = value.split("=", 1)
    else:
        name, url = None, value
    if not url.lower().startswith(("http://", "https://")):
        raise UserError(f"--{component} {safe_url(url)!r}: not an http(s) URL; write e.g. http://10.0.1.7:9962/metrics")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or not parts.hostname:
        raise UserError(f"--{component} {safe_url(url)!r}: not a valid URL (check brackets around IPv6 "
                        f"addresses and the port); write e.g. http://10.0.1.7:9962/metrics")
    if name is None:
        host = safe_url(url).split("://", 1)[1].split("/", 1)[0]
        name = host if component != "operator" else "operator"
    return Endpoint(component, name, url)


def endpoints_from_args(args) -> List[Endpoint]:
    out = [_named(v, "agent") for v in args.agent]
    out += [_named(v, "operator") for v in args.operator]
    out += [_named(v, "hubble") for v in args.hubble]
    check_unique(out)
    return out


def _url_key(url):
    """A URL as a server sees it: scheme and host in lower case, the default port filled in."""
    if url.startswith("k8s://"):
        return url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return (scheme, (parts.hostname or "").lower(), port, parts.path or "/", parts.query)


def check_unique(endpoints) -> None:
    """Refuse the same endpoint twice, or two endpoints of one component under one node name:
    their samples would be added up (or overwrite each other) into a verdict about no real node."""
    urls, names = {}, {}
    for e in endpoints:
        key = _url_key(e.url)
        if key in urls:
            other = urls[key]
            raise UserError(f"--{e.component} {e.shown}: the same endpoint is given twice "
                            f"(also as --{other.component}); give each endpoint once")
        urls[key] = e
        if e.component == "operator":
            continue  # operator replicas are told apart by URL; their families carry no node label
        if (e.component, e.name) in names:
            other = names[(e.component, e.name)]
            raise UserError(f"--{e.component}: two endpoints are named {e.name!r} ({other.shown} and {e.shown}); "
                            f"name each node once with NODE=URL")
        names[(e.component, e.name)] = e


def kubernetes_endpoints(context=None, namespace="kube-system") -> List[Endpoint]:
    """Agent, operator and Hubble endpoints of the current cluster, read through the API server's
    pod proxy with the user's kubeconfig."""
    try:
        from kubernetes import client, config  # type: ignore
    except ImportError:
        raise UserError("--kubernetes needs the `kubernetes` Python package (pip install kubernetes); or give --agent/--operator URLs") from None
    try:
        config.load_kube_config(context=context)
    except Exception as exc:  # the client raises a variety of config errors
        raise UserError(f"--kubernetes: cannot load the kubeconfig ({str(exc).splitlines()[0]}); check KUBECONFIG or --context") from None
    api = client.CoreV1Api()

    def proxy(pod, port):
        def fetch(timeout):
            return api.connect_get_namespaced_pod_proxy_with_path(
                f"{pod}:{port}", namespace, "metrics", _request_timeout=timeout
            )

        return fetch

    out = []
    try:
        agents = api.list_namespaced_pod(namespace, label_selector="k8s-app=cilium").items
        operators = api.list_namespaced_pod(namespace, label_selector="io.cilium/app=operator").items
    except Exception as exc:
        raise UserError(f"--kubernetes: cannot list pods in {namespace} ({str(exc).splitlines()[0]}); check access and --namespace") from None
    for pod in agents:
        if pod.status.phase != "Running":
            continue
        node = pod.spec.node_name or pod.metadata.name
        name = pod.metadata.name
        out.append(Endpoint("agent", node, f"k8s://{namespace}/{name}:9962/metrics", proxy(name, 9962)))
        out.append(Endpoint("hubble", node, f"k8s://{namespace}/{name}:9965/metrics", proxy(name, 9965)))
    for pod in operators:
        if pod.status.phase != "Running":
            continue
        name = pod.metadata.name
        out.append(Endpoint("operator", "operator", f"k8s://{namespace}/{name}:9963/metrics", proxy(name, 9963)))
    if not any(e.component == "agent" for e in out):
        raise UserError(f"--kubernetes: no running Cilium agent pods (k8s-app=cilium) in {namespace}; check --namespace and --context")
    return out


# --- scraping --------------------------------------------------------------------------------


class ScrapeError(Exception):
    pass


class NotCilium(ScrapeError):
    """The endpoint answered, but with no Cilium family of its component (e.g. a node_exporter):
    not a failure of Cilium, and nothing to judge Cilium by."""


# Query nodes under which a family's series may be summed while reading: the rate of a sum is
# the sum of the rates. (Histogram buckets are kept per series: each series' buckets are
# checked before use, which a sum would hide.)
_SUMMABLE = (Rate, Increase)


def reader_plans(catalog):
    """{component: [FamilyPlan]} for the families the catalog reads. Hubble families are summed
    down to the labels the queries use, as the check does, so that memory does not grow with
    Hubble's per-pod series; so is every agent and operator family that the catalog only rates
    (counters), so that memory grows with the groups the catalog reports,
    not with an endpoint's series."""
    kinds, needed = {}, {}
    summable = {}
    for signal in catalog.signals:
        for node in iter_nodes(signal.query.expr):
            selector = getattr(node, "selector", None)
            if selector is None:
                continue
            for family in selector.families(catalog.settings.cloud_apis):
                summable[family] = summable.get(family, True) and isinstance(node, _SUMMABLE)
        labels = set(signal.group_by)
        for node in iter_nodes(signal.query.expr):
            if isinstance(node, Distinct):
                labels.add(node.label)
            if isinstance(node, Outlier):
                labels.update(node.among)
        histogram_selectors = {id(n.selector) for n in iter_nodes(signal.query.expr) if isinstance(n, Quantile)}
        for selector in iter_selectors(signal.query.expr):
            for family in selector.families(catalog.settings.cloud_apis):
                if id(selector) in histogram_selectors:
                    kind = "histogram"
                else:
                    kind = "counter" if family.endswith("_total") else "gauge"
                kinds[(signal.component, family)] = kind
                needed.setdefault(family, set()).update(labels, (m.label for m in selector.match))
    plans = {c: [] for c in COMPONENTS}
    for (component, family), kind in sorted(kinds.items()):
        reduce = None
        if component == "hubble":
            reduce = set(metrics.HUBBLE_BOUNDED_LABELS.get(family, ())) | needed[family] | {"le"}
        elif summable.get(family):
            reduce = needed[family] | {"le"}
        plans[component].append(FamilyPlan(family, kind, reduce))
    for family in FEATURE_FAMILIES:  # IPAM and identity allocation modes (applicability)
        plans["agent"].append(FamilyPlan(family, "gauge", None))
    return plans


def read_samples(chunks, labels, plans, component, cache=None):
    """Samples of an exposition (names exactly as exposed, logical labels added), read by the
    shared reader. Raises ScrapeError when the body is not a Cilium exposition of `component`.

    Kept families are read a block at a time (the reader's bulk path). `cache` (one dict per
    endpoint, kept across its snapshots) lets a series' label mapping be built once and shared by
    every snapshot, so that memory grows with the series the catalog reads, not with samples."""
    out = Samples()
    cache = {} if cache is None else cache
    inf = math.inf
    buckets = {}  # (plan, sample name, labels without le) -> [(le text, value)]

    def on_sample(plan, name, pairs, value):
        if plan.kind == "histogram" and name.endswith("_bucket"):
            rest = tuple(p for p in pairs if p[0] != "le")
            le = next((v for k, v in pairs if k == "le"), None)
            buckets.setdefault((plan, name, rest), []).append((le, value))
            return
        if value != value or value in (inf, -inf):
            return  # NaN/Inf never becomes a verdict
        merged = dict(pairs)
        merged.update(labels)
        out.append(Sample(name, merged, value))

    def on_rows(plan, name, names, rows):
        if plan.kind == "histogram" and name.endswith("_bucket"):
            for row in rows:
                on_sample(plan, name, list(zip(names, row)), float(row[-1]))
            return
        append = out.append
        for row in rows:
            value = float(row[-1])  # the bulk path takes only values float() accepts
            if value - value != 0.0:
                continue  # NaN/Inf never becomes a verdict
            key = (name, names, row[:-1])
            merged = cache.get(key)
            if merged is None:
                merged = dict(zip(names, row))  # zip stops at the names: the value is left out
                merged.update(labels)
                cache[key] = merged
            append(Sample(name, merged, value))

    reader = ExpositionReader(plans, on_sample, on_rows=on_rows)
    stats = reader.read(chunks)
    if stats.unterminated and (stats.recognised or looks_like_exposition(stats.unterminated)):
        raise ScrapeError(truncated_message(stats.unterminated))
    if not stats.lines and not stats.unterminated:
        raise ScrapeError("the response is empty: no metrics")
    if not stats.recognised:
        first = stats.first_malformed[1] if stats.first_malformed else stats.unterminated
        raise ScrapeError(f"not Prometheus text{f' (first line: {first!r})' if first else ''}")
    for (plan, name, rest), rows in buckets.items():
        problem = bucket_problem(rows)
        if problem:
            out.bad_histograms.setdefault(plan.family, problem)
            continue
        for le, value in rows:
            merged = dict(rest)
            merged["le"] = le
            merged.update(labels)
            out.append(Sample(name, merged, value))
    prefixes = COMPONENT_PREFIXES[component]
    if component == "agent":
        cilium = any(f.startswith("cilium_") and not f.startswith("cilium_operator_") for f in stats.families)
    else:
        cilium = any(f.startswith(prefixes) for f in stats.families)
    if not cilium:
        raise NotCilium(
            f"no Cilium {component} metrics in the response ({stats.lines} lines): is this the Cilium "
            f"{component} metrics port (:{COMPONENT_PORTS[component]})?"
        )
    return out


class Samples(list):
    """Samples of one scrape, and the histogram families whose buckets were refused."""

    def __init__(self):
        super().__init__()
        self.bad_histograms = {}  # family -> why its buckets were refused


def bucket_problem(rows):
    """Why one histogram series' buckets cannot be used, or "" (Prometheus' own rules: `le` a
    number, counts finite, not negative, and not decreasing as `le` grows)."""
    bounds = []
    for le, value in rows:
        if le is None:
            return "a bucket without `le`"
        try:
            bound = float(le)
        except ValueError:
            return f"`le` {le[:20]!r} is not a number"
        if bound != bound:
            return "`le` is NaN"
        if value != value or value in (math.inf, -math.inf):
            return f"a bucket count is {value}"
        if value < 0:
            return f"a bucket count is negative ({value:g})"
        bounds.append((bound, value))
    bounds.sort()
    for (b1, c1), (b2, c2) in zip(bounds, bounds[1:]):
        if b1 == b2:
            return f"`le` {b1:g} appears twice"
        if c2 < c1:
            return f"cumulative counts decrease (le {b1:g}: {c1:g}, le {b2:g}: {c2:g})"
    return ""


def truncated_message(partial):
    return (f"the response ends inside a line ({partial!r} has no newline): a truncated body; "
            "Prometheus fails such a scrape, and so does doctor")


def fetch_samples(endpoint: Endpoint, timeout: float, labels, plans, transport=None, cache=None):
    timeout_text = f"{timeout:g}s (--timeout)"
    if endpoint.fetch is not None:
        text = endpoint.fetch(timeout)
        if len(text) > body.MAX_BODY_BYTES:
            raise ScrapeError(f"the response is larger than {body.MAX_BODY_BYTES // (1024 * 1024)} MiB (the limit)")
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return read_samples([str(text)], labels, plans, endpoint.component, cache)
    import requests

    transport = transport or transports.Transport()
    deadline = body.deadline_after(timeout)
    try:
        response = requests.get(endpoint.url, timeout=timeout, stream=True, **transport.request_kwargs())
    except Exception as exc:  # requests' whole family, and urllib3's URL errors
        raise ScrapeError(transports.describe(exc, endpoint.url)) from None
    try:
        if response.status_code != 200:
            hint = ""
            if response.status_code in (401, 403):
                hint = ("; give a token with --bearer-token-file" if not transport.token
                        else "; the token from --bearer-token-file was refused")
            raise ScrapeError(f"HTTP {response.status_code} {response.reason or ''}".strip() + hint)
        chunks = body.iter_text(response, deadline, timeout_text)
        return read_samples(chunks, labels, plans, endpoint.component, cache)
    except ScrapeError:
        raise
    except Exception as exc:
        raise ScrapeError(body.describe_failure(exc)) from None
    finally:
        response.close()


def parse_samples(text: str, labels, plans, component="agent") -> List[Sample]:
    """Samples of one exposition given as text (tests, Kubernetes proxy bodies)."""
    return read_samples([text], labels, plans, component)


class Sampler:
    """Takes snapshots of a set of endpoints; the clock may run faster than the wall (demo)."""

    def __init__(self, endpoints, cluster, plans, timeout=10.0, time_scale=1.0, transport=None):
        self.transport = transport
        self._label_cache = {}  # id(endpoint) -> its series' label mappings, shared by its snapshots
        self.endpoints = endpoints
        self.plans = plans
        self.cluster = cluster
        self.timeout = timeout
        self.time_scale = time_scale
        self.status = {id(e): EndpointStatus(e) for e in endpoints}
        self.snapshots: List[Snapshot] = []
        self._t0_wall = time.time()

    def _labels(self, endpoint):
        labels = {"cluster": self.cluster}
        if endpoint.component != "operator":
            labels["node"] = endpoint.name
        return labels

    def _fetch(self, endpoint):
        """(samples, error, answered as Cilium); never raises."""
        labels = self._labels(endpoint)
        try:
            samples = fetch_samples(endpoint, self.timeout, labels, self.plans[endpoint.component], self.transport,
                                    self._label_cache.setdefault(id(endpoint), {}))
            return samples, "", True
        except NotCilium as exc:
            return None, str(exc), False
        except ScrapeError as exc:
            return [], str(exc), False
        except Exception as exc:  # a Kubernetes proxy error, for instance
            return [], body.describe_failure(exc), False

    def _record(self, endpoint, result):
        samples, error, ok = result
        status = self.status[id(endpoint)]
        if error:
            status.error = error
        if samples is None:
            # Not "down" (it answered) and not "up" as Cilium: no `up` sample at all.
            return []
        if ok:
            status.ok_samples += 1
        for family, why in getattr(samples, "bad_histograms", {}).items():
            status.bad_histograms.setdefault(family, why)
        labels = self._labels(endpoint)
        samples.append(Sample("up", dict(labels, target=endpoint.component), 1.0 if ok else 0.0))
        return samples

    def _scrape_all(self):
        """One result per endpoint, all within one deadline: `--timeout` bounds connecting, the
        status line, the headers, redirects and the body together, whatever the server does.
        Each request runs on a daemon thread; one still running at the deadline is abandoned
        (it cannot keep the process alive) and reported as timed out."""
        results = [None] * len(self.endpoints)

        def work(i, done):
            try:
                results[i] = self._fetch(self.endpoints[i])
            finally:
                done.release()

        for start in range(0, len(self.endpoints), MAX_PARALLEL):
            batch = range(start, min(len(self.endpoints), start + MAX_PARALLEL))
            done = threading.Semaphore(0)
            deadline = time.monotonic() + self.timeout + DEADLINE_GRACE
            for i in batch:
                threading.Thread(target=work, args=(i, done), daemon=True, name="doctor-scrape").start()
            finished = 0
            # Wait in short steps so that Ctrl-C is seen at once.
            while finished < len(batch) and time.monotonic() < deadline:
                if done.acquire(timeout=min(0.2, max(0.0, deadline - time.monotonic()))):
                    finished += 1
        late = f"timed out: no complete response within {self.timeout:g}s (--timeout; connecting, headers, redirects and body together)"
        return [r if r is not None else ([], late, False) for r in results]

    def take(self):
        wall = time.time()
        results = [self._record(e, r) for e, r in zip(self.endpoints, self._scrape_all())]
        # Simulated time when the clock is compressed, so that rates are per simulated second.
        stamp = self._t0_wall + (wall - self._t0_wall) * self.time_scale
        snap = Snapshot(stamp)
        for samples in results:
            snap.samples.extend(samples)
        self.snapshots.append(snap)
        return snap

    def run(self, samples, interval, progress=None):
        for i in range(samples):
            started = time.monotonic()
            if progress:
                progress(i, samples)
            self.take()
            if i < samples - 1:
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
        if progress:
            progress(samples, samples)

    def component_state(self):
        """{component: "" (scraped) or the reason it is missing}; absent: not given."""
        out = {}
        for comp in COMPONENTS:
            eps = [s for s in self.status.values() if s.endpoint.component == comp]
            if not eps:
                continue
            if any(s.ok_samples for s in eps):
                out[comp] = ""
            else:
                first = next((s.error for s in eps if s.error), "")
                out[comp] = f"could not evaluate: no {comp} endpoint answered with Cilium metrics" + (
                    f" ({first})" if first else "")
        return out


def _progress_printer(stream, n_endpoints):
    tty = hasattr(stream, "isatty") and stream.isatty()

    def show(i, total):
        if not tty:
            return
        if i < total:
            stream.write(f"\rsampling {i + 1}/{total} from {n_endpoints} endpoints...")
        else:
            stream.write("\r" + " " * 60 + "\r")
        stream.flush()

    return show


# --- report ----------------------------------------------------------------------------------


def format_threshold(finding):
    if finding.threshold is None:
        return "-"
    return f"{finding.signal.comparison} {format_value(finding.threshold, finding.signal.unit)}"


def format_culprit(finding, cluster_label="cluster"):
    if finding.status in (NO_DATA, NOT_APPLICABLE):
        return finding.reason
    if finding.status == OK:
        return ""
    labels = {k: v for k, v in finding.culprit.items() if k != cluster_label}
    text = " ".join(f"{k}={v}" for k, v in labels.items()) or "cluster-wide"
    extra = len(finding.groups) - 1
    return text + (f" (+{extra} more)" if extra > 0 else "")


def hint(runbook, min_chars=60):
    """The runbook's opening: its first sentence, and the next ones while that is short."""
    text = " ".join(runbook.split())
    end = 0
    for i, ch in enumerate(text):
        if ch == "." and (i + 1 == len(text) or text[i + 1] == " ") and not text[max(0, i - 3):i].endswith(("e.g", "i.e")):
            end = i + 1
            if end >= min_chars:
                break
    return text[:end] if end else text


def printable(text):
    """Text safe for a terminal: control characters, escape sequences and invisible format
    characters (bidi overrides, zero-width) from label values are shown escaped, so that an
    endpoint cannot rewrite or hide a line of the report."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def render_table(findings, statuses, header, show_all=False, unevaluated=""):
    text = _render_table(findings, statuses, header, show_all, unevaluated)
    return "\n".join(printable(line) for line in text.split("\n"))


def _render_table(findings, statuses, header, show_all=False, unevaluated=""):
    lines = [header, ""]
    rows = [("SIGNAL", "STATUS", "VALUE", "THRESHOLD", "CULPRIT")]
    shown = [f for f in findings if show_all or f.status in (WARNING, CRITICAL, NO_DATA)]
    order = {CRITICAL: 0, WARNING: 1, NO_DATA: 2, NOT_APPLICABLE: 3, OK: 4}
    shown.sort(key=lambda f: order[f.status])
    for f in shown:
        rows.append((f.id, f.status, format_value(f.value, f.signal.unit), format_threshold(f), printable(format_culprit(f))))
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    counts = {s: sum(1 for f in findings if f.status == s) for s in (CRITICAL, WARNING, OK, NO_DATA, NOT_APPLICABLE)}
    if not show_all:
        lines.append(
            ("" if len(rows) > 1 else "No signal is failing. ")
            + f"{counts[OK]} OK, {counts[NOT_APPLICABLE]} not applicable not shown (--all lists them)."
        )
    partial = [f.id for f in findings if f.status == OK and f.reason.startswith(PARTIAL)]
    if partial:
        lines.append(f"{len(partial)} OK on what the samples saw, shorter than their window: {', '.join(partial)} "
                     f"(sample longer to cover their windows).")
    bad = [f for f in findings if f.status in (WARNING, CRITICAL)]
    if bad:
        lines += ["", "What to do:"]
        for f in sorted(bad, key=lambda f: order[f.status]):
            lines.append(f"  {f.id}: {hint(f.signal.runbook)}")
    problems = [s for s in statuses if s.error]
    if problems:
        lines += ["", "Endpoints with problems:"]
        for s in problems:
            lines.append(f"  {s.endpoint.component} {s.endpoint.name} ({s.endpoint.shown}): {s.error}"
                         + (f" (answered {s.ok_samples} of the samples)" if s.ok_samples else ""))
    gaps = [s for s in statuses if s.missing and not s.error]
    if gaps:
        lines += ["", "Families the catalog reads that some endpoints do not expose (feature off, older Cilium, or no event yet):"]
        by_comp = {}
        for s in gaps:
            by_comp.setdefault(s.endpoint.component, set()).update(s.missing)
        for comp, fams in sorted(by_comp.items()):
            lines.append(f"  {comp}: {', '.join(sorted(fams))}")
    lines += ["", f"Result: {_summary(counts, unevaluated)}"]
    return "\n".join(lines) + "\n"


def _summary(counts, unevaluated=""):
    worst = CRITICAL if counts[CRITICAL] else WARNING if counts[WARNING] else OK
    if worst == OK and unevaluated:
        worst = f"COULD NOT EVALUATE: {unevaluated}"
    return (f"{worst} ({counts[CRITICAL]} critical, {counts[WARNING]} warning, {counts[OK]} OK, "
            f"{counts[NO_DATA]} no data, {counts.get(NOT_APPLICABLE, 0)} not applicable)")


def findings_json(findings, statuses, meta, exit_code, reason=""):
    out = {
        **meta,
        "status": "UNEVALUATED" if exit_code == EXIT_UNEVALUATED else overall(findings),
        "exit_code": exit_code,
        "signals": [
            {
                "id": f.id,
                "area": f.signal.area,
                "status": f.status,
                "value": f.value,
                "threshold": f.threshold,
                "comparison": f.signal.comparison,
                "unit": f.signal.unit,
                "culprit": f.culprit,
                "failing": [{"labels": g.labels, "value": g.value, "status": g.status} for g in f.groups],
                "reason": f.reason or None,
                "runbook": hint(f.signal.runbook) if f.status in (WARNING, CRITICAL) else None,
            }
            for f in findings
        ],
        "endpoints": [
            {
                "component": s.endpoint.component,
                "name": s.endpoint.name,
                "url": s.endpoint.shown,
                "samples_ok": s.ok_samples,
                "error": s.error or None,
                "missing_families": list(s.missing),
                "bad_histograms": dict(s.bad_histograms),
            }
            for s in statuses
        ],
    }
    if reason:
        out["reason"] = reason
    return json.dumps(out, indent=2, default=_json_default) + "\n"


def _json_default(value):
    return str(value)


# --- the command -------------------------------------------------------------------------------


# Bounds of --timeout and --interval (seconds): positive, and short enough to be a mistake beyond.
DURATION_BOUNDS = {"--timeout": (0.001, 300.0), "--interval": (0.001, 3600.0)}


def _duration(text, flag):
    from ..simulator.profiles import parse_duration

    try:
        seconds = parse_duration(text, flag)
    except UserError:
        raise UserError(f"{flag} {text!r}: not a duration; write e.g. 15s, 1m") from None
    low, high = DURATION_BOUNDS.get(flag, (0.0, float("inf")))
    if not math.isfinite(seconds) or seconds > high or seconds < low or seconds <= 0:
        limit = f"{_human(high)}" if high >= 60 else f"{high:g}s"
        floor = "more than 0s"
        raise UserError(f"{flag} {text!r}: out of range; give {floor} and at most {limit}")
    return seconds


def _missing_families(catalog, sampler):
    """Per endpoint: catalog families of its component absent from every one of its samples."""
    from ..catalog.query import iter_selectors

    wanted = {c: set() for c in COMPONENTS}
    for signal in catalog.enabled():
        for sel in iter_selectors(signal.query.expr):
            wanted[signal.component].update(sel.families(catalog.settings.cloud_apis))
    seen = {}
    for snap in sampler.snapshots:
        for s in snap.samples:
            seen.setdefault(s.labels.get("node", "operator"), set()).add(s.name)
    for status in sampler.status.values():
        if not status.ok_samples:
            continue
        names = seen.get(status.endpoint.name if status.endpoint.component != "operator" else "operator", set())
        fams = wanted[status.endpoint.component]
        if status.endpoint.component == "operator":
            # `{cloud}` expands to every cloud API; only one of them exists per operator.
            fams = {f for f in fams if not any(f"_{api}_api_" in f for api in catalog.settings.cloud_apis)}
        status.missing = tuple(sorted(f for f in fams if not _seen(f, names)))


def _seen(family, names):
    return family in names or any(family + s in names for s in ("_bucket", "_count", "_sum", "_total"))


def diagnose(catalog, endpoints, cluster, samples, interval, timeout=10.0, time_scale=1.0, progress=None,
             transport=None, sampled=None):
    """Sample the endpoints and evaluate the catalog. Returns (findings, statuses, exit code,
    reason). `sampled`: a list that receives the snapshots (for a baseline)."""
    check_unique(endpoints)
    sampler = Sampler(endpoints, cluster, reader_plans(catalog), timeout=timeout, time_scale=time_scale,
                      transport=transport)
    sampler.run(samples, interval, progress)
    if sampled is not None:
        sampled.extend(sampler.snapshots)
    _missing_families(catalog, sampler)
    statuses = list(sampler.status.values())
    state = sampler.component_state()
    if not any(v == "" for v in state.values()):
        reasons = "; ".join(f"{s.endpoint.shown}: {s.error}" for s in statuses[:3])
        return [], statuses, EXIT_UNEVALUATED, f"no endpoint answered with Cilium metrics ({reasons})"
    findings = evaluate_catalog(catalog, sampler.snapshots, state)
    findings = mark_not_applicable(findings, sampler.snapshots, state, tuple(catalog.settings.cloud_apis))
    findings = _unusable_histograms(findings, statuses, tuple(catalog.settings.cloud_apis))
    if all(f.status in (NO_DATA, NOT_APPLICABLE) for f in findings):
        return findings, statuses, EXIT_UNEVALUATED, "no signal could be evaluated: " + _no_data_reason(findings)
    worst = overall(findings)
    if worst != OK:
        return findings, statuses, EXIT[worst], ""
    missing = [c for c, problem in state.items() if problem]
    if missing:
        # A gate must not pass for a component it was asked about and could not see.
        return findings, statuses, EXIT_UNEVALUATED, "; ".join(state[c] for c in missing)
    if any(f.status == NO_DATA for f in findings):
        # No data is never OK: an unevaluated signal could be failing.
        return findings, statuses, EXIT_UNEVALUATED, _no_data_reason(findings)
    return findings, statuses, EXIT[worst], ""


def _unusable_histograms(findings, statuses, cloud_apis):
    """A signal reading a histogram whose buckets an endpoint served broken is not evaluated
    (NO DATA, with the reason), unless the endpoints with sound buckets already show it failing."""
    bad = {}
    for status in statuses:
        for family, why in status.bad_histograms.items():
            bad.setdefault(family, f"{status.endpoint.component} {status.endpoint.name}: {why}")
    if not bad:
        return findings
    out = []
    for f in findings:
        families = {fam for sel in iter_selectors(f.signal.query.expr) for fam in sel.families(cloud_apis)}
        hit = sorted(families & set(bad))
        if hit and f.status not in (WARNING, CRITICAL):
            f = replace(f, status=NO_DATA, value=None, groups=[], culprit={},
                        reason=f"could not evaluate: bad histogram buckets in {hit[0]} ({bad[hit[0]]})")
        out.append(f)
    return out


def _no_data_reason(findings, shown=4):
    """One line: how many signals have no data, and the first few with their reasons."""
    empty = [f for f in findings if f.status == NO_DATA]
    if not empty:
        return "every signal is not applicable"
    parts = [f"{f.id} ({f.reason})" for f in empty[:shown]]
    more = f"; +{len(empty) - shown} more (--all lists them)" if len(empty) > shown else ""
    return f"{len(empty)} signal{'s' if len(empty) != 1 else ''} without data: " + "; ".join(parts) + more


def run(args):
    from ..catalog import load_catalog

    if threading.current_thread() is threading.main_thread():
        # Ctrl-C ends the run at once (exit 130), even when the parent started us with SIGINT
        # ignored (a background job of a script).
        signal.signal(signal.SIGINT, signal.default_int_handler)

    catalog = load_catalog(args.values) if args.values else load_catalog()
    # --- upgrade gate (gate.py): read every file first; --preflight/--connectivity alone need no endpoints
    gate_inputs = gate.read_inputs(args)
    if gate_inputs.active and not gate.needs_endpoints(args, gate_inputs):
        return gate.finish(args, gate_inputs, None)
    # ---
    samples = args.samples
    interval = _duration(args.interval, "--interval") if args.interval else None
    if samples is not None and samples < 1:
        raise UserError(f"--samples {samples}: take at least 1 (rates need 2)")
    timeout = _duration(args.timeout, "--timeout")
    transport = transports.from_args(args)
    sim = None
    time_scale = 1.0
    cluster = args.cluster
    given = args.agent or args.operator or args.hubble
    if args.demo:
        if given or args.kubernetes:
            raise UserError("--demo runs against its own simulator; drop --agent/--operator/--hubble/--kubernetes")
        from ..simulator.model import Clock
        from ..simulator.scenarios import load_scenarios
        from ..simulator.server import Simulation

        scenarios = load_scenarios()
        if args.demo not in scenarios:
            raise UserError(f"--demo {args.demo!r}: unknown scenario; choose one of {', '.join(scenarios)}")
        scenario = scenarios[args.demo]
        time_scale = DEMO_SPEED
        samples = samples or DEMO_SAMPLES
        interval = DEMO_INTERVAL if interval is None else interval
        # Start one sampling span before the steady point, so the samples end on it.
        span = (samples - 1) * interval * DEMO_SPEED
        clock = Clock(speed=DEMO_SPEED, start=max(0.0, scenario.steady - span))
        built = scenario.build(clock=clock)
        cluster = cluster or built.name
        sim = Simulation([built])
        sim.start()
        endpoints = [
            Endpoint(t.component, t.node or "operator", t.url) for t in sim.targets
        ]
    elif args.discover:  # upgrade gate: endpoints from the Kubernetes API (discovery.py)
        if given or args.kubernetes:
            raise UserError("--discover finds the endpoints itself; drop --agent/--operator/--hubble/--kubernetes")
        targets, notes = gate.discovered(args, timeout)
        endpoints = [Endpoint(t.component, t.name, t.url) for t in targets]
        for note in notes:
            print(f"cilium-day2 doctor: {note}", file=sys.stderr)
        cluster = cluster or "cluster"
    elif args.kubernetes:
        if given:
            raise UserError("--kubernetes finds the endpoints itself; drop --agent/--operator/--hubble")
        endpoints = kubernetes_endpoints(args.context, args.namespace)
        cluster = cluster or args.context or "current-context"
    else:
        endpoints = endpoints_from_args(args)
        if not endpoints:
            raise UserError("give endpoints: --agent URL (and --operator URL, --hubble URL), --kubernetes, or try --demo")
        cluster = cluster or "cluster"
    samples = 2 if samples is None else samples
    interval = 15.0 if interval is None else interval
    progress = _progress_printer(sys.stderr, len(endpoints))
    snapshots = []
    try:
        findings, statuses, code, reason = diagnose(
            catalog, endpoints, cluster, samples, interval, timeout=timeout, time_scale=time_scale, progress=progress,
            transport=transport, sampled=snapshots,
        )
    finally:
        if sim is not None:
            sim.stop()
    counts = {c: sum(1 for e in endpoints if e.component == c) for c in COMPONENTS}
    span = (samples - 1) * interval
    if args.demo:
        what = (f"demo: scenario {args.demo}, simulated in-process at {time_scale:g}x, "
                f"{samples} samples over {_human(span * time_scale)} of simulated time")
    else:
        what = f"{samples} sample{'s' if samples != 1 else ''}" + (f" over {_human(span)}" if samples > 1 else "")
    header = (f"cilium-day2 doctor: cluster {cluster}: {counts['agent']} agents, {counts['operator']} operator, "
              f"{counts['hubble']} Hubble endpoints; {what}")
    if gate_inputs.active:  # --- upgrade gate: one verdict over every source (gate.py)
        meta = {"cluster": cluster, "samples": samples, "interval_seconds": interval, "demo": args.demo}
        bare = code == EXIT_UNEVALUATED and not findings
        table = render_table(findings if not bare else [], statuses, header, show_all=args.all and not bare,
                             unevaluated=reason if code == EXIT_UNEVALUATED else "")
        live = gate.Live(findings, code, reason, snapshots, table, findings_json(findings, statuses, meta, code, reason),
                         meta, catalog)
        return gate.finish(args, gate_inputs, live)
    if args.format == "json":
        meta = {"cluster": cluster, "samples": samples, "interval_seconds": interval, "demo": args.demo}
        sys.stdout.write(findings_json(findings, statuses, meta, code, reason))
    elif code == EXIT_UNEVALUATED and not findings:
        sys.stdout.write(render_table([], statuses, header, unevaluated=reason))
    else:
        unevaluated = reason if code == EXIT_UNEVALUATED else ""
        sys.stdout.write(render_table(findings, statuses, header, show_all=args.all, unevaluated=unevaluated))
    if code == EXIT_UNEVALUATED:
        print(f"cilium-day2 doctor: could not evaluate: {printable(reason)}", file=sys.stderr)
    if args.demo and code != EXIT_UNEVALUATED:
        # The demo shows the gate; its own exit status says whether the demo ran. The verdict is
        # in the output (and `exit_code` in JSON).
        if args.format != "json":
            print(f"(demo: against live endpoints this result would exit with status {code})")
        return 0
    return code


def _human(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds}s"
