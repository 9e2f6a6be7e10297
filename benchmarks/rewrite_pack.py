"""Candidate rewrites of the rule pack, written as a rule file to measure with `rule_cost.py --also`.

    python benchmarks/rewrite_pack.py --out /tmp/rewritten.yml --sparse --interval cilium-day2-hubble=1m
    python benchmarks/rule_cost.py --fleet --nodes 2000 --also rewritten=/tmp/rewritten.yml

Two rewrites that keep every alert's meaning:

* `--sparse`: a recording rule that only alerts read, each as `record OP number` with one
  direction, records only the rows past the loosest threshold (`(expr) > 0.8` when the warning
  is `> 0.8` and the critical `> 0.95`). The alerts see exactly the rows they saw before, so
  their `for` clocks run as before; a healthy node then holds no recording series at all.
  (The dashboards read raw series, not recordings.)
* `--interval GROUP=DURATION`: evaluate a group less often, for groups whose windows are long
  (a 15-minute `increase` need not be recomputed every 15 s). `for` keeps its meaning; an alert
  can fire up to one interval later.
"""

import argparse
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fleet_tsdb import parse_duration, scan_expr  # noqa: E402

COMPARISON = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(>=|<=|>|<)\s*(-?[0-9.eE+-]+)\s*$")


def sparse(doc: dict) -> list:
    """Filter recordings read only by simple threshold comparisons; returns the names filtered."""
    rules = [r for g in doc["groups"] for r in g["rules"]]
    readers = {}
    for r in rules:
        for sel in scan_expr(str(r["expr"])).selectors:
            readers.setdefault(sel.name, []).append(r)
    done = []
    for r in rules:
        name = r.get("record")
        if not name or not readers.get(name):
            continue
        comps = [COMPARISON.match(str(x["expr"])) for x in readers[name]]
        if not all(c and c.group(1) == name and "alert" in x for c, x in zip(comps, readers[name])):
            continue
        ops = {c.group(2)[0] for c in comps}
        if len(ops) != 1:
            continue
        direction = ops.pop()
        values = [float(c.group(3)) for c in comps]
        loosest = min(values) if direction == ">" else max(values)
        inclusive = any(c.group(2).endswith("=") for c in comps if float(c.group(3)) == loosest)
        op = direction + ("=" if inclusive else "")
        r["expr"] = f"({r['expr']}) {op} {loosest:g}"
        done.append(name)
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", default=str(HERE.parent / "assets" / "prometheus" / "cilium-day2.rules.yml"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--sparse", action="store_true")
    parser.add_argument("--interval", action="append", default=[], metavar="GROUP=DURATION")
    args = parser.parse_args(argv)
    try:
        doc = yaml.safe_load(Path(args.rules).read_text())
        groups = {g["name"]: g for g in doc["groups"]}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        parser.error(f"--rules {args.rules}: not a readable rule file ({type(e).__name__})")
    for spec in args.interval:
        group, _, dur = spec.partition("=")
        if group not in groups:
            parser.error(f"--interval {spec}: no group {group!r}; groups: {', '.join(groups)}")
        try:
            parse_duration(dur)
        except ValueError:
            parser.error(f"--interval {spec}: {dur!r} is not a duration such as 1m")
        groups[group]["interval"] = dur
    names = sparse(doc) if args.sparse else []
    Path(args.out).write_text(yaml.safe_dump(doc, sort_keys=False, width=10_000))
    print(f"wrote {args.out}: {len(names)} recording rule(s) made sparse, "
          f"{len(args.interval)} group interval(s) set", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
