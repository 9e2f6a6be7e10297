"""Wording and number formats shared by every target, and the Jinja2 environment.

Numbers read the same everywhere: thresholds in docs and monitors, and values in Prometheus
annotations, whose Go templates (`value_template`) have a Python twin here (`format_value`)
that the promtool tests use to write their expectations.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jinja2

from ..catalog import Signal, format_duration

TEMPLATES = Path(__file__).resolve().parent / "templates"

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)
# YAML double-quoted scalars, readable (no HTML-safe escaping of `<`, `>`, `&`).
env.filters["yaml_str"] = lambda v: json.dumps(v, ensure_ascii=False)

UNIT_SUFFIX = {"per_second": "/s", "factor": "x"}


def to_json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def humanize(v: float) -> str:
    """Prometheus' `humanize` template function (SI prefixes, 4 significant digits)."""
    if v == 0 or math.isnan(v) or math.isinf(v):
        return "%.4g" % v
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        v, prefix = _below_one(v)
    return "%.4g%s" % (v, prefix)


def _below_one(v: float):
    """`v` scaled up by thousands until it is at least 1, with the SI prefix that says so."""
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return v, prefix


def humanize_duration(v: float) -> str:
    """Prometheus' `humanizeDuration` template function."""
    if math.isnan(v) or math.isinf(v):
        return "%.4g" % v
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        total = int(abs(v))
        days, hours, minutes, seconds = total // 86400, total // 3600 % 24, total // 60 % 60, total % 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return "%s%.4gs" % (sign, abs(v))
    v, prefix = _below_one(v)
    return "%.4g%ss" % (v, prefix)


def plain(v: float) -> str:
    """Four significant digits, with an SI prefix from a thousand up: `0.1`, `950`, `54k`
    (never `5.4e+04`, and no `100m` for a tenth)."""
    return humanize(v) if abs(v) >= 1000 else "%.4g" % v


def format_value(unit: str, value: float) -> str:
    """A value or threshold in its unit, exactly as `value_template` prints it."""
    if unit == "ratio":
        return "%.4g%%" % (value * 100)  # humanizePercentage
    if unit == "seconds":
        return humanize_duration(value)
    return plain(value) + UNIT_SUFFIX.get(unit, "")


def format_threshold(unit: str, value: float) -> str:
    """A threshold for people: like `format_value`, with whole seconds as durations (`5m`)."""
    if unit == "seconds" and value >= 1 and value == int(value):
        return format_duration(int(value))
    return format_value(unit, value)


def value_template(unit: str, var: str = "$value") -> str:
    """The Go template printing `var` like `format_value`."""
    if unit == "ratio":
        return f"{{{{ {var} | humanizePercentage }}}}"
    if unit == "seconds":
        return f"{{{{ {var} | humanizeDuration }}}}"
    number = (f"{{{{ if ge {var} 1000.0 }}}}{{{{ {var} | humanize }}}}"
              f"{{{{ else }}}}{{{{ printf \"%.4g\" {var} }}}}{{{{ end }}}}")
    return number + UNIT_SUFFIX.get(unit, "")


def comparison_text(signal: Signal) -> str:
    return "above" if signal.comparison == ">" else "below"


def threshold_text(signal: Signal, value) -> str:
    """`> 80%`, `< 32`, or a dash when the severity is not set."""
    if value is None:
        return "-"
    return f"{signal.comparison} {format_threshold(signal.unit, value)}"


def runbook_url(signal: Signal, settings) -> str:
    """The signal's runbook link, or "" when the user gave no `runbook_base_url`."""
    return f"{settings.runbook_base_url}#{signal.id}" if settings.runbook_base_url else ""
