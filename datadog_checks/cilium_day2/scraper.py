"""The per-endpoint scraper: filtered parsing, one service check per component, clear failures."""

import re

from prometheus_client.parser import text_fd_to_metric_families as parse_prometheus
from requests.exceptions import HTTPError

from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsScraper
from datadog_checks.base.constants import ServiceCheck

from cilium_day2 import metrics
from cilium_day2.exposition import body
from cilium_day2.exposition.reader import ExpositionReader, FamilyPlan
from cilium_day2.urls import safe_url

INF = float("inf")


class ScrapeError(Exception):
    """An endpoint answered with something the check cannot use. The message is user-facing."""


class CiliumScraper(OpenMetricsScraper):
    """Reads one Cilium endpoint with the block reader and submits through the base check.

    The base class still provides the HTTP client (TLS, auth, proxies, timeouts), tags, label
    renames and the `flush_first_value` bookkeeping; user `extra_metrics` go through its regular
    parser and transformers. The mapped families take the fast path below.
    """

    def __init__(self, check, config):
        super().__init__(check, config)
        self.component = config["cilium_component"]
        self.SERVICE_CHECK_HEALTH = f"{self.component}.openmetrics.health"
        self.display_url = safe_url(self.endpoint)
        # The base class tags every metric and service check `endpoint:<the URL as configured>`,
        # credentials and query string included: tag the shown form instead.
        raw_tag = f"endpoint:{self.endpoint}"
        self.static_tags = tuple(f"endpoint:{self.display_url}" if t == raw_tag else t for t in self.static_tags)
        self.tags = self.static_tags
        # `timeout` bounds the whole response, not each read (see cilium_day2.exposition.body).
        timeout = self.http.options.get("timeout")
        self.deadline_seconds = float(max(timeout) if isinstance(timeout, (tuple, list)) else timeout or 10)
        # Several buckets per call needs datadog-checks-base 38.5+ and an Agent that supports it;
        # older Agents get one call per bucket.
        unsupported_reason = getattr(check, "multiple_histogram_buckets_unsupported_reason", None)
        self.multi_buckets = unsupported_reason is not None and unsupported_reason() is None

        reduce_labels = {}
        if self.component == "hubble":
            extra = tuple(config.get("hubble_include_labels") or ())
            reduce_labels = {family: labels + extra for family, labels in metrics.HUBBLE_BOUNDED_LABELS.items()}
        plans = []
        for family, dd_name in metrics.COMPONENT_MAPS[self.component].items():
            if self._excluded(family):
                continue
            kind = metrics.metric_type(family)
            data = (dd_name, kind == metrics.HISTOGRAM and family in metrics.DISTRIBUTIONS)
            plans.append(FamilyPlan(family, kind, reduce_labels.get(family), data))
        self.reader = ExpositionReader(
            plans, self._on_sample, extra_match=_extra_matcher(config.get("extra_metrics")), on_rows=self._on_rows
        )
        self._buckets = {}

    def _excluded(self, family):
        short = family[: -len("_total")] if family.endswith("_total") else family
        if family in self.exclude_metrics or short in self.exclude_metrics:
            return True
        pattern = self.exclude_metrics_pattern
        return pattern is not None and bool(pattern.search(family) or pattern.search(short))

    # -- one scrape -----------------------------------------------------------------------------
    def _scrape(self):
        self._flush = bool(self.flush_first_value)
        self._buckets = {}
        deadline = body.deadline_after(self.deadline_seconds)
        response = self.get_connection()
        try:
            stats = self.reader.read(body.iter_text(response, deadline, f"{self.deadline_seconds:g}s (`timeout`)"))
        finally:
            response.close()
        self._flush_histograms()
        if self.reader.extra_lines:
            self._submit_extra(self.reader.extra_lines)
        if not stats.lines:
            raise ScrapeError("the response is empty: no metrics (is Cilium serving metrics on this port?)")
        if stats.lines and not stats.recognised:
            raise ScrapeError(f"the response is not a Prometheus exposition ({stats.lines} lines, none parseable)")
        if stats.lines and not stats.kept and not self.reader.extra_lines:
            raise ScrapeError(
                "the response has none of the Cilium families this check collects: is this the "
                f"{self.component} metrics port (agent :9962, operator :9963, Hubble :9965)?"
            )

    def _tags(self, pairs):
        rename = self.rename_labels
        exclude = self.exclude_labels
        tags = [f"{rename.get(k, k)}:{v}" for k, v in pairs if k not in exclude]
        tags.extend(self.tags)
        return tags

    def _on_sample(self, plan, name, pairs, value):
        dd_name, distribution = plan.data
        kind = plan.kind
        if kind == "histogram":
            if name.endswith("_bucket"):
                if distribution:
                    self._add_bucket(dd_name, pairs, value)
                return
            if value != value or value in (INF, -INF):
                return
            suffix = ".sum" if name.endswith("_sum") else ".count" if name.endswith("_count") else None
            if suffix is not None:
                self.check.monotonic_count(dd_name + suffix, value, tags=self._tags(pairs), flush_first_value=self._flush)
            return
        if value != value or value in (INF, -INF):
            return
        if kind == "counter":
            self.check.monotonic_count(dd_name + ".count", value, tags=self._tags(pairs), flush_first_value=self._flush)
        elif plan.family == "cilium_version":
            version = dict(pairs).get("version")
            if version:
                self.check.set_metadata("version", version.lstrip("v"))
            # Cilium leaves this gauge at 0; the version is the tag, so send a presence value.
            self.check.gauge(dd_name, 1, tags=self._tags(pairs))
        else:
            self.check.gauge(dd_name, value, tags=self._tags(pairs))

    def _on_rows(self, plan, name, label_names, rows):
        """A block of gauge or counter samples sharing `label_names` (values last in each row)."""
        if plan.family == "cilium_version":
            for row in rows:
                self._on_sample(plan, name, list(zip(label_names, row)), float(row[-1]))
            return
        dd_name = plan.data[0]
        rename, exclude = self.rename_labels, self.exclude_labels
        keep = [i for i, label in enumerate(label_names) if label not in exclude]
        prefixes = [f"{rename.get(label_names[i], label_names[i])}:" for i in keep]
        static = list(self.tags)
        if plan.kind == "counter":
            submit, dd_name, extra = self.check.monotonic_count, dd_name + ".count", {"flush_first_value": self._flush}
        else:
            submit, extra = self.check.gauge, {}
        whole = len(keep) == len(label_names)
        for row in rows:
            try:
                value = float(row[-1])
            except ValueError:
                stats = self.reader.stats
                stats.malformed += 1
                if stats.first_malformed is None:
                    stats.first_malformed = (None, f"{name} value {row[-1][:40]!r}")
                continue
            if value != value or value in (INF, -INF):
                continue
            if whole:
                tags = [p + v for p, v in zip(prefixes, row)]
            else:
                tags = [p + row[i] for p, i in zip(prefixes, keep)]
            tags += static
            submit(dd_name, value, tags=tags, **extra)

    def _add_bucket(self, dd_name, pairs, value):
        upper = None
        rest = []
        for k, v in pairs:
            if k == "le":
                upper = v
            else:
                rest.append((k, v))
        if upper is None:
            return
        try:
            bound = float(upper)
        except ValueError:
            return
        self._buckets.setdefault((dd_name, tuple(rest)), []).append((bound, value))

    def _flush_histograms(self):
        """Decumulate bucket counts per label set and send them as one distribution each."""
        for (dd_name, pairs), buckets in self._buckets.items():
            buckets.sort()
            tags = self._tags(pairs)
            previous_bound, previous_count = None, 0.0
            for bound, count in buckets:
                lower = (0.0 if bound >= 0 else -INF) if previous_bound is None else previous_bound
                value = count - previous_count
                previous_bound, previous_count = bound, count
                if value != value or lower == bound == -INF:
                    continue
                if self.multi_buckets:
                    self.check.submit_histogram_bucket(
                        dd_name, value, lower, bound, True, None, tags, flush_first_value=self._flush, multiple_buckets=True
                    )
                else:
                    bucket_tags = tags + [f"upper_bound:{_bound_text(bound)}", f"lower_bound:{_bound_text(lower)}"]
                    self.check.submit_histogram_bucket(
                        dd_name, value, lower, bound, True, None, bucket_tags, flush_first_value=self._flush
                    )
        self._buckets = {}

    def _submit_extra(self, lines):
        runtime_data = {"flush_first_value": self._flush, "static_tags": self.static_tags}
        for metric in parse_prometheus(iter(lines)):
            transformer = self.metric_transformer.get(metric)
            if transformer is not None:
                transformer(metric, self.generate_sample_data(metric), runtime_data)

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
        # The text format is UTF-8 by definition; requests would guess Latin-1 for text/plain.
        response.encoding = "utf-8"
        return response

    # -- one run ----------------------------------------------------------------------------------
    def run_once(self):
        """Scrape once; report the component's service check. Returns an error message or None."""
        try:
            self.scrape()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a service check, not a crash
            message = f"{self.component} endpoint {self.display_url}: {describe_failure(exc)}"
            self.service_check(self.SERVICE_CHECK_HEALTH, ServiceCheck.CRITICAL, tags=self.static_tags, message=message)
            return message
        stats = self.reader.stats
        if stats.malformed:
            line_no, text = stats.first_malformed
            where = f"first at line {line_no}" if line_no else "first"
            message = (
                f"{self.component} endpoint {self.display_url}: skipped {stats.malformed} malformed line(s), "
                f"{where}: {text!r}"
            )
            self.service_check(self.SERVICE_CHECK_HEALTH, ServiceCheck.WARNING, tags=self.static_tags, message=message)
            return message
        if stats.duplicates:
            self.log.debug("%s: dropped %d duplicate series", self.display_url, stats.duplicates)
        self.service_check(self.SERVICE_CHECK_HEALTH, ServiceCheck.OK, tags=self.static_tags)
        return None


class InvalidEndpoint:
    """An endpoint option that is not a usable URL: reported CRITICAL on every run, like an
    endpoint that fails when scraped, without stopping the instance's other endpoints."""

    def __init__(self, check, config):
        self.check = check
        self.component = config["cilium_component"]
        self.namespace = check.__NAMESPACE__
        self.message = f"{self.component} endpoint not collected: {config['config_error']}"
        self.static_tags = list(config.get("tags") or []) + [f"cilium_component:{self.component}"]
        self.tags = self.static_tags

    def set_dynamic_tags(self, *tags):
        self.tags = self.static_tags + list(tags)

    def run_once(self):
        self.check.service_check(
            f"{self.component}.openmetrics.health", ServiceCheck.CRITICAL, tags=self.tags, message=self.message
        )
        return self.message


def _bound_text(bound):
    if bound == INF:
        return "inf"
    if bound == -INF:
        return "-inf"
    return repr(bound).removesuffix(".0") if bound == int(bound) else repr(bound)


def describe_failure(exc):
    """One line naming the cause, without URLs (which may carry credentials) or stack frames."""
    if isinstance(exc, ScrapeError):
        return str(exc)
    if isinstance(exc, ValueError) and type(exc) is ValueError:
        # prometheus_client (user `extra_metrics`) raises bare ValueErrors; keep the text short.
        detail = re.sub(r"\s+", " ", str(exc))[:160]
        return f"invalid Prometheus exposition ({detail or 'unparseable line'})"
    return body.describe_failure(exc)


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
