"""Reading the packaged catalog (`cilium_day2/data/signals/*.yaml`) and applying a values file."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import CatalogError
from .model import AREAS, Area, Catalog, Settings, parse_signal
from .overrides import apply_values, load_values

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "signals"


def _load_area_file(path: Path):
    data = yaml.safe_load(path.read_text())
    where = f"{path.name}"
    if not isinstance(data, dict) or set(data) - {"area", "title", "description", "signals"}:
        raise CatalogError(f"{where}: expected keys area, title, description, signals")
    area_id = data.get("area")
    if area_id not in AREAS:
        raise CatalogError(f"{where}.area: `{area_id}` is not one of {', '.join(AREAS)}")
    area = Area(area_id, str(data.get("title", area_id)), " ".join(str(data.get("description", "")).split()))
    signals = [parse_signal(area_id, s, f"{where} signal #{i + 1}") for i, s in enumerate(data.get("signals") or [])]
    return area, signals


def load_base_catalog(data_dir: Path = DATA_DIR) -> Catalog:
    """The packaged catalog with its defaults, no overrides."""
    areas, signals = {}, []
    for path in sorted(data_dir.glob("*.yaml")):
        area, area_signals = _load_area_file(path)
        areas[area.id] = area
        signals.extend(area_signals)
    seen = set()
    for s in signals:
        if s.id in seen:
            raise CatalogError(f"signal {s.id}: defined twice")
        seen.add(s.id)
    for s in signals:
        if s.version_twin and s.version_twin not in seen:
            raise CatalogError(f"signal {s.id}.version_twin: no signal `{s.version_twin}` in the catalog")
    ordered_areas = [areas[a] for a in AREAS if a in areas]
    order = {a: i for i, a in enumerate(AREAS)}
    signals.sort(key=lambda s: order[s.area])  # stable: keeps file order inside an area
    return Catalog(Settings(), ordered_areas, signals)


def load_catalog(overrides=None, data_dir: Path = DATA_DIR) -> Catalog:
    """The catalog with user overrides applied.

    `overrides` is None, a parsed `--values` mapping, or a path to the YAML file. Any problem
    raises `cilium_day2.errors.UserError` with a one-line message naming the key.
    """
    base = load_base_catalog(data_dir)
    if overrides is None:
        return base
    return apply_values(base, load_values(overrides, base))
