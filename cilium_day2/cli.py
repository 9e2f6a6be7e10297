"""`cilium-day2`: one entry point, one subcommand per package.

Each subcommand is its package's `command` module, which provides `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their subcommand runs, so `--help` stays fast
and a missing optional dependency only affects the command that needs it.

Exit codes shared by every subcommand: 0 success, 1 findings/warnings (command-specific),
2 usage or input error (or critical findings, for `doctor`), 3 could not evaluate (`doctor`).
"""

import argparse
import importlib
import sys

from .__about__ import __version__
from .errors import UserError

SUBCOMMANDS = {
    # name: (module, one-line help)
    "render": ("cilium_day2.render.command", "render the Day-2 pack (Datadog, Prometheus, Alertmanager, Grafana) from the signal catalog"),
    "doctor": ("cilium_day2.doctor.command", "check live Cilium endpoints against the catalog (an upgrade gate)"),
    "simulate": ("cilium_day2.simulator.command", "serve simulated Cilium agent/operator/Hubble endpoints for a failure scenario"),
    "lint-config": ("cilium_day2.lint.command", "check Cilium Helm values or cilium-config against Day-2 guidance"),
}


def build_parser(only=None):
    parser = argparse.ArgumentParser(
        prog="cilium-day2",
        description="Day-2 monitoring pack for Cilium at scale.",
    )
    parser.add_argument("--version", action="version", version=f"cilium-day2 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        if only is None or name == only:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the module of the subcommand being run (all of them for top-level --help).
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    try:
        parser = build_parser(only)
    except ImportError as exc:
        print(f"cilium-day2: cannot load the `{only}` command: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except UserError as exc:
        print(f"cilium-day2 {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"cilium-day2 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
