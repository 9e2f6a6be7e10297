"""The committed Grafana dashboard, read back with Grafana's own SDK (grafana-foundation-sdk):
every signal's panel carries both thresholds, in the right colours and direction."""

import json
import math
from pathlib import Path

import pytest

from cilium_day2.catalog import load_catalog
from cilium_day2.catalog.query import breaches
from cilium_day2.render import grafana

ROOT = Path(__file__).resolve().parents[1]
sdk = pytest.importorskip("grafana_foundation_sdk.models.dashboard",
                          reason="needs grafana-foundation-sdk (requirements-dev.txt)")


def colour_at(steps, value):
    """Grafana's rule: the last step whose value is at or below the value (the base has none)."""
    colour = steps[0].color
    for step in steps[1:]:
        if value >= step.value:
            colour = step.color
    return colour


def expected_colour(signal, value):
    if breaches(value, signal.comparison, signal.critical):
        return "red"
    if breaches(value, signal.comparison, signal.warning):
        return "orange"
    return "green"


@pytest.fixture(scope="module")
def panels():
    dashboard = sdk.Dashboard.from_json(json.loads((ROOT / grafana.GRAFANA_FILE).read_text()))
    assert dashboard.uid == "cilium-day2"
    return {p.title: p for p in dashboard.panels if isinstance(p, sdk.Panel)}


def test_every_signal_has_a_panel_with_both_thresholds_in_its_direction(panels):
    catalog = load_catalog()
    for signal in catalog.enabled():
        panel = panels[signal.title]
        thresholds = panel.field_config.defaults.thresholds
        assert thresholds.mode == sdk.ThresholdsMode.ABSOLUTE
        steps = thresholds.steps
        assert steps[0].value is None and len(steps) == 1 + len(signal.thresholds()), signal.id
        probes = {0.0}
        for _, thr in signal.thresholds():
            probes |= {thr, math.nextafter(thr, math.inf), math.nextafter(thr, -math.inf), thr * 2 + 1, thr / 2}
        for value in sorted(probes):
            assert colour_at(steps, value) == expected_colour(signal, value), (signal.id, value)


def test_subnet_exhaustion_is_red_below_the_critical_and_orange_below_the_warning(panels):
    """The issue's panel: it showed red below 128 and had no step at 32."""
    steps = panels["Subnet running out of addresses"].field_config.defaults.thresholds.steps
    assert [colour_at(steps, v) for v in (10, 31, 32, 100, 127, 128, 1000)] == \
        ["red", "red", "orange", "orange", "orange", "green", "green"]


def test_a_healthy_zero_of_a_greater_than_zero_signal_stays_green(panels):
    steps = panels["Pods waiting for IP addresses"].field_config.defaults.thresholds.steps
    assert colour_at(steps, 0) == "green" and colour_at(steps, 1) == "orange" and colour_at(steps, 11) == "red"
