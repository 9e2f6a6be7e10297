"""Reading a Cilium metrics endpoint, shared by the Agent check and `doctor`.

    body     the HTTP response body within a whole-response deadline and a size limit
    reader   the Prometheus/OpenMetrics text read family block by family block, bounded per line

Both callers use these two modules and nothing else to read an endpoint, so the check and the
upgrade gate apply the same limits and see the same samples.
"""
