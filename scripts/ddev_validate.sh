#!/usr/bin/env bash
# Run Datadog's own validators (ddev) on this project, laid out as ddev expects it: a folder
# shaped like integrations-extras holding the project as `cilium_day2/`.
#
#   scripts/ddev_validate.sh            # validate; exit non-zero on any failure
#   scripts/ddev_validate.sh --sync     # regenerate conf.yaml.example / auto_conf.yaml from spec.yaml first
#
# DDEV names the ddev executable (default: .ddev-venv/bin/ddev, made by .ci/run; pinned 14.4.0).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ddev="${DDEV:-$root/.ddev-venv/bin/ddev}"
sync=0
[ "${1:-}" = "--sync" ] && sync=1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
repo="$work/integrations-extras"
mkdir -p "$repo/.github" "$repo/cilium_day2"
# The tracked files plus the working tree's changes, not build or venv leftovers.
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$repo/cilium_day2")
printf '/cilium_day2/ @cilium-day2/maintainers\n' > "$repo/.github/CODEOWNERS"
# The Agent's embedded Python environment: what datadog-checks-base[deps] pins. ddev checks an
# integration's optional dependencies against this file, as integrations-core's own.
"$root/.venv/bin/python" - "$repo/agent_requirements.in" <<'PY'
import sys
from importlib.metadata import requires
from packaging.requirements import Requirement
lines = []
for spec in requires("datadog-checks-base") or []:
    req = Requirement(spec)
    if req.marker is not None and req.marker.evaluate({"extra": "deps"}) and not req.marker.evaluate({"extra": ""}):
        lines.append(f"{req.name}{req.specifier}\n")
open(sys.argv[1], "w").writelines(sorted(lines))
PY
git -C "$repo" init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=ci -c user.email=ci@localhost commit -qm snapshot

cd "$repo"
export DDEV_SKIP_UPDATE_CHECK=1 NO_COLOR=1 TERM=dumb
if [ "$sync" = 1 ]; then
  "$ddev" --here validate config --sync cilium_day2 >/dev/null || true
  cp cilium_day2/datadog_checks/cilium_day2/data/conf.yaml.example "$root/datadog_checks/cilium_day2/data/conf.yaml.example"
  cp cilium_day2/datadog_checks/cilium_day2/data/auto_conf.yaml "$root/datadog_checks/cilium_day2/data/auto_conf.yaml"
  cp cilium_day2/datadog_checks/cilium_day2/data/conf.yaml.example "$root/conf.yaml.example"
fi
# The one finding we keep on purpose. ddev wants an integration to depend on nothing the Agent
# does not embed; the check honours that (it imports only datadog-checks-base, requests and
# prometheus-client, and installs with --no-deps), but the same wheel carries the command-line
# tools, and a plain `pip install datadog-cilium-day2` must give working tools: so jinja2, pyyaml
# and requests stay hard dependencies. Any other `dep` finding fails.
known_dep_finding='Found third-party dependencies in project.dependencies: `jinja2`, `pyyaml`, `requests`.'
failed=()
for validator in config metadata dashboards service-checks readmes http package dep; do
  if out=$("$ddev" --here validate "$validator" cilium_day2 2>&1); then
    echo "ddev validate $validator: OK"
    continue
  fi
  findings=$(echo "$out" | grep -v -e "upgrade to version" -e '^\s*$' -e 'has the following errors:' \
    -e 'Third-party dependencies belong in project.optional-dependencies' || true)
  if [ "$validator" = dep ] && [ "$(echo "$findings" | sed 's/^[ -]*//; s/ *$//')" = "$known_dep_finding" ]; then
    echo "ddev validate dep: OK but for the command-line tools' own dependencies (jinja2, pyyaml, requests)"
    continue
  fi
  echo "ddev validate $validator: FAILED"; echo "$out" | grep -v "upgrade to version" | sed 's/^/    /'
  failed+=("$validator")
done
[ ${#failed[@]} -eq 0 ] || { echo "ddev validators failing: ${failed[*]}"; exit 1; }
