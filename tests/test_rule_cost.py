"""What keeps the rule pack cheap on a large fleet (docs/prometheus.md, benchmarks/rule_cost.py):
each signal computed once, sparse recordings, groups evaluated at the pace of their signals.
The costs themselves are measured by the benchmark, not here."""

import dataclasses
import math
import random
import re

import pytest
import yaml

from cilium_day2.catalog import format_duration, load_catalog
from cilium_day2.catalog.buckets import family_layouts, last_bounds
from cilium_day2.catalog.query import (
    QueryError, Quantile, Sample, Snapshot, breaches, histogram_quantile, parse_root, quantile_on_bounds,
)
from cilium_day2.cli import main
from cilium_day2.render import prometheus
from cilium_day2.render.promql import PromQL

from .prometheus_server import promtool, require_promtool
from .promtool import fleets

RECORD_RE = re.compile(r"[a-z_]+:cilium_day2_[a-z0-9_]+:[a-z0-9]+")


def _groups(catalog):
    return yaml.safe_load(prometheus.render(catalog)[prometheus.RULES_FILE])["groups"]


def _alerts_by_signal(groups):
    out = {}
    for g in groups:
        for r in g["rules"]:
            if "alert" in r:
                out.setdefault(r["labels"]["signal"], []).append((g, r))
    return out


def test_every_alert_compares_its_signals_one_recording():
    catalog = load_catalog()
    groups = _groups(catalog)
    records = {r["record"]: (g["name"], r["expr"]) for g in groups for r in g["rules"] if "record" in r}
    for sid, alerts in _alerts_by_signal(groups).items():
        signal = catalog.signal(sid)
        if sid.endswith("_down") and any(r["alert"].endswith("Absent") for _, r in alerts):
            alerts = [(g, r) for g, r in alerts if not r["alert"].endswith("Absent")]
        read = {m for _, r in alerts for m in RECORD_RE.findall(r["expr"]) if ":seen" not in m}
        assert len(read) == 1, (sid, read)
        (record,) = read
        group_of_record, _ = records[record]
        for g, r in alerts:
            assert g["name"] == group_of_record  # evaluated right after its recording
            # Nothing but the record, a threshold and the signal's guards (`up`, the seen record).
            rest = r["expr"].replace(record, "")
            assert "rate(" not in rest and "increase(" not in rest and "histogram_quantile" not in rest, (sid, r["expr"])
            if not signal.query.only_if_up and not signal.query.only_if_seen:
                assert re.fullmatch(rf"{re.escape(record)} [<>] [0-9.e+-]+", r["expr"]), r["expr"]


def test_recordings_keep_only_the_rows_past_the_loosest_threshold():
    catalog = load_catalog()
    groups = _groups(catalog)
    for signal in catalog.enabled():
        [(record, expr)] = [(r["record"], r["expr"]) for g in groups for r in g["rules"]
                            if r.get("record", "").split(":")[1:2] == [f"cilium_day2_{signal.id}"]
                            and not r["record"].endswith(":seen")]
        loosest = signal.warning if signal.warning is not None else signal.critical
        kept = expr
        if signal.query.unless_seen:
            # The threshold, then the label sets the guard drops.
            kept, _, dropped = expr.partition(") unless on (")
            assert dropped.startswith(", ".join(signal.query.unless_seen.on)), (signal.id, expr)
        assert kept.endswith(f") {signal.comparison} {loosest:g}"), (signal.id, expr)
        for _sev, threshold in signal.thresholds():
            # Every threshold lies on the kept side of the loosest one.
            assert threshold == loosest or breaches(threshold, signal.comparison, loosest)


def test_groups_run_at_the_pace_of_their_signals():
    catalog = load_catalog()
    s = catalog.settings
    groups = _groups(catalog)
    intervals = {}
    for sid, alerts in _alerts_by_signal(groups).items():
        for g, _ in alerts:
            intervals.setdefault(sid, set()).add(g["interval"])
    for signal in catalog.enabled():
        (every,) = intervals[signal.id]
        seconds = s.rule_interval(signal.window, signal.hold, signal.keep_firing_for)
        assert every == format_duration(seconds)
        assert seconds >= s.scrape_interval
        for cap in (signal.hold, signal.keep_firing_for):
            assert not cap or seconds <= max(cap, s.scrape_interval), signal.id
    # A signal that fires in 10 minutes (a down target) is evaluated every 2 minutes, one that
    # needs 15 minutes of evidence every 5, an hour's restarts every 10; every interval at most a
    # third of the signal's time to fire; every group within the size limit.
    assert intervals["agent_down"] == {"2m"} and intervals["hubble_metrics_down"] == {"2m"}
    assert intervals["bpf_map_pressure"] == {"5m"} and intervals["agent_restarts"] == {"10m"}
    for signal in catalog.enabled():
        seconds = s.rule_interval(signal.window, signal.hold, signal.keep_firing_for)
        assert seconds * 3 <= signal.window + signal.hold or seconds == s.scrape_interval, signal.id
    assert all(len(g["rules"]) <= s.max_rules_per_group for g in groups)
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names))
    assert all(g["name"].split("-")[-1] == g["interval"] or g["name"].split("-")[-2] == g["interval"] for g in groups)


def test_rule_intervals_come_from_the_values_file(tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("settings:\n  scrape_interval: 30s\n  rule_intervals: {0s: 30s, 1h: 10m}\n")
    catalog = load_catalog(str(values))
    groups = _groups(catalog)
    every = {sid: g["interval"] for sid, alerts in _alerts_by_signal(groups).items() for g, _ in alerts}
    assert every["bpf_map_pressure"] == "30s"
    # 1h window, but `keep_firing_for: 1h` and no `for`: 10 minutes.
    assert every["agent_restarts"] == "10m"
    # Capped at the signal's own `for` (15m).
    assert every["bpf_map_ops_failing_sustained"] == "10m"


def test_time_to_fire_not_window_sets_the_pace():
    s = load_catalog().settings
    tiers = dict(s.rule_intervals)
    # A 5-minute window held 10 minutes needs 15 minutes of evidence, like a 15-minute window.
    assert s.rule_interval(300, 600) == s.rule_interval(900) == tiers[900]
    assert s.rule_interval(300, 300) == tiers[0]


def test_hubble_stall_reads_only_flows_from_outside_the_pods():
    catalog = load_catalog()
    [expr] = [r["expr"] for g in _groups(catalog) for r in g["rules"]
              if r.get("record", "").startswith("cluster_node:cilium_day2_hubble_flows_stalled:")]
    selectors = re.findall(r"hubble_flows_processed_total(\{[^}]*\})?", expr)
    assert selectors and all('source_namespace=""' in sel for sel in selectors), expr


@pytest.mark.parametrize("query, words", [
    ({"fn": "value", "metric": "m", "prometheus_reads": [{"a": ""}]}, ["prometheus_reads", "rate or increase"]),
    ({"fn": "rate", "metric": "m", "prometheus_reads": []}, ["prometheus_reads", "non-empty list"]),
    ({"fn": "rate", "metric": "m", "prometheus_reads": "a"}, ["prometheus_reads", "non-empty list"]),
])
def test_bad_prometheus_reads_are_refused(query, words):
    with pytest.raises(QueryError) as err:
        parse_root(query, "signals.x.query")
    assert all(w in str(err.value) for w in words), str(err.value)


def test_prometheus_reads_compile_to_a_union_of_parts():
    catalog = load_catalog()
    signal = next(s for s in catalog.enabled() if s.id == "hubble_flows_stalled")
    query = dataclasses.replace(signal.query, expr=dataclasses.replace(signal.query.expr, selector=dataclasses.replace(
        signal.query.expr.selector, prometheus_reads=parse_root(
            {"fn": "increase", "metric": "x", "prometheus_reads": [{"a": ""}, {"b": "1"}]}).expr.selector.prometheus_reads)))
    expr = PromQL(catalog.settings).expr(dataclasses.replace(signal, query=query))
    assert 'increase(hubble_flows_processed_total{a=""}[5m]) or increase(hubble_flows_processed_total{b="1"}[5m])' in expr


@pytest.mark.parametrize("body, words", [
    ("rule_intervals: {0s: 10s}", ["settings.rule_intervals", "scrape_interval", "15s"]),
    ("rule_intervals: {5m: 1m}", ["settings.rule_intervals", "0s"]),
    ("rule_intervals: {0s: 2m, 30m: 1m}", ["settings.rule_intervals.30m", "shorter"]),
    ("rule_intervals: {0s: soon}", ["settings.rule_intervals.0s", "duration"]),
    ("rule_intervals: [1m]", ["settings.rule_intervals", "mapping"]),
    ("rule_intervals: {0s: 2h}", ["settings.rule_intervals.0s", "limit"]),
    ("scrape_interval: 0s", ["settings.scrape_interval", "at least"]),
    ("scrape_interval: 3m", ["settings.rule_intervals", "scrape_interval"]),
])
def test_bad_intervals_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, body, words):
    values = tmp_path / "v.yaml"
    values.write_text(f"settings:\n  {body}\n")
    out = tmp_path / "out"
    assert main(["render", "--values", str(values), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert all(w in err for w in words), err
    assert not out.exists() or not any(out.rglob("*.yml"))


# --- quantiles from the threshold buckets ----------------------------------------------------------


def _histogram_snapshots(bounds, counts_before, counts_after, metric):
    """Two snapshots 300 s apart of one cumulative histogram."""
    snaps = []
    for t, counts in ((0.0, counts_before), (300.0, counts_after)):
        cum, samples = 0.0, []
        for bound, n in zip(list(bounds) + [math.inf], counts):
            cum += n
            le = "+Inf" if bound == math.inf else f"{bound:g}"
            samples.append(Sample(metric + "_bucket", {"cluster": "c1", "le": le}, cum))
        snaps.append(Snapshot(t, samples))
    return snaps


@pytest.mark.parametrize("signal_id", ["kvstore_latency_p99", "policy_implementation_delay_p99",
                                       "kvstore_events_queue_p99", "ipam_allocation_p99"])
def test_the_few_buckets_give_the_same_verdict_as_the_whole_histogram(signal_id):
    """At each threshold (a bucket bound), the quantile read from the threshold buckets, the
    last bound and +Inf is above it exactly when the full histogram's is, on random histograms
    that put the quantile in every bucket."""
    catalog = load_catalog()
    signal = catalog.signal(signal_id)
    sel = signal.quantile.selector
    bounds = family_layouts(sel.metric)[0][1]
    reduced = [t for _sev, t in signal.thresholds()] + last_bounds((sel.metric,))
    rng = random.Random(signal_id)
    checked = 0
    for _ in range(400):
        before = [rng.randint(0, 50) for _ in range(len(bounds) + 1)]
        # Mass concentrated around a random bucket, so the p99 lands everywhere, +Inf included.
        focus = rng.randrange(len(bounds) + 1)
        after = [b + (rng.randint(0, 3000) if abs(i - focus) <= 1 else rng.randint(0, 20)) for i, b in enumerate(before)]
        snaps = _histogram_snapshots(bounds, before, after, sel.metric)
        full = {k: v for k, v in _full_quantile(signal, snaps).items()}
        few = quantile_on_bounds(signal.query, snaps, ["cluster"], 300, reduced)
        for key, value in full.items():
            for _sev, threshold in signal.thresholds():
                assert breaches(few[key], ">", threshold) == breaches(value, ">", threshold), (before, after, threshold)
                checked += 1
    assert checked >= 400


def _full_quantile(signal, snaps):
    rates = {}
    for (s0, s1) in zip(snaps[0].samples, snaps[1].samples):
        le = s1.labels["le"]
        rates[math.inf if le == "+Inf" else float(le)] = (s1.value - s0.value) / 300
    value = histogram_quantile(signal.quantile.q, sorted(rates.items()))
    return {(("cluster", "c1"),): value} if value is not None else {}


def test_quantile_signals_have_a_threshold_below_the_last_bound():
    # What makes the few-bucket quantile exact: the last bound is above every threshold.
    catalog = load_catalog()
    for signal in catalog.enabled():
        if isinstance(signal.query.expr, Quantile):
            sel = signal.quantile.selector
            assert all(t < min(last_bounds((m,))) for _s, t in signal.thresholds() for m in (sel.metric, *sel.also))


# --- a healthy fleet records nothing per node --------------------------------------------------------


@pytest.mark.prometheus
def test_a_healthy_fleet_holds_no_signal_recording(tmp_path):
    require_promtool()
    catalog = load_catalog()
    rules = tmp_path / "rules.yml"
    rules.write_text(prometheus.render(catalog)[prometheus.RULES_FILE])
    fleet = fleets.Fleet(fleets.SETUPS["servicemonitor"], clusters=("prod-a", "prod-b"), nodes=6)
    test = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": k, "values": v} for k, v in fleet.series.items()],
        "promql_expr_test": [
            # Only the per-cluster target counts of the vanished-target alerts: 3 per cluster.
            {"expr": 'count({__name__=~"[a-z_]+:cilium_day2_[a-z0-9_]+:[a-z0-9]+", __name__!~".+_targets:count"})',
             "eval_time": "40m", "exp_samples": []},
            {"expr": 'count({__name__=~".+_targets:count"})', "eval_time": "40m",
             "exp_samples": [{"labels": "{}", "value": 6}]},
            {"expr": 'count({__name__=~".+:.+", node!=""})', "eval_time": "40m", "exp_samples": []},
            {"expr": 'ALERTS', "eval_time": "40m", "exp_samples": []},
        ]}]}
    (tmp_path / "t.yml").write_text(yaml.safe_dump(test, sort_keys=False, width=400))
    result = promtool("test", "rules", tmp_path / "t.yml")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
