"""Prometheus metrics of every service: one registry per process, every metric defined once here, labelled by service.

Several apps may run in one process (the tests do): they share these metrics and tell themselves apart by the
``service`` label, and consumers and publishers also by ``replica`` (one per broker connection). Labels never
carry raw paths, ids or personal data: routes are templates, events are types, queues are names.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = structlog.get_logger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

HTTP_REQUESTS = Counter(
    "minsheng_http_requests",
    "HTTP requests answered, by route template and status (probes and /metrics not counted)",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "minsheng_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["service", "method", "route"],
)
EVENTS_PUBLISHED = Counter(
    "minsheng_events_published",
    "Events the broker confirmed, by event type (the routing key's prefix)",
    ["service", "replica", "event_type"],
)
PUBLISH_FAILURES = Counter(
    "minsheng_publish_failures",
    "Publishes the broker did not confirm (away, slow, unroutable), by event type",
    ["service", "replica", "event_type"],
)
EVENTS_CONSUMED = Counter(
    "minsheng_events_consumed",
    "Deliveries settled by a consumer: outcome ok, retry (sent to the .retry queue), parked, or requeued",
    ["service", "replica", "queue", "event_type", "outcome"],
)
EVENT_HANDLING = Histogram(
    "minsheng_event_handling_seconds",
    "Time a consumer's handler took for one event",
    ["service", "queue"],
)
EVENT_LAG = Histogram(
    "minsheng_event_lag_seconds",
    "Time from an event's occurred_at to the moment a consumer finished with it",
    ["service", "queue"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, float("inf")),
)
QUEUE_READY = Gauge(
    "minsheng_queue_messages_ready",
    "Messages waiting in a consumer's own queue (read by passive declare)",
    ["service", "queue"],
)
QUEUE_CONSUMERS = Gauge(
    "minsheng_queue_consumers",
    "Consumers attached to a consumer's own queue: the replicas sharing its work",
    ["service", "queue"],
)
QUEUE_PARKED = Gauge(
    "minsheng_queue_messages_parked",
    "Messages waiting in a consumer's parking queue for inspection and replay",
    ["service", "queue"],
)
OUTBOX_PENDING = Gauge(
    "minsheng_outbox_pending",
    "Accepted submissions in this intake's local outbox not yet confirmed by the broker",
    ["service"],
)

ALL = (
    HTTP_REQUESTS,
    HTTP_DURATION,
    EVENTS_PUBLISHED,
    PUBLISH_FAILURES,
    EVENTS_CONSUMED,
    EVENT_HANDLING,
    EVENT_LAG,
    QUEUE_READY,
    QUEUE_CONSUMERS,
    QUEUE_PARKED,
    OUTBOX_PENDING,
)
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def exposed_names() -> set[str]:
    """Every sample name these metrics expose (``…_total``, ``…_bucket``…), for checking dashboards against."""
    names = set()
    for metric in ALL:
        for family in metric.describe():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def exposition() -> bytes:
    """The process's metrics in Prometheus' text format (process and platform collectors included)."""
    return generate_latest(REGISTRY)


@dataclass(frozen=True)
class Identity:
    """Who reports a bus metric: the service and this replica of it."""

    service: str
    replica: str


_HOST = f"{socket.gethostname()}-{os.getpid()}"
_replicas: dict[str, itertools.count] = {}


def new_identity(service: str) -> Identity:
    """A replica id unique in the process: host-pid (the pod name in Kubernetes), numbered from the second on."""
    n = next(_replicas.setdefault(service, itertools.count(1)))
    return Identity(service, _HOST if n == 1 else f"{_HOST}-{n}")


def route_label(scope: dict[str, Any]) -> str:
    """The route template that answered (``/api/v1/suggestions/{suggestion_id}``), never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return path
    root, app_root = scope.get("root_path", ""), scope.get("app_root_path")
    if app_root is not None and root != app_root and root.startswith(app_root):
        return root[len(app_root) :] + "/{path}"  # a mounted app (static files)
    return "unmatched"


async def watch_queue(
    read_depth: Callable[[str], Awaitable[tuple[int, int]]], service: str, queue: str, parking: str, interval: float
) -> None:
    """Background task: every ``interval`` seconds, set the ready, consumer and parked gauges of one consumer queue."""
    while True:
        try:
            ready, consumers = await read_depth(queue)
            parked, _ = await read_depth(parking)
            QUEUE_READY.labels(service, queue).set(ready)
            QUEUE_CONSUMERS.labels(service, queue).set(consumers)
            QUEUE_PARKED.labels(service, queue).set(parked)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker is away for a moment: the next round reads again
            log.info("queue_depth_unavailable", queue=queue, error=type(exc).__name__)
        await asyncio.sleep(interval)


async def watch_outbox(pending: Callable[[], Awaitable[int]], service: str, interval: float) -> None:
    """Background task: every ``interval`` seconds, set the outbox gauge to the number of unpublished entries."""
    while True:
        try:
            OUTBOX_PENDING.labels(service).set(await pending())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the outbox is closing: nothing to report
            log.info("outbox_depth_unavailable", error=type(exc).__name__)
        await asyncio.sleep(interval)
