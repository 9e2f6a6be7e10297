"""The whole rule pack loaded at once, as a real Prometheus runs it: what it costs per cycle.

Used by `rule_cost.py --fleet`. Every group of a pack is loaded together and evaluated at its
own `interval:` (or the global evaluation interval, 15 s by default), so groups run concurrently
and compete for the CPUs as on a real server. Phases alternate on the same data: no rules (the
baseline), the pack, each `--also` pack, in an order that flips every round so that a drift of
the machine's load does not favour one variant. Per phase:

* rule CPU: the Prometheus process' CPU time per second over the phase, minus the same for the
  no-rules phases (their mean), in cores;
* `prometheus_rule_group_iterations_missed_total` and `..._iterations_total`, deltas over the phase;
* every group evaluation that finished in the phase (`/api/v1/rules`, polled; its
  `evaluationTime` and each rule's), from which: seconds of evaluation per cycle (the sum over
  groups of each group's median), seconds of evaluation per minute (each group's median times its
  evaluations per minute), the slowest group against its interval, and per rule timings;
* the series the pack's recording rules hold at the end of the phase, per node.
"""

import math
import re
import statistics
import time
from typing import Callable, Dict, List, Sequence, Tuple

from fleet_tsdb import RulePack

BASELINE = "no rules"


def pack_document(pack: RulePack) -> dict:
    """The pack as loaded: every group, each keeping its own `interval:` if it has one."""
    return {"groups": [dict(g) for g in pack.raw_groups]}


def group_intervals(pack: RulePack, default: float) -> Dict[str, float]:
    from fleet_tsdb import parse_duration

    return {g["name"]: float(parse_duration(g["interval"])) if g.get("interval") else float(default)
            for g in pack.raw_groups}


def phase_plan(variants: Sequence[str], rounds: int) -> List[str]:
    """Order of the phases: the baseline and every variant once per round, reversed every other round."""
    names = [BASELINE, *variants]
    out = []
    for r in range(rounds):
        out += names if r % 2 == 0 else names[::-1]
    return out


def phase_seconds(packs: Sequence[RulePack], rounds: int, seconds: float, interval: float) -> float:
    """Wall time the interleaved phases take (for placing the data around them)."""
    per_round = sum(settle_seconds(p, interval) + seconds + 4 for p in [None, *packs])
    return rounds * per_round


def _group_metric(metrics: dict, name: str) -> Dict[str, float]:
    return {g.split(";", 1)[-1]: v for (m, g), v in metrics.items() if m == name}


def measure_phase(prom, sampler, document: dict, seconds: float, settle: float, poll: float = 2.0,
                  records: Sequence[str] = ()) -> dict:
    """Load `document`, let every group start, then watch it for `seconds`."""
    prom.load_rules(document)
    time.sleep(settle)
    seen = {(g["name"], g.get("lastEvaluation")) for g in prom.rules()}
    m0 = prom.metrics()
    t0 = time.time()
    evals: Dict[str, List[dict]] = {}
    intervals, errors = {}, set()
    while True:
        left = t0 + seconds - time.time()
        if left <= 0:
            break
        time.sleep(min(poll, left))
        for g in prom.rules():
            key = (g["name"], g.get("lastEvaluation"))
            intervals[g["name"]] = float(g.get("interval") or 0)
            if key in seen or not g.get("lastEvaluation", "").startswith(("1", "2")):
                continue
            seen.add(key)
            rules = {}
            for i, r in enumerate(g.get("rules", [])):
                rules[f"{r['name']}#{i}"] = float(r.get("evaluationTime") or 0)
                if r.get("health") == "err":
                    errors.add(f"{g['name']}/{r['name']}: {r.get('lastError')}")
            evals.setdefault(g["name"], []).append({"seconds": float(g.get("evaluationTime") or 0), "rules": rules})
    t1 = time.time()
    m1 = prom.metrics()
    cpu, other = sampler.between(t0, t1)
    missed0 = _group_metric(m0, "prometheus_rule_group_iterations_missed_total")
    missed1 = _group_metric(m1, "prometheus_rule_group_iterations_missed_total")
    iters0 = _group_metric(m0, "prometheus_rule_group_iterations_total")
    iters1 = _group_metric(m1, "prometheus_rule_group_iterations_total")
    out = {
        "wall": t1 - t0,
        "cpu_cores": cpu / (t1 - t0),
        "other_load": other / (t1 - t0),
        "missed": {g: v - missed0.get(g, 0) for g, v in missed1.items()},
        "iterations": {g: v - iters0.get(g, 0) for g, v in iters1.items()},
        "intervals": intervals,
        "evaluations": evals,
        "errors": sorted(errors),
        "records": {},
        "alerts": 0,
    }
    if records:
        res = prom.query('count by (__name__) ({__name__=~"' + "|".join(re.escape(r) for r in records) + '"})')
        with_node = prom.query('count by (__name__) ({__name__=~"' + "|".join(re.escape(r) for r in records)
                               + '", node!=""})')
        total = {x["metric"]["__name__"]: int(float(x["value"][1])) for x in res}
        per_node = {x["metric"]["__name__"]: int(float(x["value"][1])) for x in with_node}
        out["records"] = {r: {"series": total.get(r, 0), "with_node": per_node.get(r, 0)} for r in records}
        out["alerts"] = len(prom.session.get(prom.url + "/api/v1/alerts", timeout=60).json()["data"]["alerts"])
    return out


def settle_seconds(pack, interval: float) -> float:
    """Seconds after a reload by which every group of `pack` has started evaluating."""
    if pack is None:
        return 3.0
    return max([float(interval), *group_intervals(pack, interval).values()]) + 3


def run(prom, sampler, variants: Sequence[Tuple[str, RulePack]], rounds: int, seconds: float, interval: float,
        log: Callable[[str], None], poll: float = 2.0) -> dict:
    """Measure every variant and the baseline in interleaved phases; the raw phases per variant."""
    packs = dict(variants)
    phases: Dict[str, List[dict]] = {BASELINE: [], **{n: [] for n, _ in variants}}
    for name in phase_plan([n for n, _ in variants], rounds):
        pack = packs.get(name)
        doc = pack_document(pack) if pack else {"groups": []}
        records = sorted(pack.records) if pack else ()
        r = measure_phase(prom, sampler, doc, seconds, settle_seconds(pack, interval), poll, records)
        phases[name].append(r)
        evals = sum(len(v) for v in r["evaluations"].values())
        log(f"  {name}: {r['cpu_cores']:.2f} cores over {r['wall']:.0f}s, {evals} group evaluations, "
            f"{sum(r['missed'].values()):.0f} missed, other load {r['other_load']:.1f} cores")
    prom.load_rules({"groups": []})
    return phases


def summarize(phases: Dict[str, List[dict]], packs: Dict[str, RulePack], nodes: int) -> dict:
    """Per variant: rule CPU, evaluation per cycle, missed iterations, recording series per node, per rule."""
    base = [p["cpu_cores"] for p in phases[BASELINE]]
    base_mean = statistics.mean(base) if base else 0.0
    out = {"baseline_cores": base_mean, "baseline_runs": base, "variants": {}}
    for name, runs in phases.items():
        if name == BASELINE or not runs:
            continue
        pack = packs[name]
        counts = {g: (sum(r.kind == "record" for r in rules), sum(r.kind == "alert" for r in rules))
                  for g, rules in pack.groups}
        groups = {}
        for g, _ in pack.groups:
            ev = [e for r in runs for e in r["evaluations"].get(g, [])]
            secs = [e["seconds"] for e in ev]
            interval = next((r["intervals"][g] for r in runs if g in r["intervals"]), 0.0)
            groups[g] = {
                "interval": interval, "records": counts[g][0], "alerts": counts[g][1], "evaluations": len(ev),
                "median_s": statistics.median(secs) if secs else None, "max_s": max(secs) if secs else None,
                "missed": sum(r["missed"].get(g, 0) for r in runs),
                "iterations": sum(r["iterations"].get(g, 0) for r in runs),
            }
        per_rule: Dict[Tuple[str, str], List[float]] = {}
        for r in runs:
            for g, ev in r["evaluations"].items():
                for e in ev:
                    for rule, t in e["rules"].items():
                        per_rule.setdefault((g, rule), []).append(t)
        exprs = {(g, f"{rule.name}#{i}"): rule.expr for g, rules in pack.groups for i, rule in enumerate(rules)}
        ranked = sorted(((statistics.median(v), g, rule) for (g, rule), v in per_rule.items()), reverse=True)
        records = runs[-1]["records"]
        rec_total = sum(v["series"] for v in records.values())
        rec_node = sum(v["with_node"] for v in records.values())
        cpu = [r["cpu_cores"] - base_mean for r in runs]
        measured = [v for v in groups.values() if v["median_s"] is not None]
        out["variants"][name] = {
            "rule_cores": statistics.mean(cpu), "rule_cores_runs": cpu,
            "process_cores": statistics.mean(r["cpu_cores"] for r in runs),
            "cycle_median_s": sum(v["median_s"] for v in measured),
            "cycle_max_s": sum(v["max_s"] for v in measured),
            # Groups run at their own intervals: evaluation seconds per minute of wall time.
            "eval_s_per_minute": sum(v["median_s"] * 60 / v["interval"] for v in measured if v["interval"]),
            "slowest_group": max(((v["median_s"] / v["interval"] if v["interval"] else math.inf, g)
                                  for g, v in groups.items() if v["median_s"] is not None), default=(0.0, None)),
            "unevaluated_groups": [g for g, v in groups.items() if not v["evaluations"]],
            "missed": sum(v["missed"] for v in groups.values()),
            "iterations": sum(v["iterations"] for v in groups.values()),
            "recording_series": rec_total, "recording_series_per_node": rec_total / max(nodes, 1),
            "recording_series_with_node_per_node": rec_node / max(nodes, 1),
            "records": records,
            "groups": groups,
            "top_rules": [{"seconds": t, "group": g, "rule": rule.split("#")[0], "expr": exprs.get((g, rule), "")}
                          for t, g, rule in ranked],
            "errors": sorted({e for r in runs for e in r["errors"]}),
            "alerts": runs[-1]["alerts"],
            "other_load": statistics.mean(r["other_load"] for r in runs),
        }
    return out


def print_report(rep: dict, top: int = 15) -> None:
    s = rep["fleet"]
    print(f"# whole pack at once: {rep['nodes']:,} agent nodes in {rep['clusters']} clusters + {rep['clusters']} "
          f"operators; {rep['prometheus']}; {rep['cores']} cores"
          + (f"; GOMEMLIMIT={rep['gomemlimit']}" if rep.get("gomemlimit") else ""))
    print(f"# data: {rep['series_generated']:,} series, one sample per {rep['step']}s; evaluation_interval "
          f"{rep['interval']}s (a group's own interval where it sets one)")
    print(f"# {rep['rounds']} round(s) of {rep['phase_seconds']:.0f}s per variant, interleaved with no rules; "
          f"Prometheus with no rules: {s['baseline_cores']:.3f} cores "
          f"({', '.join(f'{c:.3f}' for c in s['baseline_runs'])})")
    print()
    print(f"{'pack':<24}{'rule CPU cores':>16}{'eval s/min':>11}{'eval s/cycle':>14}{'max':>7}"
          f"{'slowest group/interval':>40}{'missed':>8}{'rec series':>12}{'/node':>7}")
    for name, v in s["variants"].items():
        ratio, g = v["slowest_group"]
        runs = v["rule_cores_runs"]
        cores = f"{v['rule_cores']:.3f}" + (f" ({min(runs):.2f}-{max(runs):.2f})" if len(runs) > 1 else "")
        print(f"{name[:23]:<24}{cores:>16}{v['eval_s_per_minute']:>11.1f}{v['cycle_median_s']:>14.2f}{v['cycle_max_s']:>7.2f}"
              f"{(str(g) + f' {ratio:.2f}')[-39:]:>40}{v['missed']:>8.0f}{v['recording_series']:>12,}"
              f"{v['recording_series_per_node']:>7.1f}")
    for name, v in s["variants"].items():
        print(f"\n{name}: per group (median and max seconds per evaluation, over {rep['rounds']} phase(s))")
        print(f"  {'group':<34}{'interval':>9}{'rec':>5}{'alert':>6}{'evals':>7}{'median s':>10}{'max s':>8}{'missed':>8}")
        for g, x in v["groups"].items():
            med = f"{x['median_s']:.3f}" if x["median_s"] is not None else "-"
            mx = f"{x['max_s']:.3f}" if x["max_s"] is not None else "-"
            print(f"  {g[:33]:<34}{x['interval']:>8.0f}s{x['records']:>5}{x['alerts']:>6}{x['evaluations']:>7}"
                  f"{med:>10}{mx:>8}{x['missed']:>8.0f}")
        n = top if name == next(iter(s["variants"])) else 5
        print(f"  top {n} rules by evaluation time (median seconds per evaluation):")
        for r in v["top_rules"][:n]:
            expr = r["expr"].replace("\n", " ")
            print(f"    {r['seconds']:8.3f}  {r['rule']}  [{r['group']}]\n              "
                  f"{expr[:150] + ('...' if len(expr) > 150 else '')}")
        per_node = sorted(((c["with_node"], k) for k, c in v["records"].items() if c["with_node"]), reverse=True)
        print(f"  recording series: {v['recording_series']:,} ({v['recording_series_per_node']:.1f} per node; "
              f"{v['recording_series_with_node_per_node']:.1f} per node carry a node label"
              + (": " + ", ".join(f"{k} {c / max(rep['nodes'], 1):.1f}" for c, k in per_node[:8]) if per_node else "")
              + ")")
        if v["unevaluated_groups"]:
            print(f"  warning: no evaluation finished in a phase for {', '.join(v['unevaluated_groups'])}")
        print(f"  rule errors: {len(v['errors'])}" + "".join(f"\n    {e}" for e in v["errors"][:10]))
        print(f"  alerts active at the end: {v['alerts']}; other processes kept {v['other_load']:.1f} cores busy")
