"""`doctor --preflight FILE`: the log of `cilium-dbg preflight validate-cnp`, judged.

Before an upgrade, `cilium-dbg preflight validate-cnp` (`cilium preflight validate-cnp` before
Cilium 1.15; also the `cnp-validator` container of the chart's `cilium-pre-flight-check`
Deployment) validates every CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy against the
target version's schema. What it prints, in Cilium's own words (`preflight_k8s_valid_cnp.go` and
the validator package):

* per policy, `Validation OK!` or `Unexpected validation error` with the policy's name and an
  `error` field (the reason), then `Found invalid CiliumNetworkPolicy` (or ...Clusterwide...);
* warnings from the validator (`level=warning`), e.g. a top-level `description` or unknown
  fields that "have no effect" and "may have introduced a false sense security";
* `All CCNPs and CNPs valid!` when nothing was invalid, even after warnings.

Warnings from the API server reach the log too (client-go's warning handler, as a klog line or
relayed by Cilium's logger with `subsys=klog`). Three log encodings occur between Cilium 1.14 and
1.18: logrus text (`level=info msg="..."
CiliumNetworkPolicy=ns/name`), slog text (`level=INFO msg="..." type=CiliumNetworkPolicy
name=ns/name`) and JSON (one object per line, either field set). `kubectl logs --timestamps`
prefixes are skipped.

The verdict: an invalid policy blocks (exit 2); any warning, including a run that still ends
"all valid", is an action item (exit 1); a finished clean run is OK (0). An empty or unrecognised
log, or one without the final summary (cut off, or the validator could not reach the API
server), could not be evaluated (3): it never passes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import UserError
from ..userfiles import read_text
from .findings import ACTION, BLOCK, INFO, PREFLIGHT, UNEVALUATED, GateFinding, one_line

MAX_PREFLIGHT_BYTES = 64 * 1024 * 1024  # a log line per policy: millions of policies
ALL_VALID = "All CCNPs and CNPs valid!"
VALIDATION_OK = "Validation OK!"
UNEXPECTED = "Unexpected validation error"
FOUND_INVALID = "Found invalid"
# Fields naming the policy: slog (`type`, `name`), logrus (the kind as the key), the validator.
KIND_KEYS = ("CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")
NAME_KEYS = ("ciliumNetworkPolicyName", "ciliumClusterwideNetworkPolicyName")
ERROR_LEVELS = {"error", "err", "fatal", "panic", "critical"}
WARNING_LEVELS = {"warning", "warn"}
_VALID_BUT = re.compile(r"\bvalid\b.*\bbut\b", re.IGNORECASE)
# klog's header (client-go warnings printed on stderr): `W1204 09:12:03.482911   1 warnings.go:70] text`.
_KLOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] (.*)$")
_KLOG_LEVELS = {"I": "info", "W": "warning", "E": "error", "F": "fatal"}


@dataclass
class Entry:
    level: str
    msg: str
    fields: Dict[str, str]


def parse_logfmt(line: str) -> Dict[str, str]:
    """key=value pairs of a logfmt line (quoted values with backslash escapes); words without
    `=` (a timestamp prefix) are skipped."""
    out, i, n = {}, 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        start = i
        while i < n and line[i] not in " =":
            i += 1
        key = line[start:i]
        if i >= n or line[i] != "=":
            continue  # a bare word
        i += 1
        if i < n and line[i] == '"':
            i += 1
            chars = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                    chars.append({"n": "\n", "t": "\t"}.get(line[i], line[i]))
                else:
                    chars.append(line[i])
                i += 1
            i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and line[i] != " ":
                i += 1
            value = line[start:i]
        if key:
            out[key] = value
    return out


def parse_line(line: str) -> Optional[Entry]:
    """One log line as (level, msg, fields), or None when it is not a log record."""
    line = line.strip()
    if not line:
        return None
    brace = line.find("{")
    if brace >= 0 and line.endswith("}"):
        try:
            data = json.loads(line[brace:])
        except ValueError:
            data = None
        if isinstance(data, dict) and "msg" in data and "level" in data:
            fields = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
            return Entry(str(data["level"]).lower(), str(data["msg"]), fields)
    klog = _KLOG.match(line)
    if klog:
        return Entry(_KLOG_LEVELS[klog.group(1)], klog.group(2).strip(), {})
    fields = parse_logfmt(line)
    if "level" in fields and "msg" in fields:
        return Entry(fields["level"].lower(), fields["msg"], fields)
    return None


def policy_of(entry: Entry) -> Tuple[str, str]:
    """(kind, name) of the policy a record is about; ("", "") for none."""
    f = entry.fields
    if f.get("name") and f.get("type") in KIND_KEYS:
        return f["type"], f["name"]
    for key in KIND_KEYS:
        if f.get(key):
            return key, f[key]
    for key, kind in zip(NAME_KEYS, KIND_KEYS):
        if f.get(key):
            return kind, f[key]
    return "", ""


@dataclass
class PreflightResult:
    findings: List[GateFinding] = field(default_factory=list)
    valid: int = 0  # policies that passed
    records: int = 0  # log records recognised


def _subject(kind, name):
    return f"{kind} {name}" if kind else name


def _fold_short_names(invalid, warnings):
    """The validator names a policy without its namespace (`ciliumNetworkPolicyName=x`), the
    command with it (`ns/x`): fold the short form, and warnings about an invalid policy, into the
    namespaced entry so that each policy is reported once."""
    def full(kind, name):
        if "/" in name:
            return (kind, name)
        matches = [k for k in invalid if "/" in k[1] and k[1].split("/", 1)[1] == name and (not kind or k[0] == kind)]
        return matches[0] if len(matches) == 1 else (kind, name)

    for key in [k for k in invalid if "/" not in k[1]]:
        target = full(*key)
        if target != key:
            invalid[target] = invalid[target] + invalid.pop(key)
    for wkey in list(warnings):
        kind, name, msg = wkey
        target = full(kind, name) if name else None
        if target in invalid:
            invalid[target].append(f"warning: {msg}")
            del warnings[wkey]


def judge(text: str, where: str = "--preflight") -> PreflightResult:
    """The findings of one validate-cnp log."""
    result = PreflightResult()
    invalid: Dict[Tuple[str, str], List[str]] = {}
    warnings: Dict[Tuple[str, str, str], None] = {}
    failures: List[str] = []  # errors not about a policy: the run itself failed
    found_invalid: List[str] = []
    summary = False
    for line in text.splitlines():
        entry = parse_line(line)
        if entry is None:
            continue
        result.records += 1
        kind, name = policy_of(entry)
        msg = entry.msg
        if msg == ALL_VALID:
            summary = True
        elif msg == VALIDATION_OK:
            result.valid += 1
        elif msg.startswith(FOUND_INVALID):
            found_invalid.append(msg)
        elif entry.level in ERROR_LEVELS:
            if name:
                reason = entry.fields.get("error") or entry.fields.get("err") or ""
                text_ = reason if msg == UNEXPECTED and reason else (f"{msg}: {reason}" if reason else msg)
                invalid.setdefault((kind, name), []).append(one_line(text_, 200))
            else:
                reason = entry.fields.get("error") or entry.fields.get("err") or ""
                failures.append(one_line(f"{msg}: {reason}" if reason else msg, 200))
        elif entry.level in WARNING_LEVELS or _VALID_BUT.search(msg):
            warnings[(kind, name, one_line(msg, 200))] = None
    _fold_short_names(invalid, warnings)
    for (kind, name), reasons in invalid.items():
        result.findings.append(GateFinding(PREFLIGHT, BLOCK, _subject(kind, name),
                                           "invalid: " + "; ".join(dict.fromkeys(reasons))))
    if found_invalid and not invalid:
        for msg in dict.fromkeys(found_invalid):
            result.findings.append(GateFinding(PREFLIGHT, BLOCK, "", f"{msg} (the log names no policy)"))
    for kind, name, msg in warnings:
        result.findings.append(GateFinding(PREFLIGHT, ACTION, _subject(kind, name), f"warning: {msg}"))
    if invalid or found_invalid:
        return result
    if not result.records:
        what = "empty" if not text.strip() else "not a validate-cnp log (no `level=... msg=...` or JSON log records)"
        result.findings.append(GateFinding(PREFLIGHT, UNEVALUATED, "", f"{where}: {what}; pass the output "
                                           f"of `cilium-dbg preflight validate-cnp`"))
    elif failures and not summary:
        result.findings.append(GateFinding(PREFLIGHT, UNEVALUATED, "", "validate-cnp did not finish: " + failures[0]))
    elif failures:
        for msg in dict.fromkeys(failures):
            result.findings.append(GateFinding(PREFLIGHT, ACTION, "", f"error during the run: {msg}"))
    elif not summary:
        result.findings.append(GateFinding(PREFLIGHT, UNEVALUATED, "", (
            f"no `{ALL_VALID}` summary after {result.valid} validated policies: the log is cut off or "
            f"the validator did not finish; pass its whole output")))
    if summary and not warnings and not failures:
        result.findings.append(GateFinding(PREFLIGHT, INFO, "", f"{ALL_VALID} ({result.valid} policies validated)"))
    return result


def read_preflight(path: str) -> PreflightResult:
    """Read and judge `--preflight FILE` ('-': stdin); a UserError for an unreadable file."""
    try:
        text = read_text(path, f"--preflight {path}", MAX_PREFLIGHT_BYTES)
    except UserError as exc:
        if "not a UTF-8 text file" not in str(exc):
            raise  # missing, unreadable, too large: a usage error
        result = PreflightResult()
        result.findings.append(GateFinding(PREFLIGHT, UNEVALUATED, "", f"--preflight {path}: binary content, not a "
                                           f"validate-cnp log; pass the output of `cilium-dbg preflight validate-cnp`"))
        return result
    return judge(text, f"--preflight {path}")
