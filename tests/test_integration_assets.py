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


def _metadata_rows():
    with open(ROOT / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


# metadata.csv knows the in-app types count, gauge and rate (ddev's metadata validator accepts
# nothing else). A distribution is listed under its bare name as `gauge`, as integrations-core does
# for the distributions its OpenMetrics checks make from histogram buckets (vllm's
# `vllm.e2e_request_latency.seconds`, next to its `.bucket`, `.count` and `.sum` rows).
METADATA_TYPE = {"gauge": "gauge", "count": "count", "distribution": "gauge"}


def test_metadata_csv_lists_exactly_what_the_check_can_submit():
    rows = _metadata_rows()
    in_csv = {row["metric_name"]: row["metric_type"] for row in rows}
    expected = {}
    for families in metrics.COMPONENT_MAPS.values():
        for family, dd_name in families.items():
            expected.update(metrics.submitted_names(family, dd_name))
    assert in_csv == {name: METADATA_TYPE[kind] for name, kind in expected.items()}
    for row in rows:
        assert row["description"].strip(), row["metric_name"]
    # A distribution's row says it is one (percentiles, not an average) and has a unit.
    for name in (n for n, kind in expected.items() if kind == "distribution"):
        (row,) = [r for r in rows if r["metric_name"] == name]
        assert "distribution" in row["description"] and row["unit_name"], name


def _queried_metrics():
    """Metric names the monitors and the dashboard query (service checks are not metrics)."""
    pattern = re.compile(r"(cilium_day2\.[a-z0-9_.]+?)\{")
    names = set()
    for path in [*(ROOT / "assets" / "monitors").glob("*.json"), *(ROOT / "assets" / "dashboards").glob("*.json")]:
        names |= set(pattern.findall(path.read_text()))
    return names


def test_metadata_agrees_with_what_the_check_submits_and_the_assets_query(metrics_server, aggregator, dd_run_check):
    from datadog_checks.dev.utils import get_metadata_metrics

    from .common import run_check_on_every_fixture

    run_check_on_every_fixture(metrics_server, dd_run_check)

    metadata = get_metadata_metrics()
    # Every metric submitted is in metadata.csv with its type (integrations-core's own assertion).
    aggregator.assert_metrics_using_metadata(metadata, check_submission_type=True)
    # Histogram buckets become distributions: each under its bare name, listed as one.
    distributions = {name for name, stubs in aggregator._histogram_buckets.items() if stubs}
    assert distributions
    for name in distributions:
        assert metadata.get(name, {}).get("metric_type") == "gauge", name
        assert "distribution" in metadata[name]["description"], name
    submitted = {name for name, stubs in aggregator._metrics.items() if stubs} | distributions

    queried = _queried_metrics()
    assert queried
    assert not queried - set(metadata), sorted(queried - set(metadata))
    assert not queried - submitted, f"queried but never submitted on the fixtures: {sorted(queried - submitted)}"
    # The p99 monitors query distributions, and those are submitted as distributions.
    p99 = {m for m in queried if m in distributions}
    assert p99 >= {"cilium_day2.kvstore.operations_duration.seconds", "cilium_day2.policy.implementation_delay"}


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


def test_one_minimum_agent_version_everywhere():
    """The check's refusal message, the package's base requirement, service_checks.json, the README
    section the manifest's tile points at, and docs/datadog.md all name the same minimum."""
    import tomllib

    from datadog_checks.cilium_day2.check import MINIMUM_AGENT, MINIMUM_BASE

    def release(version):
        return tuple(int(p) for p in version.split(".")) + (0,) * (3 - len(version.split(".")))

    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["dependencies"] == [f"datadog-checks-base>={MINIMUM_BASE}"]
    checks = json.loads((ROOT / "assets" / "service_checks.json").read_text())
    assert {release(c["agent_version"]) for c in checks} == {release(MINIMUM_AGENT)}

    manifest = json.loads((ROOT / "manifest.json").read_text())
    page, _, anchor = manifest["tile"]["configuration"].partition("#")
    readme = (ROOT / page).read_text()
    setup = readme.split(f"## {anchor}\n", 1)[1].split("\n## ", 1)[0]
    assert f"Agent {MINIMUM_AGENT} or later" in setup
    datadog_doc = (ROOT / "docs" / "datadog.md").read_text()
    assert f"Agent {MINIMUM_AGENT}" in datadog_doc and MINIMUM_BASE in datadog_doc
    # No other Agent version is named as a requirement.
    for text in (readme, datadog_doc):
        named = {release(v) for v in re.findall(r"Agent (7\.\d+(?:\.\d+)?)", text)}
        assert named <= {release(MINIMUM_AGENT)}, named


def test_the_two_distributions_have_one_version():
    # The integration wheel carries modules of `cilium_day2`; the tools wheel carries the same ones.
    # One version for both keeps the two copies identical when both are installed side by side.
    from cilium_day2 import __version__ as tools_version
    from datadog_checks.cilium_day2 import __version__ as integration_version

    assert tools_version == integration_version
