"""The Prometheus metrics of the prediction service (notebook 04; per variant: 09; scraped by Prometheus in 07).

| metric | type | labels |
|---|---|---|
| ``http_requests_total`` | counter | ``path``, ``status`` |
| ``http_request_duration_seconds`` | histogram | ``path`` |
| ``prediction_value`` | histogram | ``variant``, ``version`` |
| ``predicted_rows_total`` | counter | ``variant``, ``version`` |
| ``shadow_predicted_rows_total`` | counter | ``version`` |
| ``model_predict_seconds`` | histogram | ``variant`` |
| ``model_info`` | gauge (1 per variant) | ``variant``, ``name``, ``version``, ``alias``, ``uri`` |
| ``routing_canary_weight`` | gauge | |
| ``routing_mode`` | gauge (1 for the current mode) | ``mode`` |
"""

from __future__ import annotations

from collections.abc import Iterable

from mlops_helpers.serving.routing import MODES, Routing

#: Latency buckets (seconds): a single row takes a few milliseconds.
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Prediction buckets for CityBikes' hourly rentals (0 to about 1,000).
PREDICTION_BUCKETS = (0, 10, 25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    """The service's metrics on their own registry (a new one by default, so several services can share a process)."""

    def __init__(self, registry=None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # no `*_created` samples: they double the exposition and say nothing here
        self.registry = registry = registry or CollectorRegistry()
        self.requests = Counter("http_requests", "HTTP requests answered, by path and status code",
                                ["path", "status"], registry=registry)  # fmt: skip
        self.latency = Histogram("http_request_duration_seconds", "Time to answer, by path", ["path"],
                                 buckets=LATENCY_BUCKETS, registry=registry)  # fmt: skip
        self.predictions = Histogram("prediction_value", "Predicted values returned, one per row, by variant",
                                     ["variant", "version"], buckets=PREDICTION_BUCKETS, registry=registry)  # fmt: skip
        self.rows = Counter("predicted_rows", "Rows predicted and returned, by variant", ["variant", "version"],
                            registry=registry)  # fmt: skip
        self.shadow_rows = Counter("shadow_predicted_rows",
                                   "Rows the challenger predicted in shadow mode (logged, not returned)", ["version"],
                                   registry=registry)  # fmt: skip
        self.predict_seconds = Histogram("model_predict_seconds", "Time in the model's predict, by variant",
                                         ["variant"], buckets=LATENCY_BUCKETS, registry=registry)  # fmt: skip
        self.model_info = Gauge("model_info", "The models being served (1 per variant)",
                                ["variant", "name", "version", "alias", "uri"], registry=registry)  # fmt: skip
        self.canary_weight = Gauge("routing_canary_weight",
                                   "Share of request keys routed to the challenger in canary mode",
                                   registry=registry)  # fmt: skip
        self.mode = Gauge("routing_mode", "1 for the current routing mode", ["mode"], registry=registry)

    def request(self, path: str, status: int, seconds: float) -> None:
        self.latency.labels(path).observe(seconds)
        self.requests.labels(path, str(status)).inc()

    def answered(self, variant: str, version: str | None, values: Iterable[float]) -> None:
        values = list(values)
        self.rows.labels(variant, version or "").inc(len(values))
        histogram = self.predictions.labels(variant, version or "")
        for value in values:
            histogram.observe(value)

    def shadowed(self, version: str | None, rows: int) -> None:
        self.shadow_rows.labels(version or "").inc(rows)

    def publish(self, routing: Routing) -> None:
        """Expose the current variants and routing as gauges (after start, ``/routing`` and ``/reload``)."""
        self.model_info.clear()
        for variant in routing.variants():
            ref = variant.ref
            self.model_info.labels(variant.role, ref.name, ref.version or "", ref.alias or "", ref.uri).set(1)
        self.canary_weight.set(routing.weight)
        for name in MODES:
            self.mode.labels(name).set(1 if name == routing.mode else 0)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
