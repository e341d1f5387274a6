"""Tests for engine/output.py: line splitting and progress parsing."""

from __future__ import annotations

import pytest

from custom_components.esphome_pipeline.engine.output import (
    MAX_LINE_LENGTH,
    LineSplitter,
    ProgressTracker,
    clean_text,
    failure_summary,
    indicates_failure,
)


def split_all(*chunks: bytes) -> list[tuple[str, bool]]:
    """Feed every chunk then flush; return all lines."""
    splitter = LineSplitter()
    lines: list[tuple[str, bool]] = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines + splitter.flush()


def test_newline_kinds() -> None:
    """\\n, \\r\\n and a final line without newline each end one line."""
    assert split_all(b"a\nb\r\nc") == [("a", False), ("b", False), ("c", False)]


def test_empty_lines_are_kept() -> None:
    """Blank lines between text are real output."""
    assert split_all(b"a\n\nb\n") == [("a", False), ("", False), ("b", False)]


def test_carriage_return_redraw_replaces_previous() -> None:
    """A line ended by a bare \\r is redrawn by the next line."""
    assert split_all(b"10%\r20%\r30%\ndone\n") == [
        ("10%", False),
        ("20%", True),
        ("30%", True),
        ("done", False),
    ]


def test_espota_style_leading_carriage_returns() -> None:
    """ESPHome's OTA bar writes `\\r` before each redraw and a newline at the end."""
    data = b"INFO Uploading\n\rUploading: [=  ] 10% \rUploading: [===] 100% Done...\nINFO OK\n"
    assert split_all(data) == [
        ("INFO Uploading", False),
        ("Uploading: [=  ] 10% ", False),
        ("Uploading: [===] 100% Done...", True),
        ("INFO OK", False),
    ]


def test_newline_right_after_redraw_keeps_the_line() -> None:
    """`50%\\r\\r\\n` shows 50% and moves on; no blank line replaces it."""
    assert split_all(b"50%\r\r\nnext\n") == [("50%", False), ("next", False)]


def test_crlf_split_across_chunks_is_one_newline() -> None:
    """A \\r at the end of a chunk followed by \\n in the next is one newline."""
    assert split_all(b"a\r", b"\nb\n") == [("a", False), ("b", False)]
    splitter = LineSplitter()
    assert splitter.feed(b"a\r") == []
    assert splitter.feed(b"\n") == [("a", False)]


def test_cr_at_chunk_end_followed_by_text_is_redraw() -> None:
    """A held-back \\r turns out to be a redraw when text follows."""
    assert split_all(b"1%\r", b"2%\n") == [("1%", False), ("2%", True)]


def test_trailing_cr_at_end_of_stream() -> None:
    """A stream ending in \\r still emits its last line."""
    assert split_all(b"last\r") == [("last", False)]


@pytest.mark.parametrize("cut", range(1, 4))
def test_multibyte_character_split_across_chunks(cut: int) -> None:
    """A UTF-8 character split over chunks decodes whole."""
    data = "x€y\n".encode()
    assert split_all(data[:cut], data[cut:]) == [("x€y", False)]


def test_invalid_utf8_is_replaced() -> None:
    """Undecodable bytes become U+FFFD instead of failing."""
    assert split_all(b"bad \xff\xfe byte\n") == [("bad \ufffd\ufffd byte", False)]


def test_truncated_utf8_at_end_is_replaced() -> None:
    """A character cut off by the end of the stream becomes U+FFFD."""
    assert split_all(b"end \xe2\x82") == [("end \ufffd", False)]


def test_ansi_colours_and_control_characters_are_removed() -> None:
    """Colour codes, OSC titles, bells and backspaces vanish; tabs stay."""
    data = b"\x1b[32mINFO\x1b[0m ok\tx\x07\x08\n\x1b]0;title\x07T\n\x1b(Bz\n"
    assert split_all(data) == [("INFO ok\tx", False), ("T", False), ("z", False)]
    assert clean_text("\x1b[1;31mERR\x1b[0m") == "ERR"


def test_line_only_colour_codes_after_redraw_is_dropped() -> None:
    """A line that is only escapes right after a redraw does not blank the redrawn line."""
    assert split_all(b"5%\r\x1b[0m\nnext\n") == [("5%", False), ("next", False)]


def test_overlong_partial_line_is_emitted() -> None:
    """A line that never ends is cut at MAX_LINE_LENGTH so memory stays bounded."""
    splitter = LineSplitter()
    lines = splitter.feed(b"." * (MAX_LINE_LENGTH * 2 + 5))
    assert [len(text) for text, _ in lines] == [MAX_LINE_LENGTH, MAX_LINE_LENGTH]
    assert splitter.flush() == [("." * 5, False)]


def test_flush_of_empty_splitter() -> None:
    """Nothing fed, nothing returned."""
    assert LineSplitter().flush() == []


def feed_all(lines: list[str]) -> list[int | None]:
    """Feed lines to a fresh tracker; return each result."""
    tracker = ProgressTracker()
    return [tracker.feed(line) for line in lines]


def test_ninja_progress_uses_largest_total() -> None:
    """[N/M] counts against the largest total seen; small sub-builds are ignored."""
    assert feed_all(
        [
            "[1/5] small sub-build",
            "[10/200] Compiling a.o",
            "[50/100] second phase with smaller total",
            "[100/200] Compiling b.o",
            "[200/200] Linking",
        ]
    ) == [None, 5, 25, 50, 100]


def test_ninja_ignores_done_above_total() -> None:
    """A malformed counter is not progress."""
    assert feed_all(["[300/200] x"]) == [None]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[ 45%] Building C object foo.o", 45),
        ("[7%] Linking", 7),
        ("Uploading: [=====               ] 45% ", 45),
        ("Uploading: [====================] 100% Done...", 100),
        ("Writing at 0x00010000... (12 %)", 12),
        ("Writing at 0x0001a000 [=====>     ]  27.3% 123/456 bytes...", 27),
        ("Something (33%)", 33),
        ("  [ 9%] indented", 9),
    ],
)
def test_percent_patterns(line: str, expected: int) -> None:
    """Each supported tool format yields its percentage."""
    assert ProgressTracker().feed(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "RAM:   [=         ]  10.2% (used 33412 bytes from 327680 bytes)",
        "Flash: [====      ]  41.0% (used 751234 bytes from 1835008 bytes)",
        "Unpacking  [####################################]  100%",
        "Downloading  [#####] 50% (12 %)",
        "INFO 45% of something without a known format",
        "[ 250%] nonsense",
        "Writing at 0x00010000... (250 %)",
        "",
    ],
)
def test_lines_that_are_not_progress(line: str) -> None:
    """Memory usage, package bars, unknown formats and values above 100 are ignored."""
    assert ProgressTracker().feed(line) is None


def test_progress_never_goes_down() -> None:
    """Only a rise is reported; equal or lower values return None."""
    tracker = ProgressTracker()
    assert tracker.progress is None
    assert [tracker.feed(f"[{n:3d}%] x") for n in (10, 10, 5, 60, 59, 100, 100)] == [
        10,
        None,
        None,
        60,
        None,
        100,
        None,
    ]
    assert tracker.progress == 100


def test_zero_is_reported_first() -> None:
    """0 % is a value (progress has started) and is reported once."""
    assert feed_all(["[0/100] start", "[0/100] again"]) == [0, None]


@pytest.mark.parametrize(
    ("lines", "failed"),
    [
        (["ModuleNotFoundError: No module named 'esphome'"], True),
        (["ImportError: cannot import name 'x'"], True),
        (["sh: 1: esphome: command not found"], True),
        (["INFO Successfully compiled program."], False),
        ([], False),
    ],
)
def test_indicates_failure(lines: list[str], failed: bool) -> None:
    """A broken installation shows in the output even when the exit code is 0."""
    assert indicates_failure(lines) is failed


@pytest.mark.parametrize(
    ("lines", "summary"),
    [
        (
            [
                "INFO Reading configuration bad.yaml...",
                "Failed config",
                "",
                "api: [source bad.yaml:6]",
                "  ",
                "  Expected integer, but cannot parse not-a-port-number as an integer.",
                "  port: not-a-port-number",
            ],
            "Expected integer, but cannot parse not-a-port-number as an integer.",
        ),
        (
            [
                "[3/9] Compiling src/main.cpp.o",
                "src/main.cpp:12:3: error: 'foo' was not declared in this scope",
                "ninja: build stopped: subcommand failed.",
                "INFO done",
            ],
            "src/main.cpp:12:3: error: 'foo' was not declared in this scope",
        ),
        (
            ["INFO Building", "ninja: build stopped: subcommand failed."],
            "ninja: build stopped: subcommand failed.",
        ),
        (["Traceback (most recent call last):", '  File "x.py"'], 'File "x.py"'),
        (["ERROR Error while reading config: bad things"], "bad things"),
        (["ERROR Error while reading config: Invalid YAML syntax:"], "Invalid YAML syntax"),
        (["INFO Uploading", "", "Connection refused"], "Connection refused"),
        (["Failed config", "x: [source a.yaml:1]"], "Failed config"),
        ([], None),
        (["", "  "], None),
    ],
)
def test_failure_summary_picks_esphome_s_own_words(lines: list[str], summary: str | None) -> None:
    assert failure_summary(lines) == summary


def test_failure_summary_is_bounded() -> None:
    summary = failure_summary(["ERROR " + "x" * 1000])
    assert summary is not None
    assert len(summary) == 240
    assert summary.endswith("…")
