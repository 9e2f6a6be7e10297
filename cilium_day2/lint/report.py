"""Render lint results: an aligned table for people, JSON for scripts, SARIF 2.1.0 for code review."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePath
from typing import Dict, List, Sequence

from ..__about__ import __version__
from .rules import Finding, Rule, catalog

JSON_SCHEMA_ID = "cilium-day2/lint-config/v1"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
TOOL_NAME = "cilium-day2 lint-config"


@dataclass
class LintedFile:
    path: str
    format: str  # helm | configmap | text
    format_label: str
    cluster: str


@dataclass
class Result:
    files: List[LintedFile]
    findings: List[Finding]
    suppressed: int
    exit_code: int

    def counts(self) -> Dict[str, int]:
        counter = Counter(f.severity for f in self.findings)
        return {s: counter.get(s, 0) for s in ("error", "warning", "info")}


def render(result: Result, fmt: str) -> str:
    if fmt == "json":
        return render_json(result)
    if fmt == "sarif":
        return render_sarif(result)
    return render_table(result)


# ---- table ---------------------------------------------------------------------------------

COLUMNS = ("SEVERITY", "RULE", "CLUSTER", "SETTING", "VALUE", "WHERE", "FINDING")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(result: Result) -> str:
    out: List[str] = []
    files = ", ".join(f"{f.path} ({f.format_label}, cluster {f.cluster})" for f in result.files)
    out.append(f"Linted {len(result.files)} file(s): {files}")
    if not result.findings:
        out.append("No findings.")
    else:
        rows = []
        for f in result.findings:
            where = f"{f.file}:{f.line}" if f.line else f"{f.file} (not set)"
            rows.append((f.severity, f"{f.rule.id} {f.rule.name}", _clip(f.cluster, 30), _clip(f.setting, 40),
                         _clip(f.value, 40), where, f.message))
        widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS) - 1)]
        out.append("")
        out.append("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)) + "  " + COLUMNS[-1])
        for row in rows:
            out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
        out.append("")
        out.append("How to fix:")
        seen = set()
        for f in result.findings:
            if f.rule.id in seen:
                continue
            seen.add(f.rule.id)
            out.append(f"  {f.rule.id} {f.rule.name}: {f.rule.recommendation}")
            out.append(f"      Helm:      {f.rule.helm}")
            out.append(f"      ConfigMap: {f.rule.configmap}")
            out.append(f"      Why: {f.rule.why}")
    counts = result.counts()
    summary = f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"
    if result.suppressed:
        summary += f"; {result.suppressed} suppressed by overrides or inline comments"
    out.append("")
    out.append(summary + f"; exit status {result.exit_code}")
    return "\n".join(out) + "\n"


# ---- JSON ----------------------------------------------------------------------------------

def finding_dict(f: Finding) -> dict:
    return {
        "id": f.rule.id,
        "name": f.rule.name,
        "severity": f.severity,
        "cluster": f.cluster,
        "file": f.file,
        "line": f.line,
        "setting": f.setting,
        "key": f.key,
        "value": f.value,
        "message": f.message,
        "recommendation": f.rule.recommendation,
        "why": f.rule.why,
        "fix": {"helm": f.rule.helm, "configmap": f.rule.configmap},
        "helm_key": f.helm_key,
        "configmap_key": f.configmap_key,
        "article": f.rule.article,
        "related": [{"file": path, "line": line, "cluster": cluster} for path, line, cluster in f.related],
    }


def render_json(result: Result) -> str:
    document = {
        "schema": JSON_SCHEMA_ID,
        "tool": {"name": TOOL_NAME, "version": __version__},
        "files": [{"path": f.path, "format": f.format, "format_label": f.format_label, "cluster": f.cluster}
                  for f in result.files],
        "summary": {**result.counts(), "suppressed": result.suppressed},
        "exit_code": result.exit_code,
        "findings": [finding_dict(f) for f in result.findings],
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


# ---- SARIF ---------------------------------------------------------------------------------

def _uri(path: str) -> str:
    return "stdin" if path == "-" else PurePath(path).as_posix()


def _location(path: str, line: int, message: str = "") -> dict:
    location = {"physicalLocation": {"artifactLocation": {"uri": _uri(path)},
                                     "region": {"startLine": max(1, int(line))}}}
    if message:
        location["message"] = {"text": message}
    return location


def sarif_rule(rule: Rule) -> dict:
    help_text = (f"{rule.recommendation}\n\nWhy: {rule.why}\n\nHelm: {rule.helm}\nConfigMap: {rule.configmap}\n\n"
                 f"Article section: {rule.article}")
    help_markdown = (f"{rule.recommendation}\n\n**Why:** {rule.why}\n\n**Helm:** {rule.helm}  \n"
                     f"**ConfigMap:** {rule.configmap}\n\n*Article section:* {rule.article}")
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.recommendation},
        "help": {"text": help_text, "markdown": help_markdown},
        "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
        "properties": {"tags": ["cilium", rule.area]},
    }


def render_sarif(result: Result) -> str:
    rules = list(catalog())
    index = {rule.id: i for i, rule in enumerate(rules)}
    results = []
    for f in result.findings:
        entry = {
            "ruleId": f.rule.id,
            "ruleIndex": index[f.rule.id],
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.message}. Fix: Helm {f.rule.helm}; ConfigMap {f.rule.configmap}"},
            "locations": [_location(f.file, f.anchor_line)],
            "properties": {"cluster": f.cluster, "setting": f.setting, "value": f.value, "severity": f.severity,
                           "keyPresent": f.line is not None},
        }
        if f.related:
            entry["relatedLocations"] = [
                dict(_location(path, line or 1, f"cluster {cluster}"), id=i)
                for i, (path, line, cluster) in enumerate(f.related)]
        results.append(entry)
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": TOOL_NAME,
                "version": __version__,
                "rules": [sarif_rule(rule) for rule in rules],
            }},
            "artifacts": [{"location": {"uri": _uri(f.path)}} for f in result.files],
            "results": results,
        }],
    }
    return json.dumps(document, indent=2) + "\n"


def rule_table(rules: Sequence[Rule]) -> str:
    """Plain listing for `--list-rules`."""
    width = max(len(f"{r.id} {r.name}") for r in rules)
    lines = [f"{'RULE'.ljust(width)}  {'SEVERITY'.ljust(8)}  TITLE"]
    for r in rules:
        lines.append(f"{(r.id + ' ' + r.name).ljust(width)}  {r.severity.ljust(8)}  {r.title}")
    return "\n".join(lines) + "\n"
