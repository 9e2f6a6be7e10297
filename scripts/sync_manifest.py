"""List every rendered monitor in manifest.json (run after `cilium-day2 render`).

    python scripts/sync_manifest.py          # rewrite the monitors section
    python scripts/sync_manifest.py --check  # exit 1 if it is out of date
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def monitors():
    found = {}
    for path in sorted((ROOT / "assets" / "monitors").glob("*.json")):
        title = json.loads(path.read_text()).get("title") or path.stem
        found[title] = str(path.relative_to(ROOT))
    return found


def main(argv):
    manifest_path = ROOT / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    wanted = monitors()
    if "--check" in argv:
        if manifest["assets"].get("monitors") != wanted:
            print("manifest.json monitors are out of date: run python scripts/sync_manifest.py", file=sys.stderr)
            return 1
        return 0
    manifest["assets"]["monitors"] = wanted
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
