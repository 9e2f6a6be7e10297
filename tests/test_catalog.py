"""The signal catalog, the overrides file and the query model's Python evaluator."""

import math

import pytest
import yaml

from cilium_day2.catalog import load_base_catalog, load_catalog, parse_duration
from cilium_day2.errors import UserError
from cilium_day2.catalog.overrides import load_values
from cilium_day2.catalog.loading import DATA_DIR
from cilium_day2.catalog.query import Sample, Snapshot, evaluate, histogram_quantile, iter_selectors, parse_root

CONTRACT_IDS = {
    "datapath": ["bpf_map_pressure", "bpf_map_ops_failing", "bpf_map_ops_failing_sustained", "datapath_capacity_drops",
                 "conntrack_gc_incomplete", "conntrack_gc_outlier", "ipcache_errors"],
    "identity": ["identity_cluster_usage", "identity_node_local_usage", "identity_churn", "identity_gc_failing",
                 "identity_gc_slow"],
    "kvstore": ["kvstore_latency_p99", "kvstore_error_ratio", "kvstore_quorum_errors", "kvstore_qps",
                "kvstore_events_queue_p99", "kvstore_sync_errors", "kvstore_initial_sync_incomplete",
                "clustermesh_remote_cluster_not_ready", "clustermesh_remote_cluster_failures"],
    "cloud_ipam": ["cloud_api_error_ratio", "cloud_api_request_rate", "cloud_api_rate_limiter_wait_p99",
                   "cloud_api_latency_p99", "ipam_pods_waiting", "ipam_subnet_exhaustion",
                   "ipam_interface_creation_failures", "ipam_ip_allocation_failures", "ipam_allocation_p99"],
    "control_plane": ["controllers_failing", "agent_restarts", "operator_restarts", "agent_down", "unreachable_nodes",
                      "endpoints_unhealthy", "policy_change_failing", "policy_implementation_delay_p99",
                      "api_limiter_endpoint_create", "k8s_client_errors", "version_skew", "node_connectivity_isolated",
                      "node_connectivity_isolated_legacy", "ces_sync_failing"],
    "hubble": ["hubble_lost_events", "hubble_flows_stalled"],
}


def test_contract_signal_ids_exist_in_their_areas():
    catalog = load_catalog()
    for area, ids in CONTRACT_IDS.items():
        for sid in ids:
            assert catalog.signal(sid).area == area


def test_every_signal_is_complete_and_keeps_the_cluster():
    for s in load_catalog().signals:
        assert s.title and s.meaning and s.runbook and s.defaults_reason, s.id
        assert "cluster" in s.group_by
        assert s.window > 0
        assert s.thresholds(), s.id
        assert s.component in ("agent", "operator", "hubble")


def test_every_signal_names_its_cilium_source_and_scope():
    for s in load_catalog().signals:
        assert s.source and all(path.endswith(".go") for path in s.source), s.id
        assert s.scope in ("node", "cluster"), s.id
        # Leader-only operator numbers are the cluster's; agent and Hubble numbers are one node's.
        assert (s.scope == "cluster") == (s.component == "operator"), s.id


def test_cluster_identity_signals_read_the_operators_cluster_wide_count():
    """An agent's `cilium_identity` counts the identities its own endpoints use, so no
    aggregation over agents is the cluster's count: the operator's GC count is."""
    catalog = load_catalog()
    for sid in ("identity_cluster_usage", "identity_growth"):
        s = catalog.signal(sid)
        families = {f for sel in iter_selectors(s.query.expr) for f in sel.families()}
        assert (s.component, s.scope, families) == ("operator", "cluster", {"cilium_operator_identity_gc_entries"})


def test_counters_whose_failure_series_are_born_at_the_first_failure_say_so():
    catalog = load_catalog()
    born = {s.id for s in catalog.signals if s.born_at_first_event}
    # Cilium pre-creates `outcome="failure"` for these two but increments `outcome="fail"`.
    assert {"policy_change_failing", "endpoint_regeneration_failing", "bpf_map_ops_failing",
            "datapath_capacity_drops", "ces_sync_failing"} <= born
    # Pre-created at 0 when the remote cluster or the sync store is set up.
    assert not born & {"clustermesh_remote_cluster_failures", "kvstore_sync_errors", "bpf_map_pressure"}


@pytest.mark.parametrize("change, message", [
    ({"scope": "region"}, "scope: `region` is not one of node, cluster"),
    ({"source": "metrics.go the agent"}, "is not a path of a Go file in cilium/cilium"),
    ({"source": []}, "expected a path or a list of paths"),
    ({"born_at_first_event": "yes"}, "born_at_first_event: expected true or false"),
])
def test_bad_source_scope_or_born_flag_is_one_line_naming_the_signal(tmp_path, change, message):
    area = yaml.safe_load((DATA_DIR / "hubble.yaml").read_text())
    area["signals"][0].update(change)
    (tmp_path / "hubble.yaml").write_text(yaml.safe_dump(area))
    with pytest.raises(UserError) as err:
        load_base_catalog(tmp_path)
    assert message in str(err.value) and "hubble_lost_events" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_signal_without_source_or_scope_is_rejected(tmp_path):
    area = yaml.safe_load((DATA_DIR / "hubble.yaml").read_text())
    for key in ("source", "scope"):
        broken = yaml.safe_load(yaml.safe_dump(area))
        del broken["signals"][0][key]
        (tmp_path / "hubble.yaml").write_text(yaml.safe_dump(broken))
        with pytest.raises(UserError, match=f"missing key `{key}`"):
            load_base_catalog(tmp_path)


def test_rate_only_signals_are_off_by_default_and_everything_else_on():
    """A request rate is no failure by itself: the kvstore QPS and cloud-API request rate signals
    need a ceiling the user chose, so they stay quiet until enabled."""
    catalog = load_catalog()
    assert sorted(s.id for s in catalog.signals if not s.enabled) == ["cloud_api_request_rate", "kvstore_qps"]


def test_every_signal_holds_or_keeps_firing_and_event_signals_say_why():
    for s in load_catalog().signals:
        assert s.hold > 0 or s.keep_firing_for > 0, s.id
        if s.hold == 0:
            assert "keeping the alert" in s.defaults_reason, s.id


def test_only_silence_signals_notify_on_no_data():
    alerting = {s.id for s in load_catalog().signals if s.no_data == "alert"}
    assert alerting == {"agent_down", "operator_down", "hubble_flows_stalled", "hubble_metrics_down"}


def test_map_pressure_treats_absence_as_low():
    assert load_catalog().signal("bpf_map_pressure").no_data == "ok"


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), (90, 90), ("0s", 0)])
def test_durations(text, seconds):
    assert parse_duration(text, "x") == seconds


# --- overrides ------------------------------------------------------------------------------------


def test_overrides_change_thresholds_windows_names_and_enablement(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "settings": {"cluster_label": "k8s_cluster", "cluster_tag": "cluster_name"},
        "signals": {"bpf_map_pressure": {"warning": 0.7, "critical": 0.9, "for": "15m", "window": "10m"},
                    "kvstore_qps": {"enabled": True, "warning": 300, "critical": 500},
                    "version_skew": {"enabled": False},
                    "conntrack_gc_outlier": {"min_baseline": 5000}},
        "lint": {"anything": "belongs to lint-config"},
    }))
    catalog = load_catalog(str(values))
    pressure = catalog.signal("bpf_map_pressure")
    assert (pressure.warning, pressure.critical, pressure.hold, pressure.window) == (0.7, 0.9, 900, 600)
    assert catalog.signal("kvstore_qps").enabled and not catalog.signal("version_skew").enabled
    assert catalog.signal("conntrack_gc_outlier").query.expr.min_baseline == 5000
    assert catalog.settings.cluster_label == "k8s_cluster" and catalog.settings.cluster_tag == "cluster_name"
    assert load_base_catalog().signal("bpf_map_pressure").warning == 0.8  # defaults untouched


@pytest.mark.parametrize("values,words", [
    ({"signals": {"bpf_map_presure": {}}}, ["signals.bpf_map_presure", "unknown signal id", "bpf_map_pressure"]),
    ({"signals": {"bpf_map_pressure": {"warn": 1}}}, ["signals.bpf_map_pressure.warn", "valid keys", "warning"]),
    ({"signals": {"bpf_map_pressure": {"warning": "high"}}}, ["signals.bpf_map_pressure.warning", "number"]),
    ({"signals": {"bpf_map_pressure": {"warning": 0.99}}}, ["bpf_map_pressure", "warning", "above critical"]),
    ({"signals": {"ipam_subnet_exhaustion": {"warning": 10}}}, ["ipam_subnet_exhaustion", "below critical"]),
    ({"signals": {"bpf_map_pressure": {"for": "soon"}}}, ["signals.bpf_map_pressure.for", "duration"]),
    ({"signals": {"bpf_map_pressure": {"enabled": "yes"}}}, ["signals.bpf_map_pressure.enabled", "true or false"]),
    ({"settings": {"cluster_lable": "x"}}, ["settings.cluster_lable", "unknown setting", "cluster_label"]),
    ({"settings": {"cloud_apis": ["gcp"]}}, ["settings.cloud_apis", "gcp", "ec2"]),
    ({"settings": {"shard_by_cluster": ["prod 1", "prod-1"]}}, ["settings.shard_by_cluster", "same rule group names"]),
    ({"settings": {"shard_by_cluster": []}}, ["settings.shard_by_cluster", "non-empty list"]),
    ({"signalz": {}}, ["signalz", "valid keys", "signals"]),
    ({"signals": {"bpf_map_pressure": {"warning": None, "critical": None}}}, ["at least one"]),
])
def test_bad_values_are_one_line_errors_naming_the_key(values, words):
    with pytest.raises(UserError) as err:
        load_catalog(values)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_values_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("signals: [unclosed\n")
    with pytest.raises(UserError, match="malformed YAML at line 2"):
        load_values(str(bad), load_base_catalog())
    with pytest.raises(UserError, match="no such file"):
        load_values(str(tmp_path / "missing.yaml"), load_base_catalog())


# --- the evaluator doctor uses ---------------------------------------------------------------------


def snaps(*points):
    """points: (t, [(name, labels, value), ...])"""
    return [Snapshot(t, [Sample(n, l, v) for n, l, v in samples]) for t, samples in points]


def test_rate_and_ratio_from_two_scrapes():
    root = parse_root({"fn": "ratio",
                       "num": {"fn": "rate", "metric": "x_total", "match": {"outcome": "fail"}},
                       "den": {"fn": "rate", "metric": "x_total"}})
    a = {"cluster": "c", "node": "n", "outcome": "fail"}
    b = {"cluster": "c", "node": "n", "outcome": "success"}
    data = snaps((0, [("x_total", a, 10), ("x_total", b, 100)]), (30, [("x_total", a, 40), ("x_total", b, 190)]))
    assert evaluate(root, data, ["cluster", "node"], 300) == {(("cluster", "c"), ("node", "n")): 0.25}


def test_counter_reset_counts_as_restart_from_zero():
    root = parse_root({"fn": "increase", "metric": "x_total"})
    data = snaps((0, [("x_total", {"cluster": "c"}, 100)]), (60, [("x_total", {"cluster": "c"}, 30)]))
    assert evaluate(root, data, ["cluster"], 60) == {(("cluster", "c"),): 30}


def test_map_pressure_absence_means_no_group_not_zero():
    root = parse_root({"fn": "value", "metric": "cilium_bpf_map_pressure", "agg": "max"})
    assert evaluate(root, snaps((0, [])), ["cluster"], 300) == {}


def test_quantile_matches_prometheus_interpolation():
    assert histogram_quantile(0.5, [(1, 5), (2, 10), (math.inf, 10)]) == 1.0
    assert histogram_quantile(0.99, [(0.1, 1), (1, 2), (10, 10), (math.inf, 10)]) == pytest.approx(9.8875)
    assert histogram_quantile(0.99, [(1, 0), (math.inf, 0)]) is None
    assert histogram_quantile(0.99, [(1, 1), (math.inf, 10)]) == 1  # falls in +Inf: last finite bound


def test_outlier_against_the_cluster_median_with_floor():
    root = parse_root({"fn": "outlier", "min_baseline": 100,
                       "of": {"fn": "value", "metric": "d", "agg": "sum"}})
    samples = [("d", {"cluster": "c", "node": f"n{i}"}, v) for i, v in enumerate([1000, 200, 300, 250])]
    out = evaluate(root, snaps((0, samples)), ["cluster", "node"], 60)
    assert out[(("cluster", "c"), ("node", "n0"))] == pytest.approx(1000 / 275)
    idle = [("d", {"cluster": "c", "node": f"n{i}"}, v) for i, v in enumerate([50, 1, 2])]
    assert max(evaluate(root, snaps((0, idle)), ["cluster", "node"], 60).values()) == 0.5


def test_distinct_changes_and_up():
    versions = parse_root({"fn": "distinct", "metric": "cilium_version", "label": "version"})
    data = snaps((0, [("cilium_version", {"cluster": "c", "version": "1.18"}, 1),
                      ("cilium_version", {"cluster": "c", "version": "1.17"}, 1)]))
    assert evaluate(versions, data, ["cluster"], 60) == {(("cluster", "c"),): 2}
    restarts = parse_root({"fn": "changes", "metric": "start"})
    data = snaps(*[(t, [("start", {"cluster": "c"}, v)]) for t, v in [(0, 1), (60, 1), (120, 2), (180, 3)]])
    assert evaluate(restarts, data, ["cluster"], 3600) == {(("cluster", "c"),): 2}
    guarded = parse_root({"fn": "increase", "metric": "flows_total", "only_if_up": "agent"})
    data = snaps((0, [("flows_total", {"cluster": "c", "node": "a"}, 5), ("flows_total", {"cluster": "c", "node": "b"}, 5),
                      ("up", {"cluster": "c", "node": "a", "target": "agent"}, 1),
                      ("up", {"cluster": "c", "node": "b", "target": "agent"}, 0)]),
                 (60, [("flows_total", {"cluster": "c", "node": "a"}, 5), ("flows_total", {"cluster": "c", "node": "b"}, 5),
                       ("up", {"cluster": "c", "node": "a", "target": "agent"}, 1),
                       ("up", {"cluster": "c", "node": "b", "target": "agent"}, 0)]))
    assert evaluate(guarded, data, ["cluster", "node"], 60) == {(("cluster", "c"), ("node", "a")): 0}


def test_unless_seen_drops_the_groups_that_report_the_newer_family():
    """A 1.17 node reports both node-health families: the legacy signal leaves it to the new one."""
    legacy = parse_root({"fn": "value", "metric": "old", "agg": "avg",
                         "unless_seen": {"metrics": ["new"], "by": ["cluster", "node"], "within": "10m"}})
    old_only = {"cluster": "c", "node": "a"}   # 1.16: the older family only
    both = {"cluster": "c", "node": "b"}       # 1.17: both
    data = snaps((0, [("old", old_only, 0), ("old", both, 0), ("new", {**both, "status": "unreachable"}, 4)]))
    assert evaluate(legacy, data, ["cluster", "node"], 300) == {(("cluster", "c"), ("node", "a")): 0}


@pytest.mark.parametrize("guard, words", [
    ({"metrics": ["new"], "by": ["node"]}, ["unless_seen", "within"]),
    ({"metrics": [], "by": ["node"], "within": "10m"}, ["unless_seen.metrics", "non-empty list"]),
    ({"metrics": ["new"], "by": ["node"], "within": "ten minutes"}, ["unless_seen.within", "duration"]),
])
def test_unless_seen_is_checked_like_only_if_seen(guard, words):
    with pytest.raises(UserError) as err:
        parse_root({"fn": "value", "metric": "old", "unless_seen": guard})
    for word in words:
        assert word in str(err.value), str(err.value)


def test_windowed_functions_fall_back_to_the_last_two_samples():
    """Sampling every 10 minutes against 5-minute windows: one sample falls inside each window.
    Rates, increases, deltas and quantiles still answer, from the last two samples; with enough
    samples inside the window only those count; instant and over_time values read the window."""
    by = ["cluster"]
    key = (("cluster", "c"),)
    bucket = "lat_seconds_bucket"
    data = snaps(
        (0, [("c_total", {"cluster": "c"}, 0), ("g", {"cluster": "c"}, 10),
             (bucket, {"cluster": "c", "le": "1"}, 0), (bucket, {"cluster": "c", "le": "+Inf"}, 0)]),
        (600, [("c_total", {"cluster": "c"}, 100), ("g", {"cluster": "c"}, 40),
               (bucket, {"cluster": "c", "le": "1"}, 50), (bucket, {"cluster": "c", "le": "+Inf"}, 100)]),
        (1200, [("c_total", {"cluster": "c"}, 1300), ("g", {"cluster": "c"}, 70),
                (bucket, {"cluster": "c", "le": "1"}, 100), (bucket, {"cluster": "c", "le": "+Inf"}, 200)]),
    )
    window = 300
    rate = evaluate(parse_root({"fn": "rate", "metric": "c_total"}), data, by, window)
    assert rate == {key: pytest.approx(2.0)}  # (1300 - 100) / 600 s: the last two samples only
    increase = evaluate(parse_root({"fn": "increase", "metric": "c_total"}), data, by, window)
    assert increase == {key: pytest.approx(600.0)}  # that rate over the 5-minute window
    delta = evaluate(parse_root({"fn": "delta", "metric": "g"}), data, by, window)
    assert delta == {key: pytest.approx(15.0)}
    p50 = evaluate(parse_root({"fn": "quantile", "q": 0.5, "metric": "lat_seconds"}), data, by, window)
    assert p50 == {key: pytest.approx(1.0)}
    # Instant and over_time values read the samples inside the window: the latest one here.
    low = evaluate(parse_root({"fn": "value", "metric": "g", "over_time": "min"}), data, by, window)
    assert low == {key: 70}
    # A window holding two samples or more uses only those (no older sample).
    assert evaluate(parse_root({"fn": "rate", "metric": "c_total"}), data, by, 600) == {key: pytest.approx(2.0)}
    assert evaluate(parse_root({"fn": "rate", "metric": "c_total"}), data, by, 1200) == {key: pytest.approx(1300 / 1200)}
    # One sample in all: no rate, as in PromQL.
    assert evaluate(parse_root({"fn": "rate", "metric": "c_total"}), data[-1:], by, window) == {}


def test_cloud_placeholder_unions_the_configured_cloud_apis():
    root = parse_root({"fn": "rate", "metric": "cilium_operator_{cloud}_api_duration_seconds_count"})
    data = snaps((0, [("cilium_operator_azure_api_duration_seconds_count", {"cluster": "c"}, 0)]),
                 (10, [("cilium_operator_azure_api_duration_seconds_count", {"cluster": "c"}, 50)]))
    assert evaluate(root, data, ["cluster"], 60) == {(("cluster", "c"),): 5}
    assert evaluate(root, data, ["cluster"], 60, cloud_apis=["ec2"]) == {}


@pytest.mark.parametrize("query,words", [
    ({"fn": "median", "metric": "x"}, ["fn", "median", "value"]),
    ({"fn": "value", "metric": "x", "agg": "p50"}, ["agg", "p50"]),
    ({"fn": "rate", "metric": "x", "match": {"a": {"regex": "b"}}}, ["match.a"]),
    ({"fn": "quantile", "metric": "x", "q": 99}, ["q"]),
    ({"fn": "rate", "metric": "x", "window": "5m"}, ["unknown key", "window"]),
])
def test_bad_queries_are_rejected(query, words):
    with pytest.raises(UserError) as err:
        parse_root(query)
    for word in words:
        assert word in str(err.value)


def test_also_families_are_read_together_and_validated():
    from cilium_day2.catalog.query import QueryError, parse_query

    query = parse_query({"fn": "increase", "metric": "new_family_count", "also": ["old_family"]})
    assert query.selector.families() == ["new_family_count", "old_family"]
    with pytest.raises(QueryError, match=r"query\.also"):
        parse_query({"fn": "increase", "metric": "new_family_count", "also": "old_family"})


# --- quantile thresholds and Cilium's buckets -------------------------------------------------------


def test_every_quantile_threshold_is_a_bound_cilium_can_report():
    from cilium_day2.catalog.buckets import family_layouts

    signals = [s for s in load_base_catalog().signals if s.quantile]
    assert len(signals) >= 6
    for s in signals:
        sel = s.quantile.selector
        for family in (sel.metric,) + tuple(sel.also):
            layouts = family_layouts(family)
            assert layouts, family
            for _versions, bounds in layouts:
                for _sev, threshold in s.thresholds():
                    # A bound, and below the last one: above it histogram_quantile is capped.
                    assert threshold in bounds and threshold < bounds[-1], (s.id, family, threshold, bounds)


@pytest.mark.parametrize("signal, value, words", [
    ("policy_implementation_delay_p99", 60, ["policy_implementation_delay_p99.critical", "end at 10", "never fire",
                                             "2.5, 5"]),
    ("kvstore_events_queue_p99", 1, ["end at 1", "0.5, 0.75"]),
    ("kvstore_latency_p99", 3, ["kvstore_latency_p99.critical", "not a bucket bound", "2.5, 5"]),
    # 3 is a bound of the newer cloud API layout but not of the default buckets older releases use.
    ("cloud_api_latency_p99", 3, ["not a bucket bound", "cilium_operator_{cloud}_api_duration_seconds", "1, 5"]),
])
def test_quantile_threshold_off_the_buckets_is_refused(signal, value, words):
    with pytest.raises(UserError) as err:
        load_catalog({"signals": {signal: {"critical": value}}})
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_quantile_threshold_on_a_bound_is_accepted():
    catalog = load_catalog({"signals": {"kvstore_latency_p99": {"warning": 0.5, "critical": 2.5}}})
    assert catalog.signal("kvstore_latency_p99").thresholds() == [("warning", 0.5), ("critical", 2.5)]
