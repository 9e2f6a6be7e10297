"""A value in its signal's unit, as doctor prints it (the table, the gate's findings)."""

from __future__ import annotations

import math


def format_value(value, unit):
    if value is None:
        return "-"
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    if unit == "per_second":
        return f"{value:.3g}/s"
    if unit == "seconds":
        return f"{value:.3g}s"
    if unit == "ratio":
        return f"{value:.3g}"
    if unit == "factor":
        return f"{value:.3g}x"
    if unit in ("count", "bool"):
        return f"{value:.0f}" if abs(value - round(value)) < 1e-9 or abs(value) >= 100 else f"{value:.3g}"
    return f"{value:.3g}"
