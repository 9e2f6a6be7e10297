"""`cilium-day2 lint-config`: check Cilium configuration against the Day-2 guidance.

Reads Cilium Helm values, the cilium-config ConfigMap, or `cilium config view` /
`cilium-dbg config` output; several files at once are also compared as a fleet. Exit status:
0 no errors, 1 errors (or warnings with --strict), 2 usage or input error.
The rules live in cilium_day2/data/lint_rules.yaml; the machinery in cilium_day2/lint/.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence

from ..errors import UserError
from .formats import load_source
from .model import build_config
from .overrides import OPTION_RANGES, Overrides, load_overrides
from .report import LintedFile, Result, render, rule_table
from .rules import ClusterInput, Finding, catalog, evaluate_cluster, evaluate_fleet, resolve, valid_rule_tokens


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="Helm values, cilium-config ConfigMap YAML, or `cilium config view` / "
                             "`cilium-dbg config --all` output; one file per cluster ('-' reads stdin)")
    parser.add_argument("--format", choices=("table", "json", "sarif"), default="table",
                        help="output format (default: table)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings as well as errors")
    parser.add_argument("--values", metavar="FILE",
                        help="overrides file shared with `render`; its `lint:` key disables rules or changes "
                             "severities, globally or per cluster")
    parser.add_argument("--network-mtu", type=int, metavar="BYTES",
                        help="MTU of the underlying network (e.g. 9001 in an AWS VPC), to check a pinned MTU")
    parser.add_argument("--max-pods-per-node", type=int, metavar="N",
                        help="pod density, to judge prefix delegation and Hubble buffer sizes")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument("--list-rules", action="store_true", help="list the rules and exit")


def run(args) -> int:
    if args.list_rules:
        _emit(rule_table(catalog()), args.output)
        return 0
    if not args.files:
        raise UserError("no input files; pass Helm values, a cilium-config ConfigMap or a config dump "
                        "(e.g. `cilium-day2 lint-config values.yaml`)")
    for option, flag in (("network_mtu", "--network-mtu"), ("max_pods_per_node", "--max-pods-per-node")):
        value = getattr(args, option)
        low, high = OPTION_RANGES[option]
        if value is not None and not low <= value <= high:
            raise UserError(f"{flag} {value}: expected an integer from {low} to {high}")
    duplicates = sorted({p for p in args.files if args.files.count(p) > 1})
    if duplicates:
        raise UserError(f"{duplicates[0]} is given more than once; pass each cluster's file once")

    overrides = load_overrides(args.values)
    try:
        result = lint(args.files, overrides, network_mtu=args.network_mtu,
                      max_pods_per_node=args.max_pods_per_node, strict=args.strict)
    except UserError:
        raise
    except Exception as exc:  # never show a traceback for an input we failed to anticipate
        raise UserError(f"internal error while linting {', '.join(args.files)} ({type(exc).__name__}: {exc}); "
                        f"please report it with the input") from exc
    _emit(render(result, args.format), args.output)
    return result.exit_code


def _emit(text: str, output: Optional[str]) -> None:
    if not output:
        sys.stdout.write(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise UserError(f"--output {output}: cannot write ({exc.strerror or exc}); choose a writable path") from None


def lint(paths: Sequence[str], overrides: Optional[Overrides] = None, network_mtu: Optional[int] = None,
         max_pods_per_node: Optional[int] = None, strict: bool = False) -> Result:
    """Lint files and return the findings after overrides and inline suppressions."""
    overrides = overrides or Overrides()
    clusters: List[ClusterInput] = []
    suppressed_ids = {}
    for path in paths:
        source = load_source(path)
        config, invalid = build_config(source.raw)
        invalid = source.invalid + invalid
        name = config.cluster_name if config.explicit("cluster_name") and config.cluster_name not in ("", "default") \
            else source.stem
        aliases = _aliases(name, source.stem, path)
        cluster = ClusterInput(
            source, config, invalid, name,
            network_mtu=overrides.option("network_mtu", aliases, network_mtu),
            max_pods_per_node=overrides.option("max_pods_per_node", aliases, max_pods_per_node),
        )
        clusters.append(cluster)
        suppressed_ids[id(cluster)] = _inline_suppressions(source.suppressions, path)

    raw: List[Finding] = []
    for cluster in clusters:
        raw.extend(evaluate_cluster(cluster))
    raw.extend(evaluate_fleet(clusters))

    by_path = {c.source.path: c for c in clusters}
    kept: List[Finding] = []
    suppressed = 0
    for finding in raw:
        members = [by_path[path] for path, _, _ in finding.related] if finding.related else [by_path[finding.file]]
        active = []
        for member in members:
            enabled, _ = overrides.decide(finding.rule.id, _aliases(member.name, member.source.stem, member.source.path))
            if enabled and finding.rule.id not in suppressed_ids[id(member)]:
                active.append(member)
        if not active:
            suppressed += 1
            continue
        if finding.related:
            _, severity = overrides.decide(finding.rule.id, ())  # fleet findings: global severity only
        else:
            _, severity = overrides.decide(finding.rule.id, _aliases(active[0].name, active[0].source.stem,
                                                                     active[0].source.path))
        if severity:
            finding.severity = severity
        kept.append(finding)

    kept.sort(key=Finding.sort_key)
    errors = any(f.severity == "error" for f in kept)
    warnings = any(f.severity == "warning" for f in kept)
    exit_code = 1 if errors or (strict and warnings) else 0
    files = [LintedFile(c.source.path, c.source.format, c.source.format_label, c.name) for c in clusters]
    return Result(files=files, findings=kept, suppressed=suppressed, exit_code=exit_code)


def _aliases(name: str, stem: str, path: str) -> List[str]:
    return [name, stem, path]


def _inline_suppressions(tokens, path: str) -> set:
    ids = set()
    for token, line in tokens.items():
        rule = resolve(token)
        if rule is None:
            raise UserError(f"{path}:{line}: unknown rule {token!r} in a `cilium-day2: disable=` comment; "
                            f"valid rules: {valid_rule_tokens()}")
        ids.add(rule.id)
    return ids
