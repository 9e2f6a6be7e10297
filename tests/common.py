"""Expectations derived from exposition text and the metric maps (never copies of check output)."""

from prometheus_client.parser import text_string_to_metric_families

from cilium_day2 import metrics
from datadog_checks.cilium_day2 import CiliumDay2Check

NAMESPACE = "cilium_day2"

AGENT_FIXTURES = ["agent_v1_18.txt", "agent_v1_14.txt"]
OPERATOR_FIXTURES = ["operator_eni.txt", "operator_azure.txt", "operator_alibabacloud.txt"]
HUBBLE_FIXTURES = ["hubble_context.txt"]


def make_check(instance):
    return CiliumDay2Check("cilium_day2", {}, [instance])


def run_check_on_every_fixture(metrics_server, dd_run_check):
    """One check run per fixture exposition (agent, operator, Hubble), each served over HTTP."""
    option = {"agent": "agent_endpoint", "operator": "operator_endpoint", "hubble": "hubble_endpoint"}
    fixtures = [("agent", f) for f in AGENT_FIXTURES] + [("operator", f) for f in OPERATOR_FIXTURES]
    fixtures += [("hubble", f) for f in HUBBLE_FIXTURES]
    for i, (component, name) in enumerate(fixtures):
        url = metrics_server.serve_fixture(f"/{i}/metrics", name)
        dd_run_check(make_check({option[component]: url}))


def family_samples(text):
    """{raw family name as exposed: [label dicts]}, keyed by both `x` and `x_total` for counters."""
    found = {}
    for family in text_string_to_metric_families(text):
        labels = [dict(s.labels) for s in family.samples]
        found.setdefault(family.name, []).extend(labels)
        if family.type == "counter":
            found.setdefault(family.name + "_total", []).extend(labels)
    return found


def mapped_families_in(text, component):
    """{mapped family: [label dicts]} for the families of a component's map present in `text`."""
    present = family_samples(text)
    return {family: present[family] for family in metrics.COMPONENT_MAPS[component] if family in present}


def expected_tags(labels, family=None):
    """The tags a sample's labels become (label renames applied, bucket bounds ignored)."""
    tags = set()
    for key, value in labels.items():
        if key in ("le", "quantile"):
            continue
        if family in metrics.HUBBLE_BOUNDED_LABELS and key not in metrics.HUBBLE_BOUNDED_LABELS[family]:
            continue
        tags.add(f"{metrics.RENAME_LABELS.get(key, key)}:{value}")
    return tags


def submitted(aggregator, name):
    """Metric stubs, or histogram-bucket stubs for distributions."""
    return aggregator.metrics(name) or aggregator.histogram_bucket(name)
