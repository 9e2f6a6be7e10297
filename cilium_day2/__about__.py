# Kept equal to datadog_checks/cilium_day2/__about__.py (the version the wheel is built with) by a
# test; this package cannot import that one, which needs datadog-checks-base.
__version__ = "0.1.0"
