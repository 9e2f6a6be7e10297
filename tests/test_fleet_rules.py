"""The rendered packs on fleets labelled as real scrape setups label them (tests/promtool/fleets.py).

Each setup's pack is rendered from its values file under docs/examples/ (the default pack for
the chart's ServiceMonitors), and promtool checks the exact set of firing alerts of every case,
on one Prometheus and on an HA pair read without deduplication.
"""


import pytest
import yaml

from cilium_day2.catalog import load_catalog
from cilium_day2.render import command as render
from cilium_day2.render import prometheus

from .prometheus_server import promtool, require_promtool
from .promtool import fleets


def _render(setup, out):
    catalog = load_catalog(str(setup.values) if setup.values else None)
    render.write(render.render_files(catalog), out, catalog)
    return out / prometheus.RULES_FILE, catalog


def _run(test_file):
    result = promtool("test", "rules", test_file)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


@pytest.mark.prometheus
@pytest.mark.parametrize("setup_name", list(fleets.SETUPS))
def test_every_failure_fires_and_every_healthy_twin_stays_silent(setup_name, tmp_path):
    require_promtool()
    setup = fleets.SETUPS[setup_name]
    rules, catalog = _render(setup, tmp_path)
    groups = []
    for case in fleets.cases(setup):
        groups.append((f"{setup.name}: {case.name}", case, case.series))
        fleet = fleets.Fleet(setup, clusters=())
        fleet.series = case.series
        for label in catalog.settings.replica_labels:
            groups.append((f"{setup.name}: {case.name}, HA pair ({label})", case, fleet.ha(label)))
    test_file = tmp_path / "fleet.test.yml"
    test_file.write_text(yaml.safe_dump(
        fleets.promtool_tests(str(rules), groups, catalog.settings.cluster_label, catalog.settings.replica_labels),
        sort_keys=False, width=400))
    _run(test_file)


@pytest.mark.prometheus
@pytest.mark.parametrize("setup_name", ["servicemonitor", "annotations"])
def test_a_vanished_cluster_keeps_alerting_for_a_day(setup_name, tmp_path):
    require_promtool()
    setup = fleets.SETUPS[setup_name]
    rules, catalog = _render(setup, tmp_path)
    groups = [(f"{setup.name}: {case.name}", case, case.series) for case in fleets.long_cases(setup)]
    test_file = tmp_path / "vanished.test.yml"
    test_file.write_text(yaml.safe_dump(
        fleets.promtool_tests(str(rules), groups, catalog.settings.cluster_label, catalog.settings.replica_labels),
        sort_keys=False, width=400))
    _run(test_file)


def test_the_fleets_carry_each_setups_own_target_labels():
    # The fixtures stay honest: what each setup's relabelling yields, and nothing it does not.
    sm, ann = fleets.SETUPS["servicemonitor"], fleets.SETUPS["annotations"]
    assert {"job", "namespace", "pod", "instance", "container", "endpoint", "service", "node"} <= set(sm.agent("c", 0))
    assert "node" not in ann.agent("c", 0) and "node" not in ann.hubble("c", 0)
    assert ann.agent("c", 0)["k8s_app"] == "cilium" and "pod" not in ann.hubble("c", 0)
    # Annotation scraping puts unrelated pods on the agents' job.
    assert any(o["job"] == ann.agent("c", 0)["job"] for o in ann.others("c", 0))


@pytest.mark.prometheus
def test_without_the_selectors_a_shared_job_masks_the_vanished_operator(tmp_path):
    """The annotation fleet is honest: with only the job (no `*_selector`), the other annotated
    pods of `kubernetes-pods` stand in for the operator that is gone, and its alert is lost."""
    require_promtool()
    setup = fleets.SETUPS["annotations"]
    values = yaml.safe_load(setup.values.read_text())
    values["settings"] = {k: v for k, v in values["settings"].items() if not k.endswith("_selector")}
    catalog = load_catalog(values)
    render.write(render.render_files(catalog), tmp_path, catalog)
    (case,) = [c for c in fleets.cases(setup) if c.name == "operator scaled to zero"]
    test_file = tmp_path / "masked.test.yml"
    test_file.write_text(yaml.safe_dump(fleets.promtool_tests(
        str(tmp_path / prometheus.RULES_FILE), [(case.name, case, case.series)]), sort_keys=False, width=400))
    result = promtool("test", "rules", test_file)
    assert result.returncode != 0 and "CiliumOperatorAbsent" in result.stdout + result.stderr
