"""PromQL label matchers written as inside braces: `k8s_app="cilium", namespace=~"kube-.*"`.

The `*_selector` settings hold such text. It is parsed here, once, into one normalised
matcher string per label, so that a typo is refused with a one-line error when the values file
is read instead of producing rules Prometheus refuses (or, worse, rules that select nothing).
"""

from __future__ import annotations

import re
from typing import Tuple

from ..errors import UserError

_MATCHER_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\\n]|\\.)*)"\s*(,|\Z)')
_RESERVED = ("__name__",)


def parse_matchers(text: str, where: str) -> Tuple[str, ...]:
    """`a="x", b=~"y.*"` -> ('a="x"', 'b=~"y.*"'); UserError naming `where` on anything else."""
    if not isinstance(text, str):
        raise UserError(f"{where}: expected label matchers as inside PromQL braces, e.g. k8s_app=\"cilium\", got {text!r}")
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1].strip()
    if not body:
        raise UserError(f"{where}: empty; write label matchers as inside PromQL braces, e.g. k8s_app=\"cilium\"")
    out, pos = [], 0
    while pos < len(body):
        m = _MATCHER_RE.match(body, pos)
        if not m:
            rest = body[pos:].strip()
            raise UserError(
                f"{where}: cannot parse `{rest[:60]}`; write label matchers as inside PromQL braces, "
                f"e.g. k8s_app=\"cilium\", namespace=~\"kube-system|cilium\""
            )
        label, op, value, sep = m.groups()
        if label in _RESERVED:
            raise UserError(f"{where}: `{label}` selects the metric name; give only label matchers")
        if op in ("=~", "!~"):
            try:
                re.compile(value.encode().decode("unicode_escape"))
            except re.error as exc:
                raise UserError(f"{where}: `{label}{op}\"{value}\"` is not a valid regular expression ({exc})")
        if label == "job":
            raise UserError(f"{where}: set the job with the `*_job` setting, not in the selector")
        out.append(f'{label}{op}"{value}"')
        pos = m.end()
        if sep != ",":
            break
        if pos >= len(body):
            raise UserError(f"{where}: trailing comma in `{body}`")
    labels = [o.split("=")[0].rstrip("!~") for o in out]
    dup = next((name for name in labels if labels.count(name) > 1 and name), None)
    if dup:
        raise UserError(f"{where}: `{dup}` is matched twice; give each label once")
    return tuple(out)
