"""The Dramatiq broker: in-process (embedded mode) or Redis (`SIYU_BROKER_URL`)."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq import Broker, Worker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

logger = logging.getLogger(__name__)

QUEUE = "siyu"
_actors: list[dramatiq.Actor[Any, Any]] = []
_broker: Broker | None = None


def register(actor: dramatiq.Actor[Any, Any]) -> dramatiq.Actor[Any, Any]:
    """Remember an actor so it can be declared on whichever broker is configured later."""
    _actors.append(actor)
    if _broker is not None:
        actor.broker = _broker
        _broker.declare_actor(actor)
    return actor


def configure_broker(url: str | None) -> Broker:
    """Create the broker for `url` (None: in-process) and declare every registered actor on it."""
    global _broker
    broker: Broker = RedisBroker(url=url) if url else StubBroker()
    if isinstance(broker, StubBroker):
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    for actor in _actors:
        actor.broker = broker
        broker.declare_actor(actor)
    _broker = broker
    return broker


def get_broker() -> Broker:
    if _broker is None:
        from siyu.config import get_settings

        return configure_broker(get_settings().broker_url)
    return _broker


def start_worker(broker: Broker, *, threads: int = 2) -> Worker:
    """Run a worker inside this process (embedded mode, tests, `siyu worker`)."""
    worker = Worker(broker, queues={QUEUE}, worker_threads=threads, worker_timeout=100)
    worker.start()
    logger.info("worker started", extra={"threads": threads, "broker": type(broker).__name__})
    return worker
