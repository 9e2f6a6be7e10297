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
