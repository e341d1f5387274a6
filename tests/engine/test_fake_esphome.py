"""Tests for the fake ESPHome CLI (tests/fakes): every other test relies on its behaviour."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
import signal

import pytest

from custom_components.esphome_pipeline.engine import runner
from custom_components.esphome_pipeline.engine.models import Job, JobType, Lane
from custom_components.esphome_pipeline.engine.output import ProgressTracker
from custom_components.esphome_pipeline.engine.runner import JobProcess
from tests.fakes import FAKE_VERSION, FakeEsphome, fake_cli, fake_command_line

CLI = fake_cli()


@pytest.fixture
def fake(tmp_path: Path) -> FakeEsphome:
    """A config folder for the fake."""
    return FakeEsphome(tmp_path / "config")


class Run:
    """A finished fake invocation: exit code and output lines."""

    def __init__(self, exit_code: int, lines: list[tuple[str, bool]]) -> None:
        self.exit_code = exit_code
        self.lines = lines

    @property
    def text(self) -> str:
        return "\n".join(text for text, _ in self.lines)


async def start(fake: FakeEsphome, *args: str) -> JobProcess:
    """Start the fake with raw arguments."""
    return await JobProcess.start([*CLI.command, *args], cwd=fake.config_dir, env=CLI.environment())


async def run(fake: FakeEsphome, *args: str) -> Run:
    """Run the fake with raw arguments to the end."""
    process = await start(fake, *args)
    lines: list[tuple[str, bool]] = []
    exit_code = await process.stream(lambda text, replaces: lines.append((text, replaces)))
    return Run(exit_code, lines)


async def run_job(
    fake: FakeEsphome, job_type: JobType, configuration: str = "", port: str | None = None
) -> Run:
    """Run the argv the engine would use for a job."""
    job = Job(configuration=configuration, job_type=job_type, lane=Lane.COMPILE, port=port)
    process = await JobProcess.start(
        CLI.argv(job, fake.config_dir), cwd=fake.config_dir, env=CLI.environment()
    )
    lines: list[tuple[str, bool]] = []
    exit_code = await process.stream(lambda text, replaces: lines.append((text, replaces)))
    return Run(exit_code, lines)


def test_command_line_matches_cli() -> None:
    """The command line and the EsphomeCli name the same program."""
    assert CLI.command_line == fake_command_line()


async def test_version(fake: FakeEsphome) -> None:
    """`version` prints the pinned ESPHome version; --dashboard is accepted."""
    result = await run(fake, "--dashboard", "version")
    assert (result.exit_code, result.text) == (0, f"Version: {FAKE_VERSION}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bogus",), "No such command"),
        ((), "No such command"),
        (("compile", "a.yaml", "--bogus"), "No such option: --bogus"),
        (("upload", "a.yaml", "--device"), "requires an argument"),
        (("compile",), "exactly one configuration"),
        (("clean-all",), "Missing argument"),
        (("version", "extra"), "unexpected extra argument"),
    ],
)
async def test_usage_errors_exit_2(fake: FakeEsphome, args: tuple[str, ...], message: str) -> None:
    """Command lines the real CLI refuses fail with exit 2, so wrong argv fails tests."""
    result = await run(fake, *args)
    assert result.exit_code == 2
    assert message in result.text


async def test_missing_configuration(fake: FakeEsphome) -> None:
    """A YAML that does not exist fails like ESPHome does."""
    result = await run_job(fake, JobType.COMPILE, "missing.yaml")
    assert result.exit_code == 2
    assert "Error reading file" in result.text


async def test_config_validates(fake: FakeEsphome) -> None:
    """`config` reports a valid configuration."""
    name = fake.add_config("a")
    result = await run(fake, "config", str(fake.config_dir / name))
    assert result.exit_code == 0
    assert "Configuration is valid!" in result.text


async def test_compile_writes_esphome_outputs(fake: FakeEsphome) -> None:
    """compile writes the image, build_info.json and StorageJSON where ESPHome does."""
    configuration = fake.add_config("kitchen", name="kitchen-node", friendly_name="Kitchen")
    result = await run_job(fake, JobType.COMPILE, configuration)
    assert result.exit_code == 0
    firmware = fake.firmware_path("kitchen-node")
    assert firmware.is_file()
    info = json.loads(fake.build_info_path("kitchen-node").read_text())
    assert set(info) == {"config_hash", "build_time", "build_time_str", "esphome_version"}
    assert info["esphome_version"] == FAKE_VERSION
    storage = json.loads(fake.storage_path(configuration).read_text())
    assert storage["name"] == "kitchen-node"
    assert storage["friendly_name"] == "Kitchen"
    assert storage["esphome_version"] == FAKE_VERSION
    assert storage["firmware_bin_path"] == str(firmware)
    assert storage["build_path"] == str(firmware.parents[2])


async def test_compile_output_is_realistic(fake: FakeEsphome) -> None:
    """Default compile output carries ninja progress to 100 and colour codes to strip."""
    configuration = fake.add_config("a")
    result = await run_job(fake, JobType.COMPILE, configuration)
    tracker = ProgressTracker()
    for text, _ in result.lines:
        tracker.feed(text)
    assert tracker.progress == 100
    assert "INFO Successfully compiled program." in result.text
    assert "\x1b" not in result.text


async def test_firmware_follows_configuration(fake: FakeEsphome) -> None:
    """An unchanged config keeps image and build time; a changed one changes both."""
    configuration = fake.add_config("a")
    await run_job(fake, JobType.COMPILE, configuration)
    image = fake.firmware_path("a").read_bytes()
    info = fake.build_info_path("a").read_text()
    await run_job(fake, JobType.COMPILE, configuration)
    assert fake.firmware_path("a").read_bytes() == image
    assert fake.build_info_path("a").read_text() == info
    fake.add_config("a", extra="logger:\n")
    await run_job(fake, JobType.COMPILE, configuration)
    assert fake.firmware_path("a").read_bytes() != image
    assert (
        json.loads(fake.build_info_path("a").read_text())["config_hash"]
        != json.loads(info)["config_hash"]
    )


async def test_device_name_parsing(fake: FakeEsphome) -> None:
    """The name comes from `esphome: name:` (quotes and comments allowed), else the stem."""
    (fake.config_dir / "quoted.yaml").write_text(
        "# a device\nsubstitutions:\n  name: wrong\nesphome:\n\n  name: 'right-one'  # here\n"
        '  friendly_name: "Right"\nwifi:\n  name: also-wrong\n'
    )
    (fake.config_dir / "stem-only.yaml").write_text("logger:\n")
    await run_job(fake, JobType.COMPILE, "quoted.yaml")
    await run_job(fake, JobType.COMPILE, "stem-only.yaml")
    assert fake.firmware_path("right-one").is_file()
    assert json.loads(fake.storage_path("quoted.yaml").read_text())["friendly_name"] == "Right"
    assert fake.firmware_path("stem-only").is_file()


async def test_upload_needs_firmware(fake: FakeEsphome) -> None:
    """upload without a compiled image fails with a clear message and flashes nothing."""
    configuration = fake.add_config("a")
    result = await run_job(fake, JobType.UPLOAD, configuration, port="192.168.1.5")
    assert result.exit_code == 1
    assert "not found" in result.text
    assert fake.flashed() == []


async def test_upload_flashes_compiled_image(fake: FakeEsphome) -> None:
    """upload records the image it flashed, with port, in order; OTA progress redraws."""
    first = fake.add_config("a")
    second = fake.add_config("b")
    await run_job(fake, JobType.COMPILE, first)
    await run_job(fake, JobType.COMPILE, second)
    result = await run_job(fake, JobType.UPLOAD, first)
    assert result.exit_code == 0
    assert any(replaces for _, replaces in result.lines)
    tracker = ProgressTracker()
    for text, _ in result.lines:
        tracker.feed(text)
    assert tracker.progress == 100
    await run_job(fake, JobType.UPLOAD, second, port="/dev/ttyUSB0")
    flashed = fake.flashed()
    assert [(f["configuration"], f["port"]) for f in flashed] == [
        (first, "OTA"),
        (second, "/dev/ttyUSB0"),
    ]
    assert flashed[0]["sha256"] == hashlib.sha256(fake.firmware_path("a").read_bytes()).hexdigest()


async def test_upload_with_file(fake: FakeEsphome, tmp_path: Path) -> None:
    """`--file` flashes that image instead of the build's."""
    configuration = fake.add_config("a")
    image = tmp_path / "image.bin"
    image.write_bytes(b"custom image")
    yaml = str(fake.config_dir / configuration)
    result = await run(fake, "upload", yaml, "--device", "OTA", "--file", str(image))
    assert result.exit_code == 0
    assert fake.flashed()[0]["sha256"] == hashlib.sha256(b"custom image").hexdigest()


async def test_clean_and_clean_all(fake: FakeEsphome) -> None:
    """clean removes that build's .pioenvs; clean-all keeps only storage/ and top-level json."""
    a = fake.add_config("a")
    b = fake.add_config("b")
    await run_job(fake, JobType.COMPILE, a)
    await run_job(fake, JobType.COMPILE, b)
    data_dir = fake.config_dir / ".esphome"
    (data_dir / "build" / "a" / "dependencies.lock").write_text("x")
    (data_dir / "idedata.json").write_text("{}")
    (data_dir / "platformio.log").write_text("x")
    assert (await run_job(fake, JobType.CLEAN, a)).exit_code == 0
    assert not (data_dir / "build" / "a" / ".pioenvs").exists()
    assert not (data_dir / "build" / "a" / "dependencies.lock").exists()
    assert fake.build_info_path("a").is_file()
    assert fake.firmware_path("b").is_file()
    assert (await run_job(fake, JobType.RESET_BUILD_ENV)).exit_code == 0
    assert sorted(p.name for p in data_dir.iterdir()) == ["idedata.json", "storage"]
    assert fake.storage_path(a).is_file()
    assert (await run_job(fake, JobType.RESET_BUILD_ENV)).exit_code == 0
    empty = FakeEsphome(fake.config_dir / "empty")
    assert (await run(empty, "clean-all", str(empty.config_dir))).exit_code == 0


async def test_calls_are_recorded(fake: FakeEsphome) -> None:
    """Each run logs start and end with pid, session, argv, port and the environment."""
    configuration = fake.add_config("a")
    await run_job(fake, JobType.COMPILE, configuration)
    await run_job(fake, JobType.UPLOAD, configuration, port="10.0.0.2")
    start, end = fake.calls(subcommand="upload")
    assert (start["event"], end["event"]) == ("start", "end")
    # The job wrapper leads the session the fake runs in.
    assert start["pid"] == end["pid"] != start["sid"]
    assert start["configuration"] == configuration
    assert start["port"] == "10.0.0.2"
    assert start["argv"][0] == "upload"
    assert start["env"]["PYTHONUNBUFFERED"] == "1"
    assert end["exit_code"] == 0
    assert [c["subcommand"] for c in fake.calls("end")] == ["compile", "upload"]
    assert fake.calls(configuration="other.yaml") == []


async def test_behaviour_exit_code_lines_and_override(fake: FakeEsphome) -> None:
    """`default` applies to all; a configuration's entry overrides it; failure writes nothing."""
    a = fake.add_config("a")
    b = fake.add_config("b")
    fake.behave("default", "compile", lines=["custom line", "50%\r", "60%"], duration=0)
    fake.behave(b, "compile", exit_code=4, fail_message="boom")
    result_a = await run_job(fake, JobType.COMPILE, a)
    result_b = await run_job(fake, JobType.COMPILE, b)
    assert result_a.lines == [("custom line", False), ("50%", False), ("60%", True)]
    assert result_a.exit_code == 0
    assert result_b.exit_code == 4
    assert "ERROR boom" in result_b.text
    assert not fake.firmware_path("b").exists()
    fake.behave(a, "compile", lines=[])
    assert (await run_job(fake, JobType.COMPILE, a)).lines == []


async def test_wait_for_file_blocks_until_release(fake: FakeEsphome) -> None:
    """A process waits for its release file; the test knows when it started."""
    configuration = fake.add_config("a")
    fake.behave(configuration, "compile", wait_for_file="go/a")
    running = asyncio.create_task(run_job(fake, JobType.COMPILE, configuration))
    await fake.wait_for_call("start", "compile", configuration)
    assert fake.calls("end") == []
    assert not running.done()
    fake.release("go/a")
    assert (await running).exit_code == 0
    assert len(fake.calls("end", "compile")) == 1


async def test_sigterm_is_recorded(fake: FakeEsphome) -> None:
    """A terminated fake logs its end with the signal and dies by it."""
    configuration = fake.add_config("a")
    fake.behave(configuration, "compile", wait_for_file="never")
    process = await JobProcess.start(
        CLI.argv(
            Job(configuration=configuration, job_type=JobType.COMPILE, lane=Lane.COMPILE),
            fake.config_dir,
        ),
        cwd=fake.config_dir,
    )
    streaming = asyncio.create_task(process.stream(lambda _t, _r: None))
    await fake.wait_for_call("start", "compile")
    assert await process.terminate() is True
    assert await streaming == -signal.SIGTERM
    assert fake.calls("end")[0]["exit_code"] == -signal.SIGTERM


async def test_ignore_sigterm_needs_sigkill(fake: FakeEsphome) -> None:
    """`ignore_sigterm` makes the fake survive SIGTERM; the runner escalates."""
    configuration = fake.add_config("a")
    fake.behave(configuration, "upload", wait_for_file="never", ignore_sigterm=True)
    process = await start(fake, "upload", str(fake.config_dir / configuration))
    streaming = asyncio.create_task(process.stream(lambda _t, _r: None))
    await fake.wait_for_call("start", "upload")
    assert await process.terminate(0.3) is True
    assert await streaming == -signal.SIGKILL
    assert fake.calls("end") == []


async def test_grandchild_holds_pipe(fake: FakeEsphome, monkeypatch: pytest.MonkeyPatch) -> None:
    """The grandchild shares the session, keeps stdout open, and is stopped as a stray."""
    monkeypatch.setattr(runner, "DRAIN_AFTER_EXIT", 0.2)
    configuration = fake.add_config("a")
    fake.behave(
        configuration,
        "compile",
        grandchild_holds_pipe=True,
        grandchild_own_group=True,
    )
    result = await run_job(fake, JobType.COMPILE, configuration)
    assert result.exit_code == 0
    (grandchild,) = fake.calls("grandchild")
    session = grandchild["sid"]
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, runner._session_members, session) == []


def test_add_config_and_behave_files(fake: FakeEsphome) -> None:
    """The helper writes YAML with an esphome block and merges behaviour."""
    assert fake.add_config("x.yml", extra="logger:") == "x.yml"
    text = (fake.config_dir / "x.yml").read_text()
    assert text.startswith("esphome:\n  name: x\n")
    assert text.endswith("logger:\n")
    fake.behave("x.yml", "compile", exit_code=1)
    fake.behave("x.yml", "compile", duration=2)
    fake.behave("default", "upload", exit_code=3)
    table = json.loads((fake.config_dir / ".fake_esphome.json").read_text())
    assert table == {
        "x.yml": {"compile": {"exit_code": 1, "duration": 2}},
        "default": {"upload": {"exit_code": 3}},
    }
    assert fake.calls() == []
    assert fake.flashed() == []
