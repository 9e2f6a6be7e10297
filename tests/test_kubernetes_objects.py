"""The operator-world files as the stacks load them: the committed PrometheusRule is picked by
a default kube-prometheus-stack install, every object fits `kubectl apply` (1, 3, 12 and 50
clusters), every object passes prometheus-operator's CRD schema, ruler limits warn or refuse,
and a sharded render writes one rule file per cluster."""

import json
import re
from pathlib import Path

import pytest
import yaml

from cilium_day2.catalog import load_catalog
from cilium_day2.cli import main
from cilium_day2.errors import UserError
from cilium_day2.render import alertmanager_k8s, kubernetes, prometheus

from .prometheus_server import promtool, require_promtool

ROOT = Path(__file__).resolve().parents[1]
CRDS = Path(__file__).resolve().parent / "fixtures" / "crds"
jsonschema = pytest.importorskip("jsonschema", reason="needs jsonschema (requirements-dev.txt)")
# kubectl stores the applied object in an annotation; the API server caps all annotations at this.
ANNOTATION_LIMIT = 262144
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def shards(n):
    return {"settings": {"shard_by_cluster": [f"prod-{i:02d}" for i in range(n)]}}


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def closed(schema):
    """The CRD schema with unknown fields refused: the API server prunes them, so a field the
    schema does not know is lost, which for us is an error."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def validator(name):
    schema = json.loads((CRDS / name).read_text())["schema"]
    return jsonschema.Draft7Validator(closed(schema))


def errors_of(validator_, obj):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator_.iter_errors(obj)]


def selects(selector, labels):
    """A Kubernetes label selector (matchLabels only, as the chart renders it)."""
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# --- kube-prometheus-stack, as shipped ---------------------------------------------------------------


def test_the_committed_prometheusrule_is_selected_by_a_default_kube_prometheus_stack_install():
    """The chart's prometheus.yaml: with `ruleSelectorNilUsesHelmValues: true` (its default) the
    Prometheus selects `matchLabels: {release: <Helm release name>}`; its README installs
    `helm install [RELEASE_NAME] ...kube-prometheus-stack`."""
    objects = docs((ROOT / prometheus.CRD_FILE).read_text())
    assert objects
    chart_selector = {"matchLabels": {"release": "kube-prometheus-stack"}}
    for obj in objects:
        assert selects(chart_selector, obj["metadata"]["labels"]), obj["metadata"]
        assert obj["metadata"]["namespace"] == "monitoring"


def test_rule_labels_change_the_release_and_replace_the_default():
    catalog = load_catalog({"settings": {"rule_labels": {"release": "prom"}, "rule_namespace": "observability"}})
    obj, = docs(prometheus.render(catalog)[prometheus.CRD_FILE])
    assert obj["metadata"]["labels"]["release"] == "prom"
    assert obj["metadata"]["namespace"] == "observability"
    obj, = docs(prometheus.render(load_catalog({"settings": {"rule_labels": {"prometheus": "k8s"}}}))[prometheus.CRD_FILE])
    assert "release" not in obj["metadata"]["labels"] and obj["metadata"]["labels"]["prometheus"] == "k8s"


def test_every_committed_operator_object_passes_the_crd_schema():
    rules = validator("prometheusrules.v1.json")
    for obj in docs((ROOT / prometheus.CRD_FILE).read_text()):
        assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "PrometheusRule"
        assert errors_of(rules, obj) == []
    amc = validator("alertmanagerconfigs.v1alpha1.json")
    obj, = docs((ROOT / alertmanager_k8s.ALERTMANAGERCONFIG_FILE).read_text())
    assert obj["apiVersion"] == "monitoring.coreos.com/v1alpha1" and obj["kind"] == "AlertmanagerConfig"
    assert errors_of(amc, obj) == []


def test_the_schema_check_is_not_vacuous():
    rules = validator("prometheusrules.v1.json")
    obj = docs((ROOT / prometheus.CRD_FILE).read_text())[0]
    obj["spec"]["groups"][0]["rules"][0]["notARuleField"] = 1
    obj["spec"]["groups"][1]["rules"][0].pop("expr")
    found = " ".join(errors_of(rules, obj))
    assert "notARuleField" in found and "expr" in found


# --- object size -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("clusters", [1, 3, 12, 50])
def test_no_prometheusrule_exceeds_256_kib_and_nothing_is_lost(clusters):
    catalog = load_catalog(shards(clusters))
    files = prometheus.render(catalog)
    text = files[prometheus.CRD_FILE]
    for raw in text.split("\n---\n")[1:]:
        assert len(raw.encode()) <= ANNOTATION_LIMIT
    objects = docs(text)
    names = [o["metadata"]["name"] for o in objects]
    assert len(set(names)) == len(names) and all(DNS_SUBDOMAIN_RE.match(n) for n in names)
    for obj in objects:
        assert len(json.dumps(obj, separators=(",", ":")).encode()) <= ANNOTATION_LIMIT, obj["metadata"]["name"]
    # Together the objects hold exactly the groups of the plain rule file, in order.
    assert [g for o in objects for g in o["spec"]["groups"]] == yaml.safe_load(files[prometheus.RULES_FILE])["groups"]
    # Stable names: one object per cluster, named for it.
    assert names == [f"cilium-day2-prod-{i:02d}" for i in range(clusters)]


def test_an_object_too_large_is_split_by_group_under_stable_numbered_names(monkeypatch):
    plain = yaml.safe_load(prometheus.render(load_catalog())[prometheus.RULES_FILE])["groups"]
    monkeypatch.setattr(kubernetes, "MAX_OBJECT_BYTES", 40_000)
    objects = docs(prometheus.render(load_catalog())[prometheus.CRD_FILE])
    assert len(objects) > 1
    assert [o["metadata"]["name"] for o in objects] == [f"cilium-day2-{i}" for i in range(1, len(objects) + 1)]
    assert all(len(json.dumps(o, separators=(",", ":"))) <= 40_000 for o in objects)
    assert [g for o in objects for g in o["spec"]["groups"]] == plain


def test_clusters_that_name_the_same_object_are_refused():
    with pytest.raises(UserError, match="same PrometheusRule name"):
        prometheus.render(load_catalog({"settings": {"shard_by_cluster": ["Prod", "prod"]}}))


# --- ruler limits and per-cluster files -------------------------------------------------------------


def test_a_sharded_render_writes_one_rule_file_per_cluster():
    catalog = load_catalog(shards(3))
    files = prometheus.render(catalog)
    combined = yaml.safe_load(files[prometheus.RULES_FILE])["groups"]
    per_cluster = [yaml.safe_load(files[prometheus.cluster_rules_file(f"prod-{i:02d}")])["groups"] for i in range(3)]
    assert [g for groups in per_cluster for g in groups] == combined
    for i, groups in enumerate(per_cluster):
        assert all(g["name"].endswith(f"-prod-{i:02d}") for g in groups)
        assert all(f'cluster="prod-{i:02d}"' in r["expr"] for g in groups for r in g["rules"])


@pytest.mark.prometheus
def test_per_cluster_files_pass_promtool(tmp_path):
    require_promtool()
    assert main(["render", "--values", str(_values(tmp_path, shards(2))), "--only", "prometheus",
                 "--out", str(tmp_path / "out")]) == 0
    files = sorted((tmp_path / "out" / prometheus.CLUSTER_RULES_DIR).glob("*.rules.yml"))
    assert [f.name for f in files] == ["prod-00.rules.yml", "prod-01.rules.yml"]
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def _values(tmp_path, values):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_render_warns_above_the_group_limit_and_strict_refuses_writing_nothing(tmp_path, capsys):
    values = _values(tmp_path, shards(12))
    assert main(["render", "--values", str(values), "--only", "prometheus", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "settings.max_groups_per_namespace" in err and prometheus.RULES_FILE in err
    # Each cluster's own file is within the limit: only the combined file is named.
    assert prometheus.CLUSTER_RULES_DIR not in err
    assert main(["render", "--values", str(values), "--only", "prometheus", "--out", str(tmp_path / "b"),
                 "--strict"]) != 0
    err = capsys.readouterr().err
    assert "settings.max_groups_per_namespace" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").rglob("*.yml"))


def test_a_limit_raised_to_match_the_ruler_silences_the_warning(tmp_path, capsys):
    values = _values(tmp_path, {"settings": {**shards(12)["settings"], "max_groups_per_namespace": 300}})
    assert main(["render", "--values", str(values), "--only", "prometheus", "--out", str(tmp_path / "a"),
                 "--strict"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_default_render_is_within_mimirs_defaults(tmp_path, capsys):
    assert main(["render", "--only", "prometheus", "--out", str(tmp_path), "--strict"]) == 0
    groups = yaml.safe_load((tmp_path / prometheus.RULES_FILE).read_text())["groups"]
    assert len(groups) <= 70 and max(len(g["rules"]) for g in groups) <= 20


@pytest.mark.parametrize("bad", [0, -1, "many", True])
def test_a_bad_group_limit_is_one_line_naming_it(bad):
    with pytest.raises(UserError) as exc:
        load_catalog({"settings": {"max_groups_per_namespace": bad}})
    assert "settings.max_groups_per_namespace" in str(exc.value) and "\n" not in str(exc.value)


def test_the_new_committed_files_match_a_fresh_render(tmp_path):
    """Drift, for the files this module's targets add (tests/test_render.py covers the rest)."""
    from cilium_day2.render import grafana

    assert main(["render", "--out", str(tmp_path)]) == 0
    for rel in (alertmanager_k8s.ALERTMANAGERCONFIG_FILE, alertmanager_k8s.KPS_ALERTMANAGER_FILE,
                grafana.CONFIGMAP_FILE, prometheus.CRD_FILE):
        assert (tmp_path / rel).read_text() == (ROOT / rel).read_text(), f"{rel} drifted: run `cilium-day2 render`"


def test_the_documented_values_for_rulers_without_keep_firing_for_render_none():
    """docs/prometheus-stacks.md: Prometheus < 2.42 and Thanos < 0.34 have no keep_firing_for."""
    doc = (ROOT / "docs" / "prometheus-stacks.md").read_text()
    block = re.search(r"```yaml\n(# values.yaml \(ruler without keep_firing_for\)\n.*?)```", doc, re.S).group(1)
    values = yaml.safe_load(block)
    default = load_catalog()
    assert {sid for sid in values["signals"]} == {s.id for s in default.signals if s.keep_firing_for}
    text = prometheus.render(load_catalog(values))[prometheus.RULES_FILE]
    rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    assert "keep_firing_for" not in text
    assert all(r.get("for") for r in rules if "alert" in r)
