"""`cilium-day2 simulate`: serve simulated Cilium endpoints that follow a failure scenario.

Agents, Hubble servers and the operator of N simulated nodes listen on 127.0.0.1. Counters
advance with (simulated) time and values follow the scenario, so Prometheus, the Datadog Agent
check or `cilium-day2 doctor` can be pointed at them to watch the pack react without a cluster.
"""

import json
import sys
import time

import yaml

from ..errors import UserError
from .model import AGENT, HUBBLE, OPERATOR, Clock
from .profiles import parse_duration
from .scenarios import DEFAULT_NODES, load_scenarios
from .server import Simulation


def add_arguments(parser):
    parser.add_argument(
        "--scenario",
        "-s",
        action="append",
        metavar="NAME",
        help="scenario to play (default: healthy); see --list. Repeat it, or give `all`, to play several at once, "
        "each as its own cluster named after its scenario",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and the signals each one trips, then exit")
    parser.add_argument("--nodes", type=int, default=None, metavar="N", help=f"simulated nodes per cluster (default: {DEFAULT_NODES})")
    parser.add_argument("--cluster", default=None, metavar="NAME", help="value of the `cluster` label (default: the scenario name; one scenario only)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="simulated seconds per wall-clock second (default 1; 60 turns an hour into a minute)",
    )
    parser.add_argument(
        "--start",
        default="0s",
        metavar="WHEN",
        help="simulated time to start at: a duration such as 20m, or `steady` for the point where every expected signal holds (default 0s)",
    )
    parser.add_argument("--duration", default=None, metavar="DURATION", help="stop after this wall-clock time (default: run until interrupted)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--agent-port", type=int, default=0, metavar="PORT", help="first agent port; node n gets PORT+n (default: chosen by the OS)")
    parser.add_argument("--operator-port", type=int, default=0, metavar="PORT", help="operator port (default: chosen by the OS)")
    parser.add_argument("--hubble-port", type=int, default=0, metavar="PORT", help="first Hubble port; node n gets PORT+n (default: chosen by the OS)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="how to print the targets (default: table)")
    parser.add_argument("--write-scrape-config", metavar="FILE", help="write a Prometheus `scrape_configs` file for the targets, with `cluster` and `node` labels")
    parser.add_argument("--write-file-sd", metavar="FILE", help="write the targets as a Prometheus file_sd JSON file, with `cluster`, `node` and `component` labels")
    parser.add_argument("--scrape-interval", default="15s", metavar="DURATION", help="scrape interval written into --write-scrape-config (default 15s)")
    parser.add_argument("--scenarios-file", metavar="FILE", help="read scenarios from this YAML file instead of the built-in ones")


def _start_time(value, scenario):
    if value == "steady":
        return scenario.steady
    try:
        return parse_duration(value, "--start")
    except UserError:
        raise UserError(f"--start {value!r}: give a duration such as 0s, 20m, 2h, or `steady`") from None


def list_scenarios(scenarios, out):
    width = max(len(n) for n in scenarios)
    for name, sc in scenarios.items():
        signals = ", ".join(sc.signals) or "none"
        out.write(f"{name.ljust(width)}  {sc.summary}\n{' ' * width}  trips: {signals}\n")


def format_targets(sim, fmt="table"):
    if fmt == "json":
        return sim.targets_json() + "\n"
    rows = [("CLUSTER", "COMPONENT", "NODE", "URL")]
    order = {AGENT: 0, HUBBLE: 1, OPERATOR: 2}
    for t in sorted(sim.targets, key=lambda t: (t.cluster, order[t.component], t.node or "")):
        rows.append((t.cluster, t.component, t.node or "-", t.url))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


def chosen_scenarios(names, scenarios):
    """The scenarios named by --scenario (repeatable; `all` for every one), in order, once each."""
    chosen = []
    for name in names or ["healthy"]:
        if name == "all":
            chosen.extend(scenarios)
        elif name in scenarios:
            chosen.append(name)
        else:
            raise UserError(f"--scenario {name!r}: unknown; choose one of {', '.join(scenarios)}, or `all` (see --list)")
    return [scenarios[name] for name in dict.fromkeys(chosen)]


def run(args):
    scenarios = load_scenarios(args.scenarios_file)
    if args.list:
        list_scenarios(scenarios, sys.stdout)
        return 0
    chosen = chosen_scenarios(args.scenario, scenarios)
    if args.cluster and len(chosen) > 1:
        raise UserError("--cluster names one cluster: with several scenarios each cluster is named after its scenario")
    if args.speed <= 0:
        raise UserError(f"--speed {args.speed}: must be positive, e.g. 1 (real time) or 60 (an hour a minute)")
    if args.nodes is not None and (args.nodes < 1 or args.nodes > 500):
        raise UserError(f"--nodes {args.nodes}: choose between 1 and 500")
    duration = parse_duration(args.duration, "--duration") if args.duration else None
    clusters = []
    for scenario in chosen:
        nodes = args.nodes or max(DEFAULT_NODES, scenario.min_nodes)
        start = _start_time(args.start, scenario)
        clusters.append(scenario.build(nodes=nodes, cluster=args.cluster, clock=Clock(speed=args.speed, start=start)))
    sim = Simulation(
        clusters,
        host=args.host,
        base_ports={AGENT: args.agent_port, OPERATOR: args.operator_port, HUBBLE: args.hubble_port},
    )
    try:
        sim.start()
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}: {exc.strerror}; choose other ports or leave them to the OS (port 0)") from None
    try:
        # The files first: once the targets are printed, everything is ready to be read.
        if args.write_scrape_config:
            _write(args.write_scrape_config, yaml.safe_dump({"scrape_configs": sim.scrape_configs(interval=args.scrape_interval)}, sort_keys=False))
        if args.write_file_sd:
            _write(args.write_file_sd, json.dumps(sim.file_sd(), indent=2) + "\n")
        sys.stdout.write(format_targets(sim, args.format))
        sys.stdout.flush()
        until = f"for {args.duration}" if duration is not None else "until interrupted (Ctrl-C)"
        for scenario, cluster in zip(chosen, clusters):
            signals = ", ".join(scenario.signals) or "nothing"
            print(
                f"simulating {scenario.name} ({len(cluster.nodes)} nodes) at {args.speed:g}x from "
                f"t={_fmt(cluster.clock.start)}, {until}; should trip: {signals}",
                file=sys.stderr,
            )
        sys.stderr.flush()
        deadline = time.monotonic() + duration if duration is not None else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def _write(path, text):
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}; check the directory exists and is writable") from None


def _fmt(seconds):
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"
