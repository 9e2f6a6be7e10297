"""Render conf.yaml.example (top level and package data) from assets/configuration/spec.yaml.

    python scripts/gen_conf_example.py          # write both files
    python scripts/gen_conf_example.py --check  # exit 1 if either is out of date
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "assets" / "configuration" / "spec.yaml"
TARGETS = [ROOT / "conf.yaml.example", ROOT / "datadog_checks" / "cilium_day2" / "data" / "conf.yaml.example"]


def _type_name(value):
    kind = value.get("type", "string")
    if kind == "array":
        return "list of " + value.get("items", {}).get("type", "strings") + "s" if "type" in value.get("items", {}) else "list"
    if kind == "object":
        return "mapping"
    return kind


def _example_lines(name, value, indent):
    example = value.get("example", value.get("default"))
    pad = " " * indent
    if example is None:
        return [f"{pad}# {name}: <{name.upper()}>"]
    dumped = yaml.safe_dump({name: example}, default_flow_style=False, sort_keys=False).rstrip().splitlines()
    return [f"{pad}# {line}" for line in dumped]


def render(spec):
    out = []
    (file_spec,) = spec["files"]
    for section in file_spec["options"]:
        name = section["name"]
        for line in section.get("description", "").strip().splitlines():
            out.append(f"## {line}".rstrip())
        out.append("#")
        if name == "init_config":
            out.append("init_config:")
            indent = 4
        else:
            out.append("instances:")
            out.append("")
            out.append("  -")
            indent = 4
        for option in section["options"]:
            value = option.get("value", {})
            default = value.get("default")
            required = "required" if option["name"] == "agent_endpoint" else "optional"
            head = f"{' ' * indent}## @param {option['name']} - {_type_name(value)} - {required}"
            if default is not None:
                head += f" - default: {yaml.safe_dump(default, default_flow_style=True).strip().removesuffix('...').strip()}"
            out.append(head)
            for line in option["description"].strip().splitlines():
                out.append(f"{' ' * indent}## {line}".rstrip())
            out.append(f"{' ' * indent}#")
            lines = _example_lines(option["name"], value, indent)
            if option["name"] == "agent_endpoint":
                lines = [line.replace("# ", "", 1) for line in lines]
            out.extend(lines)
            out.append("")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main(argv):
    text = render(yaml.safe_load(SPEC.read_text()))
    if "--check" in argv:
        stale = [str(t.relative_to(ROOT)) for t in TARGETS if not t.exists() or t.read_text() != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python scripts/gen_conf_example.py", file=sys.stderr)
            return 1
        return 0
    for target in TARGETS:
        target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
