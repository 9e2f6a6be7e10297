"""The upgrade gate: doctor's live signals, the preflight log, the connectivity test and the
baseline comparison, in one verdict.

`command.run` calls `read_inputs` first (every file is read and checked before anything is
scraped: a bad file stops the run with nothing written), and `finish` last, which merges the live
result with the other sources, writes the baseline when asked, prints the report and returns the
exit status: the worst finding's (see `findings`). With only `--preflight`/`--connectivity`, no
endpoint is needed and `finish` runs without a live part.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import List, Optional

from ..catalog.evaluate import CRITICAL, NO_DATA, OK, WARNING
from ..errors import UserError
from . import baseline as baselines
from .findings import (ACTION, BLOCK, EXIT_CODES, INFO, LIVE, REGRESSION, UNEVALUATED, GateFinding, exit_code,
                       level_of_exit, ordered, worst_level)
from .junit import read_junit
from .preflight import read_preflight

VERDICT = {INFO: "PASS", ACTION: "ACTION ITEMS", BLOCK: "BLOCKED", UNEVALUATED: "COULD NOT EVALUATE"}


def add_arguments(parser):
    gate = parser.add_argument_group("upgrade gate (any combination, one verdict)")
    gate.add_argument("--preflight", metavar="FILE",
                      help="output of `cilium-dbg preflight validate-cnp` ('-': stdin): invalid policy exit 2, warning 1")
    gate.add_argument("--connectivity", metavar="FILE",
                      help="JUnit file of `cilium connectivity test --junit-file`: a failed test exits 2")
    gate.add_argument("--baseline", metavar="FILE",
                      help="compare this run with a baseline (`--save-baseline` of an earlier run, or the fleet's for a canary)")
    gate.add_argument("--save-baseline", metavar="FILE", help="write what this run measured as a baseline (JSON)")
    disc = parser.add_argument_group("endpoint discovery from the Kubernetes API (in a pod: its service account)")
    disc.add_argument("--discover", action="store_true",
                      help="find the Cilium agent, Hubble and operator endpoints by the chart's pod labels and port names")
    disc.add_argument("--api-server", metavar="URL", help="API server for --discover (default: in-cluster)")
    disc.add_argument("--api-token-file", metavar="FILE", help="bearer token for --discover (default: the pod's service account)")
    disc.add_argument("--api-ca-file", metavar="FILE", help="CA bundle of the API server for --discover (default: the pod's service account)")


@dataclass
class GateInputs:
    findings: List[GateFinding] = field(default_factory=list)  # preflight and connectivity
    baseline: Optional[dict] = None
    baseline_path: str = ""
    save_path: str = ""
    given: bool = False  # any gate flag

    @property
    def active(self) -> bool:
        return self.given


@dataclass
class Live:
    """What the live part of a run gives the gate (built by `command.run`)."""

    findings: list  # catalog.evaluate.Finding
    code: int
    reason: str
    snapshots: list
    table: str  # the live report as text
    json_text: str  # the live report as JSON
    meta: dict
    catalog: object


def read_inputs(args) -> GateInputs:
    inputs = GateInputs()
    if getattr(args, "api_server", None) or getattr(args, "api_token_file", None) or getattr(args, "api_ca_file", None):
        if not getattr(args, "discover", False):
            raise UserError("--api-server/--api-token-file/--api-ca-file go with --discover; add --discover")
    if args.save_baseline and args.baseline and args.save_baseline == args.baseline:
        raise UserError(f"--save-baseline {args.save_baseline}: the same file as --baseline; save to another file")
    if args.preflight:
        inputs.findings += read_preflight(args.preflight).findings
    if args.connectivity:
        inputs.findings += read_junit(args.connectivity)
    if args.baseline:
        inputs.baseline = baselines.load(args.baseline)
        inputs.baseline_path = args.baseline
    inputs.save_path = args.save_baseline or ""
    inputs.given = bool(args.preflight or args.connectivity or args.baseline or args.save_baseline)
    return inputs


def needs_endpoints(args, inputs: GateInputs) -> bool:
    """Whether this run has a live part: endpoints, discovery, a demo, or a baseline to use."""
    has_live = bool(args.agent or args.operator or args.hubble or args.kubernetes or args.demo
                    or getattr(args, "discover", False))
    if (inputs.baseline is not None or inputs.save_path) and not has_live:
        flag = "--baseline" if inputs.baseline is not None else "--save-baseline"
        raise UserError(f"{flag} needs a live run: give endpoints (--agent URL ...), --discover, --kubernetes or --demo")
    return has_live


def discovered(args, timeout):
    """Targets from the Kubernetes API (`--discover`), with notes on what was left out."""
    from .discovery import api_config, discover

    config = api_config(args.api_server, args.api_token_file, args.api_ca_file)
    return discover(config, args.namespace, timeout)


def _live_findings(live: Live) -> List[GateFinding]:
    out = []
    if live.code == EXIT_CODES[UNEVALUATED]:
        out.append(GateFinding(LIVE, UNEVALUATED, "", live.reason or "the live signals could not be evaluated"))
    for f in live.findings:
        if f.status not in (WARNING, CRITICAL):
            continue
        culprit = " ".join(f"{k}={v}" for k, v in f.culprit.items() if k != "cluster") or "cluster-wide"
        threshold = f" {f.signal.comparison} {baselines.fmt(f.threshold, f.signal.unit)}" if f.threshold is not None else ""
        out.append(GateFinding(LIVE, BLOCK if f.status == CRITICAL else ACTION, f.id,
                               f"{f.status} {baselines.fmt(f.value, f.signal.unit)}{threshold} ({culprit})"))
    if live.code != EXIT_CODES[UNEVALUATED] and not out:
        counts = {s: sum(1 for f in live.findings if f.status == s) for s in (OK, NO_DATA)}
        out.append(GateFinding(LIVE, INFO, "", f"{counts[OK]} signals OK, {counts[NO_DATA]} no data"))
    return out


def _baseline_findings(args, inputs: GateInputs, live: Live) -> List[GateFinding]:
    out = []
    if not (inputs.save_path or inputs.baseline is not None):
        return out
    if live.code == EXIT_CODES[UNEVALUATED]:
        what = "baseline not written" if inputs.save_path else "no comparison with the baseline"
        out.append(GateFinding(REGRESSION, UNEVALUATED, "", f"{what}: the live run could not be evaluated"))
        return out
    current = baselines.measure(live.catalog, live.findings, live.snapshots, live.meta)
    if inputs.save_path:
        baselines.save(inputs.save_path, current)
        out.append(GateFinding(REGRESSION, INFO, "", f"baseline written to {inputs.save_path} "
                                                     f"({len(current['signals'])} signals)"))
    if inputs.baseline is not None:
        out += baselines.compare(live.catalog, inputs.baseline, current, f"--baseline {inputs.baseline_path}")
    return out


def render_text(findings: List[GateFinding], code: int) -> str:
    lines = ["Upgrade gate:"]
    rows = [(f.level, f.source, f.subject or "-", f.message) for f in ordered(findings)]
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    level = level_of_exit(code)
    counts = {lv: sum(1 for f in findings if f.level == lv) for lv in (BLOCK, ACTION, UNEVALUATED)}
    lines += ["", f"Verdict: {VERDICT[level]} (exit {code}: {counts[BLOCK]} blocking, {counts[ACTION]} action items, "
                  f"{counts[UNEVALUATED]} could not evaluate)"]
    return "\n".join(lines) + "\n"


def finish(args, inputs: GateInputs, live: Optional[Live], out=None, err=None) -> int:
    """Merge every source, write the baseline if asked, print the report; the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    findings = list(inputs.findings)
    if live is not None:
        findings = _live_findings(live) + findings + _baseline_findings(args, inputs, live)
    code = exit_code(findings)
    if args.format == "json":
        doc = json.loads(live.json_text) if live is not None else {}
        if live is not None:
            doc["signals_exit_code"] = doc.get("exit_code")
        doc["exit_code"] = code
        doc["verdict"] = VERDICT[worst_level(findings)]
        doc["findings"] = [f.as_dict() for f in ordered(findings)]
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        if live is not None:
            out.write(live.table + "\n")
        out.write(render_text(findings, code))
    if code == EXIT_CODES[UNEVALUATED]:
        first = next((f for f in ordered(findings) if f.level == UNEVALUATED), None)
        print(f"cilium-day2 doctor: could not evaluate: {first.message if first else ''}", file=err)
    if live is not None and args.demo:
        if args.format != "json":
            out.write(f"(demo: against live endpoints this result would exit with status {code})\n")
        return 0
    return code
