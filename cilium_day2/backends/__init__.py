"""Backend compilers: the query model (`cilium_day2.query`) to PromQL or Datadog query text.

Nothing here is written per signal: each function of the model has one translation per
backend, and every signal's query is assembled from those.
"""
