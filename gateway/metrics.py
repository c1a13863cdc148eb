"""Prometheus metrics, one registry per application (tests run several apps in one process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

# The *_created series double the scrape size and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The gateway's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered, by route and status class.",
            ["route", "status"],
            registry=self.registry,
        )
        self.ingested = Counter(
            "gateway_messages_ingested",
            "Inbound messages stored (replays not counted), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "gateway_messages_rejected",
            "Inbound messages refused as the sender's fault, by channel and reason.",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "gateway_outbox_depth",
            "Outbox rows by status (pending rows wait for the relay).",
            ["status"],
            registry=self.registry,
        )
        self.inbound_parked = Gauge(
            "gateway_inbound_parked",
            "Inbound input a channel gave up on, waiting for a person (gateway inbound parked).",
            ["channel"],
            registry=self.registry,
        )
        self.replayed = Counter(
            "gateway_inbound_replayed",
            "Parked inputs the gateway replayed by itself, by channel and outcome"
            " (replayed: stored and off the list; failed: still parked).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "gateway_queue_depth",
            "Jobs waiting in each RQ queue.",
            ["queue"],
            registry=self.registry,
        )
        self.relayed = Counter(
            "gateway_outbox_relayed",
            "Outbox rows handed to RQ.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
