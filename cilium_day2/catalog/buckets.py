"""Bucket layouts of the Cilium histograms the catalog takes quantiles of (`data/histograms.yaml`).

Two things follow from a classic histogram's fixed buckets:

* A quantile read from it is capped at the last finite bound: `histogram_quantile` (and a
  Datadog percentile of the check's distribution) can never report more. A threshold at or above
  that bound never fires.
* At a bucket bound the quantile condition is exact and cheap: "p99 > T" holds exactly when
  fewer than 99% of the observations fell in the bucket `le=T`. The Prometheus rules use that
  form, which reads two series per label set (`le=T` and `_count`) instead of every bucket.

So quantile thresholds must be bucket bounds, below the last one, in every layout of the family.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml

from ..errors import CatalogError

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "histograms.yaml"


@lru_cache(maxsize=1)
def layouts() -> Dict[str, Tuple[Tuple[str, Tuple[float, ...]], ...]]:
    """Family name (maybe with `{cloud}`) -> ((Cilium versions, finite bounds), ...)."""
    data = yaml.safe_load(DATA_FILE.read_text())
    out = {}
    for family, entries in data["families"].items():
        out[family] = tuple((str(e["cilium"]), tuple(float(b) for b in e["buckets"])) for e in entries)
    return out


def family_layouts(metric: str) -> Tuple[Tuple[str, Tuple[float, ...]], ...]:
    return layouts().get(metric, ())


def valid_thresholds(metric: str) -> List[float]:
    """Bounds usable as a quantile threshold in every layout: shared by all, below each one's last."""
    found = family_layouts(metric)
    if not found:
        return []
    common = set(found[0][1])
    for _versions, bounds in found:
        common &= {b for b in bounds if b < bounds[-1]}
    return sorted(common)


def last_bounds(metrics: Sequence[str]) -> List[float]:
    """The last finite bound of each layout of these families: above every valid threshold."""
    return sorted({bounds[-1] for metric in metrics for _v, bounds in family_layouts(metric)})


def _fmt(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def check_quantile_threshold(where: str, metrics: Sequence[str], severity: str, value: float) -> None:
    """Raise CatalogError unless `value` is a usable bound of every family in `metrics`."""

    for metric in metrics:
        found = family_layouts(metric)
        if not found:
            raise CatalogError(
                f"{where}: no bucket layout known for histogram {metric}; add Cilium's buckets to "
                f"cilium_day2/data/histograms.yaml"
            )
        usable = valid_thresholds(metric)
        if value in usable:
            continue
        last = min(bounds[-1] for _v, bounds in found)
        if value >= last:
            why = (f"Cilium's buckets for {metric} end at {last:g}, so its quantile can never be above "
                   f"{last:g} and this alert would never fire")
        else:
            why = f"{value:g} is not a bucket bound of {metric}, so the quantile there is only an interpolation"
        raise CatalogError(f"{where}.{severity}: {why}; choose one of {_fmt(usable)}")


def le_forms(value: float) -> Tuple[str, ...]:
    """The `le` label values of bound `value`: as Prometheus text format writes it (`1`), and as
    OpenMetrics and Prometheus 3 normalise it (`1.0`)."""
    text = f"{value:g}"
    if "e" in text:
        text = repr(float(value))
    return (text,) if "." in text else (text, text + ".0")
