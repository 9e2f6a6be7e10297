"""docs/prometheus-stacks.md: its values files render, and its promtool/amtool commands pass
on what they render (kubectl, helm, mimirtool and Grafana are not installed here)."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from cilium_day2.cli import main

from .alertmanager_server import AMTOOL, require_amtool
from .prometheus_server import PROMTOOL, require_promtool

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "prometheus-stacks.md"
BLOCK_RE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(lang):
    return [body for kind, body in BLOCK_RE.findall(DOC.read_text()) if kind == lang]


def values_files():
    return [yaml.safe_load(b) for b in blocks("yaml") if b.startswith("# values.yaml")]


def commands(tool):
    return [shlex.split(line) for b in blocks("bash") for line in b.splitlines() if line.startswith(tool + " ")]


@pytest.mark.parametrize("index", range(len(values_files())))
def test_each_values_file_renders_and_carries_its_settings(tmp_path, index):
    values = values_files()[index]
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    assert main(["render", "--values", str(tmp_path / "values.yaml"), "--only", "prometheus",
                 "--out", str(tmp_path / "out")]) == 0
    crd = yaml.safe_load((tmp_path / "out/assets/prometheus/cilium-day2.prometheusrule.yaml").read_text())
    settings = values["settings"]
    for key, value in (settings.get("rule_labels") or {}).items():
        assert crd["metadata"]["labels"][key] == value
    if "rule_namespace" in settings:
        assert crd["metadata"]["namespace"] == settings["rule_namespace"]
    alerts = [r for g in crd["spec"]["groups"] for r in g["rules"] if "alert" in r]
    for key, value in (settings.get("alert_labels") or {}).items():
        assert all(r["labels"][key] == value for r in alerts)


@pytest.mark.prometheus
def test_promtool_and_amtool_commands_pass_on_a_fresh_render(tmp_path):
    require_promtool()
    require_amtool()
    assert main(["render", "--out", str(tmp_path)]) == 0
    ran = 0
    for tool, binary in (("promtool", PROMTOOL), ("amtool", AMTOOL)):
        for argv in commands(tool):
            result = subprocess.run([binary, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, (argv, result.stdout + result.stderr)
            if argv[1:3] == ["config", "routes"]:
                assert result.stdout.strip() == "cilium-day2-critical"
            ran += 1
    assert ran >= 3


def test_the_documented_render_summary_matches_the_default_render(capsys, tmp_path):
    assert main(["render", "--only", "prometheus", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    documented = [b for b in blocks("text") if "rule groups" in b][0].strip()
    assert documented in printed
