"""Third-party captures (read from ../shared/fixtures, never copied): no crash, Day-2 families out."""

from datadog_checks.base import AgentCheck
from datadog_checks.dev.utils import get_metadata_metrics

from cilium_day2 import metrics

from .common import make_check, mapped_families_in

CAPTURES = {
    "agent": ["DataDog__integrations-core__agent_metrics.txt", "cilium__cilium__issue36818__bpf_map_pressure_v1.16.4.prom"],
    "operator": ["DataDog__integrations-core__operator_metrics.txt"],
    "hubble": ["kubeovn__docs__cilium-hubble-observe.md.hubble_metrics.prom"],
}
OPTION = {"agent": "agent_endpoint", "operator": "operator_endpoint", "hubble": "hubble_endpoint"}


def test_captures_are_collected(shared_fixtures, metrics_server, aggregator, dd_run_check):
    for component, files in CAPTURES.items():
        for name in files:
            aggregator.reset()
            text = (shared_fixtures / name).read_text()
            # A capture saved to a file may have lost the final newline a live endpoint sends;
            # served without it, the body would be a truncated one (refused, as Prometheus does).
            text = text if text.endswith("\n") else text + "\n"
            url = metrics_server.serve(f"/{name}", text)
            dd_run_check(make_check({OPTION[component]: url}))
            aggregator.assert_service_check(f"cilium_day2.{component}.openmetrics.health", AgentCheck.OK)
            present = mapped_families_in(text, component)
            assert present, name
            for family in present:
                for sub_name in metrics.submitted_names(family, metrics.COMPONENT_MAPS[component][family]):
                    assert aggregator.metrics(sub_name) or aggregator.histogram_bucket(sub_name), (name, sub_name)
            aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)


def test_quoted_lost_events_with_repeated_series(shared_fixtures, metrics_server, aggregator, dd_run_check):
    # Values quoted from two pods in one file: untyped, and the same series twice. The first
    # occurrence wins, the repeat is dropped rather than sent as a bogus counter reset.
    text = (shared_fixtures / "cilium__cilium__issue44725__hubble_lost_events_samples.txt").read_text()
    dd_run_check(make_check({"hubble_endpoint": metrics_server.serve("/m", text)}))
    aggregator.assert_service_check("cilium_day2.hubble.openmetrics.health", AgentCheck.OK)
    ring = [s for s in aggregator.metrics("cilium_day2.hubble.lost_events.count")
            if "cilium_source:hubble_ring_buffer" in s.tags]
    assert [s.value for s in ring] == [668157]


def test_block_path_reads_captures_as_the_line_path_does(shared_fixtures):
    # Real expositions, whole and cut into chunks at odd places: the bulk reader's result is
    # exactly the line-by-line reading of the same text.
    from cilium_day2.exposition.reader import ExpositionReader, FamilyPlan

    class LineByLine(ExpositionReader):
        def _match_block(self, text, pos, end, count, allowed):
            return [], [(pos, end)]

    def read(reader_class, plans, chunks):
        samples = []

        def on_rows(plan, name, names, rows):
            for row in rows:
                row = (row,) if isinstance(row, str) else row
                samples.append((name, tuple(sorted(zip(names, row[:-1]))), row[-1]))

        reader = reader_class(plans, lambda plan, name, pairs, value: samples.append(
            (name, tuple(sorted(pairs)), repr(value))), on_rows=on_rows)
        reader.read(chunks)
        return sorted((name, pairs, repr(float(value)) if isinstance(value, str) else value)
                      for name, pairs, value in samples), reader.stats

    for component, files in CAPTURES.items():
        reduce = metrics.HUBBLE_BOUNDED_LABELS if component == "hubble" else {}
        plans = [FamilyPlan(family, metrics.metric_type(family), reduce.get(family))
                 for family in metrics.COMPONENT_MAPS[component]]
        for name in files:
            text = (shared_fixtures / name).read_text()
            expected, expected_stats = read(LineByLine, plans, [text])
            assert expected, name
            for size in (len(text), 4096, 977):
                chunks = [text[i:i + size] for i in range(0, len(text), size)]
                got, stats = read(ExpositionReader, plans, chunks)
                assert got == expected, (name, size)
                assert (stats.kept, stats.malformed, stats.duplicates) == (
                    expected_stats.kept, expected_stats.malformed, expected_stats.duplicates), (name, size)
