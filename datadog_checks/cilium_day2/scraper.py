"""The per-endpoint scraper: filtered parsing, one service check per component, clear failures."""

import re
from operator import add

from prometheus_client.parser import text_fd_to_metric_families as parse_prometheus
from requests.exceptions import HTTPError

from datadog_checks.base.agent import aggregator as agent_aggregator
from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsScraper
from datadog_checks.base.constants import ServiceCheck

from cilium_day2 import metrics
from cilium_day2.exposition import body
from cilium_day2.exposition.reader import ExpositionReader, FamilyPlan, looks_like_exposition
from cilium_day2.urls import safe_url

from .config import DEFAULT_MAX_CONTEXTS_PER_FAMILY

INF = float("inf")
NAN = float("nan")
GAUGE, MONOTONIC_COUNT = agent_aggregator.GAUGE, agent_aggregator.MONOTONIC_COUNT


def _ignore(*args):
    """A metric that the instance's `metric_patterns` filter out."""


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
        limit = config.get("max_contexts_per_family", DEFAULT_MAX_CONTEXTS_PER_FAMILY)
        self.max_contexts = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 0
        self._contexts = {}  # (family, sample name) -> contexts submitted this run
        self._capped = {}  # family -> contexts dropped this run
        self._pending = []  # (submit, args, kwargs) of this run, sent once the body is complete

    def _admit(self, family, name, count=1):
        """How many of `count` new contexts of a family may still be submitted this run."""
        if not self.max_contexts:
            return count
        key = (family, name)
        used = self._contexts.get(key, 0)
        allowed = max(0, min(count, self.max_contexts - used))
        self._contexts[key] = used + allowed
        if allowed < count:
            self._capped[family] = self._capped.get(family, 0) + count - allowed
        return allowed

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
        self._contexts, self._capped = {}, {}
        # Submissions wait until the whole body is read: a body cut off mid-line fails the scrape
        # as Prometheus fails it, and nothing of it is sent.
        self._pending = []
        deadline = body.deadline_after(self.deadline_seconds)
        response = self.get_connection()
        try:
            stats = self.reader.read(body.iter_text(response, deadline, f"{self.deadline_seconds:g}s (`timeout`)"))
        finally:
            response.close()
        if stats.unterminated and (stats.recognised or looks_like_exposition(stats.unterminated)):
            # Cut off mid-line: Prometheus fails the scrape, and so does the check (its
            # histograms and extra metrics are not sent; see docs/limits.md).
            self._buckets, self._pending = {}, []
            raise ScrapeError(
                f"the response ends inside a line ({stats.unterminated!r} has no newline): a truncated body"
            )
        pending, self._pending = self._pending, []
        for submit, args, kwargs in pending:
            submit(*args, **kwargs)
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
            if suffix is not None and self._admit(plan.family, name):
                self._pending.append((self.check.monotonic_count, (dd_name + suffix, value),
                                      {"tags": self._tags(pairs), "flush_first_value": self._flush}))
            return
        if value != value or value in (INF, -INF):
            return
        if not self._admit(plan.family, name):
            return
        if kind == "counter":
            self._pending.append((self.check.monotonic_count, (dd_name + ".count", value),
                                  {"tags": self._tags(pairs), "flush_first_value": self._flush}))
        elif plan.family == "cilium_version":
            version = dict(pairs).get("version")
            if version:
                self._pending.append((self.check.set_metadata, ("version", version.lstrip("v")), {}))
            # Cilium leaves this gauge at 0; the version is the tag, so send a presence value.
            self._pending.append((self.check.gauge, (dd_name, 1), {"tags": self._tags(pairs)}))
        else:
            self._pending.append((self.check.gauge, (dd_name, value), {"tags": self._tags(pairs)}))

    def _on_rows(self, plan, name, label_names, rows):
        """A block of samples of one family sharing `label_names` (values last in each row)."""
        if plan.family == "cilium_version":
            for row in rows:
                self._on_sample(plan, name, list(zip(label_names, row)), float(row[-1]))
            return
        dd_name, distribution = plan.data
        if plan.kind == "histogram":
            if name.endswith("_bucket"):
                if distribution:
                    self._add_bucket_rows(dd_name, label_names, rows)
                return
            suffix = ".sum" if name.endswith("_sum") else ".count" if name.endswith("_count") else None
            if suffix is None:
                return
            emit = self._emitter(MONOTONIC_COUNT, dd_name + suffix)
        elif plan.kind == "counter":
            emit = self._emitter(MONOTONIC_COUNT, dd_name + ".count")
        else:
            emit = self._emitter(GAUGE, dd_name)
        allowed = self._admit(plan.family, name, len(rows))
        if allowed < len(rows):
            rows = rows[:allowed]
        rename, exclude = self.rename_labels, self.exclude_labels
        keep = [i for i, label in enumerate(label_names) if label not in exclude]
        prefixes = [f"{rename.get(label_names[i], label_names[i])}:" for i in keep]
        static = list(self.tags)
        whole = len(keep) == len(label_names)
        batch = []
        for row in rows:
            try:
                value = float(row[-1])
            except ValueError:
                self._malformed_value(name, row[-1])
                continue
            if value - value != 0.0:
                continue  # NaN or an infinity
            # `map` stops at the shorter: the prefixes, one per label, not the value.
            tags = list(map(add, prefixes, row)) if whole else [p + row[i] for p, i in zip(prefixes, keep)]
            tags += static
            batch.append((value, tags))
        if batch:
            self._pending.append((_emit_all, (emit, batch), {}))

    def _direct(self):
        """The aggregator to submit to directly, or None when the base class must see every sample.

        The tags built here are already what the base class's `gauge`/`monotonic_count` would
        send (text, one list per series), so for the bulk of a scrape its per-sample work (tag
        normalisation, namespacing, the metric filter) is done once per family instead. Whenever
        a base feature acts per sample (a `max_returned_metrics` limit, generic tags renamed by
        `disable_generic_tags`), samples go through the base class as usual."""
        check = self.check
        if check.metric_limiter is not None or check.disable_generic_tags:
            return None
        # The aggregator the base class would use (a discovery probe's proxy on recent bases).
        return check._aggregator() if hasattr(check, "_aggregator") else agent_aggregator

    def _emitter(self, mtype, dd_name):
        """`emit(value, tags)` for the samples of one metric name."""
        check, flush = self.check, self._flush and mtype == MONOTONIC_COUNT
        direct = self._direct()
        if direct is None:
            if mtype == GAUGE:
                return lambda value, tags: check.gauge(dd_name, value, tags=tags)
            return lambda value, tags: check.monotonic_count(dd_name, value, tags=tags, flush_first_value=flush)
        name = check._format_namespace(dd_name)
        if not check.should_send_metric(name):
            return _ignore
        submit, check_id = direct.submit_metric, check.check_id
        return lambda value, tags: submit(check, check_id, mtype, name, value, tags, "", flush)

    def _malformed_value(self, name, text):
        stats = self.reader.stats
        stats.malformed += 1
        if stats.first_malformed is None:
            stats.first_malformed = (None, f"{name} value {text[:40]!r}")

    def _add_bucket_rows(self, dd_name, label_names, rows):
        """The `_bucket` rows of a block, gathered per label set as `_add_bucket` does per line."""
        if "le" not in label_names:
            return
        at = label_names.index("le")
        rest_names = label_names[:at] + label_names[at + 1 :]
        le_last = at == len(label_names) - 1  # as client_golang writes it
        buckets = self._buckets
        targets = {}  # label values -> that series' bucket list, found once per series
        for row in rows:
            try:
                value = float(row[-1])
            except ValueError:
                self._malformed_value(dd_name, row[-1])
                continue
            try:
                bound = float(row[at])
            except ValueError:
                bound = NAN  # refused with its series in _flush_histograms
            key = row[:at] if le_last else row[:at] + row[at + 1 : -1]
            target = targets.get(key)
            if target is None:
                target = targets[key] = buckets.setdefault((dd_name, tuple(zip(rest_names, key))), [])
            target.append((bound, value))

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
            bound = NAN  # refused with its series in _flush_histograms
        self._buckets.setdefault((dd_name, tuple(rest)), []).append((bound, value))

    def _flush_histograms(self):
        """Decumulate bucket counts per label set and send them as one distribution each."""
        direct = self._direct()
        for (dd_name, pairs), buckets in self._buckets.items():
            problem = _bucket_problem(buckets)
            if problem:
                # Dropped and counted (the service check is WARNING), never submitted.
                stats = self.reader.stats
                stats.malformed += 1
                if stats.first_malformed is None:
                    stats.first_malformed = (None, f"histogram {dd_name}: {problem}")
                continue
            if not self._admit(dd_name, "_bucket"):
                continue
            buckets.sort()
            tags = self._tags(pairs)
            submit = self._bucket_submitter(direct, dd_name)
            previous_bound, previous_count = None, 0.0
            for bound, count in buckets:
                lower = (0.0 if bound >= 0 else -INF) if previous_bound is None else previous_bound
                value = count - previous_count
                previous_bound, previous_count = bound, count
                if value != value or lower == bound == -INF:
                    continue
                submit(value, lower, bound, tags)
        self._buckets = {}

    def _bucket_submitter(self, direct, dd_name):
        """`submit(count, lower, upper, tags)` for one bucket of a distribution."""
        check, flush, multi = self.check, self._flush, self.multi_buckets
        if direct is None:
            if multi:
                return lambda value, lower, upper, tags: check.submit_histogram_bucket(
                    dd_name, value, lower, upper, True, None, tags, flush_first_value=flush, multiple_buckets=True
                )
            return lambda value, lower, upper, tags: check.submit_histogram_bucket(
                dd_name, value, lower, upper, True, None,
                tags + [f"upper_bound:{_bound_text(upper)}", f"lower_bound:{_bound_text(lower)}"], flush_first_value=flush,
            )
        name = check._format_namespace(dd_name)
        check_id = check.check_id
        if multi:
            send = direct.submit_histogram_bucket_multi
            return lambda value, lower, upper, tags: send(
                check, check_id, name, int(value), lower, upper, True, "", tags, flush
            )
        send = direct.submit_histogram_bucket
        return lambda value, lower, upper, tags: send(
            check, check_id, name, int(value), lower, upper, True, "",
            tags + [f"upper_bound:{_bound_text(upper)}", f"lower_bound:{_bound_text(lower)}"], flush,
        )

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
        if self._capped:
            family, dropped = sorted(self._capped.items(), key=lambda kv: -kv[1])[0]
            message = (
                f"{self.component} endpoint {self.display_url}: {family} has more than {self.max_contexts} contexts; "
                f"dropped {dropped} (raise `max_contexts_per_family`, or exclude the family or its labels)"
                + (f"; {len(self._capped) - 1} more families capped" if len(self._capped) > 1 else "")
            )
            self.service_check(self.SERVICE_CHECK_HEALTH, ServiceCheck.WARNING, tags=self.static_tags, message=message)
            return message
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


def _emit_all(emit, batch):
    for value, tags in batch:
        emit(value, tags)


def _bucket_problem(buckets):
    """Why a series' (upper bound, cumulative count) buckets cannot be submitted, or ""."""
    for bound, count in buckets:
        if bound != bound:
            return "`le` is not a number"
        if count != count or count in (INF, -INF):
            return f"a bucket count is {count}"
        if count < 0:
            return f"a bucket count is negative ({count:g})"
    ordered = sorted(buckets)
    for (b1, c1), (b2, c2) in zip(ordered, ordered[1:]):
        if c2 < c1:
            return f"cumulative counts decrease (le {b1:g}: {c1:g}, le {b2:g}: {c2:g})"
    return ""


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
