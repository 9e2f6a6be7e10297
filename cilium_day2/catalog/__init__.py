"""The Day-2 signal catalog, as a package whose modules import downwards only:

    query      the backend-neutral query model (and its local evaluation primitives)
    buckets    Cilium's histogram bucket layouts (data/histograms.yaml)
    model      Catalog, Signal, Settings: typed, validated as built
    overrides  a user's values file applied to a catalog
    loading    the packaged YAML (data/signals/) read into a model, values applied
    evaluate   every signal judged on scraped samples (doctor's engine)

    from cilium_day2.catalog import load_catalog
    catalog = load_catalog("values.yaml")      # or a parsed mapping, or None for the defaults
    for signal in catalog.enabled():
        print(signal.id, signal.warning, signal.critical, signal.window, signal.hold)
"""

from ..errors import CatalogError
from .loading import DATA_DIR, load_base_catalog, load_catalog
from .model import Area, Catalog, Settings, Signal, format_duration, parse_duration

__all__ = [
    "DATA_DIR", "Area", "Catalog", "CatalogError", "Settings", "Signal", "format_duration", "load_base_catalog",
    "load_catalog", "parse_duration",
]
