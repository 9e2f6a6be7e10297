"""The `lint:` section of the shared overrides file (`--values FILE`).

The file is shared with `cilium-day2 render`: each command validates only its own top-level key
and ignores the others. Shape:

    lint:
      options: {network_mtu: 9001, max_pods_per_node: 110}      # inputs that are not in the files
      rules:
        CD101: {enabled: false}                                  # id or name; enabled / severity
        hubble-buffers-small: {severity: info}
      clusters:                                                  # keyed by cluster name or file stem
        prod-eu-1:
          options: {network_mtu: 1500}
          rules: {CD403: {severity: error}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Optional, Tuple

from ..errors import UserError
from ..userfiles import load_yaml_file
from .rules import SEVERITIES, resolve, valid_rule_tokens

OPTION_RANGES = {"network_mtu": (68, 65535), "max_pods_per_node": (1, 10000)}
RULE_KEYS = ("enabled", "severity")


@dataclass(frozen=True)
class RuleOverride:
    enabled: Optional[bool] = None
    severity: Optional[str] = None


@dataclass
class Scope:
    rules: Dict[str, RuleOverride] = field(default_factory=dict)  # rule id -> override
    options: Dict[str, int] = field(default_factory=dict)


@dataclass
class Overrides:
    global_scope: Scope = field(default_factory=Scope)
    clusters: Dict[str, Scope] = field(default_factory=dict)

    def cluster_scope(self, aliases: Iterable[str]) -> Optional[Scope]:
        for alias in aliases:
            if alias in self.clusters:
                return self.clusters[alias]
        return None

    def decide(self, rule_id: str, aliases: Iterable[str]) -> Tuple[bool, Optional[str]]:
        """Whether the rule runs for a cluster, and the severity forced on it (None: keep)."""
        enabled, severity = True, None
        for scope in (self.global_scope, self.cluster_scope(aliases)):
            if scope is None or rule_id not in scope.rules:
                continue
            override = scope.rules[rule_id]
            if override.enabled is not None:
                enabled = override.enabled
            if override.severity is not None:
                severity = override.severity
        return enabled, severity

    def option(self, name: str, aliases: Iterable[str], cli_value: Optional[int]) -> Optional[int]:
        """Cluster-specific value beats the command line, which beats the file's global value."""
        scope = self.cluster_scope(aliases)
        if scope is not None and name in scope.options:
            return scope.options[name]
        if cli_value is not None:
            return cli_value
        return self.global_scope.options.get(name)


def load_overrides(path: Optional[str]) -> Overrides:
    if not path:
        return Overrides()
    data = load_yaml_file(path, f"--values {path}")
    if data is None:
        return Overrides()
    if not isinstance(data, dict):
        raise UserError(f"--values {path}: expected a mapping of top-level keys (lint:, render:, ...)")
    return parse_lint_section(data.get("lint"), f"--values {path}")


def parse_lint_section(section: Any, where: str) -> Overrides:
    if section is None:
        return Overrides()
    _mapping(section, f"{where}: lint", ("options", "rules", "clusters"))
    overrides = Overrides(global_scope=_scope(section, f"{where}: lint"))
    clusters = section.get("clusters")
    if clusters is not None:
        if not isinstance(clusters, dict):
            raise UserError(f"{where}: lint.clusters must map cluster names to {{rules: ..., options: ...}}")
        for name, body in clusters.items():
            label = f"{where}: lint.clusters.{name}"
            _mapping(body, label, ("options", "rules"))
            overrides.clusters[str(name)] = _scope(body, label)
    return overrides


def _mapping(value: Any, label: str, allowed: Tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise UserError(f"{label} must be a mapping with keys {', '.join(allowed)}")
    unknown = [str(k) for k in value if k not in allowed]
    if unknown:
        raise UserError(f"{label}: unknown key {unknown[0]!r}; valid keys: {', '.join(allowed)}")


def _scope(body: dict, label: str) -> Scope:
    scope = Scope()
    rules = body.get("rules")
    if rules is not None:
        if not isinstance(rules, dict):
            raise UserError(f"{label}.rules must map rule ids to {{enabled: false}} or {{severity: ...}}")
        for token, setting in rules.items():
            rule = resolve(str(token))
            if rule is None:
                raise UserError(f"{label}.rules: unknown rule {token!r}; valid rules: {valid_rule_tokens()}")
            scope.rules[rule.id] = _rule_override(setting, f"{label}.rules.{token}")
    options = body.get("options")
    if options is not None:
        if not isinstance(options, dict):
            raise UserError(f"{label}.options must be a mapping; valid keys: {', '.join(OPTION_RANGES)}")
        for key, value in options.items():
            if key not in OPTION_RANGES:
                raise UserError(f"{label}.options: unknown key {key!r}; valid keys: {', '.join(OPTION_RANGES)}")
            low, high = OPTION_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise UserError(f"{label}.options.{key}: expected an integer from {low} to {high}, got {value!r}")
            scope.options[key] = value
    return scope


def _rule_override(setting: Any, label: str) -> RuleOverride:
    if not isinstance(setting, dict) or not setting:
        raise UserError(f"{label}: expected {{enabled: true|false}} and/or {{severity: {'|'.join(SEVERITIES)}}}")
    unknown = [str(k) for k in setting if k not in RULE_KEYS]
    if unknown:
        raise UserError(f"{label}: unknown key {unknown[0]!r}; valid keys: {', '.join(RULE_KEYS)}")
    enabled = setting.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise UserError(f"{label}.enabled: expected true or false, got {enabled!r}")
    severity = setting.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise UserError(f"{label}.severity: {severity!r} is not a severity; valid: {', '.join(SEVERITIES)}")
    return RuleOverride(enabled, severity)
