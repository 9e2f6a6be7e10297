"""The files a Datadog engineer expects, consistent with the check's metric maps."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from cilium_day2 import metrics
from datadog_checks.cilium_day2.config import ENDPOINT_OPTIONS, build_scraper_configs

ROOT = Path(__file__).resolve().parents[1]


def test_datadog_names_are_unique_and_valid_metric_names():
    names = [name for families in metrics.COMPONENT_MAPS.values() for name in families.values()]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*", name), name
    # Submitted names never collide either (a counter's `.count` with a gauge called `x.count`).
    submitted = [n for families in metrics.COMPONENT_MAPS.values() for f, d in families.items()
                 for n in metrics.submitted_names(f, d)]
    assert len(submitted) == len(set(submitted))


def test_maps_do_not_overlap_and_types_are_declared_for_mapped_families():
    seen = {}
    for component, families in metrics.COMPONENT_MAPS.items():
        for family in families:
            assert family not in seen, f"{family} in both {seen[family]} and {component}"
            seen[family] = component
    assert (metrics.GAUGES | metrics.HISTOGRAMS) <= set(seen), (metrics.GAUGES | metrics.HISTOGRAMS) - set(seen)
    assert not metrics.GAUGES & metrics.HISTOGRAMS


def test_metadata_csv_lists_exactly_what_the_check_can_submit():
    rows = list(csv.DictReader((ROOT / "metadata.csv").open()))
    in_csv = {row["metric_name"]: row["metric_type"] for row in rows}
    expected = {}
    for families in metrics.COMPONENT_MAPS.values():
        for family, dd_name in families.items():
            expected.update(metrics.submitted_names(family, dd_name))
    # ddev's metadata validator knows no `distribution` type: distributions are named in the
    # description of their histogram's `.count` row instead.
    distributions = {name for name, kind in expected.items() if kind == "distribution"}
    assert in_csv == {name: kind for name, kind in expected.items() if name not in distributions}
    descriptions = " ".join(row["description"] for row in rows)
    for name in distributions:
        assert f"distribution {name}," in descriptions, name
    for row in rows:
        assert row["description"].strip(), row["metric_name"]


def test_conf_example_documents_every_option_and_is_a_valid_configuration():
    # `ddev validate config` (scripts/ddev_validate.sh, run by .ci/run) proves the example is what
    # Datadog's generator makes from spec.yaml; the top-level copy is for readers of the repo.
    example = (ROOT / "conf.yaml.example").read_text()
    assert example == (ROOT / "datadog_checks" / "cilium_day2" / "data" / "conf.yaml.example").read_text()
    spec = yaml.safe_load((ROOT / "assets" / "configuration" / "spec.yaml").read_text())
    instance_options = {o.get("name") for s in spec["files"][0]["options"] if s.get("template") == "instances"
                        for o in s["options"]}
    assert set(ENDPOINT_OPTIONS) | {"hubble_include_labels"} <= instance_options
    # The OpenMetrics and HTTP options come from Datadog's templates.
    for option in set(ENDPOINT_OPTIONS) | {"hubble_include_labels", "tags", "auth_token", "timeout", "extra_metrics"}:
        assert f"@param {option} " in example
    # The example instance is itself a valid configuration.
    (instance,) = yaml.safe_load(example)["instances"]
    instance = {k: v.replace("%%host%%", "127.0.0.1") for k, v in instance.items()}
    assert build_scraper_configs(instance)


def _short_image_name(image: str) -> str:
    """Autodiscovery's short image name: the last path part, without tag or digest."""
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]


def test_auto_conf_schedules_the_agent_and_is_valid():
    conf = yaml.safe_load((ROOT / "datadog_checks" / "cilium_day2" / "data" / "auto_conf.yaml").read_text())
    # The stock agent container of Cilium's chart runs this image; the operator and Envoy do not.
    agent_image = "quay.io/cilium/cilium:v1.18.2@sha256:858f807ea4e20e85e3ea3240a762e1f4b29f1cb5bbd0463b8aa77e7b097c0667"
    others = ["quay.io/cilium/operator-generic:v1.18.2", "quay.io/cilium/cilium-envoy:v1.34.4", "quay.io/cilium/hubble-relay:v1.18.2"]
    assert _short_image_name(agent_image) in conf["ad_identifiers"]
    assert not {_short_image_name(i) for i in others} & set(conf["ad_identifiers"])
    (instance,) = conf["instances"]
    assert ":9962/" in instance["agent_endpoint"]
    instance = {k: v.replace("%%host%%", "10.0.0.7") if isinstance(v, str) else v for k, v in instance.items()}
    (config,) = build_scraper_configs(instance)
    assert config["cilium_component"] == "agent"


def test_service_checks_json_names_one_check_per_component():
    checks = json.loads((ROOT / "assets" / "service_checks.json").read_text())
    assert {c["check"] for c in checks} == {f"cilium_day2.{c}.openmetrics.health" for c in metrics.COMPONENT_MAPS}


def test_manifest_points_at_files_that_exist():
    manifest = json.loads((ROOT / "manifest.json").read_text())
    integration = manifest["assets"]["integration"]
    metadata = {row["metric_name"] for row in csv.DictReader((ROOT / "metadata.csv").open())}
    assert integration["metrics"]["check"] in metadata
    assert integration["metrics"]["prefix"] == "cilium_day2."
    for path in [integration["configuration"]["spec"], integration["service_checks"]["metadata_path"],
                 *manifest["assets"]["dashboards"].values(), *manifest["assets"]["monitors"].values()]:
        assert (ROOT / path).is_file(), path
    result = subprocess.run([sys.executable, "scripts/sync_manifest.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    listed = {Path(p).name for p in manifest["assets"]["monitors"].values()}
    assert listed == {p.name for p in (ROOT / "assets" / "monitors").glob("*.json")}
