"""Which signals do not apply to the cluster doctor is looking at, and why.

A signal with no data is never OK: doctor's gate passes only when every enabled signal was
evaluated, or is *not applicable* with a reason it can show. The rules below are the only ways
a signal becomes not applicable; each reads what the endpoints said, never a guess.

IPAM and cloud APIs. The operator exposes `cilium_operator_ipam_*` and the cloud-API families
(`cilium_operator_ec2_api_*`, ...) only with ENI, Azure or Alibaba Cloud IPAM, and only on the
leader replica. The IPAM mode is read from the agent's feature gauge
`cilium_feature_controlplane_ipam{mode}` (newer Cilium releases, `pkg/metrics/features`: the enabled mode is 1). Without
it, an operator that answered with Cilium metrics but none of the IPAM or cloud-API families is
taken to run a mode without them (cluster-pool, kubernetes, multi-pool), and the reason says
that a standby replica alone would look the same.

kvstore. The agent's `cilium_kvstore_*` families exist only with a kvstore (etcd), which the agent
uses for identities in `kvstore` and `doublewrite-*` identity allocation modes (and for
Cluster Mesh). When the agent's `cilium_feature_controlplane_identity_allocation{mode}` says
`crd` and no endpoint exposes any `cilium_kvstore_*` family, kvstore signals are not applicable.

Optional features. A signal with `feature:` in the catalog (Cluster Mesh, CiliumEndpointSlices,
health checking) reads families Cilium registers only while that feature is on: when its
component answered with Cilium metrics but none of the signal's families, it is not applicable,
named with the feature. A signal with `version_twin:` watches the same thing under another
Cilium version's names: where the twin's families are exposed, it is not applicable.
"""

from __future__ import annotations

from dataclasses import replace

from ..catalog.evaluate import NO_DATA
from ..catalog.query import iter_selectors

NOT_APPLICABLE = "N/A"
IPAM_FEATURE = "cilium_feature_controlplane_ipam"
IDENTITY_FEATURE = "cilium_feature_controlplane_identity_allocation"
FEATURE_FAMILIES = (IPAM_FEATURE, IDENTITY_FEATURE)
KVSTORE_PREFIX = "cilium_kvstore_"
# IPAM modes whose operator allocator exposes the IPAM and cloud-API families.
CLOUD_IPAM_MODES = ("eni", "azure", "alibabacloud")
_CLOUD_PREFIXES = ("cilium_operator_ipam_",) + tuple(f"cilium_operator_{api}_api_" for api in ("ec2", "azure", "alibabacloud"))


def _families(signal, cloud_apis):
    return [f for sel in iter_selectors(signal.query.expr) for f in sel.families(cloud_apis)]


def _is_cloud_ipam(signal, cloud_apis):
    families = _families(signal, cloud_apis)
    return signal.component == "operator" and bool(families) and all(f.startswith(_CLOUD_PREFIXES) for f in families)


def _exposed(family, names):
    return family in names or any(family + s in names for s in ("_bucket", "_count", "_sum", "_total"))


def feature_modes(snapshots, family=IPAM_FEATURE):
    """The modes the agents report as enabled (value 1) in a feature gauge, latest samples."""
    modes = set()
    for snap in snapshots[-1:]:
        for s in snap.samples:
            if s.name == family and s.value == 1 and s.labels.get("mode"):
                modes.add(s.labels["mode"])
    return modes


def ipam_modes(snapshots):
    return feature_modes(snapshots, IPAM_FEATURE)


def _kvstore_reason(snapshots, names):
    modes = feature_modes(snapshots, IDENTITY_FEATURE)
    if modes == {"crd"} and not any(n.startswith(KVSTORE_PREFIX) for n in names):
        return "not applicable: identity allocation mode crd, and no kvstore metrics (no kvstore in use)"
    return ""


def _operator_cloud_families(snapshots):
    return any(s.name.startswith(_CLOUD_PREFIXES) for snap in snapshots for s in snap.samples)


def _twin_exposed(signal, by_id, names, cloud_apis):
    twin = by_id.get(signal.version_twin)
    return twin is not None and any(_exposed(x, names) for x in _families(twin, cloud_apis))


def mark_not_applicable(findings, snapshots, components, cloud_apis):
    """Findings with NO DATA turned NOT_APPLICABLE where a rule above says so."""
    modes = ipam_modes(snapshots)
    operator_seen = components.get("operator") == ""
    reason = ""
    if modes and not modes & set(CLOUD_IPAM_MODES):
        reason = f"not applicable: IPAM mode {', '.join(sorted(modes))}"
    elif not modes and operator_seen and not _operator_cloud_families(snapshots):
        reason = ("not applicable: the operator exposes no IPAM or cloud-API metrics, so IPAM is not "
                  "ENI, Azure or Alibaba Cloud (e.g. cluster-pool); if it is, scrape the leader operator replica too")
    names = {s.name for snap in snapshots for s in snap.samples}
    kvstore = _kvstore_reason(snapshots, names)
    by_id = {f.signal.id: f.signal for f in findings}
    out = []
    for f in findings:
        # NO DATA, or OK only because an error counter is absent (none yet): neither was judged.
        unjudged = f.status == NO_DATA or (f.value is None and not f.groups)
        families = _families(f.signal, cloud_apis)
        if unjudged and not any(_exposed(x, names) for x in families):
            if reason and _is_cloud_ipam(f.signal, cloud_apis):
                f = replace(f, status=NOT_APPLICABLE, reason=reason)
            elif kvstore and families and all(x.startswith(KVSTORE_PREFIX) for x in families):
                f = replace(f, status=NOT_APPLICABLE, reason=kvstore)
            elif _twin_exposed(f.signal, by_id, names, cloud_apis):
                twin = by_id[f.signal.version_twin]
                f = replace(f, status=NOT_APPLICABLE, reason=(
                    f"not applicable: this Cilium exposes {', '.join(_families(twin, cloud_apis))} instead "
                    f"(signal {twin.id})"))
            elif f.signal.feature and components.get(f.signal.component) == "":
                f = replace(f, status=NOT_APPLICABLE, reason=(
                    f"not applicable: {f.signal.feature} is not in use here (no endpoint exposes "
                    f"{', '.join(families)})"))
        out.append(f)
    return out
