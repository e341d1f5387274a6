"""Process output as people read it: bytes to lines, and lines to a progress percentage.

Owns two pure, synchronous helpers the runner and the lanes feed:

- `LineSplitter` turns arbitrary byte chunks into text lines. `\\n`, `\\r\\n` and a bare `\\r`
  end a line; a line ended by a bare `\\r` is a progress redraw, so the line after it is
  flagged to replace it (as a terminal would overwrite it). Colour escapes are removed.
- `ProgressTracker` recognises the progress formats ESPHome's tools print and reports a
  percentage that never goes down.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence
import re
from typing import Final

MAX_LINE_LENGTH: Final = 16_384
"""A partial line longer than this is emitted anyway, so a tool that never ends a line
(a dot-printing progress bar) cannot grow memory without bound."""

_NEWLINE: Final = re.compile(r"\r\n|\r|\n")
# CSI sequences (colours, cursor moves), OSC sequences (titles, links), character set
# selection (`ESC ( B`, which tput sgr0 emits) and two-byte escapes.
_ANSI: Final = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[()*+][0-9A-Za-z]"
    r"|\x1b[@-Z\\-_]"
)
# Control characters other than tab that survive escape removal (backspace, bell, stray ESC).
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Remove ANSI escape sequences and control characters (tab is kept)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


class LineSplitter:
    """Split a byte stream into `(line, replaces_previous)` pairs.

    Decoding is incremental UTF-8 with replacement, so a character split across two chunks
    decodes whole and invalid bytes become U+FFFD. A `\\r` at the very end of a chunk is held
    back until the next chunk shows whether it is half of a `\\r\\n`.
    """

    def __init__(self) -> None:
        """Start with an empty buffer."""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._replace_next = False

    def feed(self, data: bytes) -> list[tuple[str, bool]]:
        """Add a chunk; return the lines it completed."""
        self._buffer += self._decoder.decode(data)
        return self._drain(final=False)

    def flush(self) -> list[tuple[str, bool]]:
        """Return what is left at the end of the stream (a last line without a newline)."""
        self._buffer += self._decoder.decode(b"", final=True)
        lines = self._drain(final=True)
        if self._buffer:
            self._emit(self._buffer, "\n", lines)
            self._buffer = ""
        return lines

    def _drain(self, *, final: bool) -> list[tuple[str, bool]]:
        lines: list[tuple[str, bool]] = []
        buffer = self._buffer
        start = 0
        for match in _NEWLINE.finditer(buffer):
            if not final and match.group() == "\r" and match.end() == len(buffer):
                break
            self._emit(buffer[start : match.start()], match.group(), lines)
            start = match.end()
        rest = buffer[start:]
        while len(rest) > MAX_LINE_LENGTH:
            self._emit(rest[:MAX_LINE_LENGTH], "\n", lines)
            rest = rest[MAX_LINE_LENGTH:]
        self._buffer = rest
        return lines

    def _emit(self, raw: str, terminator: str, lines: list[tuple[str, bool]]) -> None:
        text = clean_text(raw)
        redraw = terminator == "\r"
        if not text and (redraw or self._replace_next):
            # A carriage return on an empty line moves nothing on screen, and a newline right
            # after a redrawn line only keeps that line: neither is a line of its own.
            if not redraw:
                self._replace_next = False
            return
        lines.append((text, self._replace_next))
        self._replace_next = redraw


# Ninja prints `[done/total]` per build step. Small totals are sub-builds (a bootloader,
# a library) whose steps would make progress jump, so a total counts only from NINJA_MIN_TOTAL
# steps and progress is measured against the largest total seen so far.
NINJA_MIN_TOTAL: Final = 10
_NINJA: Final = re.compile(r"^\[(\d+)/(\d+)\]")
_PERCENT_PATTERNS: Final = (
    # CMake and make: `[ 45%] Building C object ...`
    re.compile(r"^\[\s*(\d{1,3})%\]"),
    # ESPHome OTA (espota2): `Uploading: [=====     ] 45% `
    re.compile(r"^Uploading:\s*\[[^\]]*\]\s*(\d{1,3}(?:\.\d+)?)\s*%"),
    # esptool v5 bar: `Writing at 0x0001a000 [=====>    ]  27.3% 123/456 bytes...`
    re.compile(r"^Writing at 0x[0-9A-Fa-f]+\D*?\[[^\]]*\]\s*(\d{1,3}(?:\.\d+)?)\s*%"),
    # esptool v4 and others: `Writing at 0x00010000... (12 %)`
    re.compile(r"\((\d{1,3}(?:\.\d+)?)\s?%\)"),
)
# Lines that carry a percentage which is not job progress: memory usage, package unpacking.
_NOT_PROGRESS: Final = re.compile(
    r"^\s*(?:RAM|Flash|IRAM|DRAM)\s*:|^\s*(?:Unpacking|Downloading|Installing)\b", re.IGNORECASE
)


class ProgressTracker:
    """Turn output lines into a monotonic 0-100 progress value."""

    def __init__(self) -> None:
        """Start with no progress and no ninja total."""
        self._last: int | None = None
        self._ninja_total = 0

    @property
    def progress(self) -> int | None:
        """Return the highest progress reported so far."""
        return self._last

    def feed(self, line: str) -> int | None:
        """Return the new progress when `line` raises it, else None."""
        value = self._parse(line.strip())
        if value is None or value > 100 or (self._last is not None and value <= self._last):
            return None
        self._last = value
        return value

    def _parse(self, line: str) -> int | None:
        if _NOT_PROGRESS.search(line):
            return None
        if match := _NINJA.match(line):
            done, total = int(match[1]), int(match[2])
            if total < NINJA_MIN_TOTAL or done > total:
                return None
            self._ninja_total = max(self._ninja_total, total)
            return done * 100 // self._ninja_total
        for pattern in _PERCENT_PATTERNS:
            if match := pattern.search(line):
                return int(float(match[1]))
        return None


_FAILURE_MARKERS: Final = re.compile(r"ModuleNotFoundError|ImportError|command not found")


def indicates_failure(lines: Iterable[str]) -> bool:
    """Return True when output shows a broken installation even though the exit code was 0.

    A wrapper script whose Python environment is broken can print a traceback and still exit 0.
    """
    return any(_FAILURE_MARKERS.search(line) for line in lines)


FAILURE_SUMMARY_LIMIT: Final = 240
"""Characters of ESPHome's own message kept in a failed job's `error`."""

# ESPHome's log lines start with their level; a message of its own starts with `ERROR `.
_LOG_LEVEL: Final = re.compile(r"^(?:ERROR|WARNING|INFO|DEBUG|CRITICAL)\s+")
# A compiler's or a linker's own diagnosis (gcc and clang format: `file:line:col: error: ...`).
_COMPILER_ERROR: Final = re.compile(r":\s(?:fatal\s)?error:\s")
_LINKER_ERROR: Final = re.compile(r"(?:undefined reference to|multiple definition of)\s.*")
# Summaries that only say that something failed, not why: used when nothing better is there.
_GENERIC_ERROR: Final = re.compile(
    r"^(?:collect2: error: ld returned|ninja: build stopped|\*\*\* \[.*\] Error \d"
    r"|ERROR (?:Host build failed|Build failed)|={3,}.*FAILED)"
)
_ERROR_WORD: Final = re.compile(r"\berror\b|\bfailed\b", re.IGNORECASE)
_READING_CONFIG: Final = "Error while reading config:"
_TRACEBACK: Final = "Traceback (most recent call last):"


def failure_summary(lines: Sequence[str]) -> str | None:
    """Return ESPHome's own explanation of a failure, to show next to the exit code.

    Tried in this order, each on what ESPHome 2026 prints (see tests/fixtures/esphome_output):
    a validation error under "Failed config"; a file ESPHome could not read ("Error while
    reading config", a missing secret, a YAML syntax error); the first compiler or linker
    error; the exception that ended a Python traceback; ESPHome's last `ERROR` line (an OTA
    upload's reason); else the last line that names an error, else the last line printed.
    """
    texts = [line.rstrip() for line in lines]
    for finder in (
        _validation_error,
        _reading_error,
        _build_error,
        _traceback_error,
        _logged_error,
        _any_error,
    ):
        if found := finder(texts):
            return _shorten(found)
    return None


def _validation_error(texts: list[str]) -> str | None:
    """The message of the first "Failed config" block.

    ESPHome prints each invalid block as `key: [source file:line]`, then the block's YAML with
    the message set apart by a blank (indented) line, right above the key it concerns:

        sensor.uptime: [source kitchen.yaml:17]
          platform: uptime
          name: Uptime
          <blank>
          Unknown value 'banana', valid options are ...
          update_interval: banana
    """
    if "Failed config" not in texts:
        return None
    block = texts[texts.index("Failed config") + 1 :]
    in_block = False
    blank = False
    for text in block:
        if not in_block:
            in_block = text.endswith("]") and "[source " in text
            continue
        if not text.strip():
            blank = True
        elif blank:
            return text.strip()
    # An unusual layout: the first line that is not a block header.
    return next(
        (text.strip() for text in block if text.strip() and not text.endswith("]")),
        "Failed config",
    )


def _reading_error(texts: list[str]) -> str | None:
    """ESPHome's reason a file could not be read, with the place it names.

    `ERROR Error while reading config: Invalid YAML syntax:` is followed by a blank line and
    the reason; a location line (`in "file.yaml", line 6, column 9`) is put in brackets.
    """
    for index, text in enumerate(texts):
        if _READING_CONFIG not in text:
            continue
        head = text.split(_READING_CONFIG, 1)[1].strip()
        if not head.endswith(":"):
            return head
        parts: list[str] = []
        for line in texts[index + 1 :]:
            stripped = line.strip()
            if _LOG_LEVEL.match(line):
                break
            if not stripped:
                continue
            if stripped.startswith("in ") and parts:
                parts[-1] += f" ({stripped})"
            else:
                parts.append(stripped)
        return "; ".join(parts) or head.rstrip(":")
    return None


def _build_error(texts: list[str]) -> str | None:
    """The first error the compiler or the linker printed (the first one is the cause)."""
    for text in texts:
        if _GENERIC_ERROR.search(text):
            continue
        if _COMPILER_ERROR.search(text):
            return text.strip()
        if linker := _LINKER_ERROR.search(text):
            return linker.group()
    return None


def _traceback_error(texts: list[str]) -> str | None:
    """The exception line that ends the last Python traceback (`ModuleNotFoundError: ...`)."""
    if _TRACEBACK not in texts:
        return None
    start = len(texts) - 1 - texts[::-1].index(_TRACEBACK)
    for text in texts[start + 1 :]:
        if text and not text[0].isspace():
            return text.strip()
    return None


def _logged_error(texts: list[str]) -> str | None:
    """ESPHome's last `ERROR` line that says more than "it failed"; its level dropped."""
    for text in reversed(texts):
        if text.startswith("ERROR ") and not _GENERIC_ERROR.search(text):
            message = text.removeprefix("ERROR ").strip()
            # `ERROR (If you know the IP, ...)` is advice printed under the real message.
            if message and not message.startswith("("):
                return message
    return None


def _any_error(texts: list[str]) -> str | None:
    stripped = [text.strip() for text in texts]
    for text in reversed(stripped):
        if text and _ERROR_WORD.search(text):
            return _LOG_LEVEL.sub("", text)
    return next((text for text in reversed(stripped) if text), None)


_EXIT_PREFIX: Final = re.compile(r"^ESPHome \w+ failed with exit code -?\d+: ")


def reported_message(error: str) -> str:
    """Return a failed job's `error` without the "ESPHome compile failed with exit code N: "
    the executor puts before ESPHome's own message (what people want to read first)."""
    return _EXIT_PREFIX.sub("", error, count=1)


def _shorten(text: str) -> str:
    if len(text) <= FAILURE_SUMMARY_LIMIT:
        return text
    return text[: FAILURE_SUMMARY_LIMIT - 1] + "…"
