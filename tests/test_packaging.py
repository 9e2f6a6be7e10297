"""The two wheels install where their users install them.

* `datadog-cilium-day2`, the Agent integration (top-level pyproject.toml), the Agent's way
  (`datadog-agent integration install -w`): pip with `--no-deps` into an environment that has only
  what the Agent embeds (datadog-checks-base[deps]), then the `*.yaml*` files of
  `site-packages/datadog_checks/<name>/data/` copied into `conf.d/<name>.d/`, where `<name>` is
  the wheel's `Name:` less `datadog-`, with `-` as `_`. `pip check` stays clean.
* `cilium-day2`, the tools (cilium_day2/pyproject.toml), with a plain `pip install` on a bare
  Python: the `cilium-day2` command works and nothing of Datadog comes with it.

The install tests build their own virtual environments from the package index (a minute each).
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from datadog_checks.cilium_day2.check import MINIMUM_BASE

ROOT = Path(__file__).resolve().parents[1]
BASE_REQUIREMENT = "datadog-checks-base[deps]==38.5.0"  # what the Agent embeds, pinned as in CI
# The file names `datadog-agent integration install` moves into conf.d.
AGENT_CONF_FILE = re.compile(r"^[\w_]+\.yaml.*$")

pytestmark = pytest.mark.packaging


def _run(cmd, env=None, **kwargs):
    # The new environments see only what is installed in them: no PYTHONPATH from the test run.
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTHONPATH"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, **kwargs)


def _pip(env_dir, *args):
    result = _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", *args])
    assert result.returncode == 0, result.stderr[-2000:]


def _pip_check(env_dir):
    result = _run([str(env_dir / "bin" / "python"), "-m", "pip", "check"])
    assert result.returncode == 0, result.stdout + result.stderr


def _build(project_dir, out):
    # The documented commands (README, docs/datadog.md) are `python3 -m build --wheel [cilium_day2]`;
    # here without build isolation, with the pinned hatchling of requirements-dev.txt.
    result = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(project_dir)])
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    _build(ROOT, out)
    _build(ROOT / "cilium_day2", out)
    (integration,) = out.glob("datadog_cilium_day2-*.whl")
    (tools,) = out.glob("cilium_day2-*.whl")
    return integration, tools


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


def _module_imports(path):
    """Absolute module names one source file imports (relative imports resolved)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]  # a module's package, or for `__init__` the package itself
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def _source_of(module):
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _tools_modules_the_check_needs():
    """Source files of `cilium_day2` the check imports, directly or not, with their packages."""
    todo = sorted((ROOT / "datadog_checks" / "cilium_day2").glob("*.py"))
    seen, needed = set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _module_imports(path):
            if name.split(".")[0] != "cilium_day2":
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                source = _source_of(".".join(parts[:i]))
                if source is not None:
                    needed.add(source)
                    todo.append(source)
    # `from .__about__ import __version__` in the package's __init__ is found the same way.
    return {p.relative_to(ROOT).as_posix() for p in needed}


def test_the_integration_wheel_depends_on_the_base_alone_and_carries_what_the_check_imports(wheels):
    integration, _ = wheels
    metadata = _wheel_metadata(integration)
    # The Agent refuses a wheel that does not require the base package ("not an agent check"), and
    # installs it with --no-deps: the base is the one requirement, at the version the check needs.
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.M)
    assert requires == [f"datadog-checks-base>={MINIMUM_BASE}"]
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["dependencies"] == requires

    with zipfile.ZipFile(integration) as archive:
        names = set(archive.namelist())
    assert not any(n.endswith("entry_points.txt") for n in names), "the integration installs no command"
    shipped = {n for n in names if n.startswith("cilium_day2/")}
    assert shipped == _tools_modules_the_check_needs()
    # What it ships of cilium_day2 needs nothing but the standard library: no jinja2, no yaml.
    for name in shipped:
        for imported in _module_imports(ROOT / name):
            top = imported.split(".")[0]
            assert top in sys.stdlib_module_names or top == "cilium_day2", f"{name} imports {imported}"
    assert {"datadog_checks/cilium_day2/data/conf.yaml.example", "datadog_checks/cilium_day2/data/auto_conf.yaml"} <= names


def test_the_agent_installs_the_integration_wheel_and_runs_the_check(wheels, tmp_path, metrics_server):
    integration, _ = wheels
    metadata = _wheel_metadata(integration)
    (project,) = re.findall(r"^Name: (.+)$", metadata, re.M)
    check_name = project.strip().lower().removeprefix("datadog-").replace("-", "_")
    assert check_name == "cilium_day2"

    env_dir = _new_env(tmp_path / "agent-env")
    _pip(env_dir, BASE_REQUIREMENT)
    _pip(env_dir, "--no-deps", str(integration))
    _pip_check(env_dir)

    data = _site_packages(env_dir) / "datadog_checks" / check_name / "data"
    conf_d = tmp_path / "conf.d" / f"{check_name}.d"
    conf_d.mkdir(parents=True)
    for entry in data.iterdir():
        if AGENT_CONF_FILE.match(entry.name):
            shutil.copy(entry, conf_d / entry.name)
    assert {"conf.yaml.example", "auto_conf.yaml"} <= {p.name for p in conf_d.iterdir()}

    # The check imports and runs with nothing but the Agent's packages and its own wheel.
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
        buckets = [n for n, stubs in aggregator._histogram_buckets.items() if stubs]
        assert "cilium_day2.cli" not in sys.modules and "jinja2" not in sys.modules
        print(len(names), len(buckets), status.status)
        """
    )
    result = _run([str(env_dir / "bin" / "python"), "-c", script], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    count, distributions, status = result.stdout.split()
    assert int(count) > 30 and int(distributions) > 0 and status == "0"  # metrics, distributions, OK


def test_the_tools_wheel_gives_a_working_command_on_a_bare_python(wheels, tmp_path):
    integration, tools = wheels
    env_dir = _new_env(tmp_path / "plain-env")
    _pip(env_dir, str(tools))
    _pip_check(env_dir)
    python = str(env_dir / "bin" / "python")
    result = _run([python, "-m", "pip", "list", "--format=freeze"], cwd=tmp_path)
    installed = {line.split("==")[0].lower() for line in result.stdout.split()}
    assert "cilium-day2" in installed and not {n for n in installed if n.startswith("datadog")}, installed

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

    # The integration wheel next to the tools, without datadog-checks-base: importing the check
    # fails with one line that says what it needs.
    _pip(env_dir, "--no-deps", str(integration))
    result = _run([python, "-c", "import datadog_checks.cilium_day2"], cwd=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:") and "datadog-checks-base[deps]" in last
