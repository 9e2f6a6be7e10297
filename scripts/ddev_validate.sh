#!/usr/bin/env bash
# Run Datadog's own validators (ddev) on this integration the way integrations-extras runs them:
# `ddev -e` (extras mode, not `--here`), on a throwaway integrations-extras-shaped repository that
# holds this project as `cilium_day2/`.
#
#   scripts/ddev_validate.sh            # validate; exit non-zero on any failure
#   scripts/ddev_validate.sh --sync     # regenerate conf.yaml.example / auto_conf.yaml from spec.yaml first
#
# DDEV names the ddev executable (default: .ddev-venv/bin/ddev, made by .ci/run; pinned 14.4.0).
# codespell (for `typos`) is taken from the same folder: ddev 14.4.0 depends on it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ddev="${DDEV:-$root/.ddev-venv/bin/ddev}"
sync=0
[ "${1:-}" = "--sync" ] && sync=1
[ -x "$ddev" ] || { echo "ddev not found at $ddev: run .ci/run, or set DDEV to ddev 14.4.0" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
repo="$work/integrations-extras"
mkdir -p "$repo/cilium_day2" "$repo/.github/workflows"
# The tracked files plus the working tree's changes, not build or venv leftovers.
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$repo/cilium_day2")

# The repository-level entries an integrations-extras pull request adds for a new integration:
# its CODEOWNERS line, its test job and its coverage flag. The job and the flag are written by
# ddev itself (`validate ci --sync`, below) from the integration's hatch.toml; `validate ci` then
# checks them like any other.
printf '/cilium_day2/ @cilium-day2/maintainers\n' > "$repo/.github/CODEOWNERS"
printf 'name: Test all\n\non:\n  workflow_call: {}\n\njobs: {}\n' > "$repo/.github/workflows/test-all.yml"
printf 'coverage:\n  status:\n    project:\n      default:\n        target: 75\n' > "$repo/.codecov.yml"

# ddev's own configuration, pointing its `extras` repository at the tree above.
cat > "$work/ddev.toml" <<EOF
repo = "extras"
agent = "dev"
org = "default"

[repos]
core = "$work/absent-core"
extras = "$repo"
marketplace = "$work/absent-marketplace"
agent = "$work/absent-agent"

[orgs.default]
site = "datadoghq.com"
dd_url = "https://app.datadoghq.com"
EOF

git -C "$repo" init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=ci -c user.email=ci@localhost commit -qm snapshot

cd "$work"
export DDEV_CONFIG="$work/ddev.toml" DDEV_SKIP_UPDATE_CHECK=1 NO_COLOR=1 TERM=dumb
export PATH="$(dirname "$ddev"):$PATH"
dd() { "$ddev" -e validate "$@" 2>&1 | grep -v "upgrade to version" || true; }

if [ "$sync" = 1 ]; then
  "$ddev" -e validate config --sync cilium_day2 >/dev/null || true
  cp "$repo/cilium_day2/datadog_checks/cilium_day2/data/conf.yaml.example" "$root/datadog_checks/cilium_day2/data/conf.yaml.example"
  cp "$repo/cilium_day2/datadog_checks/cilium_day2/data/auto_conf.yaml" "$root/datadog_checks/cilium_day2/data/auto_conf.yaml"
  cp "$repo/cilium_day2/datadog_checks/cilium_day2/data/conf.yaml.example" "$root/conf.yaml.example"
fi
"$ddev" -e validate ci --sync >/dev/null 2>&1 || true
git -C "$repo" add -A
git -C "$repo" -c user.name=ci -c user.email=ci@localhost commit -qm "ci: the integration's job and coverage flag"

# Every validator of ddev 14.4.0 that applies to one integration in integrations-extras.
# Not run, because ddev 14.4.0 limits them to other repositories: agent-reqs, licenses and
# version (integrations-core only), labeler (core only; it skips itself), license-headers (not
# implemented for extras), eula (marketplace).
per_integration=(config dashboards dep http imports integration-style jmx-metrics legacy-signature
                 metadata models openmetrics package readmes saved-views service-checks)
repository=(ci codeowners dep)
failed=()
report() {  # name, exit status, output
  if [ "$2" = 0 ]; then echo "ddev -e validate $1: OK"; return; fi
  echo "ddev -e validate $1: FAILED"; echo "$3" | sed 's/^/    /'
  failed+=("$1")
}
for validator in "${per_integration[@]}"; do
  status=0; out=$("$ddev" -e validate "$validator" cilium_day2 2>&1) || status=$?
  report "$validator cilium_day2" "$status" "$(echo "$out" | grep -v 'upgrade to version')"
done
for validator in "${repository[@]}"; do
  status=0; out=$("$ddev" -e validate "$validator" 2>&1) || status=$?
  report "$validator" "$status" "$(echo "$out" | grep -v 'upgrade to version')"
done
# ddev 14.4.0's `typos` exits 1 when codespell finds nothing ("All files are valid!") and 0 when it
# reports typos or cannot run codespell, so its verdict is its own line, not its exit status.
out=$(dd typos cilium_day2)
if echo "$out" | grep -qx "All files are valid!"; then
  echo "ddev -e validate typos cilium_day2: OK"
else
  report "typos cilium_day2" 1 "$out"
fi

[ ${#failed[@]} -eq 0 ] || { echo "ddev validators failing: ${failed[*]}"; exit 1; }
echo "all ddev validators pass in integrations-extras mode"
