"""Turns `scenarios.yaml` into a promtool rule-test file for the rendered rules.

Expected alerts are not written by hand: for each scenario the Python evaluator of the query
model (`cilium_day2.catalog.query.evaluate`, the same code `doctor` uses) computes every group's value at
the evaluation time from the same input series, and the catalog's thresholds decide which
severities fire. promtool then checks that PromQL agrees: same groups, same severities, same
values in the annotations.

    python -m tests.promtool.generate OUT.yml RULES.yml   # writes the test file for inspection
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from cilium_day2.catalog import Catalog, format_duration
from cilium_day2.catalog.buckets import last_bounds
from cilium_day2.catalog.query import Sample, Snapshot, breaches, evaluate, quantile_on_bounds
from cilium_day2.render.prometheus import prometheus_annotations

SCENARIOS = Path(__file__).with_name("scenarios.yaml")
STEP = 60  # seconds between input samples, promtool's `interval`
_SERIES_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_ITEM_RE = re.compile(r"^(-?[0-9.]+(?:e[+-]?[0-9]+)?)(?:([+-])([0-9.]+(?:e[+-]?[0-9]+)?))?x(\d+)$")


def load_scenarios(path: Path = SCENARIOS) -> dict:
    return yaml.safe_load(path.read_text())


def parse_series(text: str):
    m = _SERIES_RE.match(text.strip())
    if not m:
        raise ValueError(f"cannot parse series {text!r}")
    labels = {k: v.replace('\\"', '"') for k, v in _LABEL_RE.findall(m.group(2))}
    return m.group(1), labels


def expand_values(text: str):
    """promtool's notation: `a+bxN` is N+1 values, `axN` N+1 copies, `_xN` N gaps, `_` one gap."""
    out = []
    for item in text.split():
        if item == "_":
            out.append(None)
        elif item.startswith("_x"):
            out.extend([None] * int(item[2:]))
        else:
            m = _ITEM_RE.match(item)
            if not m:
                out.append(float(item))
                continue
            start, sign, step, count = m.groups()
            start = float(start)
            delta = float(step or 0) * (-1 if sign == "-" else 1)
            out.extend(start + delta * i for i in range(int(count) + 1))
    return out


def snapshots(series: dict, until: int, jobs: dict):
    """Python snapshots (one per minute up to `until` seconds) of promtool input series."""
    parsed = [(parse_series(sel), expand_values(vals)) for sel, vals in series.items()]
    snaps = []
    for i in range(until // STEP + 1):
        snap = Snapshot(timestamp=float(i * STEP))
        for (name, labels), values in parsed:
            if i < len(values) and values[i] is not None:
                labels = dict(labels)
                if name == "up":
                    labels["target"] = jobs.get(labels.get("job"), "")
                snap.samples.append(Sample(name, labels, values[i]))
        snaps.append(snap)
    return snaps


def eval_time(signal, scenario) -> int:
    return int(scenario.get("eval_minutes", (signal.window + signal.hold) // 60 + 5)) * 60


def expected_alerts(signal, catalog: Catalog, series: dict, at: int):
    """(alerts promtool must see at `at`, {group: value}) from the Python evaluator."""
    s = catalog.settings
    jobs = {s.agent_job: "agent", s.operator_job: "operator", s.hubble_job: "hubble"}
    by = [s.prom_label(g) for g in signal.group_by]
    snaps = snapshots(series, at, jobs)
    values = evaluate(signal.query, snaps, by, signal.window, s.cloud_apis)
    alerts = []
    for key, value in sorted(values.items()):
        labels = dict(key)
        for severity, threshold in signal.thresholds():
            if breaches(value, signal.comparison, threshold):
                shown = value
                if signal.quantile:
                    # The rule's value: the quantile read from the threshold buckets and the last bound.
                    sel = signal.quantile.selector
                    bounds = [t for _sev, t in signal.thresholds()] + last_bounds((sel.metric,) + tuple(sel.also))
                    shown = quantile_on_bounds(signal.query, snaps, by, signal.window, bounds, s.cloud_apis)[key]
                alerts.append({
                    "exp_labels": {**labels, "severity": severity, "area": signal.area, "signal": signal.id},
                    "exp_annotations": prometheus_annotations(signal, severity, threshold, s, labels, shown),
                })
    return alerts, values


def input_series(series: dict):
    return [{"series": sel, "values": vals} for sel, vals in series.items()]


def build_tests(catalog: Catalog, rules_file: str, scenarios: dict) -> dict:
    """The promtool test file: one group per case (failure, healthy twin, false positives)."""
    groups = []
    for signal in catalog.enabled():
        scenario = scenarios[signal.id]
        at = eval_time(signal, scenario)
        fire_cases = [("failure", scenario["fire"])]
        fire_cases += [(f"failure, {name}", case) for name, case in (scenario.get("also_fire") or {}).items()]
        for case_name, fire in fire_cases:
            alerts, values = expected_alerts(signal, catalog, fire["series"], at)
            culprits = sorted(tuple(sorted(c.items())) for c in fire["culprits"])
            firing = sorted({tuple(sorted((k, v) for k, v in a["exp_labels"].items()
                                          if k not in ("severity", "area", "signal"))) for a in alerts})
            if firing != culprits:
                raise AssertionError(f"{signal.id} / {case_name}: the Python evaluator finds {firing} alerting, "
                                     f"scenario says {culprits} (values {values})")
            tests = [{"eval_time": f"{at // 60}m", "alertname": signal.alert_name, "exp_alerts": alerts}]
            if signal.hold >= 2 * STEP:
                # Not yet: the condition cannot have held for `for:` one step before it elapses.
                tests.insert(0, {"eval_time": format_duration(signal.hold - STEP), "alertname": signal.alert_name,
                                 "exp_alerts": []})
            groups.append({"name": f"{signal.id}: {case_name}", "interval": "1m",
                           "input_series": input_series(fire["series"]), "alert_rule_test": tests})
        silent_cases = [("healthy twin", scenario["healthy"]["series"])]
        silent_cases += list((scenario.get("false_positives") or {}).items())
        for name, series in silent_cases:
            alerts, values = expected_alerts(signal, catalog, series, at)
            if alerts:
                raise AssertionError(f"{signal.id} / {name}: the Python evaluator alerts ({values})")
            groups.append({
                "name": f"{signal.id}: {name}", "interval": "1m", "input_series": input_series(series),
                "alert_rule_test": [{"eval_time": f"{m}m", "alertname": signal.alert_name, "exp_alerts": []}
                                    for m in sorted({at // 60, (signal.window + signal.hold) // 60 + 1})],
            })
    return {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": groups}


def main(argv):  # pragma: no cover - a convenience for reading the generated tests
    from cilium_day2.catalog import load_catalog

    out, rules = argv[1], argv[2]
    catalog = load_catalog({"signals": {"kvstore_qps": {"enabled": True}, "cloud_api_request_rate": {"enabled": True}}})
    Path(out).write_text(yaml.safe_dump(build_tests(catalog, rules, load_scenarios()), sort_keys=False, width=200))


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
