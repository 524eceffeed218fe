"""Prometheus metrics of the token engine, on a registry of its own.

No metric carries a token, a secret or a claim value other than timestamps.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["EngineMetrics", "REFRESH_RESULTS"]

REFRESH_RESULTS = ("success", "unavailable", "idp_error", "rejected", "write_error")


class EngineMetrics:
    """The engine's gauges and counters, registered on ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.expiry = Gauge(
            "webid_token_expiry_timestamp_seconds",
            "Expiry (exp) of the token in the file, as a Unix timestamp.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "webid_token_last_refresh_success_timestamp_seconds",
            "When a token was last written, as a Unix timestamp.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "webid_token_ready",
            "1 while the token file holds a valid, fresh token.",
            registry=self.registry,
        )
        self.refreshes = Counter(
            "webid_token_refreshes",
            "Token refresh attempts by result.",
            ["result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "webid_token_fetch_duration_seconds",
            "Time to fetch a token from the IdP.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        for result in REFRESH_RESULTS:
            self.refreshes.labels(result=result)
