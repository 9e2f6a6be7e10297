from datadog_checks.base import ConfigurationError, OpenMetricsBaseCheckV2
from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsScraper

from .config import build_scraper_configs
from .scraper import CiliumScraper, InvalidEndpoint

# The scraper overrides `OpenMetricsScraper._scrape`, which datadog-checks-base has had since
# 37.10.0 (Agent 7.66). On an older base the method is never called: the base class's generic
# parser would run instead, without the check's reading, reduction and fault reporting.
MINIMUM_BASE = "37.10.0"
MINIMUM_AGENT = "7.66"


class CiliumDay2Check(OpenMetricsBaseCheckV2):
    """Day-2 signals from the Cilium agent (:9962), operator (:9963) and Hubble (:9965)."""

    __NAMESPACE__ = "cilium_day2"

    # The operator reports IPAM per node (three series per node, thousands on large clusters):
    # a silent context cap would drop them. Hubble is bounded by label reduction instead.
    DEFAULT_METRIC_LIMIT = 0

    def __init__(self, name, init_config, instances):
        super().__init__(name, init_config, instances)
        # Before the base class builds scrapers from `scraper_configs`.
        self.check_initializations.appendleft(self._configure)

    def _configure(self):
        if not hasattr(OpenMetricsScraper, "_scrape"):
            raise ConfigurationError(
                f"cilium_day2 needs datadog-checks-base {MINIMUM_BASE} or later (Datadog Agent {MINIMUM_AGENT} "
                f"or later); upgrade the Agent"
            )
        self.scraper_configs = build_scraper_configs(self.instance)

    def configure_scrapers(self):
        # Keyed by component, not by URL as in the base class: two components on the same URL
        # (a misconfiguration, or a test double) must still be scraped and reported separately.
        self.scrapers = {config["cilium_component"]: self.create_scraper(config) for config in self.scraper_configs}

    def create_scraper(self, config):
        if "config_error" in config:
            return InvalidEndpoint(self, config)
        return CiliumScraper(self, self.get_config_with_defaults(config))

    def check(self, _):
        # Each endpoint is scraped and reported on its own: one failing never stops the others.
        for scraper in self.scrapers.values():
            with self.adopt_namespace(scraper.namespace):
                problem = scraper.run_once()
            if problem:
                self.warning("%s", problem)
