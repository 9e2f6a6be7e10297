"""Configuration guardrails for Cilium (`cilium-day2 lint-config`).

Data flows one way:

    file -> formats.load_source()   detect Helm values / cilium-config ConfigMap / text dump,
                                    normalise every key to its cilium-config name (RawValue)
         -> model.build_config()    one typed, validated ClusterConfig per file
         -> rules.evaluate()        rule catalog (data/lint_rules.yaml) + small predicates
         -> overrides / suppressions applied
         -> report.render()         table, JSON or SARIF
"""
