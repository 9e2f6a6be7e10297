"""Metric maps: Cilium's Prometheus family names to the check's Datadog names.

Data, not code. Keys are family names as Cilium exposes them (counters keep their `_total`
suffix, so the keys are the same strings the Prometheus rules query). Values are Datadog names
without the `cilium_day2.` namespace. Where Datadog's official `cilium` check collects the same
family, the name is the one it submits (`drop_count`, `datapath.conntrack_gc.runs`,
`kvstore.operations_duration.seconds`, ...), so that a query moves between `cilium.` and
`cilium_day2.` by its namespace alone. Families it lacks (Hubble, kvstore sync, ipcache events,
Alibaba Cloud) are named in the same style.

The check adds `.count` to counters and `.sum`/`.count` to histograms, as OpenMetrics V2 checks
do; the buckets of the histograms in `DISTRIBUTIONS` are sent as a distribution under the bare
name, so that monitors can ask for a p99.
"""

GAUGE = "gauge"
COUNTER = "counter"
HISTOGRAM = "histogram"

# --- cilium-agent, :9962 -------------------------------------------------------------------
AGENT_METRICS = {
    # BPF maps
    "cilium_bpf_map_pressure": "bpf.map_pressure",  # series exist only above an internal threshold
    "cilium_bpf_map_ops_total": "bpf.map_ops",  # label `map_name`; very old versions used `mapName`
    "cilium_bpf_map_capacity": "bpf.map.capacity",  # 1.15+
    "cilium_bpf_maps_virtual_memory_max_bytes": "bpf.maps.virtual_memory.max.bytes",
    "cilium_bpf_progs_virtual_memory_max_bytes": "bpf.progs.virtual_memory.max.bytes",
    # Drops, forwards and conntrack
    "cilium_drop_count_total": "drop_count",
    "cilium_drop_bytes_total": "drop_bytes",
    "cilium_forward_count_total": "forward_count",
    "cilium_forward_bytes_total": "forward_bytes",
    "cilium_datapath_conntrack_gc_runs_total": "datapath.conntrack_gc.runs",
    "cilium_datapath_conntrack_gc_entries": "datapath.conntrack_gc.entries",
    "cilium_datapath_conntrack_gc_duration_seconds": "datapath.conntrack_gc.duration.seconds",
    "cilium_datapath_conntrack_gc_key_fallbacks_total": "datapath.conntrack_gc.key_fallbacks",
    "cilium_datapath_conntrack_dump_resets_total": "datapath.conntrack_dump.resets",
    "cilium_datapath_nat_gc_entries": "datapath.nat_gc.entries",
    # Identity and ipcache
    "cilium_identity": "identity.count",  # label `type`: cluster_local, node_local (+ reserved, well_known)
    "cilium_ipcache_errors_total": "ipcache.errors",
    "cilium_ipcache_events_total": "ipcache.events",
    # KVStore (kvstore identity mode or clustermesh only). No QPS counter: QPS is the rate of
    # the operations histogram's count.
    "cilium_kvstore_operations_duration_seconds": "kvstore.operations_duration.seconds",
    "cilium_kvstore_events_queue_seconds": "kvstore.events_queue.seconds",
    "cilium_kvstore_quorum_errors_total": "kvstore.quorum_errors",
    "cilium_kvstore_sync_errors_total": "kvstore.sync_errors",  # 1.14+
    "cilium_kvstore_sync_queue_size": "kvstore.sync_queue_size",  # 1.14+
    "cilium_kvstore_initial_sync_completed": "kvstore.initial_sync_completed",  # 1.14+
    # ClusterMesh: each agent's view of the remote clusters (label `target_cluster`). The
    # failures "counter" is a gauge the agent raises by one per failure.
    "cilium_clustermesh_remote_clusters": "clustermesh.remote_clusters",
    "cilium_clustermesh_remote_cluster_readiness_status": "clustermesh.remote_cluster.readiness_status",
    "cilium_clustermesh_remote_cluster_failures": "clustermesh.remote_cluster.failures",
    "cilium_clustermesh_remote_cluster_last_failure_ts": "clustermesh.remote_cluster.last_failure_ts",
    "cilium_clustermesh_remote_cluster_nodes": "clustermesh.remote_cluster.nodes",
    "cilium_clustermesh_global_services": "clustermesh.global_services",
    # Control plane health
    "cilium_controllers_failing": "controllers.failing.count",
    "cilium_controllers_runs_total": "controllers.runs",
    "cilium_unreachable_nodes": "unreachable.nodes",
    "cilium_unreachable_health_endpoints": "unreachable.health_endpoints",
    # 1.17+: per agent, the number of peers' paths by `type` (node|endpoint) and `status`
    # (reachable|unreachable|unknown).
    "cilium_node_health_connectivity_status": "node.health_connectivity_status",
    # Before 1.17 (deprecated in 1.17): one series per peer and `type`, 1 reachable, 0 not.
    "cilium_node_connectivity_status": "node.connectivity_status",
    "cilium_endpoint_state": "endpoint.state",  # label `endpoint_state`
    "cilium_endpoint_regenerations_total": "endpoint.regenerations",
    "cilium_endpoint_regeneration_time_stats_seconds": "endpoint.regeneration_time_stats.seconds",
    "cilium_policy": "policy.count",
    "cilium_policy_change_total": "policy.change",  # 1.15+
    "cilium_policy_import_errors_total": "policy.import_errors",  # before 1.15
    "cilium_policy_implementation_delay": "policy.implementation_delay",
    "cilium_policy_endpoint_enforcement_status": "policy.endpoint_enforcement_status",
    "cilium_api_limiter_processed_requests_total": "api_limiter.processed_requests",
    "cilium_api_limiter_wait_duration_seconds": "api_limiter.wait_duration.seconds",  # a gauge
    "cilium_k8s_client_api_calls_total": "k8s_client.api_calls",
    "cilium_k8s_client_api_latency_time_seconds": "k8s_client.api_latency_time.seconds",
    "cilium_errors_warnings_total": "errors_warning",
    "cilium_agent_api_process_time_seconds": "agent.api_process_time.seconds",
    "cilium_process_start_time_seconds": "process.start_time.seconds",  # a change means a restart
    "cilium_version": "version",  # value 1, tag `cilium_version`; also the check's version metadata
}

# --- cilium-operator, :9963 (IPAM and cloud-API families come from the leader only) ---------
OPERATOR_METRICS = {
    # Identity GC
    "cilium_operator_identity_gc_entries": "operator.identity_gc.entries",
    "cilium_operator_identity_gc_runs": "operator.identity_gc.runs",  # a gauge, not a counter
    "cilium_operator_identity_gc_latency": "operator.identity_gc.latency",  # 1.17+, last run's duration
    # Cloud APIs. Server-side throttling shows only as non-success `response_code` values.
    "cilium_operator_ec2_api_duration_seconds": "operator.ec2.api.duration.seconds",
    "cilium_operator_ec2_api_rate_limit_duration_seconds": "operator.ec2.api.rate_limit.duration.seconds",
    "cilium_operator_azure_api_duration_seconds": "operator.azure.api.duration.seconds",
    "cilium_operator_azure_api_rate_limit_duration_seconds": "operator.azure.api.rate_limit.duration.seconds",
    "cilium_operator_alibabacloud_api_duration_seconds": "operator.alibabacloud.api.duration.seconds",
    "cilium_operator_alibabacloud_api_rate_limit_duration_seconds": (
        "operator.alibabacloud.api.rate_limit.duration.seconds"
    ),
    # IPAM, per node
    "cilium_operator_ipam_available_ips": "operator.ipam.available_ips",
    "cilium_operator_ipam_used_ips": "operator.ipam.used_ips",
    "cilium_operator_ipam_needed_ips": "operator.ipam.needed_ips",  # > 0: pods wait for addresses
    "cilium_operator_ipam_nodes": "operator.ipam.nodes",  # label `category`
    "cilium_operator_ipam_ips": "operator.ipam.ips",  # deprecated in 1.15, still exposed
    # IPAM operations (counters without a `_total` suffix)
    "cilium_operator_ipam_ip_allocation_ops": "operator.ipam.ip_allocation_ops",  # 1.14+, `subnet_id`
    "cilium_operator_ipam_ip_release_ops": "operator.ipam.ip_release_ops",
    "cilium_operator_ipam_allocation_ops": "operator.ipam.allocation_ops",  # before 1.14, `subnetId`
    "cilium_operator_ipam_release_ops": "operator.ipam.release_ops",  # before 1.14
    "cilium_operator_ipam_interface_creation_ops": "operator.ipam.interface_creation_ops",
    "cilium_operator_ipam_available_ips_per_subnet": "operator.ipam.available.ips_per_subnet",
    "cilium_operator_ipam_interface_candidates": "operator.ipam.interface_candidates",
    "cilium_operator_ipam_empty_interface_slots": "operator.ipam.empty_interface_slots",
    "cilium_operator_ipam_available_interfaces": "operator.ipam.available_interfaces",  # replaced by the two above
    "cilium_operator_ipam_allocation_duration_seconds": "operator.ipam.allocation.duration.seconds",
    "cilium_operator_ipam_release_duration_seconds": "operator.ipam.release.duration.seconds",
    "cilium_operator_ipam_resync_total": "operator.ipam.resync",
    # IPAM triggers
    "cilium_operator_ipam_deficit_resolver_queued_total": "operator.ipam.deficit_resolver.queued",
    "cilium_operator_ipam_deficit_resolver_folds": "operator.ipam.deficit_resolver.folds",
    "cilium_operator_ipam_deficit_resolver_duration_seconds": "operator.ipam.deficit_resolver.duration.seconds",
    "cilium_operator_ipam_deficit_resolver_latency_seconds": "operator.ipam.deficit_resolver.latency.seconds",
    "cilium_operator_ipam_k8s_sync_queued_total": "operator.ipam.k8s_sync.queued",
    "cilium_operator_ipam_k8s_sync_folds": "operator.ipam.k8s_sync.folds",
    "cilium_operator_ipam_k8s_sync_duration_seconds": "operator.ipam.k8s_sync.duration.seconds",
    "cilium_operator_ipam_k8s_sync_latency_seconds": "operator.ipam.k8s_sync.latency.seconds",
    "cilium_operator_ipam_resync_queued_total": "operator.ipam.resync.queued",
    "cilium_operator_ipam_resync_folds": "operator.ipam.resync.folds",
    "cilium_operator_ipam_resync_duration_seconds": "operator.ipam.resync.duration.seconds",
    "cilium_operator_ipam_resync_latency_seconds": "operator.ipam.resync.latency.seconds",
    # CiliumEndpointSlices (leader only; `outcome` fail series born at the first failure)
    "cilium_operator_ces_sync_total": "operator.ces.sync",
    "cilium_operator_ces_queueing_delay_seconds": "operator.ces.queueing_delay.seconds",
    "cilium_operator_number_of_ceps_per_ces": "operator.ces.ceps_per_ces",
    # Restarts
    "cilium_operator_process_start_time_seconds": "operator.process.start_time.seconds",
}

# --- Hubble metrics server inside the agent, :9965 ------------------------------------------
HUBBLE_METRICS = {
    "hubble_lost_events_total": "hubble.lost_events",  # label `source`; see the 1.19 ring-buffer trickle
    "hubble_flows_processed_total": "hubble.flows_processed",
    "hubble_drop_total": "hubble.drop",
    "hubble_dns_queries_total": "hubble.dns_queries",
    "hubble_dns_responses_total": "hubble.dns_responses",
    "hubble_tcp_flags_total": "hubble.tcp_flags",
    "hubble_icmp_total": "hubble.icmp",
    "hubble_port_distribution_total": "hubble.port_distribution",
    "hubble_http_requests_total": "hubble.http_requests",
}

# Families that are not counters. Everything else in the maps above is a counter. The types are
# declared rather than read from the exposition because captures in the wild mistype some
# gauges as counters, and because `cilium_operator_identity_gc_runs` is a gauge despite its name.

# Histograms whose buckets are sent as a distribution, for the p99s the monitors alert on. The
# others (per API path or per trigger, with many label sets) send only `.sum` and `.count`: their
# mean is enough for dashboards and their buckets would be most of a node's series.
DISTRIBUTIONS = {
    "cilium_datapath_conntrack_gc_duration_seconds",
    "cilium_kvstore_operations_duration_seconds",
    "cilium_kvstore_events_queue_seconds",
    "cilium_endpoint_regeneration_time_stats_seconds",
    "cilium_policy_implementation_delay",
    "cilium_operator_ec2_api_duration_seconds",
    "cilium_operator_ec2_api_rate_limit_duration_seconds",
    "cilium_operator_azure_api_duration_seconds",
    "cilium_operator_azure_api_rate_limit_duration_seconds",
    "cilium_operator_alibabacloud_api_duration_seconds",
    "cilium_operator_alibabacloud_api_rate_limit_duration_seconds",
    "cilium_operator_ipam_allocation_duration_seconds",
    "cilium_operator_ipam_release_duration_seconds",
}

# The other histograms: `.sum` and `.count` only.
HISTOGRAMS = DISTRIBUTIONS | {
    "cilium_k8s_client_api_latency_time_seconds",
    "cilium_agent_api_process_time_seconds",
    "cilium_operator_ipam_deficit_resolver_duration_seconds",
    "cilium_operator_ipam_deficit_resolver_latency_seconds",
    "cilium_operator_ipam_k8s_sync_duration_seconds",
    "cilium_operator_ipam_k8s_sync_latency_seconds",
    "cilium_operator_ipam_resync_duration_seconds",
    "cilium_operator_ipam_resync_latency_seconds",
    "cilium_operator_ces_queueing_delay_seconds",
    "cilium_operator_number_of_ceps_per_ces",
}

GAUGES = {
    "cilium_bpf_map_pressure",
    "cilium_bpf_map_capacity",
    "cilium_bpf_maps_virtual_memory_max_bytes",
    "cilium_bpf_progs_virtual_memory_max_bytes",
    "cilium_datapath_conntrack_gc_entries",
    "cilium_datapath_nat_gc_entries",
    "cilium_identity",
    "cilium_kvstore_sync_queue_size",
    "cilium_kvstore_initial_sync_completed",
    "cilium_clustermesh_remote_clusters",
    "cilium_clustermesh_remote_cluster_readiness_status",
    "cilium_clustermesh_remote_cluster_failures",
    "cilium_clustermesh_remote_cluster_last_failure_ts",
    "cilium_clustermesh_remote_cluster_nodes",
    "cilium_clustermesh_global_services",
    "cilium_controllers_failing",
    "cilium_unreachable_nodes",
    "cilium_unreachable_health_endpoints",
    "cilium_node_health_connectivity_status",
    "cilium_node_connectivity_status",
    "cilium_endpoint_state",
    "cilium_policy",
    "cilium_policy_endpoint_enforcement_status",
    "cilium_api_limiter_wait_duration_seconds",
    "cilium_process_start_time_seconds",
    "cilium_version",
    "cilium_operator_identity_gc_entries",
    "cilium_operator_identity_gc_runs",
    "cilium_operator_identity_gc_latency",
    "cilium_operator_ipam_available_ips",
    "cilium_operator_ipam_used_ips",
    "cilium_operator_ipam_needed_ips",
    "cilium_operator_ipam_nodes",
    "cilium_operator_ipam_ips",
    "cilium_operator_ipam_available_ips_per_subnet",
    "cilium_operator_ipam_interface_candidates",
    "cilium_operator_ipam_empty_interface_slots",
    "cilium_operator_ipam_available_interfaces",
    "cilium_operator_ipam_deficit_resolver_folds",
    "cilium_operator_ipam_k8s_sync_folds",
    "cilium_operator_ipam_resync_folds",
    "cilium_operator_process_start_time_seconds",
}

# Labels that collide with Datadog's reserved or generic tags get a `cilium_` prefix, so that a
# Cilium label never overwrites the Agent's own `host`, `version`, `service`, ... tags.
RENAME_LABELS = {
    label: f"cilium_{label}"
    for label in (
        "cluster",
        "cluster_name",
        "clustername",
        "cluster_id",
        "clusterid",
        "device",
        "env",
        "host",
        "hostname",
        "host_name",
        "service",
        "source",
        "version",
    )
}

# Hubble labels are user-configurable context labels (`labelsContext`: source/destination
# workload, namespace, pod, IP, ...) and can multiply series by the number of workloads. By
# default only these bounded labels are kept; the others are summed away while reading.
HUBBLE_BOUNDED_LABELS = {
    "hubble_lost_events_total": ("source",),
    "hubble_flows_processed_total": ("type", "subtype", "verdict", "protocol"),
    "hubble_drop_total": ("reason", "protocol"),
    "hubble_dns_queries_total": ("rcode", "qtypes"),
    "hubble_dns_responses_total": ("rcode", "qtypes"),
    "hubble_tcp_flags_total": ("flag", "family"),
    "hubble_icmp_total": ("family", "type"),
    "hubble_port_distribution_total": ("protocol",),
    "hubble_http_requests_total": ("method", "protocol", "status"),
}

COMPONENT_MAPS = {
    "agent": AGENT_METRICS,
    "operator": OPERATOR_METRICS,
    "hubble": HUBBLE_METRICS,
}


def metric_type(family):
    """The Prometheus type the check assumes for a mapped family."""
    if family in HISTOGRAMS:
        return HISTOGRAM
    if family in GAUGES:
        return GAUGE
    return COUNTER


def submitted_names(family, datadog_name, namespace="cilium_day2"):
    """The Datadog metric names (and their metadata types) the check submits for one family."""
    base = f"{namespace}.{datadog_name}"
    kind = metric_type(family)
    if kind == GAUGE:
        return {base: "gauge"}
    if kind == COUNTER:
        return {f"{base}.count": "count"}
    names = {f"{base}.sum": "count", f"{base}.count": "count"}
    if family in DISTRIBUTIONS:
        names[base] = "distribution"
    return names
