"""Tests for engine/esphome_cli.py: argv, environment, validation, version probe, detection."""

from __future__ import annotations

import asyncio
from pathlib import Path
import shlex
import sys

import pytest

from custom_components.esphome_pipeline.engine import esphome_cli, runner
from custom_components.esphome_pipeline.engine.errors import (
    InvalidConfigurationError,
    InvalidPortError,
    InvalidRequestError,
    shown,
)
from custom_components.esphome_pipeline.engine.esphome_cli import (
    EsphomeCli,
    EsphomeCliError,
    detect_command_line,
    probe_version,
    validate_configuration_name,
    validate_port,
)
from custom_components.esphome_pipeline.engine.models import Job, JobType, Lane
from tests.fakes import CONFIG_DIR_ENV, FAKE_VERSION, FakeEsphome, fake_cli

CLI = EsphomeCli(("/opt/esphome/bin/esphome",))


def job(job_type: JobType, configuration: str = "kitchen.yaml", port: str | None = None) -> Job:
    """Build a job of a type."""
    lane = Lane.UPLOAD if job_type is JobType.UPLOAD else Lane.COMPILE
    return Job(configuration=configuration, job_type=job_type, lane=lane, port=port)


def test_argv_per_job_type(tmp_path: Path) -> None:
    """Each job type maps to the real CLI's subcommand and arguments."""
    yaml = str(tmp_path / "kitchen.yaml")
    assert CLI.argv(job(JobType.COMPILE), tmp_path) == [*CLI.command, "compile", yaml]
    assert CLI.argv(job(JobType.UPLOAD), tmp_path) == [
        *CLI.command,
        "upload",
        yaml,
        "--device",
        "OTA",
    ]
    assert CLI.argv(job(JobType.UPLOAD, port="/dev/ttyUSB0"), tmp_path)[-2:] == [
        "--device",
        "/dev/ttyUSB0",
    ]
    assert CLI.argv(job(JobType.CLEAN), tmp_path) == [*CLI.command, "clean", yaml]
    assert CLI.argv(job(JobType.RESET_BUILD_ENV, configuration=""), tmp_path) == [
        *CLI.command,
        "clean-all",
        str(tmp_path),
    ]
    assert CLI.version_argv() == [*CLI.command, "version"]


def test_environment_adds_output_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child gets unbuffered UTF-8 and no colours, on top of the base environment."""
    env = CLI.environment({"PATH": "/bin", "PYTHONUNBUFFERED": "0"})
    assert env == {
        "PATH": "/bin",
        "PYTHONUNBUFFERED": "1",
        "PYTHONUTF8": "1",
        "PYTHONIOENCODING": "utf-8",
        "NO_COLOR": "1",
        "PLATFORMIO_DISABLE_COLOR": "true",
    }
    monkeypatch.setenv("PIPELINE_TEST_MARK", "x")
    assert CLI.environment()["PIPELINE_TEST_MARK"] == "x"


def test_from_command_line_splits_like_a_shell() -> None:
    """Quotes group words; the command line round-trips."""
    cli = EsphomeCli.from_command_line("'/opt/my venv/bin/python' -m esphome")
    assert cli.command == ("/opt/my venv/bin/python", "-m", "esphome")
    assert EsphomeCli.from_command_line(cli.command_line) == cli


@pytest.mark.parametrize("line", ["", "   ", "'unbalanced"])
def test_from_command_line_rejects(line: str) -> None:
    """Empty or unparsable command lines are invalid requests."""
    with pytest.raises(InvalidRequestError):
        EsphomeCli.from_command_line(line)


@pytest.mark.parametrize(
    "name",
    ["kitchen.yaml", "living-room.yml", "Dev_1.YAML", "with space.yaml", "ünï.yaml", "a.b.yaml"],
)
def test_valid_configuration_names(name: str) -> None:
    """Plain YAML file names pass unchanged."""
    assert validate_configuration_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "kitchen",
        "kitchen.txt",
        "kitchen.yaml ",
        ".yaml",
        ".hidden.yaml",
        "sub/kitchen.yaml",
        "../kitchen.yaml",
        "sub\\kitchen.yaml",
        "/abs/kitchen.yaml",
        "secrets.yaml",
        "Secrets.YML",
        "bad\x00.yaml",
        "bad\n.yaml",
        "bad\x7f.yaml",
        "x" * 300 + ".yaml",
    ],
)
def test_invalid_configuration_names(name: str) -> None:
    """Paths, hidden files, secrets, other extensions and control characters are refused."""
    with pytest.raises(InvalidConfigurationError) as caught:
        validate_configuration_name(name)
    assert caught.value.translation_key == "invalid_configuration"
    assert caught.value.placeholders == {"configuration": shown(name)}


def test_configuration_name_must_be_a_string() -> None:
    """A non-string is refused, not crashed on."""
    with pytest.raises(InvalidConfigurationError):
        validate_configuration_name(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ("OTA", "OTA"),
        ("  OTA\n", "OTA"),
        ("ota", "OTA"),
        ("Ota", "OTA"),
        ("192.168.1.10", "192.168.1.10"),
        ("fe80::1", "fe80::1"),
        ("::1", "::1"),
        ("living-room.local", "living-room.local"),
        ("device", "device"),
        ("esp-1.lan.", "esp-1.lan."),
        ("/dev/ttyUSB0", "/dev/ttyUSB0"),
        ("/dev/serial/by-id/usb-Silicon_Labs_CP2102-if00-port0", None),
        ("/dev/cu.usbserial-0001", None),
        ("COM3", "COM3"),
        ("com12", "com12"),
        ("socket://127.0.0.1:4000", None),
        ("rfc2217://host.lan:2217", None),
        ("socket://[::1]:4000", None),
    ],
)
def test_valid_ports(port: str, expected: str | None) -> None:
    """OTA, hosts, IPs, serial devices and serial URLs pass, stripped."""
    assert validate_port(port) == (expected or port)


@pytest.mark.parametrize(
    "port",
    [
        "",
        "   ",
        "/dev/../etc/passwd",
        "/etc/passwd",
        "/dev/",
        "dev/ttyUSB0",
        "-bad.host",
        "host_name",
        "host name",
        "--device",
        "999.1.1.1",
        "1.2.3",
        "a" * 64 + ".local",
        "a" * 300,
        ".",
        ".".join(["a" * 63] * 4),
        "socket://host",
        "socket://host:0",
        "socket://host:70000",
        "socket://bad_host:1",
        "http://host:80",
    ],
)
def test_invalid_ports(port: str) -> None:
    """Anything else is refused with the port as placeholder."""
    with pytest.raises(InvalidPortError) as caught:
        validate_port(port)
    assert caught.value.translation_key == "invalid_port"
    assert caught.value.placeholders == {"port": shown(port)}


def test_port_must_be_a_string() -> None:
    """A non-string is refused, not crashed on."""
    with pytest.raises(InvalidPortError):
        validate_port(None)  # type: ignore[arg-type]


async def test_probe_version_of_fake() -> None:
    """The fake answers like ESPHome: `Version: 2026.10.0`."""
    assert await probe_version(fake_cli()) == FAKE_VERSION


async def test_probe_version_runs_in_given_folder(version_fake: FakeEsphome) -> None:
    """`cwd` chooses the folder the probe runs in."""
    assert await probe_version(fake_cli(), cwd=version_fake.config_dir) == FAKE_VERSION
    assert version_fake.calls("start", "version")[0]["cwd"] == str(version_fake.config_dir)


@pytest.fixture
def version_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEsphome:
    """A fake whose `version` behaviour tests can set."""
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    return FakeEsphome(tmp_path)


async def assert_no_fake_left(fake: FakeEsphome) -> None:
    """Every version process the fake recorded is gone with its session."""
    for call in fake.calls("start", "version"):
        assert (
            await asyncio.get_running_loop().run_in_executor(
                None, runner._session_members, call["sid"]
            )
            == []
        )


async def test_probe_version_failure(version_fake: FakeEsphome) -> None:
    """A non-zero exit is a cli_not_working error naming the exit code."""
    version_fake.behave("default", "version", exit_code=2, fail_message="broken install")
    with pytest.raises(EsphomeCliError) as caught:
        await probe_version(fake_cli())
    assert caught.value.translation_key == "cli_not_working"
    assert caught.value.placeholders["command"] == fake_cli().command_line
    assert "exit code 2" in caught.value.placeholders["reason"]
    assert "broken install" in caught.value.placeholders["reason"]


async def test_probe_version_garbage(version_fake: FakeEsphome) -> None:
    """Output without a `Version:` line is an error."""
    version_fake.behave("default", "version", lines=["hello\r", "world"])
    with pytest.raises(EsphomeCliError, match="unexpected output"):
        await probe_version(fake_cli())


async def test_probe_version_timeout_kills_process(version_fake: FakeEsphome) -> None:
    """A CLI that never answers times out and its process tree is stopped."""
    version_fake.behave("default", "version", wait_for_file="never", grandchild_holds_pipe=True)
    with pytest.raises(EsphomeCliError, match="no answer within"):
        await probe_version(fake_cli(), timeout=1.0)
    await assert_no_fake_left(version_fake)


async def test_probe_version_cancelled_kills_process(version_fake: FakeEsphome) -> None:
    """Cancelling a probe stops its process before the cancellation propagates."""
    version_fake.behave("default", "version", wait_for_file="never")
    probing = asyncio.create_task(probe_version(fake_cli()))
    await version_fake.wait_for_call("start", "version")
    probing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probing
    await assert_no_fake_left(version_fake)


async def test_probe_version_spawn_failure(tmp_path: Path) -> None:
    """A command that does not exist is reported, not raised as OSError."""
    cli = EsphomeCli((str(tmp_path / "no-esphome"),))
    with pytest.raises(EsphomeCliError) as caught:
        await probe_version(cli)
    assert caught.value.placeholders["command"] == cli.command_line


def make_executable(path: Path) -> Path:
    """Create an executable file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def empty_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A world where no ESPHome is installed anywhere detect_command_line looks."""
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(esphome_cli.VENV_ENV, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "interp" / "bin" / "python"))
    monkeypatch.setattr(esphome_cli, "KNOWN_VENVS", ("~/.venv-esphome", str(tmp_path / "opt")))
    return tmp_path


def test_detect_nothing_installed(empty_search: Path) -> None:
    """Without any ESPHome, detection returns None; a non-executable file does not count."""
    (empty_search / "opt" / "bin").mkdir(parents=True)
    (empty_search / "opt" / "bin" / "esphome").write_text("not executable")
    assert detect_command_line() is None


def test_detect_order(empty_search: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH wins, then the interpreter's folder, the env venv, then the known venvs in order."""
    known = make_executable(empty_search / "opt" / "bin" / "esphome")
    assert detect_command_line() == str(known)
    home = make_executable(empty_search / "home" / ".venv-esphome" / "bin" / "esphome")
    assert detect_command_line() == str(home)
    env_venv = empty_search / "my venv"
    monkeypatch.setenv(esphome_cli.VENV_ENV, str(env_venv))
    make_executable(env_venv / "bin" / "esphome")
    assert shlex.split(detect_command_line() or "") == [str(env_venv / "bin" / "esphome")]
    beside = make_executable(empty_search / "interp" / "bin" / "esphome")
    assert detect_command_line() == str(beside)
    on_path = make_executable(empty_search / "path" / "esphome")
    assert detect_command_line() == str(on_path)
