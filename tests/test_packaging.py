"""The wheel installs where users install it.

* The Agent's way (`datadog-agent integration install -w`): pip with `--no-deps` into an
  environment that has only what the Agent embeds (datadog-checks-base[deps]), then the `*.yaml*`
  files of `site-packages/datadog_checks/<name>/data/` copied into `conf.d/<name>.d/`, where
  `<name>` is the wheel's `Name:` less `datadog-`, with `-` as `_`.
* A plain `pip install` of the wheel: the command-line tools work, and the check says in one
  line what it needs.

Each test builds its own virtual environment from the package index, so they take a minute.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
BASE_REQUIREMENT = "datadog-checks-base[deps]==38.5.0"  # what the Agent embeds, pinned as in CI
# The file names `datadog-agent integration install` moves into conf.d.
AGENT_CONF_FILE = re.compile(r"^[\w_]+\.yaml.*$")

pytestmark = pytest.mark.packaging


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    return result


def _pip(env_dir, *args):
    result = _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", *args])
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    result = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)])
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = out.glob("datadog_cilium_day2-*.whl")
    return path


def _new_env(path):
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path


def _site_packages(env_dir):
    out = _run([str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    return Path(out.stdout.strip())


def _wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name).decode()


def test_the_agent_installs_the_wheel_and_runs_the_check(wheel, tmp_path, metrics_server):
    metadata = _wheel_metadata(wheel)
    # The Agent refuses a wheel that does not require the base package ("not an agent check").
    assert re.search(r"^Requires-Dist: datadog-checks-base", metadata, re.M)
    (project,) = re.findall(r"^Name: (.+)$", metadata, re.M)
    check_name = project.strip().lower().removeprefix("datadog-").replace("-", "_")
    assert check_name == "cilium_day2"

    env_dir = _new_env(tmp_path / "agent-env")
    _pip(env_dir, BASE_REQUIREMENT)
    _pip(env_dir, "--no-deps", str(wheel))

    data = _site_packages(env_dir) / "datadog_checks" / check_name / "data"
    conf_d = tmp_path / "conf.d" / f"{check_name}.d"
    conf_d.mkdir(parents=True)
    for entry in data.iterdir():
        if AGENT_CONF_FILE.match(entry.name):
            shutil.copy(entry, conf_d / entry.name)
    assert {"conf.yaml.example", "auto_conf.yaml"} <= {p.name for p in conf_d.iterdir()}

    # The check imports and runs with nothing but the Agent's packages: no jinja2 in there.
    url = metrics_server.serve_fixture("/metrics", "agent_v1_18.txt")
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        assert importlib.util.find_spec("jinja2") is None, "the Agent's environment has no jinja2"
        from datadog_checks.base.stubs import aggregator
        from datadog_checks.cilium_day2 import CiliumDay2Check
        check = CiliumDay2Check("cilium_day2", {{}}, [{{"agent_endpoint": "{url}"}}])
        check.run()
        names = aggregator.metric_names
        (status,) = aggregator.service_checks("cilium_day2.agent.openmetrics.health")
        print(len(names), status.status)
        """
    )
    result = _run([str(env_dir / "bin" / "python"), "-c", script], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    count, status = result.stdout.split()
    assert int(count) > 30 and status == "0"  # metrics submitted, service check OK


def test_a_plain_pip_install_gives_working_tools(wheel, tmp_path):
    env_dir = _new_env(tmp_path / "plain-env")
    _pip(env_dir, str(wheel))
    tool = str(env_dir / "bin" / "cilium-day2")
    run_env = {**os.environ, "PATH": f"{env_dir / 'bin'}:{os.environ['PATH']}"}

    out = tmp_path / "pack"
    result = _run([tool, "render", "--out", str(out)], env=run_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert list((out / "assets" / "prometheus").glob("*.y*ml"))
    assert list((out / "assets" / "monitors").glob("*.json"))

    values = ROOT / "tests" / "lint_fixtures" / "eks-well-tuned-values.yaml"
    result = _run([tool, "lint-config", str(values)], env=run_env, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # 1: warnings only
    assert "Traceback" not in result.stderr

    result = _run([tool, "doctor", "--demo", "healthy"], env=run_env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    # Without datadog-checks-base's dependencies the check says, in one line, what it needs.
    result = _run([str(env_dir / "bin" / "python"), "-c", "import datadog_checks.cilium_day2"], cwd=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:") and "datadog-checks-base[deps]" in last
