"""`cilium-day2 doctor` over simulated and broken endpoints: statuses, culprits, exit codes."""

import json

import pytest

from cilium_day2 import cli
from cilium_day2.catalog import load_catalog
from cilium_day2.doctor.command import Endpoint, ScrapeError, diagnose, hint, parse_samples, reader_plans
from cilium_day2.catalog.evaluate import PARTIAL, CRITICAL, NO_DATA, OK, WARNING
from cilium_day2.simulator.model import Clock
from cilium_day2.simulator.scenarios import load_scenarios
from cilium_day2.simulator.server import Simulation

SCENARIOS = load_scenarios()
SPEED = 600.0


def run_scenario(name, catalog=None, mutate=None, samples=3, interval=0.3):
    sc = SCENARIOS[name]
    cluster = sc.build(clock=Clock(speed=SPEED, start=sc.steady))
    with Simulation([cluster]) as sim:
        endpoints = [Endpoint(t.component, t.node or "operator", t.url) for t in sim.targets]
        if mutate:
            endpoints = mutate(endpoints)
        # A generous timeout: a loaded CI machine must not turn a slow scrape into a missing sample.
        return diagnose(catalog or load_catalog(), endpoints, name, samples, interval, timeout=15, time_scale=SPEED)


def failing(findings):
    return {f.id: f.status for f in findings if f.status in (WARNING, CRITICAL)}


def test_healthy_cluster_passes_the_gate():
    # Samples spanning the longest window (an hour at 600x), as the demo takes them.
    findings, statuses, code, reason = run_scenario("healthy", samples=7, interval=1.0)
    assert code == 0 and reason == ""
    assert failing(findings) == {}
    assert all(s.error == "" for s in statuses)
    # Every signal the simulator feeds is evaluated: nothing is left without data.
    assert [f.id for f in findings if f.status == NO_DATA] == []


def test_samples_shorter_than_a_window_are_judged_on_what_they_saw_and_say_so():
    """A window total the samples did not cover is OK only because nothing crossed its threshold
    while doctor looked, and the finding says it was a partial window."""
    findings, _, code, _ = run_scenario("healthy")
    partial = [f for f in findings if f.status == OK and f.reason.startswith(PARTIAL)]
    assert partial and code == 0
    assert all("window" in f.reason and "--interval" in f.reason for f in partial)
    assert [f.id for f in findings if f.status == NO_DATA] == []


def test_warning_exits_1_and_names_the_culprit_node():
    findings, _, code, _ = run_scenario("controllers-failing")
    assert code == 1
    assert failing(findings) == {"controllers_failing": WARNING}
    f = next(f for f in findings if f.id == "controllers_failing")
    assert f.value == 3 and f.threshold == 0
    assert f.culprit["node"] == "ip-10-0-32-14.ec2.internal"


def test_critical_exits_2_with_every_failing_group():
    findings, _, code, _ = run_scenario("map-pressure")
    assert code == 2
    assert failing(findings) == {"bpf_map_pressure": CRITICAL, "datapath_capacity_drops": WARNING}
    f = next(f for f in findings if f.id == "bpf_map_pressure")
    assert {g.labels["node"] for g in f.groups} == {"ip-10-0-32-11.ec2.internal", "ip-10-0-32-12.ec2.internal"}
    assert all(g.labels["map_name"] == "ct4_global" for g in f.groups)


def test_values_file_changes_thresholds(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("signals:\n  controllers_failing: {warning: 4, critical: 10}\n")
    findings, _, code, _ = run_scenario("controllers-failing", catalog=load_catalog(str(values)), samples=7, interval=1.0)
    assert code == 0 and failing(findings) == {}


def test_unreachable_endpoint_is_reported_and_the_rest_evaluated(refused_url):
    def break_one(endpoints):
        out = list(endpoints)
        i = next(i for i, e in enumerate(out) if e.component == "agent")
        out[i] = Endpoint("agent", out[i].name, refused_url)
        return out

    findings, statuses, code, _ = run_scenario("map-pressure", mutate=break_one)
    bad = [s for s in statuses if s.error]
    assert len(bad) == 1 and "refused" in bad[0].error
    status = {f.id: f.status for f in findings}
    assert status["agent_down"] == CRITICAL  # what Prometheus' `up` would say
    assert status["bpf_map_pressure"] == CRITICAL  # the other nodes are still evaluated
    assert code == 2


def test_garbage_and_empty_payloads_are_per_endpoint_errors(metrics_server):
    html = metrics_server.serve("/html", "<html><body>login</body></html>")
    empty = metrics_server.serve("/empty", "")
    err = metrics_server.serve("/err", "oops", status=500)

    def swap(endpoints):
        hubbles = [i for i, e in enumerate(endpoints) if e.component == "hubble"]
        out = list(endpoints)
        for i, url in zip(hubbles, (html, empty, err)):
            out[i] = Endpoint("hubble", out[i].name, url)
        return out

    findings, statuses, code, _ = run_scenario("healthy", mutate=swap)
    errors = sorted(s.error for s in statuses if s.error)
    assert len(errors) == 3
    assert any("not Prometheus text" in e for e in errors)
    assert any("no metrics" in e for e in errors)
    assert any("HTTP 500" in e for e in errors)
    status = {f.id: f for f in findings}
    assert status["hubble_metrics_down"].status == CRITICAL
    assert len(status["hubble_metrics_down"].groups) == 3
    assert status["hubble_lost_events"].status == OK  # the three good Hubble servers
    assert code == 2


def test_nothing_reachable_exits_3(refused_url):
    catalog = load_catalog()
    findings, statuses, code, reason = diagnose(catalog, [Endpoint("agent", "n1", refused_url)], "c", 1, 0, timeout=2)
    assert code == 3 and "no endpoint answered" in reason and findings == []


def test_one_sample_evaluates_instant_signals_only():
    findings, _, code, _ = run_scenario("map-pressure", samples=1)
    status = {f.id: f for f in findings}
    assert status["bpf_map_pressure"].status == CRITICAL
    assert status["datapath_capacity_drops"].status == NO_DATA
    assert "2 samples" in status["datapath_capacity_drops"].reason
    assert code == 2


def test_missing_components_are_no_data_and_not_a_pass():
    findings, _, code, _ = run_scenario("healthy", mutate=lambda eps: [e for e in eps if e.component == "agent"])
    status = {f.id: f for f in findings}
    assert status["cloud_api_error_ratio"].status == NO_DATA
    assert status["cloud_api_error_ratio"].reason == "no operator endpoint given"
    assert status["hubble_lost_events"].status == NO_DATA
    # Not a pass: the operator and Hubble signals were not evaluated.
    assert code == 3


def test_parse_samples_keeps_names_exact():
    plans = reader_plans(load_catalog())["operator"]
    got = parse_samples('cilium_operator_ipam_interface_creation_ops{status="success"} 3\n', {"cluster": "c"},
                        plans, "operator")
    assert got[0].name == "cilium_operator_ipam_interface_creation_ops"
    with pytest.raises(ScrapeError):
        parse_samples("{not: json}", {}, plans, "operator")


def test_hint_is_the_runbook_opening():
    assert hint("Check the map, e.g. ct4_global. Then resize it.") == "Check the map, e.g. ct4_global. Then resize it."
    long_first = "Look at the map and its pressure on every node of the cluster first. Then resize it."
    assert hint(long_first) == "Look at the map and its pressure on every node of the cluster first."


def test_demo_json_and_exit_code(capsys):
    code = cli.main(["doctor", "--demo", "controllers-failing", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    # The demo ran (exit 0); the gate's verdict for these endpoints is in the report.
    assert code == 0 and out["exit_code"] == 1 and out["status"] == WARNING
    by_id = {s["id"]: s for s in out["signals"]}
    assert by_id["controllers_failing"]["status"] == WARNING
    assert by_id["controllers_failing"]["culprit"]["node"] == "ip-10-0-32-14.ec2.internal"
    assert by_id["controllers_failing"]["runbook"]
    assert len(out["endpoints"]) == 13 and all(e["error"] is None for e in out["endpoints"])


def test_demo_table(capsys):
    code = cli.main(["doctor", "--demo", "map-pressure", "--samples", "2", "--interval", "1s"])
    out = capsys.readouterr().out
    assert code == 0
    assert "SIGNAL" in out and "bpf_map_pressure" in out and "CRITICAL" in out and "What to do:" in out
    assert "Result: CRITICAL" in out and "would exit with status 2" in out


@pytest.mark.parametrize(
    "argv, text",
    [
        (["doctor"], "give endpoints"),
        (["doctor", "--agent", "ftp://x"], "not an http(s) URL"),
        (["doctor", "--agent", "http://127.0.0.1:1/metrics", "--samples", "0"], "at least 1"),
        (["doctor", "--agent", "http://127.0.0.1:1/metrics", "--interval", "soon"], "not a duration"),
        (["doctor", "--demo", "nope"], "unknown scenario"),
        (["doctor", "--demo", "healthy", "--agent", "http://x:1/metrics"], "drop --agent"),
        (["doctor", "--kubernetes"], "kubernetes"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, text, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert text in err and "\n" not in err and "Traceback" not in err


def test_sampling_interval_longer_than_the_window_still_gives_rates():
    """Two samples ten simulated minutes apart against 5-minute windows: rates come from the
    last two samples (the query evaluator's rule), as they would from a PromQL rate."""
    findings, statuses, code, _ = run_scenario("map-pressure", samples=2, interval=1.0)  # 600 s apart at 600x
    assert [(s.endpoint.shown, s.error) for s in statuses if s.error or s.ok_samples != 2] == []
    status = {f.id: f for f in findings}
    assert status["datapath_capacity_drops"].status == WARNING
    assert status["datapath_capacity_drops"].value == pytest.approx(1.5, rel=0.3)
    assert code == 2


def test_stopped_agent_is_unreachable_and_down():
    findings, statuses, code, _ = run_scenario("agent-down")
    node = "ip-10-0-32-13.ec2.internal"
    bad = {(s.endpoint.component, s.endpoint.name): s.error for s in statuses if s.error}
    assert set(bad) == {("agent", node), ("hubble", node)}
    assert all("unreachable" in e for e in bad.values())
    assert failing(findings) == {"agent_down": CRITICAL, "hubble_metrics_down": CRITICAL}
    assert {g.labels["node"] for f in findings if f.status == CRITICAL for g in f.groups} == {node}
    assert code == 2


def test_stopped_operator_leaves_operator_signals_without_data():
    findings, _, code, _ = run_scenario("operator-down")
    assert failing(findings) == {"operator_down": CRITICAL}
    status = {f.id: f for f in findings}
    assert status["cloud_api_error_ratio"].status == NO_DATA
    assert status["cloud_api_error_ratio"].reason.startswith(
        "could not evaluate: no operator endpoint answered with Cilium metrics")
    assert code == 2
