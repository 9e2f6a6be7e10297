"""What the upgrade gate found, from any of its sources, and the one verdict they make.

Each source (the preflight log, the connectivity test's JUnit file, the live signals, the
comparison against a baseline) turns what it read into `GateFinding`s. The verdict is the worst
of them, ranked as doctor ranks its live signals: a blocking finding (exit 2) over an action item
(exit 1) over "could not evaluate" (exit 3) over nothing to report (exit 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List

# Sources, as they are shown in the text and JSON reports.
PREFLIGHT = "preflight"
CONNECTIVITY = "connectivity"
LIVE = "live signal"
REGRESSION = "regression"
SOURCES = (PREFLIGHT, CONNECTIVITY, LIVE, REGRESSION)

# Levels: what the finding does to the gate.
BLOCK = "BLOCK"  # exit 2: an invalid policy, a failed test, a CRITICAL signal or critical regression
ACTION = "ACTION"  # exit 1: a preflight warning, a WARNING signal or warning regression
UNEVALUATED = "COULD NOT EVALUATE"  # exit 3: an input that says nothing (empty, unrecognised, cut off)
INFO = "INFO"  # exit 0: listed for the record (a skipped test, a passed check)

EXIT_CODES = {INFO: 0, ACTION: 1, BLOCK: 2, UNEVALUATED: 3}
# Worst first when ranking: block > action > could not evaluate > info.
_RANK = {INFO: 0, UNEVALUATED: 1, ACTION: 2, BLOCK: 3}


@dataclass(frozen=True)
class GateFinding:
    source: str  # one of SOURCES
    level: str  # BLOCK, ACTION, UNEVALUATED or INFO
    subject: str  # the policy, test or signal it is about ("" for the source as a whole)
    message: str  # what was found, in one line

    def as_dict(self):
        return {"source": self.source, "level": self.level, "subject": self.subject or None,
                "message": self.message, "exit_code": EXIT_CODES[self.level]}


def worst_level(findings: Iterable[GateFinding]) -> str:
    worst = INFO
    for f in findings:
        if _RANK[f.level] > _RANK[worst]:
            worst = f.level
    return worst


def exit_code(findings: Iterable[GateFinding]) -> int:
    """The gate's exit status: the worst finding's."""
    return EXIT_CODES[worst_level(findings)]


def level_of_exit(code: int) -> str:
    return {0: INFO, 1: ACTION, 2: BLOCK, 3: UNEVALUATED}[code]


def ordered(findings: Iterable[GateFinding]) -> List[GateFinding]:
    """Worst first; within a level, in source order, then as found."""
    items = list(findings)
    order = {s: i for i, s in enumerate(SOURCES)}
    return sorted(items, key=lambda f: (-_RANK[f.level], order.get(f.source, len(order))))


def one_line(text: str, limit: int = 300) -> str:
    """Whitespace folded to single spaces and cut to `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
