"""The Datadog side of the end-to-end proof: for every scenario, the Agent check run against the
simulated endpoints submits every metric (and service check) that the monitors of the
scenario's signals query, with the tags those monitors filter on."""

import json
import re
import time
from pathlib import Path

import pytest

from datadog_checks.cilium_day2 import CiliumDay2Check
from cilium_day2.simulator.model import AGENT, HUBBLE, OPERATOR, Clock
from cilium_day2.simulator.scenarios import load_scenarios
from cilium_day2.simulator.server import Simulation

pytestmark = pytest.mark.e2e

MONITORS = Path(__file__).resolve().parents[1] / "assets" / "monitors"
SCENARIOS = load_scenarios()
NAME_RE = re.compile(r"cilium_day2\.[a-z0-9_.]+")
# `key:value` filters inside a monitor's `{...}` scope, not negated.
FILTER_RE = re.compile(r"(?<![!\w])([a-z_]+):([A-Za-z0-9_.:*-]+)")


def monitor_query(signal_id):
    path = MONITORS / f"{signal_id}.json"
    if not path.exists():
        return None, None
    data = json.loads(path.read_text())
    return data["definition"]["type"], data["definition"]["query"]


def datadog_names_of(signal_id):
    """Datadog names of the families a signal's query reads (for signals without a monitor)."""
    from cilium_day2 import metrics
    from cilium_day2.catalog import load_catalog
    from cilium_day2.catalog.query import iter_selectors

    catalog = load_catalog()
    signal = catalog.signal(signal_id)
    maps = {**metrics.AGENT_METRICS, **metrics.OPERATOR_METRICS, **metrics.HUBBLE_METRICS}
    names = set()
    for sel in iter_selectors(signal.query.expr):
        for family in sel.families(catalog.settings.cloud_apis):
            if family in maps:
                names.update(metrics.submitted_names(family, maps[family]))
    return names


def scopes(query):
    """(metric name, [positive tag filters]) for each metric in a monitor query."""
    out = []
    for m in re.finditer(r"(cilium_day2\.[a-z0-9_.]+)\{([^}]*)\}", query):
        name, scope = m.group(1), m.group(2)
        filters = [] if scope == "*" else [f"{k}:{v}" for k, v in FILTER_RE.findall(scope) if "*" not in v]
        # Only conjunctive filters must all hold; a disjunction needs one of them.
        out.append((name, filters, " OR " in scope))
    return out


def _normalise(tag):
    return re.sub(r"[^a-z0-9_.:/-]", "_", tag.lower())


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_check_submits_what_the_scenario_monitors_query(name, aggregator, dd_run_check):
    scenario = SCENARIOS[name]
    if not scenario.signals:
        pytest.skip("healthy trips nothing; the check's own tests cover every family")
    culprit = next((e.nodes[0] for e in scenario.expect if e.nodes), 0)
    cluster = scenario.build(clock=Clock(speed=60, start=scenario.steady))
    with Simulation([cluster]) as sim:
        url = {t.component: t.url for t in sim.targets if t.node in (None, cluster.nodes[culprit].name)}
        check = CiliumDay2Check(
            "cilium_day2",
            {},
            [{"agent_endpoint": url[AGENT], "operator_endpoint": url[OPERATOR], "hubble_endpoint": url[HUBBLE]}],
        )
        dd_run_check(check)
        time.sleep(0.5)  # counters submit their increase from the second run on
        dd_run_check(check)
    problems = []
    for signal in scenario.signals:
        kind, query = monitor_query(signal)
        if kind is None:
            # No Datadog monitor for this signal (the renderer says why): the family it reads
            # must still reach Datadog, for the dashboard.
            names = datadog_names_of(signal)
            if not any(aggregator.metrics(n) for n in names):
                problems.append(f"{signal}: none of {sorted(names)} submitted")
            continue
        if kind == "service check":
            sc = query.split('"')[1]
            if not aggregator.service_checks(sc):
                problems.append(f"{signal}: service check {sc} not submitted")
            continue
        for metric, filters, disjunction in scopes(query):
            stubs = aggregator.metrics(metric) or aggregator.histogram_bucket(metric)
            if not stubs:
                problems.append(f"{signal}: {metric} not submitted")
                continue
            tag_sets = [{_normalise(t) for t in s.tags} for s in stubs]
            wanted = [_normalise(f) for f in filters]
            ok = any(
                (any(w in tags for w in wanted) if disjunction else all(w in tags for w in wanted)) for tags in tag_sets
            ) if wanted else True
            if not ok:
                problems.append(f"{signal}: no {metric} series tagged {filters}")
    assert problems == []
