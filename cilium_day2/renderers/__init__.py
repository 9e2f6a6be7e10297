"""One module per target, each rendering all of that target's files from the catalog.

    prometheus   rule file, PrometheusRule, Alertmanager configuration
    grafana      Grafana dashboard
    datadog      recommended monitors and the dashboard
    docs         docs/signals.md and the README's signals table

Each module's `render(catalog)` returns {relative path: text}; `cilium_day2.render` chooses the
targets and writes the files. Shared wording and number formats live in `text`.
"""
