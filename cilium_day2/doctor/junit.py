"""`doctor --connectivity FILE`: the JUnit file of `cilium connectivity test --junit-file`, judged.

cilium-cli's JUnit collector (`connectivity/check/junit.go`) writes one `<testsuites>` holding one
`<testsuite name="connectivity test" package="cilium">`, whose `<testcase>`s are the tests of the
run (`no-policies`, `allow-all-except-world`, `client-egress`, ...), each with `status` passed,
skipped or failed. A failed test carries `<failure message="<test> failed" type="failure">` whose
text lists the failed actions, one per line. The writer has `<error>` too, which this reader
treats as a failure; other JUnit writers' shapes (a lone `<testsuite>` root) are read the same way.

The verdict: a failed or errored test blocks (exit 2), naming the test and its failure; skipped
tests are listed; all passed is OK. A file with no test case, or that is not JUnit XML, could not
be evaluated (3).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import List

from ..errors import UserError
from ..userfiles import read_text
from .findings import BLOCK, CONNECTIVITY, INFO, UNEVALUATED, GateFinding, one_line

MAX_JUNIT_BYTES = 32 * 1024 * 1024
MAX_ACTIONS_SHOWN = 3


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node, name):
    return [c for c in node if _local(c.tag) == name]


def _failure_text(case_name, node) -> str:
    message = (node.get("message") or "").strip() or f"{case_name} {_local(node.tag)}"
    actions = [line.strip() for line in (node.text or "").splitlines() if line.strip()]
    if actions:
        shown = "; ".join(one_line(a, 160) for a in actions[:MAX_ACTIONS_SHOWN])
        more = len(actions) - MAX_ACTIONS_SHOWN
        message += f": {shown}" + (f" (+{more} more failed actions)" if more > 0 else "")
    return message


def judge(text: str, where: str = "--connectivity") -> List[GateFinding]:
    hint = "pass the file `cilium connectivity test --junit-file FILE` wrote"
    if not text.strip():
        return [GateFinding(CONNECTIVITY, UNEVALUATED, "", f"{where}: empty; {hint}")]
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return [GateFinding(CONNECTIVITY, UNEVALUATED, "", f"{where}: has a DOCTYPE/entities, which JUnit files "
                            f"never have; {hint}")]
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        return [GateFinding(CONNECTIVITY, UNEVALUATED, "", f"{where}: not XML ({exc}); {hint}")]
    if _local(root.tag) == "testsuite":
        suites = [root]
    elif _local(root.tag) == "testsuites":
        suites = _children(root, "testsuite")
    else:
        return [GateFinding(CONNECTIVITY, UNEVALUATED, "", f"{where}: not a JUnit file (root element "
                            f"<{_local(root.tag)}>); {hint}")]
    findings, passed, skipped = [], 0, []
    declared_failures = 0
    cases = 0
    for suite in suites:
        for attr in ("failures", "errors"):
            try:
                declared_failures += int(suite.get(attr) or 0)
            except ValueError:
                pass
        for case in _children(suite, "testcase"):
            cases += 1
            name = case.get("name") or "(unnamed test)"
            bad = _children(case, "failure") + _children(case, "error")
            status = (case.get("status") or "").lower()
            if bad or status in ("failed", "error", "errored"):
                text_ = _failure_text(name, bad[0]) if bad else f"{name} {status}"
                findings.append(GateFinding(CONNECTIVITY, BLOCK, name, "failed: " + one_line(text_, 600)))
            elif _children(case, "skipped") or status == "skipped":
                skipped.append(name)
            else:
                passed += 1
    if not cases:
        return [GateFinding(CONNECTIVITY, UNEVALUATED, "", f"{where}: no test case in the file (the run wrote no "
                            f"results); {hint}")]
    if declared_failures and not findings:
        findings.append(GateFinding(CONNECTIVITY, BLOCK, "", f"the suite declares {declared_failures} failures "
                                    f"but names no failed test case"))
    if skipped:
        findings.append(GateFinding(CONNECTIVITY, INFO, "", f"{len(skipped)} skipped: {', '.join(skipped)}"))
    if not any(f.level == BLOCK for f in findings):
        findings.append(GateFinding(CONNECTIVITY, INFO, "", f"{passed} of {cases} tests passed"))
    return findings


def read_junit(path: str) -> List[GateFinding]:
    try:
        text = read_text(path, f"--connectivity {path}", MAX_JUNIT_BYTES)
    except UserError as exc:
        if "not a UTF-8 text file" not in str(exc):
            raise
        return [GateFinding(CONNECTIVITY, UNEVALUATED, "", f"--connectivity {path}: binary content, not a JUnit file")]
    return judge(text, f"--connectivity {path}")
