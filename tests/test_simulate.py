"""The simulator: valid expositions, monotonic counters, effects on the named nodes only."""

import json
import re
import subprocess
import sys
import threading

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cilium_day2 import cli
from cilium_day2.errors import UserError
from cilium_day2.simulator.model import AGENT, HUBBLE, OPERATOR, Clock, Cluster
from cilium_day2.simulator.profiles import Profile, parse_duration, profile_from_spec
from cilium_day2.simulator.scenarios import load_scenarios
from cilium_day2.simulator.server import Simulation

SCENARIOS = load_scenarios()
REQUIRED = {
    "healthy", "map-pressure", "nat-exhaustion", "conntrack-gc-storm", "identity-churn", "kvstore-degraded",
    "eni-throttling", "ipam-exhaustion", "hubble-lost-events", "controllers-failing", "agent-restarts", "stuck-rollout",
    "ipcache-churn", "policy-rollout-failing", "health-partition", "api-pressure", "kvstore-sync-stuck", "hubble-stalled",
    "agent-down", "operator-crashloop", "operator-down", "identity-gc-failing", "fqdn-identity-leak", "ec2-api-slow",
}
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def samples(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, line
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def test_every_required_scenario_exists_and_documents_its_signals():
    from cilium_day2.catalog import load_catalog

    ids = set(load_catalog().ids())
    assert REQUIRED <= set(SCENARIOS)
    for name, sc in SCENARIOS.items():
        assert sc.summary and sc.description, name
        assert set(sc.signals) <= ids, name
        if name != "healthy":
            assert sc.signals, name


def test_scenarios_together_trip_every_enabled_signal():
    from cilium_day2.catalog import load_catalog

    tripped = set().union(*(set(sc.signals) for sc in SCENARIOS.values()))
    assert {s.id for s in load_catalog().enabled()} - tripped == set()


@pytest.mark.parametrize("component", [AGENT, HUBBLE, OPERATOR])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_expositions_parse_with_the_reference_parser(name, component):
    cluster = SCENARIOS[name].build(clock=Clock(speed=60, start=SCENARIOS[name].steady))
    index = None if component == OPERATOR else 0
    for t in (SCENARIOS[name].steady, SCENARIOS[name].steady + 600):
        text = cluster.render(component, index, t)
        families = list(text_string_to_metric_families(text))
        assert families
        names = [f.name for f in families]
        assert len(names) == len(set(names)), "a family appears twice"


def test_counters_never_go_backwards_without_a_restart():
    cluster = SCENARIOS["map-pressure"].build(clock=Clock(speed=1, start=0))
    previous = {}
    for t in range(0, 7200, 300):
        current = samples(cluster.render(AGENT, 1, t))
        for key, value in current.items():
            if key[0].endswith(("_total", "_bucket", "_count", "_sum")) and key in previous:
                assert value >= previous[key], key
        previous = current


def test_restart_resets_counters_and_moves_the_start_time():
    cluster = SCENARIOS["agent-restarts"].build(clock=Clock(speed=1, start=0))
    before = samples(cluster.render(AGENT, 1, 600))
    after = samples(cluster.render(AGENT, 1, 1300))  # a restart happens every 10 simulated minutes
    fwd = ('cilium_forward_count_total', '{direction="INGRESS"}')
    assert after[fwd] < before[fwd]
    start = ("cilium_process_start_time_seconds", "")
    assert after[start] > before[start]
    # The healthy node of the same cluster does not restart.
    a = samples(cluster.render(AGENT, 0, 600))
    b = samples(cluster.render(AGENT, 0, 1300))
    assert a[start] == b[start] and b[fwd] > a[fwd]


def test_effects_land_on_the_named_nodes_only():
    cluster = SCENARIOS["map-pressure"].build()
    t = SCENARIOS["map-pressure"].steady
    key = ("cilium_bpf_map_pressure", '{map_name="ct4_global"}')
    for node in cluster.nodes:
        value = samples(cluster.render(AGENT, node.index, t))[key]
        if node.index in (1, 2):
            assert value == pytest.approx(0.97)
        else:
            assert value < 0.4
    drops = [k for k in samples(cluster.render(AGENT, 0, t)) if "Map insertion failed" in k[1]]
    assert drops == []


def test_map_pressure_series_vanish_below_the_threshold():
    cluster = Cluster("c", 1, [("map_pressure.lxc", 0.02, None), ("map_pressure.ct4_global", 0.5, None)])
    text = cluster.render(AGENT, 0, 0)
    assert 'cilium_bpf_map_pressure{map_name="lxc"}' not in text
    assert 'cilium_bpf_map_pressure{map_name="ct4_global"} 0.5' in text


def test_identity_gc_runs_is_a_growing_gauge():
    cluster = Cluster("c", 1, [])
    runs = []
    for t in (0, 1800, 3600):
        text = cluster.render(OPERATOR, None, t)
        assert "# TYPE cilium_operator_identity_gc_runs gauge" in text
        runs.append(samples(text)[("cilium_operator_identity_gc_runs", '{identity_type="kvstore",outcome="success"}')])
    assert runs[0] < runs[1] < runs[2]


def test_the_119_ring_buffer_trickle_only_on_119_nodes():
    cluster = SCENARIOS["stuck-rollout"].build()
    t = SCENARIOS["stuck-rollout"].steady
    for node in cluster.nodes:
        cluster.render(HUBBLE, node.index, t)
        text = cluster.render(HUBBLE, node.index, t + 600)
        lost = 'hubble_lost_events_total{source="hubble_ring_buffer"}' in text
        assert lost == (node.index in (0, 1, 2)), node.index


def test_counters_follow_simulated_time():
    """A time-lapse: after 60 simulated seconds a 16000 pps counter moved ~960k, at any speed."""
    for speed in (1, 60):
        cluster = Cluster("c", 1, [], clock=Clock(speed=speed, start=0))
        a = samples(cluster.render(AGENT, 0, 0))
        b = samples(cluster.render(AGENT, 0, 60))
        key = ("cilium_forward_count_total", '{direction="INGRESS"}')
        assert b[key] - a[key] == pytest.approx(16000 * 0.52 * 60 * cluster.nodes[0].factor, rel=0.01)


def test_profiles():
    ramp = profile_from_spec({"from": 0, "to": 10, "start": "1m", "over": "1m"}, 0, "k")
    assert ramp(0) == 0 and ramp(90) == 5 and ramp(1000) == 10
    assert ramp.integral(120) == pytest.approx(300)
    step = profile_from_spec({"at": "10m", "value": 3}, 1, "k")
    assert step(599) == 1 and step(600) == 3
    assert Profile([(0, 2)]).integral(10) == 20
    assert parse_duration("1h30m") == 5400
    with pytest.raises(UserError):
        profile_from_spec({"value": 1, "bogus": 2}, 0, "k")
    with pytest.raises(UserError):
        parse_duration("soon")


def test_bad_scenario_files_fail_with_one_line(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text(yaml.safe_dump({"scenarios": {"x": {"effects": [{"nodes": [0], "knobs": {"no.such.knob": 1}}]}}}))
    with pytest.raises(UserError, match="unknown knob"):
        load_scenarios(str(bad))
    bad.write_text(yaml.safe_dump({"scenarios": {"x": {"effects": [{"nodes": [0], "knobs": {"cloud_api.rate": 5}}]}}}))
    with pytest.raises(UserError, match="cluster knob"):
        load_scenarios(str(bad))


def test_servers_and_scrape_config():
    cluster = SCENARIOS["healthy"].build(nodes=2)
    with Simulation([cluster]) as sim:
        assert len(sim.targets) == 5
        for t in sim.targets:
            assert t.host == "127.0.0.1"
            resp = requests.get(t.url, timeout=5)
            assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
        assert requests.get(sim.targets[0].url.replace("/metrics", "/nope"), timeout=5).status_code == 404
        jobs = {c["job_name"]: c for c in sim.scrape_configs()}
        assert set(jobs) == {"cilium-agent", "cilium-operator", "hubble-metrics"}
        labels = jobs["cilium-agent"]["static_configs"][0]["labels"]
        assert labels == {"cluster": "healthy", "node": cluster.nodes[0].name}
        assert all("node" not in g["labels"] for g in sim.file_sd() if g["labels"]["component"] == "operator")


def test_down_processes_stop_answering():
    """A down agent takes its Hubble server with it (one process); a down operator answers
    nothing either. Connections are closed unanswered, also on a kept-alive connection."""
    cluster = Cluster("c", 2, [("up", {"at": 60, "value": 0}, (1,)), ("operator_up", {"at": 60, "value": 0}, None)],
                      clock=Clock(speed=1, start=0))
    with Simulation([cluster]) as sim, requests.Session() as session:
        def answers(t):
            try:
                return session.get(t.url, timeout=5).status_code == 200
            except requests.exceptions.ConnectionError:
                return False

        assert all(answers(t) for t in sim.targets)  # all up, connections kept alive
        cluster.clock.start = 120  # jump past the failures
        up = {(t.component, t.node): answers(t) for t in sim.targets}
        up_again = {(t.component, t.node): answers(t) for t in sim.targets}  # new connections
    down = {(AGENT, cluster.nodes[1].name), (HUBBLE, cluster.nodes[1].name), (OPERATOR, None)}
    assert {k for k, v in up.items() if not v} == down
    assert {k for k, v in up_again.items() if not v} == down


def test_scenario_steps_are_integrated_exactly():
    """A rate that steps up at 10m counts nothing before it: 0.05/s for 10 s after the step."""
    cluster = Cluster("c", 1, [("kvstore.quorum_errors", {"at": "10m", "value": 0.5}, None)])
    cluster.render(AGENT, 0, 0)
    cluster.render(AGENT, 0, 130)
    assert "cilium_kvstore_quorum_errors_total" not in cluster.render(AGENT, 0, 590)
    text = cluster.render(AGENT, 0, 610)
    assert samples(text)[("cilium_kvstore_quorum_errors_total", '{error="timeout while waiting for quorum"}')] == 5


def test_cli_list_and_bad_input(capsys):
    assert cli.main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out
    assert "map-pressure" in out and "trips: bpf_map_pressure" in out
    assert cli.main(["simulate", "--scenario", "nope"]) == 2
    assert "unknown" in capsys.readouterr().err
    assert cli.main(["simulate", "--speed", "0"]) == 2
    assert cli.main(["simulate", "--start", "soon"]) == 2


def test_cli_serves_for_a_duration_and_writes_configs(tmp_path):
    sc, sd = tmp_path / "scrape.yml", tmp_path / "sd.json"
    proc = subprocess.run(
        [sys.executable, "-m", "cilium_day2", "simulate", "-s", "map-pressure", "--nodes", "3", "--speed", "60",
         "--start", "steady", "--duration", "1s", "--format", "json",
         "--write-scrape-config", str(sc), "--write-file-sd", str(sd)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    targets = json.loads(proc.stdout)
    assert len(targets) == 7 and {t["component"] for t in targets} == {AGENT, HUBBLE, OPERATOR}
    assert "should trip: bpf_map_pressure, datapath_capacity_drops" in proc.stderr
    assert yaml.safe_load(sc.read_text())["scrape_configs"][0]["job_name"] == "cilium-agent"
    assert len(json.loads(sd.read_text())) == 7


def test_cli_plays_several_scenarios_each_as_its_own_cluster(tmp_path, capsys):
    sc = tmp_path / "scrape.yml"
    assert cli.main(["simulate", "-s", "healthy", "-s", "agent-down", "-s", "healthy",
                     "--duration", "0s", "--format", "json", "--write-scrape-config", str(sc)]) == 0
    captured = capsys.readouterr()
    targets = json.loads(captured.out)
    assert {t["cluster"] for t in targets} == {"healthy", "agent-down"}  # a repeated name plays once
    assert len(targets) == 2 * (1 + 2 * 6)  # an operator, and an agent and a Hubble server per node
    assert len({t["url"] for t in targets}) == len(targets)
    agents = yaml.safe_load(sc.read_text())["scrape_configs"][0]["static_configs"]
    assert {g["labels"]["cluster"] for g in agents} == {"healthy", "agent-down"}
    assert "simulating agent-down (6 nodes)" in captured.err

    assert cli.main(["simulate", "-s", "all", "--duration", "0s", "--format", "json"]) == 0
    assert {t["cluster"] for t in json.loads(capsys.readouterr().out)} == set(SCENARIOS)

    assert cli.main(["simulate", "-s", "healthy", "-s", "agent-down", "--cluster", "prod"]) == 2
    assert "--cluster names one cluster" in capsys.readouterr().err


def test_one_event_loop_serves_many_endpoints_with_keep_alive():
    """Every endpoint answers on a kept-alive connection, and a request for another path does not
    close it."""
    clusters = [SCENARIOS["healthy"].build(nodes=2, cluster=name) for name in ("a", "b")]
    with Simulation(clusters) as sim, requests.Session() as session:
        for _ in range(2):
            for t in sim.targets:
                assert session.get(t.url, timeout=5).status_code == 200
        assert session.get(sim.targets[0].url + "x", timeout=5).status_code == 404
        assert session.get(sim.targets[0].url, timeout=5).status_code == 200
        assert session.post(sim.targets[0].url, data=b"x", timeout=5).status_code == 405
    assert threading.active_count() < 50  # one serving thread, not one per endpoint or connection
