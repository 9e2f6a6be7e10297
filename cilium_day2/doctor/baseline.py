"""`doctor --save-baseline FILE` and `doctor --baseline FILE`: what a run measured, kept and
compared, so that an upgrade that makes a signal materially worse without crossing its threshold
(drops doubled, policy implementation a bucket slower) does not pass the gate.

The baseline is versioned JSON: for every enabled signal its status and value (the worst group's,
as doctor reports it), and the rates and quantiles behind it, cluster-wide. The comparison reads
each signal's `tolerance` from the catalog (`regression:` on the signal, or its unit's defaults
in `catalog.model.REGRESSION_DEFAULTS`): a regression needs the value to move to the failing side
by the relative factor, by the absolute floor, and, for histogram quantiles, by whole buckets of
Cilium's layout. Values are compared per signal, not per node, so the same file serves a canary:
compare the canary cluster's run against the fleet's baseline.
"""

from __future__ import annotations

import bisect
import datetime
import json
import math
import os
import tempfile
from typing import List, Optional

from ..__about__ import __version__
from ..catalog.buckets import family_layouts
from ..catalog.evaluate import NO_DATA
from ..catalog.query import Changes, Delta, Evaluator, Increase, Quantile, Rate, Ratio, Value, iter_nodes
from ..errors import UserError
from ..userfiles import read_text
from .findings import ACTION, BLOCK, INFO, REGRESSION, GateFinding
from .units import format_value

KIND = "cilium-day2-baseline"
VERSION = 1
MAX_BASELINE_BYTES = 16 * 1024 * 1024
# Units whose absent value means zero (no event, no failing series) when compared.
_ZERO_WHEN_ABSENT = ("per_second", "ratio", "count", "bool")
_PART_NODES = (Rate, Increase, Delta, Changes, Quantile, Value)
_WINDOW_TOTALS = (Increase, Delta, Changes)
SAME_SPAN = 0.8  # shorter span / longer span above which two runs count as sampled alike


def _finite(value) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _parts(signal, snapshots, cloud_apis) -> List[dict]:
    """The rates and quantiles behind a signal's value, cluster-wide (numerator and denominator
    of a ratio, the quantile of a histogram, ...)."""
    if len(snapshots) < 1:
        return []
    ev = Evaluator(snapshots, signal.window, cloud_apis)
    out, seen = [], set()
    expr = signal.query.expr
    roles = {}
    if isinstance(expr, Ratio):
        roles[id(expr.num)] = "numerator"
        if not isinstance(expr.den, (int, float)):
            roles[id(expr.den)] = "denominator"
    for node in iter_nodes(expr):
        if not isinstance(node, _PART_NODES) or id(node) in seen:
            continue
        seen.add(id(node))
        if len(snapshots) < 2 and not isinstance(node, Value):
            continue
        result = ev.evaluate(node, ["cluster"])
        values = [v for v in result.values() if math.isfinite(v)]
        part = {"fn": node.fn, "metric": node.selector.metric,
                "value": max(values) if values else None}
        if isinstance(node, Quantile):
            part["q"] = node.q
        if id(node) in roles:
            part["role"] = roles[id(node)]
        out.append(part)
    return out


def measure(catalog, findings, snapshots, meta) -> dict:
    """The baseline document of one live run."""
    snapshots = sorted(snapshots, key=lambda s: s.timestamp)
    signals = {}
    for f in findings:
        s = f.signal
        signals[s.id] = {
            "status": f.status,
            "value": _finite(f.value),
            "unit": s.unit,
            "comparison": s.comparison,
            "parts": _parts(s, snapshots, catalog.settings.cloud_apis) if f.status != NO_DATA else [],
        }
    span = snapshots[-1].timestamp - snapshots[0].timestamp if len(snapshots) > 1 else 0.0
    return {
        "kind": KIND,
        "version": VERSION,
        "written_by": f"cilium-day2 {__version__}",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **meta,
        "span_seconds": round(span, 3),
        "signals": signals,
    }


def save(path: str, document: dict) -> None:
    """Write the baseline atomically: a failed write leaves any earlier file as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"--save-baseline {path}: the folder {folder} does not exist; create it or choose another path")
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".baseline-", dir=folder)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"--save-baseline {path}: cannot write ({exc.strerror or exc}); check permissions") from None


def load(path: str) -> dict:
    """Read and check a baseline file; a UserError naming it and the fix for anything else."""
    what = f"--baseline {path}"
    text = read_text(path, what, MAX_BASELINE_BYTES)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{what}: not JSON ({exc.msg} at line {exc.lineno}); pass a file `doctor --save-baseline` wrote") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise UserError(f"{what}: not a cilium-day2 baseline (no \"kind\": \"{KIND}\"); pass a file `doctor --save-baseline` wrote")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(f"{what}: no format version; write it again with `doctor --save-baseline`")
    if version > VERSION:
        raise UserError(f"{what}: format {version} is newer than this cilium-day2 reads ({VERSION}); upgrade cilium-day2 or save the baseline again")
    signals = doc.get("signals")
    if not isinstance(signals, dict) or not all(isinstance(v, dict) for v in signals.values()):
        raise UserError(f"{what}: \"signals\" must map signal ids to objects; write it again with `doctor --save-baseline`")
    return doc


def fmt(value, unit) -> str:
    return "none" if value is None else format_value(value, unit)


def _bounds(signal) -> List[float]:
    q = signal.quantile
    if q is None:
        return []
    bounds = set()
    for metric in (q.selector.metric,) + tuple(q.selector.also):
        for _versions, layout in family_layouts(metric):
            bounds.update(layout)
    return sorted(bounds)


def _bucket(bounds, value) -> int:
    """Index of the bucket holding `value`: the first bound at or above it (len: +Inf)."""
    return bisect.bisect_left(bounds, value - 1e-12)


def regression(signal, before, now) -> Optional[str]:
    """Why `now` is a regression from `before` for `signal` (None: within tolerance)."""
    tol = signal.tolerance
    if not tol.enabled:
        return None
    if signal.unit in _ZERO_WHEN_ABSENT:
        before = 0.0 if before is None else before
        now = 0.0 if now is None else now
    if before is None or now is None:
        return None
    worse = now - before if signal.comparison == ">" else before - now
    if worse < tol.floor or worse <= 0:
        return None
    if signal.comparison == ">":
        if before > 0 and now < before * tol.factor:
            return None
    elif now > before / tol.factor:
        return None
    moved = ""
    bounds = _bounds(signal)
    if tol.buckets and bounds:
        steps = _bucket(bounds, now) - _bucket(bounds, before)
        steps = steps if signal.comparison == ">" else -steps
        if steps < tol.buckets:
            return None
        moved = f", {steps} bucket{'s' if steps != 1 else ''} up"
    times = f"{now / before:.3g}x" if before > 0 and signal.comparison == ">" else "from zero" if before == 0 else f"{before / now:.3g}x lower" if now > 0 else "to zero"
    need = f"x{tol.factor:g} and {fmt(tol.floor, signal.unit)}" + (f" and {tol.buckets} bucket" if tol.buckets else "")
    return f"{fmt(before, signal.unit)} -> {fmt(now, signal.unit)} ({times}{moved}; tolerance {need})"


def compare(catalog, baseline: dict, current: dict, where: str) -> List[GateFinding]:
    """Regression findings of `current` (a `measure` document) against `baseline`."""
    out, compared, absent, skipped, lost = [], 0, [], [], []
    spans = (_finite(baseline.get("span_seconds")), _finite(current.get("span_seconds")))
    # Totals over a window shorter than the sampled span are totals over the span: comparable
    # only between runs that sampled about as long.
    same_span = None not in spans and max(spans) > 0 and min(spans) / max(spans) >= SAME_SPAN
    for signal in catalog.enabled():
        then = baseline["signals"].get(signal.id)
        cur = current["signals"].get(signal.id)
        if then is None:
            absent.append(signal.id)
            continue
        if cur is None or cur.get("status") == NO_DATA or then.get("status") == NO_DATA:
            if cur is not None and cur.get("status") == NO_DATA and then.get("status") != NO_DATA:
                lost.append(signal.id)
            continue
        if not same_span and any(isinstance(n, _WINDOW_TOTALS) for n in iter_nodes(signal.query.expr)) \
                and signal.window > min(x or 0.0 for x in spans):
            skipped.append(signal.id)
            continue
        compared += 1
        why = regression(signal, _finite(then.get("value")), _finite(cur.get("value")))
        if why:
            level = BLOCK if signal.tolerance.severity == "critical" else ACTION
            behind = _behind(then, cur, signal.unit)
            out.append(GateFinding(REGRESSION, level, signal.id, why + behind))
    label = baseline.get("cluster") or "?"
    summary = (f"compared {compared} signals with the baseline of cluster {label} ({baseline.get('created', 'undated')}, "
               f"{where}): {len(out)} regressed")
    if lost:
        out.append(GateFinding(REGRESSION, INFO, "", f"{len(lost)} signals had data in the baseline and have none now "
                                                     f"(a feature or endpoint gone?): {', '.join(lost)}"))
    if skipped:
        summary += (f"; {len(skipped)} totals not compared, the runs sampled different spans "
                    f"({_span(spans[0])} and {_span(spans[1])}; use the same --samples and --interval)")
    if absent:
        summary += f"; {len(absent)} not in the baseline (newer catalog): {', '.join(absent[:5])}" + (" ..." if len(absent) > 5 else "")
    out.append(GateFinding(REGRESSION, INFO, "", summary))
    return out


def _span(seconds):
    return "unknown" if seconds is None else f"{seconds:.0f}s"


def _behind(then, cur, unit) -> str:
    """The rates/quantiles behind a regressed value, before -> now, for the report."""
    before = {(p.get("fn"), p.get("metric"), p.get("role")): p.get("value") for p in then.get("parts") or [] if isinstance(p, dict)}
    shown = []
    for p in cur.get("parts") or []:
        key = (p.get("fn"), p.get("metric"), p.get("role"))
        if key in before and p.get("fn") in ("rate", "quantile", "increase"):
            b, n = _finite(before[key]), _finite(p.get("value"))
            if b != n:
                unit_ = "per_second" if p["fn"] == "rate" else "seconds" if p["fn"] == "quantile" else "count"
                shown.append(f"{p['fn']}({p['metric']}) {fmt(b, unit_)} -> {fmt(n, unit_)}")
    return f" [{'; '.join(shown[:3])}]" if shown else ""
