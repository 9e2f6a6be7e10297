"""Hubble context labels are summed away by default: bounded series, same totals."""

from collections import defaultdict

from cilium_day2 import metrics

from .common import expected_tags, make_check, mapped_families_in
from .conftest import fixture_text

ALLOWED_TAG_KEYS = {"cilium_component", "endpoint"}


def contexts(aggregator):
    seen = set()
    for name in aggregator.metric_names:
        for stub in aggregator.metrics(name):
            seen.add((name, tuple(sorted(stub.tags))))
    return seen


def test_default_keeps_only_bounded_labels_and_preserves_totals(metrics_server, aggregator, dd_run_check):
    text = fixture_text("hubble_context.txt")
    dd_run_check(make_check({"hubble_endpoint": metrics_server.serve("/m", text)}))

    raw = mapped_families_in(text, "hubble")
    raw_series = sum(len(v) for v in raw.values())
    series = contexts(aggregator)
    print(f"hubble fixture: {raw_series} series in, {len(series)} series submitted with default options")
    assert len(series) < raw_series / 10

    for family, dd_name in metrics.HUBBLE_METRICS.items():
        if family not in raw:
            continue
        name = f"cilium_day2.{dd_name}.count"
        bounded = set(metrics.HUBBLE_BOUNDED_LABELS[family])
        renamed = {metrics.RENAME_LABELS.get(label, label) for label in bounded}
        # One submission per distinct bounded label set, carrying no context label.
        want_groups = {frozenset(expected_tags(labels, family)) for labels in raw[family]}
        stubs = aggregator.metrics(name)
        assert len(stubs) == len(want_groups), family
        for stub in stubs:
            keys = {t.split(":", 1)[0] for t in stub.tags}
            assert keys <= renamed | ALLOWED_TAG_KEYS, (family, keys - renamed - ALLOWED_TAG_KEYS)

    # Totals are preserved: the sum over submissions equals the sum over the raw series.
    from prometheus_client.parser import text_string_to_metric_families

    raw_totals = defaultdict(float)
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            raw_totals[sample.name] += sample.value
    for family, dd_name in metrics.HUBBLE_METRICS.items():
        if family in raw:
            got = sum(s.value for s in aggregator.metrics(f"cilium_day2.{dd_name}.count"))
            assert abs(got - raw_totals[family]) < 1e-6 * max(1.0, raw_totals[family]), family


def test_include_labels_restores_a_chosen_label(metrics_server, aggregator, dd_run_check):
    text = fixture_text("hubble_context.txt")
    instance = {"hubble_endpoint": metrics_server.serve("/m", text), "hubble_include_labels": ["traffic_direction"]}
    dd_run_check(make_check(instance))
    values = {
        t.split(":", 1)[1]
        for s in aggregator.metrics("cilium_day2.hubble.flows_processed.count")
        for t in s.tags
        if t.startswith("traffic_direction:")
    }
    raw_values = {l["traffic_direction"] for l in mapped_families_in(text, "hubble")["hubble_flows_processed_total"]
                  if "traffic_direction" in l}
    assert values == raw_values and values


def test_lost_events_keep_their_source(metrics_server, aggregator, dd_run_check):
    text = fixture_text("hubble_context.txt")
    dd_run_check(make_check({"hubble_endpoint": metrics_server.serve("/m", text)}))
    sources = {
        t.split(":", 1)[1]
        for s in aggregator.metrics("cilium_day2.hubble.lost_events.count")
        for t in s.tags
        if t.startswith("cilium_source:")
    }
    raw = {l["source"] for l in mapped_families_in(text, "hubble")["hubble_lost_events_total"]}
    assert sources == raw
