"""esptool's console output, routed to whoever runs esptool on the current thread.

Owns the one process-wide esptool logger this integration installs (esptool prints to stdout
by default; inside Home Assistant that would be lost or worse). Every message goes to this
module's debug log; a thread that runs an esptool session may also register an
`EsptoolListener` (`listening`) to receive the session's text lines and progress bars. The
listener is per thread because esptool's logger is one global object while several uploads
may run at once, each in its own executor thread.

Text is assembled into whole lines (esptool prints "Connecting...." one dot at a time with
`end=""`), stripped of control characters and cut to `MAX_LINE_LENGTH`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import logging
import threading
from typing import Any, Protocol

from esptool.logger import (  # type: ignore[import-untyped]
    TemplateLogger,
    log as esptool_log,
)

from ..output import MAX_LINE_LENGTH, clean_text

_LOGGER = logging.getLogger(__name__)


class EsptoolListener(Protocol):
    """Hears one thread's esptool session; called in that (executor) thread."""

    def line(self, text: str) -> None:
        """A whole line esptool printed (cleaned, never empty)."""

    def bar(self, current: int, total: int, label: str) -> None:
        """esptool's progress bar: `current` of `total` (bytes), `label` like `Writing at ...`."""


class _Session:
    """A listener and the partial line esptool has printed so far on this thread."""

    __slots__ = ("listener", "partial")

    def __init__(self, listener: EsptoolListener) -> None:
        self.listener = listener
        self.partial = ""

    def text(self, text: str) -> None:
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()[:MAX_LINE_LENGTH]
        for line in lines:
            self.emit(line)

    def flush(self) -> None:
        if self.partial:
            self.emit(self.partial)
            self.partial = ""

    def emit(self, line: str) -> None:
        cleaned = clean_text(line).strip()[:MAX_LINE_LENGTH]
        if cleaned.strip("."):  # not empty, not only the dots of "Connecting...."
            self.listener.line(cleaned)


_current = threading.local()


def _session() -> _Session | None:
    session: _Session | None = getattr(_current, "session", None)
    return session


@contextmanager
def listening(listener: EsptoolListener) -> Iterator[None]:
    """Send this thread's esptool output to `listener` until the block ends."""
    route_esptool_output()
    previous = _session()
    session = _Session(listener)
    _current.session = session
    try:
        yield
    finally:
        session.flush()
        _current.session = previous


class _LoggingOutput(TemplateLogger):  # type: ignore[misc]
    """esptool's console output, sent to the debug log and to the thread's listener."""

    def print(self, *args: Any, **kwargs: Any) -> None:
        sep = str(kwargs.get("sep", " "))
        end = kwargs.get("end", "\n")
        message = sep.join(str(arg) for arg in args)
        if message.strip():
            _LOGGER.debug("esptool: %s", message.strip())
        session = _session()
        if session is not None:
            session.text(message + ("\n" if end is None else str(end)))

    def note(self, message: str) -> None:
        self._tagged("Note", message)

    def warning(self, message: str) -> None:
        self._tagged("Warning", message)

    def error(self, message: str) -> None:
        self._tagged("Error", message)

    def _tagged(self, tag: str, message: str) -> None:
        _LOGGER.debug("esptool %s: %s", tag.lower(), message)
        session = _session()
        if session is not None:
            session.flush()
            session.text(f"{tag}: {message}\n")

    def debug(self, *args: Any) -> None:
        """Trace detail: the debug log only, never a job's log."""
        _LOGGER.debug("esptool debug: %s", "".join(str(arg) for arg in args))

    def stage(self, finish: bool = False) -> None:
        """Collapsible stages are a console feature; nothing to do."""

    def progress_bar(
        self,
        cur_iter: int,
        total_iters: int,
        prefix: str = "",
        suffix: str = "",
        bar_length: int = 30,
    ) -> None:
        """Hand the bar to the listener (which may stop the session by raising)."""
        session = _session()
        if session is not None:
            session.flush()
            session.listener.bar(cur_iter, total_iters, clean_text(prefix).strip())

    def set_verbosity(self, verbosity: str) -> None:
        """The log level decides."""


_ROUTE_LOCK = threading.Lock()
_routed = False


def route_esptool_output() -> None:
    """Install the routing logger once per process (esptool's logger is process-wide)."""
    global _routed  # noqa: PLW0603 - one process-wide switch for esptool's process-wide logger
    with _ROUTE_LOCK:
        if not _routed:
            esptool_log.set_logger(_LoggingOutput())
            _routed = True
