"""The per-endpoint scraper: filtered parsing, one service check per component, clear failures."""

import re

from prometheus_client.parser import text_fd_to_metric_families as parse_prometheus
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ContentDecodingError, ChunkedEncodingError, HTTPError, ReadTimeout, Timeout

from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsScraper
from datadog_checks.base.constants import ServiceCheck

from . import metrics
from .config import safe_url
from .exposition import ExpositionFilter


class ScrapeError(Exception):
    """An endpoint answered with something the check cannot use. The message is user-facing."""


class CiliumScraper(OpenMetricsScraper):
    def __init__(self, check, config):
        super().__init__(check, config)
        self.component = config["cilium_component"]
        self.SERVICE_CHECK_HEALTH = f"{self.component}.openmetrics.health"
        self.display_url = safe_url(self.endpoint)

        families = metrics.COMPONENT_MAPS[self.component]
        reduce = None
        if self.component == "hubble":
            extra = tuple(config.get("hubble_include_labels") or ())
            reduce = {family: labels + extra for family, labels in metrics.HUBBLE_BOUNDED_LABELS.items()}
        self.line_filter = ExpositionFilter(
            {family: metrics.metric_type(family) for family in families},
            reduce=reduce,
            extra_match=_extra_matcher(config.get("extra_metrics")),
        )
        if self.component == "agent":
            self.metric_transformer.add_custom_transformer("cilium_version", self._transform_version)

    # -- parsing --------------------------------------------------------------------------
    def parse_metrics(self):
        # The base class picks a parser per content type; Cilium serves the Prometheus text
        # format, and the filter has already dropped the OpenMetrics-only `_created` lines.
        yield from parse_prometheus(self.line_filter(self.stream_connection_lines()))
        stats = self.line_filter.stats
        if stats.lines and not stats.recognised:
            raise ScrapeError(f"the response is not a Prometheus exposition ({stats.lines} lines, none parseable)")
        if stats.lines and not stats.kept:
            raise ScrapeError(
                "the response has none of the Cilium families this check collects: is this the "
                f"{self.component} metrics port (agent :9962, operator :9963, Hubble :9965)?"
            )

    def get_connection(self):
        response = self.send_request()
        try:
            response.raise_for_status()
        except HTTPError:
            response.close()
            raise ScrapeError(f"HTTP {response.status_code} {response.reason or ''}".strip()) from None
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type.lower():
            response.close()
            raise ScrapeError(
                f"the response is HTML ({content_type}), not Prometheus metrics: check the port and the "
                "/metrics path"
            )
        if response.encoding is None:
            response.encoding = "utf-8"
        return response

    def _transform_version(self, metric, sample_data, runtime_data):
        for sample, tags, hostname in sample_data:
            version = sample.labels.get("version")
            if version:
                self.check.set_metadata("version", version.lstrip("v"))
            self.check.gauge("version", 1, tags=tags, hostname=hostname)

    # -- one run ----------------------------------------------------------------------------
    def run_once(self):
        """Scrape once; report the component's service check. Returns an error message or None."""
        try:
            self.scrape()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a service check, not a crash
            message = f"{self.component} endpoint {self.display_url}: {describe_failure(exc)}"
            self.service_check(self.SERVICE_CHECK_HEALTH, ServiceCheck.CRITICAL, tags=self.static_tags, message=message)
            return message
        stats = self.line_filter.stats
        if stats.malformed:
            line_no, text = stats.first_malformed
            message = (
                f"{self.component} endpoint {self.display_url}: skipped {stats.malformed} malformed line(s), "
                f"first at line {line_no}: {text!r}"
            )
            self.service_check(self.SERVICE_CHECK_HEALTH, ServiceCheck.WARNING, tags=self.static_tags, message=message)
            return message
        if stats.duplicates:
            self.log.debug("%s: dropped %d duplicate series", self.display_url, stats.duplicates)
        self.service_check(self.SERVICE_CHECK_HEALTH, ServiceCheck.OK, tags=self.static_tags)
        return None


def describe_failure(exc):
    """One line naming the cause, without URLs (which may carry credentials) or stack frames."""
    if isinstance(exc, ScrapeError):
        return str(exc)
    if isinstance(exc, (ReadTimeout, Timeout)):
        return "timed out (raise `timeout` if the endpoint is slow, or check that the port is reachable)"
    if isinstance(exc, (ChunkedEncodingError, ContentDecodingError)):
        return "the response was cut off before its end (truncated body)"
    if isinstance(exc, RequestsConnectionError):
        text = str(exc)
        for needle, reason in (
            ("Connection refused", "connection refused (is Cilium serving metrics on this port?)"),
            ("Name or service not known", "host name does not resolve"),
            ("nodename nor servname", "host name does not resolve"),
            ("timed out", "connection timed out"),
            ("RemoteDisconnected", "the server closed the connection without a response"),
            ("Connection reset", "connection reset by the server"),
            ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed (see `tls_ca_cert`, `tls_verify`)"),
            ("IncompleteRead", "the response was cut off before its end (truncated body)"),
        ):
            if needle in text:
                return reason
        return "connection failed"
    if isinstance(exc, ValueError):
        # prometheus_client raises bare ValueErrors; keep the offending text short.
        detail = re.sub(r"\s+", " ", str(exc))[:160]
        return f"invalid Prometheus exposition ({detail or 'unparseable line'})"
    return f"{type(exc).__name__}: {re.sub(r'https?://[^ ]+', '<url>', str(exc))[:200]}"


def _extra_matcher(extra_metrics):
    """A name predicate for user `extra_metrics` entries (strings, mappings, regex keys)."""
    if not extra_metrics:
        return None
    names, patterns = set(), []
    for entry in extra_metrics:
        keys = [entry] if isinstance(entry, str) else list(entry) if isinstance(entry, dict) else []
        for key in keys:
            if re.escape(key) == key:
                names.update((key, key + "_total", key + "_bucket", key + "_sum", key + "_count"))
            else:
                patterns.append(re.compile(key))

    def match(name):
        if name in names:
            return True
        base = re.sub(r"_(bucket|sum|count|total)$", "", name)
        return any(p.search(name) or p.search(base) for p in patterns)

    return match
