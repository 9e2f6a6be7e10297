"""A bad endpoint never stops the others; each reports its own service check with the cause."""

import logging
import re

import pytest

from datadog_checks.base import AgentCheck

from .common import make_check
from .conftest import fixture_text

HEALTHY = {
    "agent": ("agent_endpoint", "agent_v1_18.txt", "cilium_day2.bpf.map_pressure"),
    "operator": ("operator_endpoint", "operator_eni.txt", "cilium_day2.operator.ipam.needed_ips"),
    "hubble": ("hubble_endpoint", "hubble_context.txt", "cilium_day2.hubble.lost_events.count"),
}

GARBAGE_JSON = '{"error": "not found", "items": [1, 2, 3]}\n'
HTML = "<!DOCTYPE html>\n<html><head><title>Grafana</title></head><body>login</body></html>\n"


def fault(server, kind, path, refused_url):
    """Serve one kind of broken endpoint; returns (url, words expected in the service check message)."""
    agent_text = fixture_text("agent_v1_18.txt")
    if kind == "refused":
        return refused_url, "connection refused"
    if kind == "timeout":
        return server.serve(path, agent_text, delay=6), "timed out"
    if kind == "http_500":
        return server.serve(path, "internal error", status=500), "HTTP 500"
    if kind == "http_404":
        return server.serve(path, "not here", status=404), "HTTP 404"
    if kind == "html":
        return server.serve(path, HTML, content_type="text/html; charset=utf-8"), "HTML"
    if kind == "html_as_text":
        return server.serve(path, HTML), "not a Prometheus exposition"
    if kind == "garbage":
        return server.serve(path, GARBAGE_JSON), "not a Prometheus exposition"
    if kind == "truncated":
        cut = agent_text[: len(agent_text) // 2]
        return server.serve(path, cut, truncate=True), "cut off"
    raise AssertionError(kind)


FAULTS = ["refused", "timeout", "http_500", "http_404", "html", "html_as_text", "garbage", "truncated"]


@pytest.mark.parametrize("broken", ["agent", "operator", "hubble"])
@pytest.mark.parametrize("kind", FAULTS)
def test_one_broken_endpoint_does_not_stop_the_others(broken, kind, metrics_server, refused_url, aggregator,
                                                      dd_run_check, caplog):
    instance = {"timeout": 2}  # generous: healthy endpoints must finish within it on a loaded machine
    for component, (option, fixture, _) in HEALTHY.items():
        if component == broken:
            instance[option], words = fault(metrics_server, kind, f"/{component}", refused_url)
        else:
            instance[option] = metrics_server.serve_fixture(f"/{component}", fixture)

    caplog.set_level(logging.WARNING)
    dd_run_check(make_check(instance))  # never raises

    for component, (_, _, probe_metric) in HEALTHY.items():
        name = f"cilium_day2.{component}.openmetrics.health"
        if component == broken:
            (sc,) = aggregator.service_checks(name)
            assert sc.status == AgentCheck.CRITICAL
            assert words.lower() in sc.message.lower(), sc.message
            assert component in sc.message and "127.0.0.1" in sc.message
        else:
            aggregator.assert_service_check(name, AgentCheck.OK, count=1)
            assert aggregator.metrics(probe_metric), f"{component} metrics missing while {broken} is {kind}"

    # One clear line per failure, no traceback.
    assert "Traceback" not in caplog.text
    failure_lines = [r for r in caplog.records if r.levelno >= logging.WARNING and broken in r.getMessage()]
    assert len(failure_lines) == 1, [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("kind", FAULTS)
def test_all_endpoints_broken_at_once(kind, metrics_server, refused_url, aggregator, dd_run_check):
    instance = {"timeout": 2}  # generous: healthy endpoints must finish within it on a loaded machine
    for component, (option, _, _) in HEALTHY.items():
        instance[option], _ = fault(metrics_server, kind, f"/{component}", refused_url)
    dd_run_check(make_check(instance))
    for component in HEALTHY:
        aggregator.assert_service_check(f"cilium_day2.{component}.openmetrics.health", AgentCheck.CRITICAL, count=1)


def test_service_check_recovers(metrics_server, aggregator, dd_run_check):
    url = metrics_server.serve("/agent", "boom", status=503)
    check = make_check({"agent_endpoint": url})
    dd_run_check(check)
    aggregator.assert_service_check("cilium_day2.agent.openmetrics.health", AgentCheck.CRITICAL, count=1)
    aggregator.reset()
    metrics_server.serve_fixture("/agent", "agent_v1_18.txt")
    dd_run_check(check)
    aggregator.assert_service_check("cilium_day2.agent.openmetrics.health", AgentCheck.OK, count=1)


def test_malformed_lines_are_skipped_and_reported(metrics_server, aggregator, dd_run_check):
    text = (
        "# TYPE cilium_controllers_failing gauge\n"
        "cilium_controllers_failing 2\n"
        "# TYPE cilium_unreachable_nodes gauge\n"
        'cilium_unreachable_nodes{broken="yes} 3\n'
        "# TYPE cilium_identity gauge\n"
        'cilium_identity{type="cluster_local"} not-a-number\n'
        'cilium_identity{type="node_local"} 41\n'
    )
    dd_run_check(make_check({"agent_endpoint": metrics_server.serve("/m", text)}))
    aggregator.assert_metric("cilium_day2.controllers.failing.count", 2)
    aggregator.assert_metric("cilium_day2.identity.count", 41)
    assert not aggregator.metrics("cilium_day2.unreachable.nodes")
    (sc,) = aggregator.service_checks("cilium_day2.agent.openmetrics.health")
    assert sc.status == AgentCheck.WARNING
    assert "2 malformed" in sc.message and "line 4" in sc.message


def test_duplicate_series_are_submitted_once(metrics_server, aggregator, dd_run_check):
    line = 'cilium_bpf_map_ops_total{map_name="ipcache_v2",operation="update",outcome="fail"} 9\n'
    text = "# TYPE cilium_bpf_map_ops_total counter\n" + line + line + line
    dd_run_check(make_check({"agent_endpoint": metrics_server.serve("/m", text)}))
    assert len(aggregator.metrics("cilium_day2.bpf.map_ops.count")) == 1
    aggregator.assert_service_check("cilium_day2.agent.openmetrics.health", AgentCheck.OK)


def test_nan_and_inf_values_are_dropped(metrics_server, aggregator, dd_run_check):
    text = (
        "# TYPE cilium_bpf_map_pressure gauge\n"
        'cilium_bpf_map_pressure{map_name="ct4_global"} NaN\n'
        'cilium_bpf_map_pressure{map_name="ct_any4_global"} +Inf\n'
        'cilium_bpf_map_pressure{map_name="snat_v4_external"} 0.42\n'
    )
    dd_run_check(make_check({"agent_endpoint": metrics_server.serve("/m", text)}))
    (stub,) = aggregator.metrics("cilium_day2.bpf.map_pressure")
    assert stub.value == 0.42 and "map_name:snat_v4_external" in stub.tags


def test_tokens_never_reach_logs_or_messages(metrics_server, refused_url, aggregator, dd_run_check, caplog, tmp_path):
    secret = "s3cr3t-token-value"
    token_file = tmp_path / "token"
    token_file.write_text(secret)
    url = metrics_server.serve("/m", "unauthorized", status=401)
    userinfo_url = refused_url.replace("http://", f"http://admin:{secret}@")
    instance = {
        "agent_endpoint": url,
        "operator_endpoint": userinfo_url,
        "auth_token": {
            "reader": {"type": "file", "path": str(token_file)},
            "writer": {"type": "header", "name": "Authorization", "value": "Bearer <TOKEN>"},
        },
    }
    caplog.set_level(logging.DEBUG)
    dd_run_check(make_check(instance))
    # The token was sent...
    assert metrics_server.routes["/m"].requests[-1]["Authorization"] == f"Bearer {secret}"
    # ...and appears nowhere a person reads.
    messages = [sc.message for scs in aggregator._service_checks.values() for sc in scs]
    assert all(secret not in m for m in messages), messages
    assert secret not in caplog.text


CONFIG_ERRORS = [
    ({}, "no endpoint configured"),
    ({"agent_endpoint": ""}, "no endpoint configured"),
    ({"agent_endpoint": "localhost:9962/metrics"}, "`agent_endpoint` must start with http://"),
    ({"operator_endpoint": "http:///metrics"}, "`operator_endpoint` has no host"),
    ({"hubble_endpoint": "http://127.0.0.1:port/metrics"}, "`hubble_endpoint` is not a valid URL"),
    ({"agent_endpoint": 9962}, "`agent_endpoint` must be a URL string"),
    ({"openmetrics_endpoint": "http://127.0.0.1:9962/metrics"}, "`openmetrics_endpoint` is not used"),
    ({"agent_endpoint": "http://127.0.0.1:9962/metrics", "tags": "team:net"}, "`tags` must be a list"),
    ({"hubble_endpoint": "http://127.0.0.1:9965/metrics", "hubble_include_labels": "source_pod"},
     "`hubble_include_labels` must be a list"),
]


@pytest.mark.parametrize("instance, message", CONFIG_ERRORS)
def test_configuration_errors_name_the_option(instance, message, dd_run_check):
    with pytest.raises(Exception, match=re.escape(message)) as info:
        dd_run_check(make_check(instance), extract_message=True)
    assert "Traceback" not in str(info.value)


def test_non_numeric_value_in_a_well_formed_block_is_reported(metrics_server, aggregator, dd_run_check):
    text = "# TYPE cilium_operator_ipam_needed_ips gauge\n" + "".join(
        f'cilium_operator_ipam_needed_ips{{target_node="node-{i}"}} {"oops" if i == 3 else i}\n' for i in range(6)
    )
    dd_run_check(make_check({"operator_endpoint": metrics_server.serve("/m", text)}))
    assert len(aggregator.metrics("cilium_day2.operator.ipam.needed_ips")) == 5
    (sc,) = aggregator.service_checks("cilium_day2.operator.openmetrics.health")
    assert sc.status == AgentCheck.WARNING and "1 malformed" in sc.message and "oops" in sc.message
