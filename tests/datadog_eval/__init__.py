"""An evaluator of the Datadog monitors this pack ships, for tests.

`store` keeps what a Datadog Agent would send and the intake would store (points per context,
distribution buckets, service-check statuses), `query` parses the part of Datadog's monitor
query language the monitors use, `monitor` evaluates a monitor on a store, `timeline` drives the
simulator and the real check over a scenario's simulated timeline. The semantics of each
construct, and the Datadog documentation page each follows, are in
docs/datadog-monitor-semantics.md.
"""
