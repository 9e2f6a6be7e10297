"""`cilium-day2 render`: the signal catalog -> Datadog, Prometheus and Grafana assets.

    cilium-day2 render [--values overrides.yaml] [--out DIR] [--only datadog|prometheus|grafana]

Writes under DIR (default: the current directory):

    assets/monitors/<signal>.json                   Datadog recommended monitors, one per signal
    assets/dashboards/cilium_day2_overview.json     Datadog dashboard
    assets/prometheus/cilium-day2.rules.yml         plain Prometheus rule file
    assets/prometheus/cilium-day2.prometheusrule.yaml   prometheus-operator PrometheusRule
    assets/alertmanager/alertmanager.yml            Alertmanager configuration (routes, inhibition)
    assets/grafana/cilium-day2.json                 Grafana dashboard (and its sidecar ConfigMap)
    mixin/                                          jsonnet monitoring mixin (`_config`, alerts, dashboard)
    docs/signals.md                                 the signal reference (runbook anchors)
    README.md                                       the signals table, if DIR has one with markers

Each target's files come from its module in this package; this module only chooses
the targets and writes. Everything is rendered into a temporary folder first and moved into
place only when all of it rendered, so a bad values file writes nothing.
"""

from __future__ import annotations

import os
import sys
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from ..catalog import Catalog, load_catalog
from ..errors import UserError
from . import datadog, docs, grafana, limits, mixin, prometheus

BACKENDS = ("datadog", "prometheus", "grafana")
MONITOR_DIR = datadog.MONITOR_DIR


def _renderers(only: Optional[str]):
    """The modules to render: one target, or every target and the docs. Looked up at call
    time so that each module's `render` is the current one."""
    targets = {"datadog": datadog, "prometheus": prometheus, "grafana": grafana}
    if only is not None:
        return [targets[only]]
    return list(targets.values()) + [docs, mixin]


# --- writing ----------------------------------------------------------------------------------------


def render_files(catalog: Catalog, only: Optional[str] = None) -> Dict[str, str]:
    """{relative path: content} for everything `render` writes (without the README)."""
    files = {}
    for module in _renderers(only):
        files.update(module.render(catalog))
    return files


def check_targets(out: Path, rels) -> None:
    """Refuse, before anything is written, a tree where a file sits where a folder must go (or
    a folder where a file must go): all or nothing, naming the path."""
    for rel in sorted(rels):
        path = out / rel
        for parent in reversed(path.relative_to(out).parents):
            folder = out / parent
            if folder.exists() and not folder.is_dir():
                raise UserError(f"--out {out}: {folder} is a file where a folder must go; move it away (nothing was written)")
        if path.is_dir() and not rel.startswith(MONITOR_DIR + "/"):
            raise UserError(f"--out {out}: {path} is a folder where a file must go; move it away (nothing was written)")


def write(files: Dict[str, str], out: Path, catalog: Catalog, only: Optional[str] = None) -> List[Path]:
    """Write atomically: stage everything in a temp folder under `out`, then move into place."""
    check_targets(out, files)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".cilium-day2-render-", dir=out))
    ok = False
    try:
        for rel, content in files.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        readme = out / "README.md"
        new_readme = None
        if only is None and readme.exists():
            current = readme.read_text()
            updated = docs.update_readme(current, catalog)
            if updated != current:
                new_readme = updated
                (stage / "README.md").write_text(updated)
        # Everything rendered: move into place. The monitors folder is replaced as a whole so
        # that disabling a signal removes its monitor. Each path replaced is first kept in the
        # stage; if any move fails, every path is put back as it was (all or nothing).
        moves = []
        if any(rel.startswith(MONITOR_DIR + "/") for rel in files):
            moves.append(MONITOR_DIR)
        moves += [rel for rel in files if not rel.startswith(MONITOR_DIR + "/")]
        if new_readme is not None:
            moves.append("README.md")
        _move_all(stage, out, moves)
        written = [out / rel for rel in moves]
        ok = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not ok:
            shutil.rmtree(out, ignore_errors=True)  # a failed render leaves no folder behind
    return written


def _move_all(stage: Path, out: Path, moves: List[str]) -> None:
    """Move `stage/rel` to `out/rel` for every rel, or leave `out` as it was."""
    backup = stage / ".previous"
    done = []  # (rel, had a previous version)
    try:
        for rel in moves:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            had = target.exists()
            if had:
                (backup / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, backup / rel)
            done.append((rel, had))
            os.replace(stage / rel, target)
    except BaseException:
        for rel, had in reversed(done):
            target = out / rel
            try:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
                if had:
                    os.replace(backup / rel, target)
            except OSError:
                pass  # best effort: the stage keeps the previous version otherwise
        raise


# --- CLI ----------------------------------------------------------------------------------------------


def add_arguments(parser):
    parser.add_argument("--values", metavar="FILE", help="overrides: thresholds, windows, label/tag names, enabled signals")
    parser.add_argument("--out", metavar="DIR", default=".", help="output root; assets/ and docs/ are written under it (default: .)")
    parser.add_argument("--only", choices=BACKENDS, help="render only one backend's assets")
    parser.add_argument("--strict", action="store_true",
                        help="refuse (write nothing) when a rules file exceeds the ruler limits in settings")


def run(args) -> int:
    catalog = load_catalog(args.values) if args.values else load_catalog()
    files = render_files(catalog, args.only)
    over = limits.problems(files, catalog.settings)
    if over and getattr(args, "strict", False):
        raise UserError(f"--strict: {over[0]} (nothing was written)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a directory")
    try:
        written = write(files, out, catalog, args.only)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write: {exc.strerror or exc}")
    _, skipped = datadog.datadog_monitors(catalog)
    print(f"cilium-day2 render: {len(catalog.enabled())} signals enabled, wrote {len(written)} paths under {out}")
    if args.only in (None, "prometheus"):
        groups = prometheus.prometheus_groups(catalog)
        print(f"  Prometheus: {len(groups)} rule groups, the largest with {max(len(g['rules']) for g in groups)} rules "
              f"(settings.max_rules_per_group: {catalog.settings.max_rules_per_group})")
    for line in over:
        print(f"cilium-day2 render: warning: {line}", file=sys.stderr)
    if args.only in (None, "datadog"):
        for sid, reason in skipped.items():
            print(f"  no Datadog monitor for {sid}: {reason}")
    return 0
