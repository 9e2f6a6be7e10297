"""The monitor evaluator of tests/datadog_eval/, on hand-made Agent flushes.

Each test pins one construct to the behaviour docs/datadog-monitor-semantics.md describes,
with the examples of the Datadog pages it follows where they give one.
"""

from collections import namedtuple

import pytest

from .datadog_eval.monitor import ALERT, NO_DATA, OK, WARN, evaluate, quantile
from .datadog_eval.query import UnknownConstruct, parse_monitor
from .datadog_eval.store import Store, normalize_tag

Metric = namedtuple("Metric", "name type value tags flush_first_value")
Bucket = namedtuple("Bucket", "name value lower_bound upper_bound tags flush_first_value")
Check = namedtuple("Check", "name status tags")
TYPES = {"gauge": 0, "monotonic_count": 3}


def flush(store, t, metrics=(), buckets=(), checks=(), check_id="c", host="n1"):
    store.flush(check_id, t, [f"host:{host}", "kube_cluster_name:c1"], list(metrics), list(buckets), list(checks), TYPES)


def monitor(query, critical, warning=None, **options):
    thresholds = {"critical": critical}
    if warning is not None:
        thresholds["warning"] = warning
    return {"type": "query alert", "query": query, "options": dict(thresholds=thresholds, **options)}


def gauge(name, value, *tags):
    return Metric(name, 0, value, list(tags), False)


def counter(name, value, *tags, first=True):
    return Metric(name, 3, value, list(tags), first)


def test_monotonic_count_follows_the_agent():
    store = Store()
    flush(store, 0, [counter("x", 100, first=False)])  # first run: no flush_first_value, nothing sent
    flush(store, 15, [counter("x", 130)])
    flush(store, 30, [counter("x", 5)])  # reset with flush_first_value: the new value
    flush(store, 45, [counter("x", 8), counter("y", 4)])  # y born now: sent whole
    points = {name: [(p.t, p.value, p.span) for c in store.contexts[name].values() for p in c.points] for name in ("x", "y")}
    assert points["x"] == [(15, 30, 15), (30, 5, 15), (45, 3, 15)]
    assert points["y"] == [(45, 4, 15)]


def test_as_count_arithmetic_sums_each_side_first():
    # https://docs.datadoghq.com/monitors/guide/as-count-in-monitor-evaluations/: errors 1..5
    # and totals 10 per interval give 0.3 (as_count path), not 1.5 (sum of ratios).
    store = Store()
    flush(store, 0, [counter("err", 0, first=False), counter("tot", 0, first=False)])
    err = tot = 0
    for i in range(1, 6):
        err, tot = err + i, tot + 10
        flush(store, 60 * i, [counter("err", err), counter("tot", tot)])
    q = "sum(last_5m):sum:err{*}.as_count() / sum:tot{*}.as_count() > 0.5"
    result = evaluate(monitor(q, 0.5, 0.2), store, 300)
    assert result.groups[()] == (WARN, pytest.approx(0.3))


def test_as_rate_divides_by_the_interval_and_avg_weighs_points():
    store = Store()
    flush(store, 0, [counter("c", 0, first=False)])
    flush(store, 15, [counter("c", 30)])  # 2/s over 15 s
    flush(store, 75, [counter("c", 30 + 60 * 5)])  # 5/s over 60 s
    result = evaluate(monitor("avg(last_5m):sum:c{*}.as_rate() > 4", 4), store, 75)
    assert result.groups[()][1] == pytest.approx((2 * 15 + 5 * 60) / 75)


def test_space_aggregation_by_tags_and_filters():
    store = Store()
    flush(store, 15, [gauge("g", 1, "map_name:a", "op:x"), gauge("g", 5, "map_name:b", "op:y")], host="n1")
    flush(store, 15, [gauge("g", 7, "map_name:a", "op:z")], host="n2", check_id="d")
    q = "max(last_5m):max:g{(op:x OR op:z) AND !map_name:b} by {map_name} > 6"
    result = evaluate(monitor(q, 6), store, 15)
    assert result.groups == {(("map_name", "a"),): (ALERT, 7.0)}
    q = "max(last_5m):sum:g{op:*} by {host} > 6"
    result = evaluate(monitor(q, 6), store, 15)
    assert result.groups[(("host", "n1"),)] == (OK, 6.0)


def test_min_max_time_aggregation_and_evaluation_delay():
    store = Store()
    for t, v in ((60, 1), (120, 9), (180, 9), (240, 9)):
        flush(store, t, [gauge("g", v)])
    assert evaluate(monitor("min(last_2m):max:g{*} > 5", 5), store, 240).state == ALERT
    delayed = monitor("min(last_2m):max:g{*} > 5", 5, evaluation_delay=120)
    assert evaluate(delayed, store, 240).groups[()] == (OK, 1.0)


def test_require_full_window():
    store = Store()
    flush(store, 0, [gauge("g", 9)])
    flush(store, 15, [gauge("g", 9)])
    assert evaluate(monitor("avg(last_5m):max:g{*} > 5", 5), store, 15).state == ALERT
    assert evaluate(monitor("avg(last_5m):max:g{*} > 5", 5, require_full_window=True), store, 15).state == OK


def test_diff_clamp_and_sum_count_restarts():
    store = Store()
    for t, start in ((0, 1000), (60, 1000), (120, 1110), (180, 1110), (240, 1230)):
        flush(store, t, [gauge("start", start)])
    q = "sum(last_1h):clamp_max(diff(max:start{*} by {host}), 1) > 1"
    assert evaluate(monitor(q, 1), store, 240).groups[(("host", "n1"),)] == (ALERT, 2.0)


def test_change_compares_the_window_now_with_the_window_a_shift_ago():
    store = Store()
    for t in range(0, 3901, 60):
        flush(store, t, [gauge("ids", 1000 + t)])
    q = "change(avg(last_5m),last_1h):min:ids{*} > 4000"
    result = evaluate(monitor(q, 4000, 1000), store, 3900)
    assert result.groups[()] == (WARN, pytest.approx(3600))


def test_percentile_merges_bucket_increases_over_the_window():
    store = Store()
    flush(store, 0, buckets=[Bucket("d", 100, 0, 1, [], False), Bucket("d", 0, 1, 10, [], False)])
    flush(store, 60, buckets=[Bucket("d", 190, 0, 1, [], True), Bucket("d", 10, 1, 10, [], True)])
    # 90 observations in [0, 1], 10 in [1, 10]: the 99th is at 9/10 of the upper bucket.
    result = evaluate(monitor("percentile(last_5m):p99:d{*} > 5", 5), store, 60)
    assert result.groups[()] == (ALERT, pytest.approx(1 + 9 * 0.9))
    assert quantile({(0.0, 1.0): 50, (1.0, 1.0): 50}, 0.99) == 1.0  # +Inf: at the lower bound


def test_outliers_mad_over_every_point():
    # The Datadog example set {1, 2, 3, 4, 5, 6, 100}: median 4, MAD 2.
    store = Store()
    for i, value in enumerate((1, 2, 3, 4, 5, 6, 100)):
        for t in (60, 120):
            flush(store, t, [gauge("g", value)], host=f"n{i}", check_id=f"c{i}")
    q = "avg(last_5m):outliers(max:g{*} by {host}, 'MAD', 3, 20) > 0"
    result = evaluate(monitor(q, 0), store, 120)
    assert {dict(g)["host"] for g, (s, _) in result.groups.items() if s == ALERT} == {"n6"}


def test_service_check_counts_consecutive_statuses():
    definition = {
        "type": "service check",
        "query": '"x.health".over("*").by("host").last(4).count_by_status()',
        "options": {"thresholds": {"critical": 3, "ok": 1}, "notify_no_data": True, "no_data_timeframe": 2},
    }
    store = Store()
    for i, status in enumerate((0, 2, 2)):
        flush(store, 15 * i, checks=[Check("x.health", status, [])])
    assert evaluate(definition, store, 30).state == OK  # two CRITICAL in a row: not yet
    flush(store, 45, checks=[Check("x.health", 2, [])])
    assert evaluate(definition, store, 45).state == ALERT
    flush(store, 60, checks=[Check("x.health", 0, [])])
    assert evaluate(definition, store, 60).state == OK
    assert evaluate(definition, store, 60 + 180).state == NO_DATA  # silent for 3 > 2 minutes


@pytest.mark.parametrize(
    "query",
    [
        "avg(last_5m):anomalies(avg:g{*}, 'basic', 2) >= 1",
        "avg(last_5m):avg:g{*}.rollup(sum, 60) > 1",
        "avg(last_5m):top(avg:g{*} by {host}, 10, 'mean', 'desc') > 1",
        "avg(last_5m):week_before(avg:g{*}) > 1",
        "forecast(last_5m):avg:g{*} > 1",
        "avg(last_5m):avg:g{a:b*c} > 1",
        "avg(last_5m):outliers(avg:g{*} by {host}, 'DBSCAN', 3) > 0",
    ],
)
def test_a_construct_the_evaluator_does_not_know_fails(query):
    with pytest.raises(UnknownConstruct):
        parse_monitor(query)


def test_unknown_option_and_count_without_modifier_fail():
    store = Store()
    flush(store, 0, [counter("c", 1)])
    with pytest.raises(UnknownConstruct):
        evaluate(monitor("avg(last_5m):sum:c{*}.as_rate() > 1", 1, threshold_windows={}), store, 0)
    with pytest.raises(UnknownConstruct):
        evaluate(monitor("avg(last_5m):sum:c{*} > 1", 1), store, 0)


def test_tags_are_normalized_as_datadog_stores_them():
    assert normalize_tag("reason:CT: Map insertion failed") == "reason:ct:_map_insertion_failed"
    assert normalize_tag("response_code:503 Service Unavailable") == "response_code:503_service_unavailable"
