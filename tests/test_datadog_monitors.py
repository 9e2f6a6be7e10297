"""Every Datadog monitor, evaluated on what the real check submits over each scenario.

Each simulator scenario runs through the real check (datadog-checks-dev's aggregator), stored as
the Agent would flush it (`tests/datadog_eval/store.py`); every rendered monitor in
`assets/monitors/` is then evaluated at the scenario's `steady` time with the evaluator of
`tests/datadog_eval/` (semantics: docs/datadog-monitor-semantics.md). Its state must be the
state of its Prometheus twin: the alerts `scenarios.yaml` expects (which the end-to-end tests
hold a real Prometheus to), OK for every other signal. Where the catalog documents a
`datadog_difference`, the test checks that difference instead.
"""

import json
from pathlib import Path

import pytest

from cilium_day2.catalog.loading import load_base_catalog
from cilium_day2.metrics import RENAME_LABELS
from cilium_day2.simulator.scenarios import load_scenarios

from .datadog_eval.monitor import ALERT, OK, RANK, WARN, evaluate
from .datadog_eval.query import MetricMonitor, UnknownConstruct, parse_monitor, parse_service_check
from .datadog_eval.store import Store, normalize_tag
from .datadog_eval.timeline import CLUSTER_TAG, record, sample_times

ROOT = Path(__file__).resolve().parents[1]
MONITOR_DIR = ROOT / "assets" / "monitors"
SEVERITY = {"critical": ALERT, "warning": WARN}
CHECK_INTERVAL = 15
# Sampling tiers (seconds before the evaluation time, seconds between check runs): every
# check interval where service checks count consecutive runs, coarser where only totals,
# rates, percentiles and slow gauges are read (see tests/datadog_eval/timeline.py).
MID_STEP = 120
FAR_STEP = 300
MID_SPAN = 35 * 60

CATALOG = load_base_catalog()
SETTINGS = CATALOG.settings
SIGNALS = {s.id: s for s in CATALOG.signals}


def _expected(expectation):
    """The Datadog state an expected Prometheus alert maps to. A signal with only a warning
    threshold has one Datadog level, the monitor's alert (Datadog requires a critical
    threshold), and its message says WARNING (docs/datadog.md)."""
    signal = SIGNALS.get(expectation.signal)
    if signal is not None and signal.critical is None:
        return ALERT
    return SEVERITY[expectation.severity]
SCENARIOS = load_scenarios()


def _monitors():
    out = {}
    for path in sorted(MONITOR_DIR.glob("*.json")):
        definition = json.loads(path.read_text())["definition"]
        ids = [t.split(":", 1)[1] for t in definition["tags"] if t.startswith("cilium_day2_signal:")]
        assert len(ids) == 1, f"{path.name}: expected one cilium_day2_signal tag"
        out[ids[0]] = definition
    return out


MONITORS = _monitors()
# Scenarios run so far, and where each documented difference showed (signal -> scenarios).
RUN, DIFFERENCES_SEEN, STORES = set(), {}, {}


def _parsed(definition):
    if definition["type"] == "service check":
        return parse_service_check(definition["query"])
    return parse_monitor(definition["query"])


def _needs():
    """(look-back, span sampled every check interval) that every monitor's evaluation needs."""
    lookback, fine = 0, 0
    for definition in MONITORS.values():
        parsed = _parsed(definition)
        delay = float(definition["options"].get("evaluation_delay") or 0)
        if isinstance(parsed, MetricMonitor):
            lookback = max(lookback, parsed.window + (parsed.change_shift or 0) + delay)
        else:
            fine = max(fine, (parsed.last + 1) * CHECK_INTERVAL)
    return lookback + FAR_STEP, fine + 60


LOOKBACK, FINE = _needs()


def _times(end):
    fine = sample_times(end, FINE, FINE, CHECK_INTERVAL, CHECK_INTERVAL)
    mid = sample_times(end - FINE, MID_SPAN - FINE, 0, MID_STEP, MID_STEP)
    far = sample_times(end - MID_SPAN, LOOKBACK - MID_SPAN, 0, FAR_STEP, FAR_STEP)
    return sorted(set(fine) | set(mid) | set(far))


def _tag(label):
    return SETTINGS.dd_tag(label) if label in ("cluster", "node") else RENAME_LABELS.get(label, label)


def _culprits(scenario, expectation):
    """Tag sets ({key: normalized value}) the expectation pins, one per culprit."""
    names = scenario.node_names(max(6, scenario.min_nodes))
    out = []
    for labels in expectation.culprits(names):
        tags = {}
        for label, value in labels.items():
            key = "host" if label == "node" else _tag(label)
            tags[key] = normalize_tag(f"{key}:{value}").split(":", 1)[1]
        out.append(tags)
    return out


def _matches(group, culprit):
    present = dict(group)
    keys = [k for k in culprit if k in present]
    return bool(keys) and all(present[k] == culprit[k] for k in keys)


def _twin(scenario, signal):
    """(expected state, [(culprit tags, state)], every expectation pinned to culprits)."""
    items = [e for e in scenario.expect if e.signal == signal]
    state = max((_expected(e) for e in items), key=RANK.get, default=OK)
    pinned = [(c, _expected(e)) for e in items if e.nodes or e.labels for c in _culprits(scenario, e)]
    return state, pinned, all(e.nodes or e.labels for e in items)


def _problems(scenario, signal, result):
    want, pinned, all_pinned = _twin(scenario, signal)
    difference = SIGNALS[signal].datadog_difference if signal in SIGNALS else None
    effect = difference.effect if difference else None
    bad = []
    got = result.state
    if (effect == "misses" and got == OK != want) or (effect == "extra_alerts" and _extra(result, pinned, want)):
        DIFFERENCES_SEEN.setdefault(signal, set()).add(scenario.name)
    if effect == "misses":
        if got not in (want, OK):
            bad.append(f"state {got}; documented `misses`: {want} or OK")
    elif effect == "extra_alerts":
        if RANK[got] < RANK[want]:
            bad.append(f"state {got}; documented `extra_alerts`: at least {want}")
    elif got != want:
        bad.append(f"state {got}, Prometheus twin {want}")
    if effect != "misses":
        for culprit, severity in pinned:
            states = [s for g, (s, _) in result.groups.items() if _matches(g, culprit)]
            ok = states and (max(states, key=RANK.get) == severity or (effect == "extra_alerts" and RANK[max(states, key=RANK.get)] >= RANK[severity]))
            if not ok:
                bad.append(f"culprit {culprit}: {states or 'no group'}, expected {severity}")
    if all_pinned and effect != "extra_alerts":
        for group, (state, value) in result.groups.items():
            if state != OK and not any(_matches(group, c) for c, _ in pinned):
                bad.append(f"group {dict(group)} is {state} ({value}) and is no culprit")
    return bad


def _extra(result, pinned, want):
    """Whether the monitor fires beyond its twin: on a group no culprit names, or when the twin is silent."""
    firing = [g for g, (s, _) in result.groups.items() if s != OK]
    return bool(firing) and (want == OK or any(not any(_matches(g, c) for c, _ in pinned) for g in firing))


def test_every_monitor_is_evaluable_and_every_signal_has_its_monitor():
    for signal, definition in MONITORS.items():
        _parsed(definition)  # a construct the evaluator does not know fails here
        evaluate(definition, Store(), 0.0)  # and so does an option it does not know
        assert signal in SIGNALS, f"monitor for unknown signal {signal}"
    missing = {s.id for s in CATALOG.signals if s.enabled} - set(MONITORS)
    # Signals without a monitor say why in docs/datadog.md (e.g. version_skew).
    datadog_doc = (ROOT / "docs" / "datadog.md").read_text()
    for signal in missing:
        assert f"`{signal}`" in datadog_doc, f"{signal} has no monitor and docs/datadog.md does not say why"


def test_every_documented_difference_is_in_docs_datadog_md():
    datadog_doc = (ROOT / "docs" / "datadog.md").read_text()
    for signal in CATALOG.signals:
        if signal.datadog_difference:
            assert f"`{signal.id}`" in datadog_doc, f"{signal.id}: datadog_difference not described in docs/datadog.md"


def test_sampling_covers_every_monitor_window():
    times = _times(0.0)
    assert times[0] <= -LOOKBACK + FAR_STEP
    fine = [t for t in times if t > -FINE]
    assert all(b - a == CHECK_INTERVAL for a, b in zip(fine, fine[1:]))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_monitor_reaches_its_prometheus_twins_state(name):
    scenario = SCENARIOS[name]
    store = record(scenario, _times(scenario.steady), interval=CHECK_INTERVAL)
    problems = []
    for signal, definition in sorted(MONITORS.items()):
        delay = float(definition["options"].get("evaluation_delay") or 0)
        try:
            result = evaluate(definition, store, scenario.steady + delay)
        except UnknownConstruct as exc:
            problems.append(f"{signal}: the evaluator does not know {exc}")
            continue
        problems += [f"{signal}: {p}" for p in _problems(scenario, signal, result)]
    # The culprits are the scenario's own cluster.
    assert any(CLUSTER_TAG + ":" + normalize_tag(name) in tags for ctx in store.contexts.values() for tags in ctx)
    RUN.add(name)
    STORES[name] = store
    assert not problems, f"scenario {name}:\n" + "\n".join(problems)


def test_each_documented_difference_shows_in_some_scenario():
    """A `datadog_difference` no scenario shows is stale, or untested: either way, say so."""
    if RUN != set(SCENARIOS):
        pytest.skip("needs every scenario of this module to have run first")
    for signal in CATALOG.signals:
        if signal.datadog_difference and signal.id in MONITORS:
            assert DIFFERENCES_SEEN.get(signal.id), (
                f"{signal.id}: datadog_difference `{signal.datadog_difference.effect}` shows in no scenario"
            )


def _with_thresholds(definition, critical, warning=None):
    """The monitor with other thresholds (in its options and in its query)."""
    changed = json.loads(json.dumps(definition))
    head, _, _ = changed["query"].rpartition(" > ")
    changed["query"] = f"{head} > {float(critical)!r}"
    changed["options"]["thresholds"] = {"critical": critical, **({"warning": warning} if warning is not None else {})}
    return changed


def _threshold_monitors():
    return {s: d for s, d in MONITORS.items() if d["type"] == "query alert" and " > " in d["query"]}


def test_the_comparison_fails_a_monitor_that_misses_or_overreacts():
    """The scenario test is not vacuous: a monitor whose thresholds no scenario value reaches
    misses its twin's alert, and one whose thresholds sit below a healthy value fires."""
    if RUN != set(SCENARIOS):
        pytest.skip("needs every scenario of this module to have run first")
    candidates = _threshold_monitors()
    missed = overreacted = 0
    for name, store in STORES.items():
        scenario = SCENARIOS[name]
        for signal, definition in candidates.items():
            delay = float(definition["options"].get("evaluation_delay") or 0)
            expected = _twin(scenario, signal)[0]
            if expected != OK and not SIGNALS[signal].datadog_difference:
                deaf = _with_thresholds(definition, 1e15)
                assert _problems(scenario, signal, evaluate(deaf, store, scenario.steady + delay)), (name, signal)
                missed += 1
            if expected == OK and not scenario.expect:
                values = [v for _, v in evaluate(definition, store, scenario.steady + delay).groups.values() if v]
                if values and max(values) > 0:
                    jumpy = _with_thresholds(definition, max(values) / 2)
                    assert _problems(scenario, signal, evaluate(jumpy, store, scenario.steady + delay)), (name, signal)
                    overreacted += 1
    assert missed and overreacted
