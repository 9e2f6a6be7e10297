"""Instance options -> one scraper configuration per Cilium component.

The check class only turns options into configurations; validation lives here so that a bad
option fails at load time with a message that names it.
"""

import math
import re
from urllib.parse import urlsplit

from datadog_checks.base import ConfigurationError

from cilium_day2 import metrics
from cilium_day2.urls import safe_url

# option name -> (component, default port shown in error messages)
ENDPOINT_OPTIONS = {
    "agent_endpoint": ("agent", 9962),
    "operator_endpoint": ("operator", 9963),
    "hubble_endpoint": ("hubble", 9965),
}

# Histograms are sent as distributions (so monitors can ask for a p99) plus `.sum`/`.count`
# monotonic counts (so QPS is the rate of `.count`). An instance may still override these.
SCRAPER_DEFAULTS = {
    "histogram_buckets_as_distributions": True,
    "collect_counters_with_distributions": True,
    # The check reports one service check per component itself (see scraper.py).
    "enable_health_service_check": False,
}


def validate_endpoint(option, value):
    component, port = ENDPOINT_OPTIONS[option]
    example = f"http://<host>:{port}/metrics"
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"`{option}` must be a URL string such as {example}")
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ConfigurationError(f"`{option}` is not a valid URL ({exc}); expected {example}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"`{option}` must start with http:// or https:// (got {safe_url(value)!r}); expected {example}"
        )
    if not parts.hostname:
        raise ConfigurationError(f"`{option}` has no host (got {safe_url(value)!r}); expected {example}")
    return value


# Longest accepted `timeout`, `connect_timeout`, `read_timeout`: a check run must end well within
# the Agent's collection interval budget.
MAX_TIMEOUT_SECONDS = 300
# Contexts one family may submit per endpoint and run; more are dropped and named (WARNING).
DEFAULT_MAX_CONTEXTS_PER_FAMILY = 20000


def _number_option(instance, option, example, high):
    value = instance.get(option)
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0 or number > high:
        raise ConfigurationError(
            f"`{option}` must be a positive number of seconds at most {high:g} (e.g. {option}: {example}); got {value!r}"
        )
    return number


def _regex_option(option, pattern):
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(
            f"`{option}`: {pattern!r} is not a valid regular expression ({exc}); escape special "
            f"characters with \\ or fix the pattern"
        ) from None


# Options of Datadog's OpenMetrics V2 check that act on each sample inside its generic parser,
# which this check replaces with its own reader: they are not in this check's conf.yaml.example,
# and an instance that sets one (to anything but its default) is refused by name rather than
# silently collected differently. Value: the default, which is accepted.
UNSUPPORTED_OPTIONS = {
    "exclude_metrics_by_labels": {},
    "include_labels": [],
    "hostname_label": "",
    "hostname_format": "",
    "raw_line_filters": [],
    "share_labels": {},
    "cache_shared_labels": True,
    "collect_histogram_buckets": True,
    "non_cumulative_histogram_buckets": False,
    "use_process_start_time": False,
    "ignore_connection_errors": False,
}


def _unsupported(instance):
    for option, default in UNSUPPORTED_OPTIONS.items():
        value = instance.get(option)
        if value is None or value == default or (not value and not default):
            continue
        raise ConfigurationError(
            f"`{option}` is not supported by cilium_day2 (its reader replaces the generic OpenMetrics "
            f"parser that applies it); remove it (see conf.yaml.example for the options this check honours)"
        )


def validate_options(instance):
    """Instance-wide options that every endpoint uses: a bad one fails every endpoint, each with
    a CRITICAL service check naming the option (raises ConfigurationError with that message)."""
    _unsupported(instance)
    for option in ("timeout", "connect_timeout", "read_timeout"):
        _number_option(instance, option, 10, MAX_TIMEOUT_SECONDS)
    limit = instance.get("max_contexts_per_family", DEFAULT_MAX_CONTEXTS_PER_FAMILY)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigurationError(
            f"`max_contexts_per_family` must be a whole number of contexts (0: no limit), e.g. 20000; got {limit!r}"
        )
    extra = instance.get("extra_metrics") or []
    if not isinstance(extra, list):
        raise ConfigurationError("`extra_metrics` must be a list of metric names, regexes or {name: new_name} mappings")
    for entry in extra:
        keys = [entry] if isinstance(entry, str) else list(entry) if isinstance(entry, dict) else None
        if keys is None:
            raise ConfigurationError(
                f"`extra_metrics`: {entry!r} is neither a metric name nor a {{name: new_name}} mapping"
            )
        for key in keys:
            if not isinstance(key, str) or not key:
                raise ConfigurationError(f"`extra_metrics`: {key!r} is not a metric name or regex")
            _regex_option("extra_metrics", key)
    excluded = instance.get("exclude_metrics") or []
    if not isinstance(excluded, list) or not all(isinstance(v, str) for v in excluded):
        raise ConfigurationError("`exclude_metrics` must be a list of metric names or regexes")
    for pattern in excluded:
        _regex_option("exclude_metrics", pattern)


def _list_option(instance, option):
    value = instance.get(option) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"`{option}` must be a list of label names, e.g. [traffic_direction]")
    return value


def metric_config(families):
    """OpenMetrics V2 `metrics` entries for a family map, with declared types.

    Counters are registered both with and without `_total`: the text parser strips the suffix
    from families typed `counter`, but not from ones an exporter mistypes.
    """
    entries = {}
    for family, dd_name in families.items():
        kind = metrics.metric_type(family)
        if family == "cilium_version":
            continue  # handled by a custom transformer (metadata + info gauge)
        entries[family] = {"name": dd_name, "type": kind}
        if kind == metrics.COUNTER and family.endswith("_total"):
            entries[family[: -len("_total")]] = {"name": dd_name, "type": kind}
    return [entries]


def build_scraper_configs(instance):
    """Validate an instance and return one scraper config per configured endpoint.

    An endpoint whose URL is invalid gets a config carrying only `cilium_component` and
    `config_error`: it fails alone, every run, while the instance's valid endpoints are collected
    (as an endpoint that fails at run time would). With no valid endpoint at all, the instance
    itself is misconfigured and this raises."""
    if instance.get("openmetrics_endpoint"):
        raise ConfigurationError(
            "`openmetrics_endpoint` is not used by cilium_day2: use `agent_endpoint`, `operator_endpoint` "
            "and `hubble_endpoint` instead"
        )
    configured = {opt: instance.get(opt) for opt in ENDPOINT_OPTIONS if instance.get(opt) not in (None, "")}
    if not configured:
        raise ConfigurationError(
            "no endpoint configured: set at least one of `agent_endpoint` (http://<host>:9962/metrics), "
            "`operator_endpoint` (:9963) or `hubble_endpoint` (:9965)"
        )
    tags = instance.get("tags") or []
    if not isinstance(tags, list):
        raise ConfigurationError("`tags` must be a list of `key:value` strings")
    rename = instance.get("rename_labels") or {}
    if not isinstance(rename, dict):
        raise ConfigurationError("`rename_labels` must be a mapping of label name to tag name")
    hubble_labels = _list_option(instance, "hubble_include_labels")
    try:
        validate_options(instance)
        option_error = ""
    except ConfigurationError as exc:
        option_error = str(exc)

    configs = []
    errors = []
    for option, url in configured.items():
        component, _ = ENDPOINT_OPTIONS[option]
        if option_error:
            # Reported on every run as each endpoint's CRITICAL service check (and a log line).
            configs.append({"cilium_component": component, "config_error": option_error, "tags": list(tags)})
            continue
        try:
            url = validate_endpoint(option, url)
        except ConfigurationError as exc:
            errors.append(str(exc))
            configs.append({"cilium_component": component, "config_error": str(exc), "tags": list(tags)})
            continue
        config = {k: v for k, v in instance.items() if k not in ENDPOINT_OPTIONS}
        for key, value in SCRAPER_DEFAULTS.items():
            config.setdefault(key, value)
        config.update(
            {
                "openmetrics_endpoint": url,
                "metrics": metric_config(metrics.COMPONENT_MAPS[component]),
                "rename_labels": {**metrics.RENAME_LABELS, **rename},
                "tags": list(tags) + [f"cilium_component:{component}"],
                "cilium_component": component,
                "hubble_include_labels": hubble_labels,
            }
        )
        configs.append(config)
    if errors and len(errors) == len(configs):
        raise ConfigurationError("; ".join(errors))
    return configs
