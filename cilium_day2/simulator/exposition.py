"""A small writer for the Prometheus text exposition format (version 0.0.4).

String building only: a scrape of a simulated agent is a few hundred lines and is rendered on
every request, so this stays cheap and does not go through a client library's registry.
"""

import math

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_LABELS = {}


def format_labels(labels):
    """labels: a tuple of (name, value) pairs. Cached: a simulated endpoint writes the same few
    hundred label sets on every scrape."""
    try:
        text = _LABELS.get(labels)
    except TypeError:  # a list: not cached
        labels, text = tuple(labels), None
    if text is None:
        text = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}" if labels else ""
        if len(_LABELS) < 200000:
            _LABELS[labels] = text
    return text


def format_value(value):
    if value != value:  # NaN
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Collects families in the order they are declared and renders them as text."""

    def __init__(self):
        self._lines = []
        self._declared = set()

    def family(self, name, kind, help_text):
        if name in self._declared:
            return
        self._declared.add(name)
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name, labels, value):
        """labels: a tuple of (name, value) pairs, in the order they should be written."""
        self._lines.append(f"{name}{format_labels(labels)} {format_value(value)}")

    def write_histogram(self, name, labels, cumulative, total_sum):
        """cumulative: list of (upper bound, cumulative count), the last bound being +Inf."""
        for le, count in cumulative:
            self._lines.append(
                f"{name}_bucket{format_labels(tuple(labels) + (('le', format_value(le)),))} {format_value(count)}"
            )
        self._lines.append(f"{name}_sum{format_labels(labels)} {format_value(total_sum)}")
        self._lines.append(f"{name}_count{format_labels(labels)} {format_value(cumulative[-1][1])}")

    def text(self):
        return "\n".join(self._lines) + "\n"
