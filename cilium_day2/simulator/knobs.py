"""The knobs a scenario can turn, with the healthy baseline of each.

A knob is one number (or, for `version`, one string) that drives a handful of Cilium series:
a fill ratio, a rate per second, a p99 latency in seconds, a gauge. Node knobs are evaluated per
node (an agent and its Hubble server; the operator's per-node IPAM series read them too);
cluster knobs are evaluated once (the operator, and the cluster-wide identity count every agent
sees).

The baseline is a genuinely healthy, mid-sized production node: real traffic, `Policy denied`
drops, conntrack around a quarter full, a few maps visible in `cilium_bpf_map_pressure` at low
pressure, nothing that any catalog signal should call a problem.
"""

NODE = "node"
CLUSTER = "cluster"

# Drop reasons by knob suffix. Strings are Cilium's exact reason texts.
DROP_REASONS = {
    "policy_denied": ("Policy denied", (("INGRESS", 0.7), ("EGRESS", 0.3))),
    "stale_ip": ("Stale or unroutable IP", (("EGRESS", 1.0),)),
    "backend_not_found": ("Service backend not found", (("EGRESS", 1.0),)),
    "ct_insert_failed": ("CT: Map insertion failed", (("EGRESS", 0.6), ("INGRESS", 0.4))),
    "nat_no_mapping": ("No mapping for NAT masquerade", (("EGRESS", 1.0),)),
    "proxymap_insert_failed": ("Failed to insert into proxymap", (("EGRESS", 1.0),)),
}

# Maps whose pressure a node reports (map_name as Cilium writes it).
PRESSURE_MAPS = (
    "ct4_global",
    "ct_any4_global",
    "snat_v4_external",
    "ipcache_v2",
    "lxc",
    "lb4_services_v2",
    "lb4_backends_v3",
    "cilium_policy_00412",
    "cilium_policy_01871",
)

# Maps the agent updates from user space (map_name label of cilium_bpf_map_ops_total).
OPS_MAPS = ("ipcache_v2", "lxc", "lb4_services_v2", "lb4_backends_v3", "cilium_policy_00412", "cilium_policy_01871")

# EC2 operations the operator calls, with their share of the request rate.
CLOUD_OPERATIONS = (
    ("AssignPrivateIpAddresses", 0.32),
    ("UnassignPrivateIpAddresses", 0.14),
    ("DescribeNetworkInterfaces", 0.26),
    ("CreateNetworkInterface", 0.06),
    ("AttachNetworkInterface", 0.06),
    ("ModifyNetworkInterfaceAttribute", 0.04),
    ("DescribeSubnets", 0.08),
    ("DescribeSecurityGroups", 0.04),
)

SUBNETS = (
    ("subnet-0a41c7e2d9b3f1c01", "us-east-1a"),
    ("subnet-0a41c7e2d9b3f1c02", "us-east-1b"),
    ("subnet-0a41c7e2d9b3f1c03", "us-east-1c"),
)

HUBBLE_LOST_SOURCES = ("perf_event_ring_buffer", "observer_events_queue", "hubble_ring_buffer")

# Remote clusters of the mesh every agent connects to (`target_cluster`), by knob index.
REMOTE_CLUSTERS = ("mesh-us-west", "mesh-ap-south")

# name: (scope, baseline, varies per node)
KNOBS = {
    # --- process --------------------------------------------------------------------------
    # 0: the agent process is gone (pod not running): its agent and Hubble ports do not answer.
    "up": (NODE, 1.0, False),
    "restarts_per_hour": (NODE, 0.0, False),
    # 0: no operator replica runs: the operator's port does not answer.
    "operator_up": (CLUSTER, 1.0, False),
    "operator_restarts_per_hour": (CLUSTER, 0.0, False),
    # --- BPF maps -------------------------------------------------------------------------
    "map_pressure.ct4_global": (NODE, 0.24, True),
    "map_pressure.ct_any4_global": (NODE, 0.17, True),
    "map_pressure.snat_v4_external": (NODE, 0.13, True),
    "map_pressure.ipcache_v2": (NODE, 0.11, True),
    "map_pressure.lxc": (NODE, 0.02, True),
    "map_pressure.lb4_services_v2": (NODE, 0.03, True),
    "map_pressure.lb4_backends_v3": (NODE, 0.04, True),
    "map_pressure.cilium_policy_00412": (NODE, 0.14, True),
    "map_pressure.cilium_policy_01871": (NODE, 0.06, True),
    "map_ops.ipcache_v2": (NODE, 9.0, True),
    "map_ops.lxc": (NODE, 0.05, True),
    "map_ops.lb4_services_v2": (NODE, 0.4, True),
    "map_ops.lb4_backends_v3": (NODE, 0.6, True),
    "map_ops.cilium_policy_00412": (NODE, 0.8, True),
    "map_ops.cilium_policy_01871": (NODE, 0.3, True),
    "map_ops_fail.ipcache_v2": (NODE, 0.0, False),
    "map_ops_fail.lxc": (NODE, 0.0, False),
    "map_ops_fail.lb4_services_v2": (NODE, 0.0, False),
    "map_ops_fail.lb4_backends_v3": (NODE, 0.0, False),
    "map_ops_fail.cilium_policy_00412": (NODE, 0.0, False),
    "map_ops_fail.cilium_policy_01871": (NODE, 0.0, False),
    # --- drops, forwards, conntrack -------------------------------------------------------
    "drop.policy_denied": (NODE, 1.4, True),
    "drop.stale_ip": (NODE, 0.05, True),
    "drop.backend_not_found": (NODE, 0.02, True),
    "drop.ct_insert_failed": (NODE, 0.0, False),
    "drop.nat_no_mapping": (NODE, 0.0, False),
    "drop.proxymap_insert_failed": (NODE, 0.0, False),
    "forward_pps": (NODE, 16000.0, True),
    "ct_gc.interval": (NODE, 300.0, False),  # seconds between runs
    "ct_gc.uncompleted_ratio": (NODE, 0.0, False),
    "ct_gc.alive": (NODE, 52000.0, True),
    "ct_gc.deleted": (NODE, 2600.0, True),  # per run
    "ct_gc.duration_p99": (NODE, 0.9, False),
    # --- identity and ipcache -------------------------------------------------------------
    "identities.cluster_local": (CLUSTER, 2100.0, False),
    "identities.node_local": (NODE, 60.0, True),
    "ipcache_errors": (NODE, 0.0, False),
    "ipcache_events": (NODE, 4.0, True),
    "identity_gc.interval": (CLUSTER, 900.0, False),
    "identity_gc.fail_ratio": (CLUSTER, 0.0, False),
    "identity_gc.deleted": (CLUSTER, 25.0, False),  # per run
    "identity_gc.latency": (CLUSTER, 2.5, False),  # seconds, last run
    # --- kvstore (identity-allocation-mode=kvstore) ---------------------------------------
    "kvstore.ops": (NODE, 6.0, True),
    "kvstore.p99": (NODE, 0.03, False),
    "kvstore.error_ratio": (NODE, 0.0, False),
    "kvstore.quorum_errors": (NODE, 0.0, False),
    "kvstore.events": (NODE, 3.0, True),
    "kvstore.events_queue_p99": (NODE, 0.004, False),
    "kvstore.sync_errors": (NODE, 0.0, False),
    "kvstore.sync_queue": (NODE, 0.0, False),
    "kvstore.initial_sync_completed": (NODE, 1.0, False),
    # --- ClusterMesh (two remote clusters) ------------------------------------------------
    # 0: this agent is not connected to / synchronized with the remote cluster.
    "clustermesh.ready.0": (NODE, 1.0, False),
    "clustermesh.ready.1": (NODE, 1.0, False),
    # Connection failures per hour (the agent's failures gauge grows by one per failure).
    "clustermesh.failures_per_hour.0": (NODE, 0.0, False),
    "clustermesh.failures_per_hour.1": (NODE, 0.0, False),
    # --- control plane --------------------------------------------------------------------
    "controllers.failing": (NODE, 0.0, False),
    "controllers.runs": (NODE, 28.0, True),
    "unreachable.nodes": (NODE, 0.0, False),
    "unreachable.health_endpoints": (NODE, 0.0, False),
    "endpoints.ready": (NODE, 31.0, True),
    "endpoints.not_ready": (NODE, 0.0, False),
    "endpoints.waiting_for_identity": (NODE, 0.0, False),
    "endpoints.regenerating": (NODE, 0.0, False),
    "endpoints.restoring": (NODE, 0.0, False),
    "endpoint_regenerations": (NODE, 0.35, True),
    "endpoint_regenerations_fail": (NODE, 0.0, False),
    "policy.count": (CLUSTER, 140.0, False),
    "policy.changes": (NODE, 0.01, False),
    "policy.change_failures": (NODE, 0.0, False),
    "policy.delay_p99": (NODE, 0.6, False),
    "api_limiter.endpoint_create": (NODE, 0.05, True),
    "api_limiter.endpoint_create_wait": (NODE, 0.0, False),  # mean wait, seconds
    "api_limiter.endpoint_create_rejected": (NODE, 0.0, False),  # requests/s the limiter fails
    "k8s_api.calls": (NODE, 3.0, True),
    "k8s_api.error_ratio": (NODE, 0.0, False),
    "errors_warnings": (NODE, 0.003, False),
    # --- Hubble ---------------------------------------------------------------------------
    "hubble.flows": (NODE, 900.0, True),
    "hubble_lost.perf_event_ring_buffer": (NODE, 0.0, False),
    "hubble_lost.observer_events_queue": (NODE, 0.0, False),
    # Baseline: Cilium 1.19's ring-buffer trickle (~12/min, no real loss) on 1.19 nodes only.
    "hubble_lost.hubble_ring_buffer": (NODE, -1.0, False),
    # --- cloud API and IPAM (operator; ENI mode) ------------------------------------------
    "cloud_api.rate": (CLUSTER, 1.5, False),  # requests/s, all operations
    "cloud_api.error_ratio": (CLUSTER, 0.0, False),  # share answered 503 (throttled)
    "cloud_api.p99": (CLUSTER, 0.35, False),
    "cloud_api.ratelimit_p99": (CLUSTER, 0.002, False),  # client-side limiter wait
    "ipam.available": (NODE, 44.0, False),
    "ipam.used": (NODE, 33.0, True),
    "ipam.needed": (NODE, 0.0, False),
    "ipam.at_capacity": (NODE, 0.0, False),
    "ipam.alloc_ops": (CLUSTER, 0.4, False),
    "ipam.alloc_p99": (CLUSTER, 0.6, False),
    "ipam.interface_creations": (CLUSTER, 0.01, False),
    "ipam.interface_failures": (CLUSTER, 0.0, False),  # createInterfaceAndAllocateIP, unableToCreateENI
    "ipam.ip_failures": (CLUSTER, 0.0, False),  # allocateIP attempts that failed, per second
    # --- CiliumEndpointSlices (operator) --------------------------------------------------
    "ces.syncs": (CLUSTER, 1.2, False),  # CES syncs per second, all outcomes
    "ces.fail_ratio": (CLUSTER, 0.0, False),
    "subnet.available.0": (CLUSTER, 3900.0, False),
    "subnet.available.1": (CLUSTER, 4100.0, False),
    "subnet.available.2": (CLUSTER, 3700.0, False),
}

STRING_KNOBS = {
    "version": (NODE, "1.18.4"),
}


def scope_of(name):
    if name in KNOBS:
        return KNOBS[name][0]
    if name in STRING_KNOBS:
        return STRING_KNOBS[name][0]
    return None
