"""The Agent check over realistic expositions served on 127.0.0.1."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from datadog_checks.base import AgentCheck
from datadog_checks.dev.utils import get_metadata_metrics

from cilium_day2 import metrics

from .common import (
    AGENT_FIXTURES,
    HUBBLE_FIXTURES,
    OPERATOR_FIXTURES,
    expected_tags,
    make_check,
    mapped_families_in,
    submitted,
)
from .conftest import fixture_text

COMPONENT_OF = {**{f: "agent" for f in AGENT_FIXTURES}, **{f: "operator" for f in OPERATOR_FIXTURES}}
COMPONENT_OF.update({f: "hubble" for f in HUBBLE_FIXTURES})
OPTION = {"agent": "agent_endpoint", "operator": "operator_endpoint", "hubble": "hubble_endpoint"}


@pytest.mark.parametrize("fixture", sorted(COMPONENT_OF))
def test_every_mapped_family_is_submitted_with_type_and_tags(fixture, metrics_server, aggregator, dd_run_check):
    component = COMPONENT_OF[fixture]
    text = fixture_text(fixture)
    url = metrics_server.serve("/metrics", text)
    dd_run_check(make_check({OPTION[component]: url, "tags": ["team:net"]}))

    present = mapped_families_in(text, component)
    assert present, f"{fixture} has none of the {component} families"
    for family, label_sets in present.items():
        names = metrics.submitted_names(family, metrics.COMPONENT_MAPS[component][family])
        for name, kind in names.items():
            stubs = submitted(aggregator, name)
            assert stubs, f"{family} -> {name} not submitted"
            if kind == "gauge":
                assert all(s.type == aggregator.GAUGE for s in stubs), name
            elif kind == "count":
                assert all(s.type == aggregator.MONOTONIC_COUNT for s in stubs), name
            for stub in stubs:
                assert f"cilium_component:{component}" in stub.tags
                assert "team:net" in stub.tags
        # Every label set of the exposition is visible as tags on some submission of the family.
        first_name = next(iter(names))
        submitted_tag_sets = [set(s.tags) for s in submitted(aggregator, first_name)]
        for labels in label_sets:
            want = expected_tags(labels, family)
            assert any(want <= tags for tags in submitted_tag_sets), f"{family}: no submission tagged {sorted(want)}"

    aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)
    aggregator.assert_service_check(f"cilium_day2.{component}.openmetrics.health", AgentCheck.OK, count=1)


def test_all_three_endpoints_in_one_instance(metrics_server, aggregator, dd_run_check):
    instance = {
        "agent_endpoint": metrics_server.serve_fixture("/agent", "agent_v1_18.txt"),
        "operator_endpoint": metrics_server.serve_fixture("/operator", "operator_eni.txt"),
        "hubble_endpoint": metrics_server.serve_fixture("/hubble", "hubble_context.txt"),
    }
    dd_run_check(make_check(instance))
    for component in ("agent", "operator", "hubble"):
        aggregator.assert_service_check(f"cilium_day2.{component}.openmetrics.health", AgentCheck.OK)
    aggregator.assert_metric_has_tag("cilium_day2.bpf.map_pressure", "cilium_component:agent")
    aggregator.assert_metric_has_tag("cilium_day2.operator.ipam.needed_ips", "cilium_component:operator")
    aggregator.assert_metric_has_tag("cilium_day2.hubble.lost_events.count", "cilium_component:hubble")
    aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)


def test_gc_runs_stays_a_gauge_even_when_exposed_as_counter(metrics_server, aggregator, dd_run_check):
    text = (
        "# TYPE cilium_operator_identity_gc_runs counter\n"
        'cilium_operator_identity_gc_runs{outcome="success",identity_type="crd"} 12\n'
        'cilium_operator_identity_gc_runs{outcome="fail",identity_type="crd"} 3\n'
    )
    dd_run_check(make_check({"operator_endpoint": metrics_server.serve("/m", text)}))
    aggregator.assert_metric("cilium_day2.operator.identity_gc.runs", 3, metric_type=aggregator.GAUGE,
                             tags=["outcome:fail", "identity_type:crd", "cilium_component:operator",
                                   f"endpoint:{metrics_server.url('/m')}"])


def test_reserved_labels_are_renamed(metrics_server, aggregator, dd_run_check):
    text = (
        "# TYPE cilium_k8s_client_api_calls_total counter\n"
        'cilium_k8s_client_api_calls_total{host="10.0.0.1:443",method="GET",return_code="200"} 5\n'
        "# TYPE cilium_version gauge\n"
        'cilium_version{version="1.18.2",revision="abc"} 1\n'
    )
    dd_run_check(make_check({"agent_endpoint": metrics_server.serve("/m", text)}))
    aggregator.assert_metric_has_tag("cilium_day2.k8s_client.api_calls.count", "cilium_host:10.0.0.1:443")
    aggregator.assert_metric_has_tag("cilium_day2.version", "cilium_version:1.18.2")
    for stub in aggregator.metrics("cilium_day2.version"):
        assert not any(t.startswith(("host:", "version:")) for t in stub.tags)


def test_version_becomes_check_metadata(metrics_server, dd_run_check, datadog_agent):
    url = metrics_server.serve_fixture("/m", "agent_v1_18.txt")
    check = make_check({"agent_endpoint": url})
    check.check_id = "test:cilium_day2"
    dd_run_check(check)
    version = next(
        labels["version"]
        for labels in mapped_families_in(fixture_text("agent_v1_18.txt"), "agent")["cilium_version"]
    )
    major, minor, patch = version.lstrip("v").split(".")[:3]
    datadog_agent.assert_metadata(
        "test:cilium_day2",
        {"version.scheme": "semver", "version.major": major, "version.minor": minor, "version.patch": patch,
         "version.raw": version.lstrip("v")},
    )


def test_counters_flush_from_the_second_run_and_survive_a_reset(metrics_server, aggregator, dd_run_check):
    def body(value):
        return (
            "# TYPE cilium_drop_count_total counter\n"
            f'cilium_drop_count_total{{direction="EGRESS",reason="CT: Map insertion failed"}} {value}\n'
        )

    url = metrics_server.serve("/m", body(100))
    check = make_check({"agent_endpoint": url})
    name = "cilium_day2.drop_count.count"

    dd_run_check(check)
    (first,) = aggregator.metrics(name)
    assert first.type == aggregator.MONOTONIC_COUNT and first.value == 100
    assert first.flush_first_value is False  # the Agent only stores the first value: no count yet

    aggregator.reset()
    metrics_server.routes["/m"].body = body(160)
    dd_run_check(check)
    (second,) = aggregator.metrics(name)
    assert second.value == 160 and second.flush_first_value is True  # the Agent reports 60

    # The agent restarted: the counter starts again from a small value. The check still submits
    # it as a monotonic count with flush_first_value, so the Agent treats it as a reset and
    # counts the new value instead of a negative delta.
    aggregator.reset()
    metrics_server.routes["/m"].body = body(7)
    dd_run_check(check)
    (third,) = aggregator.metrics(name)
    assert third.value == 7 and third.type == aggregator.MONOTONIC_COUNT and third.flush_first_value is True


def test_failed_scrape_does_not_flush_first_value_on_recovery(metrics_server, aggregator, dd_run_check):
    body = "# TYPE cilium_drop_count_total counter\ncilium_drop_count_total{direction=\"INGRESS\",reason=\"Policy denied\"} 5\n"
    url = metrics_server.serve("/m", body)
    check = make_check({"agent_endpoint": url})
    dd_run_check(check)
    dd_run_check(check)
    metrics_server.routes["/m"].status = 503
    dd_run_check(check)
    aggregator.reset()
    metrics_server.routes["/m"].status = 200
    dd_run_check(check)
    (stub,) = aggregator.metrics("cilium_day2.drop_count.count")
    # After a gap the previous value may have expired in the Agent: do not count from it.
    assert stub.flush_first_value is False


def test_extra_metrics_are_collected_through_the_standard_transformers(metrics_server, aggregator, dd_run_check):
    url = metrics_server.serve_fixture("/m", "agent_v1_18.txt")
    instance = {"agent_endpoint": url, "extra_metrics": [{"cilium_endpoint": "endpoint.count_extra"},
                                                        {"cilium_datapath_errors": {"name": "datapath.errors", "type": "counter"}}]}
    dd_run_check(make_check(instance))
    raw = {f.name: f for f in text_string_to_metric_families(fixture_text("agent_v1_18.txt"))}
    (endpoint_sample,) = raw["cilium_endpoint"].samples
    aggregator.assert_metric("cilium_day2.endpoint.count_extra", endpoint_sample.value, metric_type=aggregator.GAUGE)
    assert aggregator.metrics("cilium_day2.datapath.errors.count")
    # The mapped families are still there.
    assert aggregator.metrics("cilium_day2.bpf.map_pressure")


def test_exclude_metrics_and_label_options(metrics_server, aggregator, dd_run_check):
    url = metrics_server.serve_fixture("/m", "agent_v1_18.txt")
    instance = {
        "agent_endpoint": url,
        "exclude_metrics": ["cilium_bpf_map_ops_total", "cilium_kvstore_.*"],
        "rename_labels": {"map_name": "bpf_map"},
        "exclude_labels": ["scope"],
    }
    dd_run_check(make_check(instance))
    assert not aggregator.metrics("cilium_day2.bpf.map_ops.count")
    assert not [n for n in aggregator.metric_names if n.startswith("cilium_day2.kvstore.")]
    pressure = aggregator.metrics("cilium_day2.bpf.map_pressure")
    assert pressure and all(any(t.startswith("bpf_map:") for t in s.tags) for s in pressure)
    assert not any(t.startswith("map_name:") for s in pressure for t in s.tags)
    regen = aggregator.metrics("cilium_day2.endpoint.regeneration_time_stats.seconds.count")
    assert regen and not any(t.startswith("scope:") for s in regen for t in s.tags)


def test_an_agent_too_old_for_the_check_gets_one_clear_error(metrics_server, monkeypatch, dd_run_check):
    # Before datadog-checks-base 37.10 the scraper had no `_scrape` hook: the base class's own
    # parser would run instead of the check's, silently. The check refuses to start instead.
    from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsScraper

    monkeypatch.delattr(OpenMetricsScraper, "_scrape")
    url = metrics_server.serve_fixture("/metrics", "agent_v1_18.txt")
    with pytest.raises(Exception) as raised:
        dd_run_check(make_check({"agent_endpoint": url}))
    message = str(raised.value)
    assert "datadog-checks-base 37.10.0 or later" in message and "Agent 7.66" in message


def _everything_submitted(aggregator):
    metrics = sorted((s.name, s.type, s.value, tuple(sorted(s.tags)), s.hostname, s.flush_first_value)
                     for stubs in aggregator._metrics.values() for s in stubs)
    buckets = sorted((s.name, s.value, s.lower_bound, s.upper_bound, s.monotonic, tuple(sorted(s.tags)), s.hostname,
                      s.flush_first_value) for stubs in aggregator._histogram_buckets.values() for s in stubs)
    return metrics, buckets


@pytest.mark.parametrize("instance_extra", [{}, {"metric_patterns": {"exclude": ["cilium_day2\\.bpf\\..*"]}}])
def test_direct_submission_sends_exactly_what_the_base_class_sends(instance_extra, metrics_server, aggregator,
                                                                 dd_run_check):
    """The bulk of a scrape goes straight to the aggregator; with a `max_returned_metrics` limit
    every sample goes through the base class's `gauge`/`monotonic_count`/`submit_histogram_bucket`.
    Both must submit the same metrics, values, tags and flags, over two runs (counters flush from
    the second)."""
    instance = {"tags": ["team:net"], **instance_extra}
    for component in ("agent", "operator", "hubble"):
        fixture = next(f for f, c in sorted(COMPONENT_OF.items()) if c == component)
        instance[OPTION[component]] = metrics_server.serve(f"/{component}", fixture_text(fixture))
    seen = []
    for limit in ({}, {"max_returned_metrics": 10_000_000}):
        check = make_check({**instance, **limit})
        aggregator.reset()
        dd_run_check(check)
        dd_run_check(check)
        seen.append(_everything_submitted(aggregator))
    direct, through_base = seen
    assert direct[0] and direct[1], "the fixtures submit metrics and histogram buckets"
    assert direct == through_base
    if instance_extra:
        assert not [m for m in direct[0] if m[0].startswith("cilium_day2.bpf.")]
