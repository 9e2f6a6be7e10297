"""Values as functions of simulated time.

A scenario says how a knob (a fill ratio, a rate, a latency) moves: it holds, ramps, or steps.
All of them are piecewise-linear functions of simulated seconds, held flat before the first and
after the last point, so that a counter driven by a profile can be integrated exactly.
"""

import re

from ..errors import UserError

_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$|^\d+(?:\.\d+)?$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value, what="duration"):
    """Seconds from `90`, `"90s"`, `"10m"`, `"2h"`, `"3h30m"`, `"1.5d"`."""
    if isinstance(value, bool):
        raise UserError(f"{what}: {value!r} is not a duration; write seconds or e.g. '10m', '2h'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise UserError(f"{what}: {value!r} is negative; durations count forward from the start")
        return float(value)
    text = str(value).strip()
    if not _DURATION_RE.match(text):
        raise UserError(f"{what}: {value!r} is not a duration; write seconds or e.g. '10m', '2h'")
    return sum(float(n) * _UNITS[unit or None] for n, unit in _PART_RE.findall(text))


class Profile:
    """A piecewise-linear function of time given by (t, v) points, flat outside them.

    Two points at the same time make a step.
    """

    __slots__ = ("points",)

    def __init__(self, points):
        if not points:
            raise ValueError("a profile needs at least one point")
        self.points = [(float(t), float(v)) for t, v in points]
        for (t0, _), (t1, _) in zip(self.points, self.points[1:]):
            if t1 < t0:
                raise ValueError("profile points must be in time order")

    @classmethod
    def constant(cls, value):
        return cls([(0.0, value)])

    @property
    def breakpoints(self):
        return sorted({t for t, _ in self.points})

    @property
    def is_constant(self):
        return all(v == self.points[0][1] for _, v in self.points)

    def __call__(self, t):
        pts = self.points
        if t < pts[0][0]:
            return pts[0][1]
        # The last point at or before t wins a step (a step takes effect at its time).
        for i in range(len(pts) - 1, -1, -1):
            ti, vi = pts[i]
            if ti <= t:
                if i == len(pts) - 1:
                    return vi
                tn, vn = pts[i + 1]
                if tn == ti:
                    return vn
                return vi + (vn - vi) * (t - ti) / (tn - ti)
        return pts[0][1]  # pragma: no cover

    def integral(self, t):
        """Exact integral of the profile from 0 to t (t >= 0)."""
        total = 0.0
        pts = self.points
        cursor = 0.0
        # Flat before the first point.
        first_t, first_v = pts[0]
        if t <= first_t:
            return first_v * t
        total += first_v * max(0.0, first_t - cursor)
        cursor = max(cursor, first_t)
        for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
            if t1 == t0 or t1 <= cursor:
                continue
            a, b = max(t0, cursor), min(t1, t)
            if b <= a:
                if t <= t0:
                    break
                continue
            va = v0 + (v1 - v0) * (a - t0) / (t1 - t0)
            vb = v0 + (v1 - v0) * (b - t0) / (t1 - t0)
            total += (va + vb) / 2.0 * (b - a)
            cursor = b
            if b >= t:
                return total
        total += pts[-1][1] * max(0.0, t - max(cursor, pts[-1][0]))
        return total

    def __repr__(self):
        return f"Profile({self.points!r})"


def profile_from_spec(spec, baseline, what):
    """Build a Profile from a scenario's knob setting.

    Forms (times are durations from the start of the scenario):
      value                      constant
      {value: v}                 constant
      {at: t, value: v}          step from the baseline to v at t
      {from: a, to: b, start: t, over: d}
                                 ramp from a (default: baseline) to b between t and t+d
      {points: [[t, v], ...]}    explicit points
      {..., then: [{...}, ...]}  not supported: write explicit points instead
    """
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Profile.constant(spec)
    if not isinstance(spec, dict):
        raise UserError(f"{what}: {spec!r} is not a number or a mapping; see the README section on `cilium-day2 simulate`")
    keys = set(spec)
    try:
        if "points" in spec:
            if keys - {"points"}:
                raise UserError(f"{what}: `points` cannot be combined with {sorted(keys - {'points'})}")
            pts = [(parse_duration(t, what), float(v)) for t, v in spec["points"]]
            return Profile(pts)
        if "to" in spec:
            allowed = {"from", "to", "start", "over"}
            if keys - allowed:
                raise UserError(f"{what}: unknown keys {sorted(keys - allowed)}; a ramp takes from/to/start/over")
            start = parse_duration(spec.get("start", 0), what)
            over = parse_duration(spec.get("over", 0), what)
            a = float(spec.get("from", baseline))
            b = float(spec["to"])
            return Profile([(start, a), (start + over, b)])
        if "value" in spec:
            allowed = {"value", "at"}
            if keys - allowed:
                raise UserError(f"{what}: unknown keys {sorted(keys - allowed)}; a step takes at/value")
            if "at" not in spec:
                return Profile.constant(float(spec["value"]))
            at = parse_duration(spec["at"], what)
            return Profile([(at, float(baseline)), (at, float(spec["value"]))])
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what}: {spec!r} is not a valid profile ({exc})") from None
    raise UserError(f"{what}: {spec!r} needs `value`, `to` or `points`")
