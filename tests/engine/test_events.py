"""Tests of the event hub."""

from __future__ import annotations

from collections.abc import Callable
import logging

import pytest

from custom_components.esphome_pipeline.engine.events import EventHub, EventKind, JobEvent
from custom_components.esphome_pipeline.engine.models import Job, JobType, Lane


def _event() -> JobEvent:
    return JobEvent(
        EventKind.STATUS, Job(configuration="a.yaml", job_type=JobType.COMPILE, lane=Lane.COMPILE)
    )


def test_subscribe_order_and_unsubscribe() -> None:
    hub = EventHub()
    seen: list[str] = []
    first = hub.subscribe(lambda event: seen.append("first"))
    hub.subscribe(lambda event: seen.append("second"))
    hub.emit(_event())
    first()
    first()  # a second unsubscribe is harmless
    hub.emit(_event())
    assert seen == ["first", "second", "second"]


def test_raising_listener_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub()
    seen: list[JobEvent] = []

    def broken(event: JobEvent) -> None:
        raise RuntimeError("listener bug")

    hub.subscribe(broken)
    hub.subscribe(seen.append)
    event = _event()
    with caplog.at_level(logging.ERROR):
        hub.emit(event)
    assert seen == [event]
    assert "listener failed" in caplog.text
    assert "listener bug" in caplog.text


def test_listener_may_unsubscribe_itself() -> None:
    hub = EventHub()
    seen: list[str] = []
    handles: list[Callable[[], None]] = []

    def once(event: JobEvent) -> None:
        seen.append("once")
        handles[0]()

    handles.append(hub.subscribe(once))
    hub.subscribe(lambda event: seen.append("always"))
    hub.emit(_event())
    hub.emit(_event())
    assert seen == ["once", "always", "always"]
