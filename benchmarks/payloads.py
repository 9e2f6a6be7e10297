"""Synthetic Cilium expositions at fleet-realistic sizes, for the cost benchmark.

Deterministic (no randomness): the same size gives the same bytes on every machine. The shapes
follow Cilium's real families (see cilium_day2/metrics.py); unmapped families are included in
the proportions a real agent shows, because skipping them cheaply is part of what is measured.
"""

BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")


def _histogram(out, name, label_sets, scale=1.0):
    out.append(f"# HELP {name} synthetic histogram\n# TYPE {name} histogram\n")
    for i, labels in enumerate(label_sets):
        total = 100 + 37 * i
        cumulative = 0
        for j, le in enumerate(BUCKETS):
            cumulative = total if le == "+Inf" else min(total, cumulative + (total // len(BUCKETS)) + j)
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}\n')
        out.append(f"{name}_sum{{{labels}}} {total * 0.013 * scale:.6f}\n{name}_count{{{labels}}} {total}\n")


def _family(out, name, kind, series):
    out.append(f"# HELP {name} synthetic\n# TYPE {name} {kind}\n")
    for labels, value in series:
        out.append(f"{name}{{{labels}}} {value}\n" if labels else f"{name} {value}\n")


def agent(policy_maps=40):
    """About 4,000 series: what a busy 1.18 agent exposes with default metrics enabled."""
    out = []
    maps = ["ct4_global", "ct_any4_global", "ct6_global", "ct_any6_global", "snat_v4_external", "ipcache_v2",
            "lxc", "lb4_services_v2", "lb4_backends_v3", "lb4_reverse_nat", "nodeport_neigh4", "events"]
    maps += [f"cilium_policy_{1000 + i:05d}" for i in range(policy_maps)]
    _family(out, "cilium_bpf_map_pressure", "gauge", [(f'map_name="{m}"', 0.05 + (i % 17) / 40) for i, m in enumerate(maps)])
    _family(out, "cilium_bpf_map_ops_total", "counter",
            [(f'map_name="{m}",operation="{op}",outcome="{oc}"', 1000 + i)
             for i, (m, op, oc) in enumerate((m, op, oc) for m in maps for op in ("update", "delete", "lookup")
                                             for oc in ("success", "fail"))])
    reasons = ["Policy denied", "CT: Map insertion failed", "No mapping for NAT masquerade", "Stale or unroutable IP",
               "Invalid source ip", "Unsupported L3 protocol", "FIB lookup failed", "Service backend not found",
               "Missed tail call", "Invalid identity", "Policy denied by denylist", "Authentication required"]
    _family(out, "cilium_drop_count_total", "counter",
            [(f'direction="{d}",reason="{r}"', 10 + i) for i, (r, d) in enumerate((r, d) for r in reasons for d in ("INGRESS", "EGRESS"))])
    _family(out, "cilium_drop_bytes_total", "counter",
            [(f'direction="{d}",reason="{r}"', 1500 * (10 + i)) for i, (r, d) in enumerate((r, d) for r in reasons for d in ("INGRESS", "EGRESS"))])
    _family(out, "cilium_forward_count_total", "counter", [('direction="INGRESS"', 9e8), ('direction="EGRESS"', 8e8)])
    _family(out, "cilium_datapath_conntrack_gc_runs_total", "counter",
            [(f'family="{f}",protocol="{p}",status="{s}"', 100) for f in ("ipv4", "ipv6") for p in ("TCP", "non-TCP")
             for s in ("completed", "uncompleted")])
    _family(out, "cilium_datapath_conntrack_gc_entries", "gauge",
            [(f'family="{f}",protocol="{p}",status="{s}"', 5000) for f in ("ipv4", "ipv6") for p in ("TCP", "non-TCP")
             for s in ("alive", "deleted")])
    _histogram(out, "cilium_datapath_conntrack_gc_duration_seconds",
               [f'family="{f}",protocol="{p}",status="completed"' for f in ("ipv4", "ipv6") for p in ("TCP", "non-TCP")])
    _family(out, "cilium_identity", "gauge", [('type="cluster_local"', 4200), ('type="node_local"', 310),
                                              ('type="reserved"', 9), ('type="well_known"', 7)])
    _histogram(out, "cilium_kvstore_operations_duration_seconds",
               [f'action="{a}",kind="{k}",outcome="{o}",scope="{s}"' for a in ("Get", "Update", "Delete", "LockPath")
                for k in ("identity", "node", "ipcache") for o in ("success", "fail") for s in ("identities", "nodes")])
    _histogram(out, "cilium_k8s_client_api_latency_time_seconds",
               [f'method="{m}",path="/api/v1/{p}"' for m in ("GET", "PATCH", "PUT", "DELETE", "POST")
                for p in ("namespaces/{namespace}/pods", "nodes", "endpoints", "services", "ciliumendpoints",
                          "ciliumidentities", "ciliumnodes", "ciliumnetworkpolicies", "namespaces", "endpointslices")])
    _histogram(out, "cilium_agent_api_process_time_seconds",
               [f'method="{m}",path="/v1/{p}",return_code="{c}"' for m in ("GET", "PUT", "DELETE", "PATCH")
                for p in ("endpoint", "ipam", "policy", "healthz", "config", "identity") for c in ("200", "500")])
    _histogram(out, "cilium_endpoint_regeneration_time_stats_seconds",
               [f'scope="{s}",status="{st}"' for s in ("total", "waitingForLock", "policyCalculation", "proxyConfiguration",
                                                      "bpfCompilation", "mapSync", "prepareBuild", "bpfWaitForELF")
                for st in ("success", "failure")])
    _histogram(out, "cilium_policy_implementation_delay", [f'source="{s}"' for s in ("k8s", "api", "kvstore", "local")])
    _family(out, "cilium_controllers_failing", "gauge", [("", 0)])
    _family(out, "cilium_endpoint_state", "gauge", [(f'endpoint_state="{s}"', 40) for s in ("ready", "waiting-for-identity",
                                                                                          "regenerating", "invalid")])
    _family(out, "cilium_version", "gauge", [('version="1.18.2"', 1)])
    _family(out, "cilium_process_start_time_seconds", "gauge", [("", 1.7e9)])
    # Families the check does not collect, in realistic volume.
    _histogram(out, "cilium_bpf_syscall_duration_seconds",
               [f'mapName="{m}",operation="{op}",outcome="success"' for m in maps[:30] for op in ("update", "delete", "lookup")])
    _family(out, "cilium_kubernetes_events_total", "counter",
            [(f'action="{a}",scope="{s}",status="{st}"', 5) for a in ("create", "update", "delete")
             for s in ("Pod", "Node", "Service", "Endpoint", "CiliumNode", "CiliumEndpoint", "NetworkPolicy", "Namespace")
             for st in ("success", "failed")])
    _histogram(out, "cilium_k8s_event_lag_seconds", [f'source="{s}"' for s in ("Pod", "Node", "Service", "Endpoint")])
    _histogram(out, "cilium_triggers_policy_update_call_duration_seconds", [f'type="{t}"' for t in ("duration", "latency")])
    _family(out, "go_gc_duration_seconds", "summary", [(f'quantile="{q}"', 0.001) for q in ("0", "0.25", "0.5", "0.75", "1")])
    _family(out, "go_goroutines", "gauge", [("", 1800)])
    _family(out, "go_memstats_alloc_bytes", "gauge", [("", 2.1e8)])
    _family(out, "process_resident_memory_bytes", "gauge", [("", 4.2e8)])
    _histogram(out, "workqueue_queue_duration_seconds", [f'name="{n}"' for n in ("endpoint", "policy", "ipcache", "services",
                                                                               "nodes", "identity", "cilium-node")])
    _family(out, "cilium_fqdn_selectors", "gauge", [("", 300)])
    _histogram(out, "cilium_datapath_errors_latency_seconds", [f'area="{a}",name="{n}"' for a in ("ct", "nat")
                                                              for n in ("gc", "dump", "iterate")])
    _family(out, "cilium_services_events_total", "counter",
            [(f'action="{a}",service="svc-{i}"', i) for a in ("update", "delete") for i in range(250)])
    return "".join(out)


def hubble(context_series, shape="consistent"):
    """`context_series` hubble_flows_processed_total series with workload context labels.

    `shape`: "consistent" (every series with the same label names, as client_golang writes them);
    "mixed" (one series in 50 without the context labels, the first one among them, as a
    relabelling proxy or a non-Go exporter may write them); "escaped" (one label value in 50 with
    escaped quotes); "timestamps" (every sample with a timestamp); "openmetrics" (OpenMetrics with
    an exemplar on every third sample, `_created` lines and `# EOF`).
    """
    openmetrics = shape == "openmetrics"
    out = []
    out.append("# HELP hubble_lost_events_total Number of lost events\n# TYPE hubble_lost_events_total counter\n")
    for source in ("perf_event_ring_buffer", "observer_events_queue", "hubble_ring_buffer"):
        out.append(f'hubble_lost_events_total{{source="{source}"}} 0\n')
    out.append("# HELP hubble_flows_processed_total Total number of flows processed\n"
               "# TYPE hubble_flows_processed_total counter\n")
    kinds = (("L3_L4", "", "FORWARDED", "TCP"), ("L3_L4", "", "DROPPED", "TCP"), ("L3_L4", "", "FORWARDED", "UDP"),
             ("Trace", "to-endpoint", "FORWARDED", "TCP"), ("Trace", "to-stack", "FORWARDED", "UDP"),
             ("L7", "DNS", "FORWARDED", "UDP"), ("PolicyVerdict", "", "FORWARDED", "TCP"))
    for i in range(context_series):
        typ, subtype, verdict, proto = kinds[i % len(kinds)]
        src, dst = i // len(kinds), (i * 7919) % 997
        if shape == "mixed" and i % 50 == 0:
            labels = f'node="node-{i}",protocol="{proto}",subtype="{subtype}",type="{typ}",verdict="{verdict}"'
        else:
            workload = f'wl-{dst}-x{dst % 9}k2\\"v2\\"' if shape == "escaped" and i % 50 == 0 else f"wl-{dst}-x{dst % 9}k2"
            labels = (f'destination="ns-{dst % 40}/{workload}",'
                      f'protocol="{proto}",source="ns-{src % 40}/wl-{src}-q{src % 7}z8",'
                      f'subtype="{subtype}",traffic_direction="{"ingress" if i % 2 else "egress"}",type="{typ}",'
                      f'verdict="{verdict}"')
        line = f"hubble_flows_processed_total{{{labels}}} {1000 + i * 3}"
        if shape == "timestamps":
            line += f" {1764547200000 + i}"
        if openmetrics and i % 3 == 0:
            line += f' # {{trace_id="{i:032x}"}} 1.0 1764547200.{i % 1000:03d}'
        out.append(line + "\n")
        if openmetrics:
            out.append(f"hubble_flows_processed_created{{{labels}}} 1764547200.0\n")
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out)


def operator(nodes):
    """An ENI operator leader reporting IPAM for `nodes` nodes."""
    out = []
    for family in ("cilium_operator_ipam_available_ips", "cilium_operator_ipam_used_ips", "cilium_operator_ipam_needed_ips"):
        _family(out, family, "gauge", [(f'target_node="ip-10-{(n >> 8) % 256}-{n % 256}-1.ec2.internal"', n % 23)
                                       for n in range(nodes)])
    _family(out, "cilium_operator_ipam_nodes", "gauge", [(f'category="{c}"', nodes) for c in ("total", "in-deficit", "at-capacity")])
    _histogram(out, "cilium_operator_ec2_api_duration_seconds",
               [f'operation="{op}",response_code="{rc}"' for op in ("AssignPrivateIpAddresses", "CreateNetworkInterface",
                                                                   "AttachNetworkInterface", "DescribeNetworkInterfaces",
                                                                   "DescribeSubnets", "UnassignPrivateIpAddresses")
                for rc in ("OK", "Failed", "503 Service Unavailable")])
    _histogram(out, "cilium_operator_ec2_api_rate_limit_duration_seconds",
               [f'operation="{op}"' for op in ("AssignPrivateIpAddresses", "CreateNetworkInterface", "DescribeNetworkInterfaces")])
    _family(out, "cilium_operator_ipam_interface_creation_ops", "counter",
            [(f'status="{s}",subnet_id="subnet-{i:08x}"', 3) for s in ("success", "unable to create ENI") for i in range(12)])
    _family(out, "cilium_operator_identity_gc_runs", "gauge", [('identity_type="crd",outcome="success"', 40),
                                                               ('identity_type="crd",outcome="fail"', 0)])
    _family(out, "cilium_operator_process_start_time_seconds", "gauge", [("", 1.7e9)])
    _family(out, "go_goroutines", "gauge", [("", 300)])
    return "".join(out)
