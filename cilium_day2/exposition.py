"""A line-level filter in front of the Prometheus text parser.

A Cilium scrape is mostly families the check does not submit (Go runtime, per-policy details,
Hubble context series). Parsing those into objects is where a stock OpenMetrics check spends its
CPU, so this filter decides per line, with one dict lookup on the metric name, whether the line
reaches the parser at all. On the lines it keeps it also:

* drops exact duplicate series (some exporters and captures repeat them; a monotonic count sent
  twice in one run would be read by the Agent as a reset);
* skips malformed sample lines instead of failing the whole endpoint, counting them;
* sums away unbounded labels of the families listed in `reduce` (Hubble context labels), so a
  node sends one series per bounded label set however many workloads it runs.
"""

import re

# name{labels} value [timestamp]
SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(\{(?:\s*[a-zA-Z_][a-zA-Z0-9_]*\s*=\s*"(?:[^"\\]|\\.)*"\s*,?)*\s*\})?'
    r'[ \t]+(\S+)(?:[ \t]+-?[0-9]+)?[ \t]*$'
)
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class ExpositionStats:
    __slots__ = ("lines", "kept", "malformed", "duplicates", "first_malformed", "reduced_in", "reduced_out", "recognised")

    def __init__(self):
        self.lines = 0
        self.kept = 0
        self.malformed = 0
        self.duplicates = 0
        self.first_malformed = None
        self.reduced_in = 0
        self.reduced_out = 0
        # Lines that look like an exposition at all (comments, kept samples): zero of them in a
        # non-empty body means the endpoint did not serve Prometheus metrics.
        self.recognised = 0


def sample_names(family, kind):
    """Sample names a family can appear under, and the family name the parser will give it."""
    if kind == "histogram":
        # The bare name is the one in HELP/TYPE lines.
        return [family] + [family + suffix for suffix in HISTOGRAM_SUFFIXES]
    if kind == "counter":
        if family.endswith("_total"):
            return [family, family[: -len("_total")]]
        return [family, family + "_total"]
    return [family]


class ExpositionFilter:
    """Filters an iterable of exposition lines. One instance per scraper; `stats` per run."""

    def __init__(self, families, reduce=None, extra_match=None):
        """
        families: {family: kind} of the families to keep ("gauge", "counter", "histogram").
        reduce: {family: tuple of label names to keep}; other labels are summed away.
        extra_match: optional callable(name) -> bool for user-added families (extra_metrics).
        """
        self.keep = {}  # sample or TYPE/HELP name -> family
        for family, kind in families.items():
            for name in sample_names(family, kind):
                self.keep[name] = family
        self.reduce = {}
        for family, labels in (reduce or {}).items():
            if family not in families:
                continue
            for name in sample_names(family, families[family]):
                self.reduce[name] = frozenset(labels)
        self.extra_match = extra_match
        self.stats = ExpositionStats()

    def _wanted(self, name):
        if name in self.keep:
            return True
        if self.extra_match is not None and self.extra_match(name):
            # Remember the answer: user patterns are regexes, the names repeat on every line.
            self.keep[name] = name
            return True
        return False

    def __call__(self, lines):
        stats = self.stats = ExpositionStats()
        seen = set()
        held_meta = {}  # reduced family name -> its HELP/TYPE lines, emitted with the sums
        sums = {}  # (name, kept-label text) -> value
        wanted = self._wanted
        reduce = self.reduce

        for line in lines:
            stats.lines += 1
            if not line:
                continue
            if line[0] == "#":
                stats.recognised += 1
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("TYPE", "HELP") and wanted(parts[2]):
                    if parts[2] in reduce:
                        held_meta.setdefault(parts[2], []).append(line)
                    else:
                        yield line
                continue

            brace = line.find("{")
            space = line.find(" ")
            end = brace if brace != -1 and (space == -1 or brace < space) else space
            name = line[:end] if end != -1 else line
            if not wanted(name):
                continue

            match = SAMPLE_RE.match(line.strip())
            if match is None or not _is_number(match.group(3)):
                stats.malformed += 1
                if stats.first_malformed is None:
                    stats.first_malformed = (stats.lines, line[:120])
                continue
            stats.recognised += 1
            key = match.group(1) + (match.group(2) or "")
            if key in seen:
                stats.duplicates += 1
                continue
            seen.add(key)

            allowed = reduce.get(name)
            if allowed is None:
                stats.kept += 1
                yield line
                continue

            stats.reduced_in += 1
            labels = match.group(2)
            kept = ",".join(
                f'{k}="{v}"' for k, v in (LABEL_RE.findall(labels) if labels else ()) if k in allowed
            )
            value = float(match.group(3))
            if value != value:  # NaN
                continue
            sum_key = (name, kept)
            sums[sum_key] = sums.get(sum_key, 0.0) + value

        if held_meta or sums:
            by_name = {}
            for (name, labels), value in sums.items():
                by_name.setdefault(name, []).append((labels, value))
            emitted_meta = set()
            for name, series in by_name.items():
                meta_name = self.keep.get(name, name)
                for meta_key in (name, meta_name):
                    if meta_key in held_meta and meta_key not in emitted_meta:
                        emitted_meta.add(meta_key)
                        yield from held_meta[meta_key]
                for labels, value in series:
                    stats.reduced_out += 1
                    stats.kept += 1
                    yield f"{name}{{{labels}}} {value!r}" if labels else f"{name} {value!r}"


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
