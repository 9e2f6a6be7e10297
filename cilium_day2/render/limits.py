"""Ruler limits: what Mimir, Cortex and a Thanos/Prometheus ruler would refuse, said before
anything is loaded.

Mimir's defaults (and Cortex's, where it has them): at most 20 rules per group
(`-ruler.max-rules-per-rule-group`) and 70 rule groups per tenant
(`-ruler.max-rule-groups-per-tenant`; Cortex counts per namespace, i.e. per loaded file). The
settings `max_rules_per_group` and `max_groups_per_namespace` hold the limits of your ruler;
`render` prints a warning for every rules file that exceeds them, and `render --strict` refuses
(nothing written).
"""

from __future__ import annotations

from typing import Dict, List

import yaml


def rule_file_problems(path: str, text: str, settings) -> List[str]:
    """One line per limit a rule file exceeds."""
    groups = (yaml.safe_load(text) or {}).get("groups") or []
    out = []
    if len(groups) > settings.max_groups_per_namespace:
        out.append(
            f"{path}: {len(groups)} rule groups, above settings.max_groups_per_namespace "
            f"({settings.max_groups_per_namespace}; Mimir's default per tenant is 70): load the per-cluster files "
            f"into separate tenants, or raise the ruler's limit and this setting to match"
        )
    for group in groups:
        n = len(group.get("rules") or [])
        if n > settings.max_rules_per_group:
            out.append(f"{path}: group {group['name']} holds {n} rules, above settings.max_rules_per_group "
                       f"({settings.max_rules_per_group})")
    return out


def problems(files: Dict[str, str], settings) -> List[str]:
    """Every limit the rendered plain rule files exceed (the PrometheusRule objects carry the
    same groups)."""
    out = []
    for path, text in sorted(files.items()):
        if path.endswith(".rules.yml"):
            out.extend(rule_file_problems(path, text, settings))
    return out
