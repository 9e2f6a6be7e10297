"""The cost benchmark still runs, and its numbers are what its table says they are.

Speed is not asserted here (that is the benchmark's job, on an idle machine); this only keeps the
script from rotting: one small payload, one round, every mode measured side by side.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "check_cost.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, check=False)


def test_check_cost_measures_every_mode_side_by_side():
    out = run("--only", "operator 500 nodes", "--runs", "2", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    [row] = json.loads(out.stdout)
    assert row["payload"] == "operator 500 nodes" and row["lines"] > 1000
    for mode in ("cilium_day2", "stock", "floor"):
        assert len(row[mode]["cpu_runs"]) == 2
        assert all(cpu > 0 for cpu in row[mode]["cpu_runs"])
    # Three IPAM gauges per node reach the sink from both checks; the floor submits nothing.
    assert row["cilium_day2"]["series"] >= 3 * 500 and row["stock"]["series"] >= 3 * 500
    assert row["floor"]["series"] == 0
    # The ratios are the paired rounds' own: the median lies between the lowest and the highest.
    for key, other in (("ratio_stock", "stock"), ("ratio_floor", "floor")):
        ratios = [a / b for a, b in zip(row["cilium_day2"]["cpu_runs"], row[other]["cpu_runs"])]
        assert row[key]["min"] == min(ratios) and row[key]["max"] == max(ratios)
        assert row[key]["min"] <= row[key]["median"] <= row[key]["max"]


def test_check_cost_refuses_an_unknown_payload_in_one_line():
    out = run("--only", "no such payload")
    assert out.returncode == 2
    assert "matches no payload" in out.stderr and "Traceback" not in out.stderr


# -- the rule pack benchmark (benchmarks/rule_cost.py) -------------------------------------------

RULE_COST = ROOT / "benchmarks" / "rule_cost.py"
PACK = ROOT / "assets" / "prometheus" / "cilium-day2.rules.yml"
sys.path.insert(0, str(ROOT / "benchmarks"))


def run_rule_cost(*args, timeout=400):
    return subprocess.run([sys.executable, str(RULE_COST), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, check=False)


def test_rule_cost_fleet_mode_measures_the_whole_pack_against_no_rules(tmp_path):
    """A 20-node fleet, one round: every group evaluated together, every recording rule counted."""
    import yaml

    nodes = 20
    # The pack's groups run every minute or more; here every group runs every 5 s, so that a
    # 15 s phase sees each of them.
    pack = yaml.safe_load(PACK.read_text())
    for g in pack["groups"]:
        g["interval"] = "5s"
    rules_dir = tmp_path.parent / (tmp_path.name + "-rules")
    rules_dir.mkdir()
    fast = rules_dir / "fast.rules.yml"
    fast.write_text(yaml.safe_dump(pack, sort_keys=False, width=10_000))
    out = run_rule_cost("--fleet", "--nodes", str(nodes), "--clusters", "2", "--rounds", "1", "--phase-seconds", "15",
                        "--interval", "5", "--rules", str(fast), "--json", "--workdir", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    rep = json.loads(out.stdout)
    assert rep["mode"] == "fleet" and rep["nodes"] == nodes
    groups = [g["name"] for g in pack["groups"]]
    records = {r["record"] for g in pack["groups"] for r in g["rules"] if "record" in r}
    rules = {r.get("record") or r.get("alert") for g in pack["groups"] for r in g["rules"]}

    fleet = rep["fleet"]
    assert len(fleet["baseline_runs"]) == 1 and fleet["baseline_runs"][0] >= 0
    v = fleet["variants"]["recorded"]
    # The whole pack ran at once: every group evaluated in the phase, none of them failing.
    assert list(v["groups"]) == groups and not v["unevaluated_groups"]
    assert all(g["evaluations"] >= 1 and g["interval"] == 5 for g in v["groups"].values())
    assert v["errors"] == [] and v["missed"] >= 0
    # Rule CPU is the pack's phase minus the baseline's.
    assert abs(v["rule_cores"] - (rep["phases"]["recorded"][0]["cpu_cores"] - fleet["baseline_cores"])) < 1e-9
    # The cycle is the sum of the groups' medians.
    assert abs(v["cycle_median_s"] - sum(g["median_s"] for g in v["groups"].values())) < 1e-9
    # Recording series: every recording rule counted, per node = total / nodes.
    assert set(v["records"]) == records
    total = sum(c["series"] for c in v["records"].values())
    assert total == v["recording_series"] > 0
    assert abs(v["recording_series_per_node"] - total / nodes) < 1e-9
    # The per-rule list is ranked and names the pack's rules.
    times = [r["seconds"] for r in v["top_rules"]]
    assert times == sorted(times, reverse=True) and {r["rule"] for r in v["top_rules"]} <= rules
    # Hubble flows carry their context labels: far more series per node than the 14 type/verdict pairs.
    assert rep["series_by_name"]["hubble_flows_processed_total"] / nodes > 50
    assert rep["series_by_name"]["hubble_drop_total"] >= nodes
    assert list(tmp_path.iterdir()) == []  # temporary files removed


def test_fleet_generator_labels_hubble_flows_like_cilium():
    """Flow series: Cilium's base labels, then labelsContext's; drops match the dropped flows."""
    from fleet_tsdb import HUBBLE_CONTEXT, Fleet, hubble_drop_total, hubble_flows_processed_total

    fleet = Fleet(nodes=200, clusters=4)
    per_node, workloads = [], set()
    for gi in range(0, 200, 7):
        t = fleet.node(gi, 15)
        flows = hubble_flows_processed_total(t)
        keys = [dict(s[2]) for s in flows]
        assert len({tuple(sorted(k.items())) for k in keys}) == len(keys)  # no duplicate series
        for labels in keys:
            assert {"protocol", "type", "verdict"} <= set(labels) <= {"protocol", "type", "subtype", "verdict",
                                                                      *HUBBLE_CONTEXT}
            assert labels["verdict"] in ("FORWARDED", "DROPPED")
        dropped = sum(k["type"] == "Drop" for k in keys)
        policy_drops = [dict(s[2]) for s in hubble_drop_total(t) if dict(s[2])["reason"] == "POLICY_DENIED"]
        assert len(policy_drops) == dropped
        assert all(s[1] == "hubble" for s in flows + hubble_drop_total(t))  # the Hubble metrics endpoint
        per_node.append(len(flows))
        workloads |= {(k.get("source_namespace"), k.get("source_workload")) for k in keys}
    assert min(per_node) < max(per_node)  # nodes differ in what runs on them
    assert len(workloads) > 10


def test_fleet_phases_interleave_with_the_baseline():
    from whole_pack import BASELINE, phase_plan

    plan = phase_plan(["recorded", "peer"], 3)
    assert plan.count(BASELINE) == plan.count("recorded") == plan.count("peer") == 3
    assert plan[:3] == [BASELINE, "recorded", "peer"] and plan[3:6] == ["peer", "recorded", BASELINE]


def test_rule_cost_refuses_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "rules.yml"
    bad.write_text("groups: [ {name: x, rules: [ {alert: A}\n")
    for args, needle in ((["--rules", str(tmp_path / "missing.yml")], "--rules"),
                         (["--rules", str(bad)], "--rules"),
                         (["--fleet", "--gomemlimit", "lots"], "--gomemlimit"),
                         (["--nodes", "3", "--clusters", "5"], "--clusters")):
        out = run_rule_cost(*args, "--workdir", str(tmp_path), timeout=60)
        assert out.returncode == 2, (args, out.stderr)
        assert needle in out.stderr.strip().splitlines()[-1] and "Traceback" not in out.stderr
