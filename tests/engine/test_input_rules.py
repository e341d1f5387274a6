"""Input hygiene: echoed input is escaped and short; configuration files and serial ports are real.

`shown` is the one way input appears in messages, placeholders and logs. The `check_*`
functions look at the file system: a configuration may be a link only to a file inside the
folder; a serial port must be a terminal device (or a serial URL).
"""

from __future__ import annotations

from collections.abc import Iterator
import errno
import os
from pathlib import Path

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.esphome_pipeline.engine import input_rules
from custom_components.esphome_pipeline.engine.errors import (
    SHOWN_LIMIT,
    InvalidConfigurationError,
    InvalidPortError,
    InvalidRequestError,
    UnknownJobError,
    is_plain_text,
    shown,
)
from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCli
from custom_components.esphome_pipeline.engine.input_rules import (
    check_configuration_file,
    check_serial_port,
    configuration_file_problem,
    configuration_name_problem,
    validate_configuration_name,
    validate_port,
)

LONG = "x" * 5000


# ------------------------------------------------------------------------------ shown


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kitchen.yaml", "kitchen.yaml"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x00\x7f\x85", "\\x00\\x7f\\x85"),
        ("evil\u202egnp.yaml", "evil\\u202egnp.yaml"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028break", "line\\u2028break"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("\U000e0001tag", "\\U000e0001tag"),
        ("ünï 🙂 ok", "ünï 🙂 ok"),
        (None, "None"),
        (42, "42"),
    ],
)
def test_shown_escapes_what_could_forge_or_hide_text(value: object, expected: str) -> None:
    """Control, format and separator characters are escaped; other text is kept as it is."""
    assert shown(value) == expected


def test_shown_shortens_long_input() -> None:
    """At most 200 characters, ending with the original length."""
    text = shown(LONG)
    assert len(text) <= SHOWN_LIMIT
    assert text.endswith("… (5000 characters)")
    assert text.startswith("xxxx")
    # Escapes count too, and are never cut in half.
    escaped = shown("\x1b" * 300)
    assert len(escaped) <= SHOWN_LIMIT
    assert escaped.removesuffix("… (300 characters)").replace("\\x1b", "") == ""


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=600) | st.text(st.characters(codec="utf-8"), max_size=300))
def test_shown_is_short_plain_and_stable(text: str) -> None:
    """For any text: short, plain, applying it twice changes nothing, plain short text kept."""
    echoed = shown(text)
    assert len(echoed) <= SHOWN_LIMIT
    assert is_plain_text(echoed)
    assert shown(echoed) == echoed
    if is_plain_text(text) and len(text) <= SHOWN_LIMIT:
        assert echoed == text


def test_validation_errors_echo_input_through_shown() -> None:
    """Every InvalidRequestError placeholder is shown(); messages echo shown() input."""
    bad_name = "bad\x1b[2J" + LONG + ".yaml"
    with pytest.raises(InvalidConfigurationError) as caught:
        validate_configuration_name(bad_name)
    assert caught.value.placeholders == {"configuration": shown(bad_name)}
    assert len(str(caught.value)) < 400
    assert "\x1b" not in str(caught.value)

    bad_port = "\n" + LONG
    with pytest.raises(InvalidPortError) as caught_port:
        validate_port(bad_port)
    assert caught_port.value.placeholders == {"port": shown(bad_port)}
    assert len(str(caught_port.value)) < 400
    assert "\n" not in str(caught_port.value)

    with pytest.raises(InvalidRequestError) as caught_cli:
        EsphomeCli.from_command_line("'unbalanced\x07" + LONG)
    assert len(str(caught_cli.value)) < 400
    assert "\x07" not in str(caught_cli.value)

    # Raised elsewhere with raw input (the unknown job id): the placeholder is still safe.
    unknown = UnknownJobError("No such job", job_id="id\r\n" + LONG)
    assert unknown.placeholders == {"job_id": shown("id\r\n" + LONG)}


# ------------------------------------------------------------------- configuration files


def test_configuration_names_that_need_escaping_are_refused() -> None:
    """A valid name is always echoed as it is: nothing shown() would escape is allowed."""
    for name in ("a\u202e.yaml", "zero\u200b.yaml", "c1\x85.yaml", "sep\u2028.yaml"):
        assert configuration_name_problem(name) == (
            "it contains control or invisible formatting characters"
        )
    assert configuration_name_problem("secrets.yml") == (
        "secrets.yml holds secrets, it is not a device configuration"
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A configuration folder with one real file, next to a file outside it."""
    config = tmp_path / "esphome"
    (config / "devices").mkdir(parents=True)
    (config / "kitchen.yaml").write_text("esphome:\n  name: kitchen\n")
    (config / "devices" / "inner.yaml").write_text("esphome:\n  name: inner\n")
    (tmp_path / "outside.yaml").write_text("esphome:\n  name: outside\n")
    return config


def test_links_inside_the_folder_are_accepted(folder: Path) -> None:
    """A link to a file anywhere inside the folder is a configuration, as is a plain file."""
    (folder / "alias.yaml").symlink_to("kitchen.yaml")
    (folder / "nested.yaml").symlink_to(folder / "devices" / "inner.yaml")
    for name in ("kitchen.yaml", "alias.yaml", "nested.yaml"):
        assert configuration_file_problem(folder, name) is None
        assert check_configuration_file(folder, name) == folder / name


def test_links_outside_the_folder_are_refused(folder: Path) -> None:
    """Absolute, relative and chained links that end outside are refused with the reason."""
    (folder / "escape.yaml").symlink_to(folder.parent / "outside.yaml")
    (folder / "relative.yaml").symlink_to("../outside.yaml")
    (folder / "hop.yaml").symlink_to("escape.yaml")
    for name in ("escape.yaml", "relative.yaml", "hop.yaml"):
        with pytest.raises(InvalidConfigurationError) as caught:
            check_configuration_file(folder, name)
        assert str(caught.value) == (
            f"Invalid configuration '{name}': "
            "it is a link to a file outside the configuration folder"
        )
        assert caught.value.placeholders == {"configuration": name}


def test_unusable_configuration_files(folder: Path) -> None:
    """Missing files, folders, loops and broken links each say what is wrong."""
    (folder / "loop.yaml").symlink_to("loop.yaml")
    (folder / "dangling.yaml").symlink_to("missing.yaml")
    (folder / "dir.yaml").mkdir()
    assert configuration_file_problem(folder, "absent.yaml") == "it does not exist"
    assert configuration_file_problem(folder, "dir.yaml") == "it is not a regular file"
    assert configuration_file_problem(folder, "dangling.yaml") == (
        "it is a link to a file that does not exist"
    )
    assert (configuration_file_problem(folder, "loop.yaml") or "").startswith(
        "it is a link that cannot be followed"
    )
    assert configuration_file_problem(folder, "../outside.yaml") == (
        "it must be a file name in the configuration folder, not a path"
    )
    assert (configuration_file_problem(folder / "kitchen.yaml", "x.yaml") or "").startswith(
        "it cannot be read"
    )


# ---------------------------------------------------------------------------- serial ports


@pytest.fixture
def pty_path() -> Iterator[str]:
    """The path of a real terminal device: the far end of a fresh pseudo-terminal."""
    controller, terminal = os.openpty()
    try:
        yield os.ttyname(terminal)
    finally:
        os.close(terminal)
        os.close(controller)


@pytest.fixture(params=["tty table", "open the device"])
def tty_lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the kernel's TTY table, and again as on a system without one."""
    if request.param == "open the device":
        monkeypatch.setattr(input_rules, "TTY_DRIVERS", Path("/nonexistent/tty/drivers"))
    return str(request.param)


@pytest.mark.usefixtures("tty_lookup")
def test_a_terminal_device_is_a_serial_port(pty_path: str) -> None:
    """A pseudo-terminal is a character device that is a TTY: accepted."""
    assert check_serial_port(pty_path) == pty_path


@pytest.mark.usefixtures("tty_lookup")
def test_dev_null_is_no_serial_port() -> None:
    """/dev/null is a character device but not a terminal: refused with the reason."""
    with pytest.raises(InvalidPortError) as caught:
        check_serial_port("/dev/null")
    assert str(caught.value) == (
        "Invalid upload port '/dev/null': it is not a serial port (not a terminal device)"
    )
    assert caught.value.placeholders == {"port": "/dev/null"}


@pytest.mark.parametrize(
    ("port", "reason"),
    [
        ("/dev/pts", "it is not a serial port (not a character device)"),
        ("/dev/ttyNOSUCHDEVICE9", "there is no such device"),
        ("COM3", "COM ports are Windows names; use the /dev path of the port"),
    ],
)
def test_other_paths_are_refused(port: str, reason: str) -> None:
    """Folders, missing devices and Windows names are no serial port here."""
    with pytest.raises(InvalidPortError) as caught:
        check_serial_port(port)
    assert str(caught.value) == f"Invalid upload port '{port}': {reason}"


@pytest.mark.parametrize(
    "port",
    ["OTA", "ota", "10.0.0.9", "living-room.local", "socket://127.0.0.1:4000", "rfc2217://h:2217"],
)
def test_network_ports_need_no_device(port: str) -> None:
    """OTA, hosts and serial URLs pass the check after the syntax check."""
    assert check_serial_port(port) == validate_port(port)


def test_syntax_is_checked_first() -> None:
    """A port that is not even well formed is refused before any file system look-up."""
    with pytest.raises(InvalidPortError, match="use OTA"):
        check_serial_port("/dev/../etc/passwd")


def test_tty_table_lines_that_do_not_parse_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only well-formed "<name> <path> <major> <minors> <type>" lines count."""
    null_major = os.major(Path("/dev/null").stat().st_rdev)
    table = tmp_path / "drivers"
    table.write_text(
        f"short line\nodd /dev/odd x 0-9 serial\nodd /dev/odd {null_major} a-b serial\n"
        f"odd /dev/odd {null_major} 0-x serial\n"
    )
    monkeypatch.setattr(input_rules, "TTY_DRIVERS", table)
    with pytest.raises(InvalidPortError, match="not a terminal device"):
        check_serial_port("/dev/null")
    table.write_text(f"memory /dev/mem {null_major} 0-255 system\n")
    assert check_serial_port("/dev/null") == "/dev/null"


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (errno.EBUSY, None),
        (errno.EACCES, "Invalid upload port '/dev/null': it cannot be opened (Permission denied)"),
    ],
)
def test_opening_a_busy_or_forbidden_device(
    monkeypatch: pytest.MonkeyPatch, error: int, problem: str | None
) -> None:
    """Without a TTY table: a port another program holds is in use (fine); a forbidden one not."""
    monkeypatch.setattr(input_rules, "TTY_DRIVERS", Path("/nonexistent/tty/drivers"))

    def refuse(path: str, flags: int, mode: int = 0o777) -> int:
        raise OSError(error, os.strerror(error), path)

    monkeypatch.setattr(os, "open", refuse)
    if problem is None:
        assert check_serial_port("/dev/null") == "/dev/null"
        return
    with pytest.raises(InvalidPortError) as caught:
        check_serial_port("/dev/null")
    assert str(caught.value) == problem


def test_an_unreadable_device_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A path that cannot even be looked at says so."""

    def refuse(self: Path, *, follow_symlinks: bool = True) -> os.stat_result:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "stat", refuse)
    with pytest.raises(InvalidPortError, match=r"it cannot be read \(Permission denied\)"):
        check_serial_port("/dev/ttyUSB0")
