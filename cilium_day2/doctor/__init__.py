"""`cilium-day2 doctor`: live (or simulated) Cilium endpoints judged against the catalog.

`command` samples the endpoints through the shared reader (`cilium_day2.exposition`) and hands the
snapshots to the catalog's evaluator (`cilium_day2.catalog.evaluate`).
"""
