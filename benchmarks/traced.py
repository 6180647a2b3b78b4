"""`jobpulse serve` with tracing on and every span kept in memory: the telemetry-on side of the
HTTP benchmark, so the figure is the cost of making spans, not of shipping them anywhere.

    python -m benchmarks.traced serve --port 8001 --database-url ...
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobpulse.cli import app


def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "jobpulse"}))
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
    app()


if __name__ == "__main__":
    main()
