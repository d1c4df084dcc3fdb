"""The Dramatiq broker: in-process (embedded mode) or Redis (`SIYU_BROKER_URL`)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq import Broker, Middleware, Worker
from dramatiq.broker import MessageProxy
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
    # No "process_boot" signal: its only effect is dramatiq's TimeLimit thread, which never stops, so
    # every app built in one process (tests build hundreds) would leave a thread waking each second;
    # jobs here have no time limit in either mode (a long import must not be killed at 10 minutes).
    broker: Broker = RedisBroker(url=url) if url else StubBroker()
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


class InFlight(Middleware):
    """Remembers the messages this process's worker threads are running, so a shutdown that
    cannot wait for them can hand them back to the broker (see `siyu.ops.shutdown`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, MessageProxy] = {}

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._lock:
            self._messages[message.message_id] = message

    def after_process_message(
        self, broker: Broker, message: MessageProxy, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        with self._lock:
            self._messages.pop(message.message_id, None)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._lock:
            self._messages.pop(message.message_id, None)

    def running(self) -> list[MessageProxy]:
        """The messages being processed now."""
        with self._lock:
            return list(self._messages.values())


def in_flight(broker: Broker) -> InFlight:
    """The broker's `InFlight` middleware (added on first use)."""
    for middleware in broker.middleware:
        if isinstance(middleware, InFlight):
            return middleware
    tracker = InFlight()
    broker.add_middleware(tracker)
    return tracker


def start_worker(broker: Broker, *, threads: int = 2) -> Worker:
    """Run a worker inside this process (embedded mode, tests, `siyu worker`)."""
    in_flight(broker)
    worker = Worker(broker, queues={QUEUE}, worker_threads=threads, worker_timeout=100)
    worker.start()
    logger.info("worker started", extra={"threads": threads, "broker": type(broker).__name__})
    return worker
