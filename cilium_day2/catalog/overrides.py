"""The `--values` file shared by `render`, `doctor` and `lint-config`.

    settings:                    # names and switches, see cilium_day2.catalog.Settings
      cluster_label: cluster     # Prometheus label holding the cluster name
      node_label: node           # Prometheus label holding the node name
      cluster_tag: kube_cluster_name   # Datadog tag holding the cluster name
      node_tag: host             # Datadog tag holding the node name
      runbook_base_url: https://example.com/cilium-day2/signals.md   # default: none
      max_rules_per_group: 20    # Prometheus rule groups are split above this size
      scrape_interval: 15s       # how often Prometheus scrapes Cilium (no group runs more often)
      rule_intervals: {0s: 2m, 15m: 5m, 30m: 10m}   # time to fire (window + for) at least -> group interval
      rule_labels: {release: kube-prometheus-stack}   # the PrometheusRule's metadata.labels
      rule_namespace: monitoring # the PrometheusRule's metadata.namespace
      alert_labels: {team: network}   # static labels on every alert
      cloud_apis: [ec2]          # which cloud API families Prometheus rules watch
      datadog_cloud_api: ec2     # the one Datadog monitors watch
    signals:
      bpf_map_pressure: {warning: 0.7, critical: 0.9, for: 15m}
      kvstore_quorum_errors: {keep_firing_for: 1h}
      kvstore_qps: {enabled: true, warning: 500, critical: 800}
      version_skew: {enabled: false}
    lint: {...}                  # belongs to lint-config; accepted and ignored here

Every problem raises `UserError` with one line naming the key, what is wrong and the valid
choices. Nothing is half-applied: validation finishes before anything is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Union

from .model import (
    SETTINGS_FIELDS, Catalog, Settings, check_hold, check_quantile_thresholds, check_thresholds, format_duration, parse_duration,
)
from ..errors import UserError
from ..userfiles import MAX_VALUES_BYTES, load_yaml, read_text
from .matchers import parse_matchers
from .query import CLOUD_APIS, Match, Outlier, Ratio, RootQuery, with_match

TOP_LEVEL_KEYS = ("settings", "signals", "lint")
SIGNAL_KEYS = ("enabled", "warning", "critical", "window", "for", "keep_firing_for")
# Labels every rendered alert sets itself: `alert_labels` may not replace them.
RESERVED_ALERT_LABELS = ("alertname", "severity", "area", "signal")
# Prometheus label names (ASCII only), and Datadog tag keys. `\Z`, not `$`: no trailing newline.
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TAG_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_.\-/]*\Z")
# Kubernetes label keys (optional DNS prefix, then a name of at most 63 characters) and values.
_K8S_LABEL_KEY_RE = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z"
)
_K8S_LABEL_VALUE_RE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\Z")
_K8S_NAMESPACE_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\Z")


@dataclass
class Values:
    """A validated values file: only what the user set."""

    settings: Dict[str, Any] = field(default_factory=dict)
    signals: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    source: str = "values"


def _fail(source, key, problem):
    raise UserError(f"{source}: `{key}`: {problem}")


def _hint(name, choices):
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _read(values, source):
    if isinstance(values, (str, Path)):
        source = str(values)
        values = load_yaml(read_text(Path(values), source, MAX_VALUES_BYTES), source)
        if values is None:
            values = {}
    if not isinstance(values, Mapping):
        raise UserError(f"{source}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    return values, source


def _label_mapping(source, key, value, name_ok, value_ok, what):
    """A mapping of label name to value, as sorted (name, value) pairs."""
    if not isinstance(value, Mapping):
        _fail(source, key, f"expected a mapping of label name to value, got {value!r}")
    pairs = []
    for name, val in value.items():
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            _fail(source, f"{key}.{name}", f"expected a string value, got {val!r}")
        val = str(val)
        if not isinstance(name, str) or not name_ok(name):
            _fail(source, f"{key}.{name}", f"`{name}` is not a valid {what} label name")
        if not value_ok(val):
            _fail(source, f"{key}.{name}", f"`{val}` is not a valid {what} label value")
        pairs.append((name, val))
    return tuple(sorted(pairs))


# Longest evaluation interval a rule group may have: a slower group would leave alerts an hour late.
MAX_RULE_INTERVAL = 3600


def _setting(source, name, value):
    key = f"settings.{name}"
    default = getattr(Settings(), name)
    if name == "rule_labels":
        return _label_mapping(source, key, value, _K8S_LABEL_KEY_RE.match, _K8S_LABEL_VALUE_RE.match, "Kubernetes")
    if name == "alert_labels":
        pairs = _label_mapping(source, key, value, lambda n: LABEL_NAME_RE.match(n) and not n.startswith("__"),
                               lambda v: True, "Prometheus")
        for label, _ in pairs:
            if label in RESERVED_ALERT_LABELS:
                _fail(source, f"{key}.{label}", f"every alert sets `{label}` itself; choose another label name")
        return pairs
    if name == "rule_namespace":
        if not isinstance(value, str) or not _K8S_NAMESPACE_RE.match(value):
            _fail(source, key, f"expected a Kubernetes namespace name (lowercase letters, digits, `-`), got {value!r}")
        return value
    if name == "runbook_base_url":
        if not isinstance(value, str) or not re.match(r"^https?://\S+$", value):
            _fail(source, key, f"expected an http(s) URL (each signal adds `#<signal id>`), got {value!r}")
        return value
    if name.endswith("_selector"):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ", ".join(value)
        return parse_matchers(value, f"{source}: `{key}`")
    if name == "replica_labels":
        if not isinstance(value, list) or not all(isinstance(v, str) and LABEL_NAME_RE.match(v) for v in value):
            _fail(source, key, f"expected a list of Prometheus label names (or [] when no HA pair is read), got {value!r}")
        return tuple(value)
    if name == "scrape_interval":
        return _duration_setting(source, key, value, 1)
    if name == "rule_intervals":
        if not isinstance(value, Mapping) or not value:
            _fail(source, key, f"expected a mapping of window to interval such as {{0s: 1m, 30m: 5m}}, got {value!r}")
        tiers = {}
        for at, interval in value.items():
            at_s = _duration_setting(source, f"{key}.{at}", at, 0, MAX_DURATION_SECONDS)
            tiers[at_s] = _duration_setting(source, f"{key}.{at}", interval, 1)
        if 0 not in tiers:
            _fail(source, key, "add an entry for 0s (the interval of the shortest windows)")
        ordered = sorted(tiers.items())
        for (at1, iv1), (at2, iv2) in zip(ordered, ordered[1:]):
            if iv2 < iv1:
                _fail(source, f"{key}.{format_duration(at2)}",
                      f"{format_duration(iv2)} is shorter than the {format_duration(iv1)} of the shorter windows from "
                      f"{format_duration(at1)}; longer windows are evaluated at least as seldom")
        return tuple(ordered)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            _fail(source, key, f"expected a non-empty list of names, got {value!r}")
        if name == "cloud_apis":
            bad = [v for v in value if v not in CLOUD_APIS]
            if bad:
                _fail(source, key, f"`{bad[0]}` is not one of {', '.join(CLOUD_APIS)}")
        if name == "shard_by_cluster":
            # Each cluster names a copy of every rule group; Prometheus refuses two groups of one name.
            seen = {}
            for v in value:
                slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", v)
                if slug in seen:
                    _fail(source, key, f"`{v}` and `{seen[slug]}` give the same rule group names; list each cluster once")
                seen[slug] = v
        return tuple(value)
    if isinstance(default, bool) or isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            _fail(source, key, f"expected a positive integer, got {value!r}")
        return value
    if not isinstance(value, str) or not value.strip():
        _fail(source, key, f"expected a non-empty string, got {value!r}")
    if name == "datadog_cloud_api" and value not in CLOUD_APIS:
        _fail(source, key, f"`{value}` is not one of {', '.join(CLOUD_APIS)}")
    if name.endswith("_label") and not LABEL_NAME_RE.match(value):
        _fail(source, key, f"`{value}` is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    if name.endswith("_tag") and not TAG_NAME_RE.match(value):
        _fail(source, key, f"`{value}` is not a Datadog tag name (a letter, then letters, digits, _ - . /)")
    return value


def _duration_setting(source, key, value, minimum, limit=MAX_RULE_INTERVAL):
    """A duration setting in seconds (`30s`, `5m`), from `minimum` to `limit`."""
    try:
        seconds = parse_duration(value, key)
    except UserError:
        _fail(source, key, f"expected a duration such as 30s, 1m or 5m, got {value!r}")
    if seconds < minimum:
        _fail(source, key, f"expected a duration of at least {format_duration(minimum)}, got {value!r}")
    if seconds > limit:
        _fail(source, key, f"{format_duration(seconds)} is longer than the limit of {format_duration(limit)}")
    return seconds


def check_rule_intervals(source, settings: Settings):
    """Rule groups are evaluated no more often than the targets are scraped."""
    fastest = min(iv for _, iv in settings.rule_intervals)
    if fastest < settings.scrape_interval:
        _fail(source, "settings.rule_intervals",
              f"{format_duration(fastest)} is shorter than settings.scrape_interval "
              f"({format_duration(settings.scrape_interval)}): an evaluation between two scrapes sees the same "
              f"samples; use at least {format_duration(settings.scrape_interval)}")


def load_values(values: Union[str, Path, Mapping, None], catalog: Catalog) -> Values:
    """Read and validate a values file (path or parsed mapping) against the catalog."""
    if values is None:
        return Values()
    if isinstance(values, Values):
        return values
    data, source = _read(values, "values")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            _fail(source, key, f"unknown key{_hint(str(key), TOP_LEVEL_KEYS)}; valid keys: {', '.join(TOP_LEVEL_KEYS)}")
    out = Values(source=source)

    settings = data.get("settings") or {}
    if not isinstance(settings, Mapping):
        _fail(source, "settings", "expected a mapping")
    for name, value in settings.items():
        if name not in SETTINGS_FIELDS:
            _fail(source, f"settings.{name}",
                  f"unknown setting{_hint(str(name), list(SETTINGS_FIELDS))}; valid settings: {', '.join(SETTINGS_FIELDS)}")
        out.settings[name] = _setting(source, name, value)
    if "rule_intervals" in out.settings or "scrape_interval" in out.settings:
        check_rule_intervals(source, dataclasses.replace(Settings(), **out.settings))

    signals = data.get("signals") or {}
    if not isinstance(signals, Mapping):
        _fail(source, "signals", "expected a mapping of signal id to overrides")
    ids = catalog.ids()
    for sid, spec in signals.items():
        if sid not in ids:
            _fail(source, f"signals.{sid}", f"unknown signal id{_hint(str(sid), ids)}; valid ids: {', '.join(ids)}")
        signal = catalog.signal(sid)
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            _fail(source, f"signals.{sid}", f"expected a mapping with keys {', '.join(SIGNAL_KEYS)}")
        allowed = list(SIGNAL_KEYS) + list(signal.params())
        checked = {}
        for key, value in spec.items():
            full = f"signals.{sid}.{key}"
            if key not in allowed:
                _fail(source, full, f"unknown key{_hint(str(key), allowed)}; valid keys: {', '.join(allowed)}")
            if key == "enabled":
                if not isinstance(value, bool):
                    _fail(source, full, f"expected true or false, got {value!r}")
            elif key in ("warning", "critical"):
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                          or not math.isfinite(value)):
                    _fail(source, full, f"expected a finite number (or null to drop this severity), got {value!r}")
                value = None if value is None else float(value)
            elif key in ("window", "for", "keep_firing_for"):
                try:
                    value = parse_duration(value, full)
                except UserError:
                    _fail(source, full, f"expected a duration such as 30s, 5m or 1h, got {value!r}")
                if key == "window" and value <= 0:
                    _fail(source, full, "the window must be longer than 0s")
            else:  # signal-specific numeric parameter
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                    _fail(source, full, f"expected a finite non-negative number, got {value!r}")
                value = float(value)
            checked[key] = value
        warning = checked.get("warning", signal.warning)
        critical = checked.get("critical", signal.critical)
        try:
            check_hold(f"signals.{sid}", checked.get("for", signal.hold),
                       checked.get("keep_firing_for", signal.keep_firing_for))
            check_thresholds(f"signals.{sid}", warning, critical, signal.comparison)
            check_quantile_thresholds(f"signals.{sid}", signal.query, warning, critical)
        except UserError as exc:
            raise UserError(f"{source}: {exc}")
        out.signals[sid] = checked
    check_rendered_safety(source, out, catalog)
    return out


# --- what would render broken, or different from what was written -------------------------------
# Kept apart from the per-key parsing above: each function refuses one class of value, naming
# the key and the fix.

# Longest window, `for` and `keep_firing_for` accepted: a week. Longer windows make every rule
# evaluation read weeks of samples, and no Day-2 signal needs them.
MAX_DURATION_SECONDS = 7 * 24 * 3600
# Upper bounds of integer settings (seconds; rules).
MAX_SETTING = {"datadog_check_interval": 3600, "max_rules_per_group": 1000}
# The domain of a threshold, by the signal's unit: (lowest, highest) allowed.
UNIT_DOMAINS = {
    "ratio": (0.0, 1.0),
    "bool": (0.0, 1.0),
    "count": (0.0, math.inf),
    "per_second": (0.0, math.inf),
    "seconds": (0.0, math.inf),
    "factor": (0.0, math.inf),
}
# Regex syntax Python accepts and RE2 (Prometheus, Alertmanager) does not.
_NOT_RE2 = (
    (re.compile(r"\(?[=!<>]|\(\?<[=!]"), "lookaround or atomic groups"),
    (re.compile(r"\\[1-9]|\(\?P="), "backreferences"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers"),
    (re.compile(r"\\Z"), "\\Z (RE2 writes \\z)"),
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _no_template(source, key, value):
    """Prometheus and Alertmanager expand `{{ }}` in labels and annotations, Datadog in monitor
    messages: such a value would not stay as written."""
    if "{{" in value or "}}" in value:
        _fail(source, key, f"{value!r} contains template syntax ({{{{ or }}}}), which alerting tools would expand; "
                           "remove the braces")
    if _CONTROL_RE.search(value):
        _fail(source, key, f"{value!r} contains a control character (a newline?); write it on one line")


def check_re2(source, key, pattern):
    """A job regex must compile in RE2, as Prometheus compiles it (anchored)."""
    if _CONTROL_RE.search(pattern):
        _fail(source, key, f"{pattern!r} contains a control character; write the regex on one line")
    try:
        re.compile(pattern)
    except re.error as exc:
        _fail(source, key, f"{pattern!r} is not a valid regular expression ({exc}); escape special characters with \\")
    for bad, what in _NOT_RE2:
        if bad.search(pattern):
            _fail(source, key, f"{pattern!r} uses {what}, which Prometheus' regex engine (RE2) does not support")
    for count in re.findall(r"\{(\d+)(?:,(\d*))?\}", pattern):
        if any(n and int(n) > 1000 for n in count):
            _fail(source, key, f"{pattern!r} repeats more than 1000 times, which RE2 refuses")


def _check_threshold_domain(source, sid, signal, key, value):
    low, high = UNIT_DOMAINS.get(signal.unit, (-math.inf, math.inf))
    if value is not None and not low <= value <= high:
        what = "a ratio between 0 and 1" if high == 1.0 else f"a {signal.unit.replace('_', ' ')} value of at least 0"
        _fail(source, f"signals.{sid}.{key}", f"{value:g} is outside the domain of this signal: it is {what}")


def check_rendered_safety(source, values, catalog):
    for name, value in values.settings.items():
        key = f"settings.{name}"
        if name in MAX_SETTING and value > MAX_SETTING[name]:
            _fail(source, key, f"{value} is above the limit of {MAX_SETTING[name]}; choose a smaller value")
        if name.endswith("_job"):
            check_re2(source, key, value)
        elif name == "alert_labels":
            for label, val in value:
                _no_template(source, f"{key}.{label}", val)
        elif name == "runbook_base_url":
            _no_template(source, key, value)
        elif name == "shard_by_cluster":
            for cluster in value:
                _no_template(source, key, cluster)
    for sid, spec in values.signals.items():
        signal = catalog.signal(sid)
        for key in ("warning", "critical"):
            if key in spec:
                _check_threshold_domain(source, sid, signal, key, spec[key])
        for key in ("window", "for", "keep_firing_for"):
            if key in spec and spec[key] > MAX_DURATION_SECONDS:
                _fail(source, f"signals.{sid}.{key}",
                      f"{format_duration(spec[key])} is longer than the limit of 7d; choose a shorter duration")


def _with_params(query: RootQuery, params: Dict[str, float]) -> RootQuery:
    expr = query.expr
    if "min_baseline" in params and isinstance(expr, Outlier):
        expr = dataclasses.replace(expr, min_baseline=params["min_baseline"])
    if "min_value" in params and isinstance(expr, Outlier):
        expr = dataclasses.replace(expr, min_value=params["min_value"])
    if "min_den" in params and isinstance(expr, Ratio):
        expr = dataclasses.replace(expr, min_den=params["min_den"])
    return dataclasses.replace(query, expr=expr)


# Settings that scope the signals grouped by a label to the listed values of that label.
SCOPE_SETTINGS = {"ipam_subnet_ids": "subnet_id", "ipam_availability_zones": "availability_zone"}


def _scoped(query: RootQuery, group_by, settings: Settings) -> RootQuery:
    """The query of a signal grouped by a scoped label, reading only the listed values."""
    expr = query.expr
    for name, label in SCOPE_SETTINGS.items():
        values = getattr(settings, name)
        if values and label in group_by:
            expr = with_match(expr, Match(label, "in", tuple(values)))
    return dataclasses.replace(query, expr=expr)


def apply_values(catalog: Catalog, values: Values) -> Catalog:
    """A new catalog with validated values applied (the input catalog is not modified)."""
    settings = dataclasses.replace(catalog.settings, **values.settings)
    signals = []
    for s in catalog.signals:
        if any(getattr(settings, name) for name in SCOPE_SETTINGS):
            s = dataclasses.replace(s, query=_scoped(s.query, s.group_by, settings))
        spec = values.signals.get(s.id)
        if spec:
            changes = {}
            for key in ("enabled", "warning", "critical", "window", "keep_firing_for"):
                if key in spec:
                    changes[key] = spec[key]
            if "for" in spec:
                changes["hold"] = spec["for"]
            params = {k: v for k, v in spec.items() if k not in SIGNAL_KEYS}
            if params:
                changes["query"] = _with_params(s.query, params)
            s = dataclasses.replace(s, **changes)
        signals.append(s)
    return Catalog(settings, list(catalog.areas), signals)


def describe_defaults(catalog: Catalog):
    """(id, warning, critical, window, for, enabled) rows, for tables and reports."""
    for s in catalog.signals:
        yield s.id, s.warning, s.critical, format_duration(s.window), format_duration(s.hold), s.enabled
