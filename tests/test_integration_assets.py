"""The files a Datadog engineer expects, consistent with the check's metric maps."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import yaml

from cilium_day2 import metrics
from datadog_checks.cilium_day2.config import ENDPOINT_OPTIONS, build_scraper_configs

ROOT = Path(__file__).resolve().parents[1]


def rule_name(family):
    """The documented naming rule (see cilium_day2/metrics.py)."""
    name = family.removeprefix("cilium_").removesuffix("_total")
    if name.startswith("hubble_"):
        return "hubble." + name[len("hubble_"):]
    if name.startswith("operator_"):
        area, _, rest = name[len("operator_"):].partition("_")
        return f"operator.{area}.{rest}"
    area, _, rest = name.partition("_")
    return f"{area}.{rest}" if rest else area


def test_datadog_names_follow_the_naming_rule():
    for component, families in metrics.COMPONENT_MAPS.items():
        for family, dd_name in families.items():
            assert dd_name == rule_name(family), (component, family)


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
    assert in_csv == expected
    for row in rows:
        assert row["description"].strip(), row["metric_name"]
        assert row["integration"] == "cilium_day2"


def test_conf_example_is_generated_from_the_spec_and_documents_every_option():
    result = subprocess.run([sys.executable, "scripts/gen_conf_example.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    example = (ROOT / "conf.yaml.example").read_text()
    assert example == (ROOT / "datadog_checks" / "cilium_day2" / "data" / "conf.yaml.example").read_text()
    spec = yaml.safe_load((ROOT / "assets" / "configuration" / "spec.yaml").read_text())
    instance_options = {o["name"] for s in spec["files"][0]["options"] if s["name"] == "instances" for o in s["options"]}
    for option in set(ENDPOINT_OPTIONS) | {"hubble_include_labels", "tags", "auth_token", "timeout"}:
        assert option in instance_options
        assert f"@param {option} " in example
    # The example instance is itself a valid configuration.
    (instance,) = yaml.safe_load(example)["instances"]
    instance = {k: v.replace("%%host%%", "127.0.0.1") for k, v in instance.items()}
    assert build_scraper_configs(instance)


def test_auto_conf_schedules_the_agent_and_is_valid():
    conf = yaml.safe_load((ROOT / "datadog_checks" / "cilium_day2" / "data" / "auto_conf.yaml").read_text())
    assert "cilium-agent" in conf["ad_identifiers"]
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
