"""One module per target, each rendering all of that target's files from the catalog.

    prometheus   rule file, PrometheusRule, Alertmanager configuration
    grafana      Grafana dashboard
    datadog      recommended monitors and the dashboard
    docs         docs/signals.md and the README's signals table

Each module's `render(catalog)` returns {relative path: text}; `command` (the `render`
subcommand) chooses the targets and writes the files atomically. Shared wording and number
formats live in `text`, the Jinja2 templates in `templates/`. The query compilers turn the
catalog's query model into backend text: `promql` (Prometheus and Grafana) and `datadog_query`.
"""
