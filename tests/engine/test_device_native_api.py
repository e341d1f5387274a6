"""Device truth over the network: build records, the native API question and the verdict."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import json
from pathlib import Path
import socket

import pytest
import pytest_socket  # type: ignore[import-untyped]

from custom_components.esphome_pipeline.engine.device.build_records import (
    DEFAULT_API_PORT,
    ApiEndpoint,
    BuildIdentity,
    read_api_endpoint,
    read_build_identity,
)
from custom_components.esphome_pipeline.engine.device.native_api import (
    DeviceReport,
    DeviceTruth,
    DeviceUnreachableError,
    NewBuildNotSeenError,
    Verdict,
    compare,
    device_truth,
    query_device,
    wait_for_build,
)
from custom_components.esphome_pipeline.engine.device.survey import SurveyAnswer, survey
from custom_components.esphome_pipeline.engine.models import Job, JobType, Lane, SkipReason
from custom_components.esphome_pipeline.engine.skip_checks import DeviceRunsBuild
from script.devkit import ESPHOME_CLI
from script.devkit.demo import (
    DemoDevice,
    DeviceProcess,
    compile_configuration,
    esphome,
    port_is_free,
    write_configuration,
)
from script.devkit.site import free_port_block

BUILD_TIME = "2026-11-27 16:14:49 +0000"


def write_records(
    data_dir: Path,
    configuration: str = "kitchen.yaml",
    *,
    name: str = "kitchen",
    info: object | None = None,
    validated: object | None = None,
) -> None:
    """StorageJSON, build_info.json and the validated configuration as ESPHome writes them."""
    storage = data_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    build = data_dir / "build" / name
    build.mkdir(parents=True, exist_ok=True)
    (storage / f"{configuration}.json").write_text(
        json.dumps(
            {
                "name": name,
                "build_path": str(build),
                "firmware_bin_path": str(build / ".pioenvs" / name / "firmware.bin"),
            }
        )
    )
    default_info = {
        "config_hash": 1686358072,
        "build_time": 1795796089,
        "build_time_str": BUILD_TIME,
        "esphome_version": "2026.10.0",
    }
    (build / "build_info.json").write_text(json.dumps(default_info if info is None else info))
    if validated is not None:
        (storage / f"{configuration}.validated.json").write_text(json.dumps(validated))


def identity(**changes: object) -> BuildIdentity:
    """A build of `kitchen`."""
    values: dict[str, object] = {
        "name": "kitchen",
        "esphome_version": "2026.10.0",
        "build_time_str": BUILD_TIME,
        "config_hash": "1",
        "firmware": None,
        "build_info": Path("build_info.json"),
    }
    values.update(changes)
    return BuildIdentity(**values)  # type: ignore[arg-type]


def report(**changes: str) -> DeviceReport:
    """What a device running that build says."""
    values = {"name": "kitchen", "esphome_version": "2026.10.0", "compilation_time": BUILD_TIME}
    values.update(changes)
    return DeviceReport(**values)


def test_read_build_identity(tmp_path: Path) -> None:
    """The identity comes from StorageJSON and build_info.json; anything missing gives None."""
    assert read_build_identity(tmp_path, "kitchen.yaml") is None
    write_records(tmp_path)
    build = read_build_identity(tmp_path, "kitchen.yaml")
    assert build is not None
    assert build.name == "kitchen"
    assert build.config_hash == "1686358072"
    assert build.build_time_str == BUILD_TIME
    assert build.firmware == tmp_path / "build/kitchen/.pioenvs/kitchen/firmware.bin"
    assert build.describe() == f"ESPHome 2026.10.0, built {BUILD_TIME}"
    write_records(tmp_path, info={"esphome_version": "2025.1.0", "build_time_str": 5})
    old = read_build_identity(tmp_path, "kitchen.yaml")
    assert old is not None
    assert (old.build_time_str, old.config_hash) == (None, None)
    assert old.describe() == "ESPHome 2025.1.0"
    write_records(tmp_path, info={"config_hash": 1})
    assert read_build_identity(tmp_path, "kitchen.yaml") is None
    (tmp_path / "storage" / "kitchen.yaml.json").write_text("[]")
    assert read_build_identity(tmp_path, "kitchen.yaml") is None


def test_read_api_endpoint(tmp_path: Path) -> None:
    """Port, key and address come from the validated configuration."""
    assert read_api_endpoint(tmp_path, "kitchen.yaml", "kitchen") is None
    write_records(tmp_path, validated={"config": {"api": {"port": 6054}}})
    assert read_api_endpoint(tmp_path, "kitchen.yaml", "kitchen") == ApiEndpoint(
        host="kitchen.local", port=6054
    )
    key = "pBsdrL5eMHfiJ2RYMW6dJGl53lJTQ/uqL3t0WUyX/dY="
    validated = {
        "config": {
            "api": {"encryption": {"key": key}, "port": "odd"},
            "wifi": {"manual_ip": {"static_ip": "10.0.0.7"}},
            "ethernet": "odd",
        }
    }
    write_records(tmp_path, validated=validated)
    endpoint = read_api_endpoint(tmp_path, "kitchen.yaml", "kitchen")
    assert endpoint == ApiEndpoint(host="10.0.0.7", port=DEFAULT_API_PORT, noise_psk=key)
    validated["config"]["wifi"] = {"use_address": "kitchen.lan", "manual_ip": "odd"}  # type: ignore[index]
    write_records(tmp_path, validated=validated)
    assert read_api_endpoint(tmp_path, "kitchen.yaml", "kitchen").host == "kitchen.lan"  # type: ignore[union-attr]
    endpoint = read_api_endpoint(tmp_path, "kitchen.yaml", "kitchen", address="127.0.0.1")
    assert endpoint is not None
    assert endpoint.host == "127.0.0.1"
    write_records(tmp_path, validated={"config": {"logger": {}}})
    assert read_api_endpoint(tmp_path, "kitchen.yaml", "kitchen") is None


def test_compare() -> None:
    """Name, version and build time decide; the summary says what differs."""
    same = compare(report(), identity())
    assert same.verdict is Verdict.RUNS_THIS_BUILD
    assert same.runs_build
    assert same.summary == f"the device runs this build (ESPHome 2026.10.0, built {BUILD_TIME})"

    older = compare(report(compilation_time="2026-11-01 08:00:00 +0000"), identity())
    assert older.verdict is Verdict.RUNS_OTHER_BUILD
    assert not older.runs_build
    assert older.summary == (
        "the device runs another build: ESPHome 2026.10.0, built 2026-11-01 08:00:00 +0000 "
        f"(this build: ESPHome 2026.10.0, built {BUILD_TIME})"
    )
    assert (
        compare(report(esphome_version="2026.9.0"), identity()).verdict is Verdict.RUNS_OTHER_BUILD
    )
    assert compare(report(), identity(build_time_str=None)).verdict is Verdict.RUNS_OTHER_BUILD
    suffixed = compare(report(name="kitchen-a1b2c3"), identity())
    assert suffixed.verdict is Verdict.RUNS_THIS_BUILD  # name_add_mac_suffix
    assert compare(report(name="kitchen-porch1"), identity()).verdict is Verdict.RUNS_OTHER_BUILD
    stranger = compare(report(name="porch"), identity())
    assert stranger.verdict is Verdict.RUNS_OTHER_BUILD
    assert stranger.summary == "the device answering is 'porch', not 'kitchen'"


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_unreachable_device(socket_enabled: None) -> None:
    """Refused, or accepted and silent: unreachable, with the reason, within the timeout."""
    refused = ApiEndpoint(host="127.0.0.1", port=free_port())
    truth = await device_truth(refused, identity(), wait_seconds=2.0)
    assert truth.verdict is Verdict.UNREACHABLE
    assert truth.summary.startswith(f"the device is unreachable: 127.0.0.1:{refused.port}")
    assert truth.device is None

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(DeviceUnreachableError, match="did not answer within 0.3 s"):
            await query_device(ApiEndpoint(host="127.0.0.1", port=port), wait_seconds=0.3)
    finally:
        server.close()


async def test_proof_fails_when_the_device_does_not_return(socket_enabled: None) -> None:
    """No answer with the new build within the bound: a clear error with the last answer."""
    endpoint = ApiEndpoint(host="127.0.0.1", port=free_port())
    with pytest.raises(NewBuildNotSeenError) as caught:
        await wait_for_build(endpoint, identity(), within=0.3, interval=0.1)
    assert str(caught.value).startswith(
        "the device did not come back with the new firmware within 0.3 s (the device is unreachable"
    )
    assert caught.value.last.verdict is Verdict.UNREACHABLE


@pytest.fixture(scope="module")
def host_device(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, DemoDevice, DeviceProcess]]:
    """A real ESPHome host device, compiled with the real CLI and running on loopback."""
    if not ESPHOME_CLI.exists():
        pytest.fail(f"the real ESPHome CLI is missing ({ESPHOME_CLI}): run script/setup")
    folder = tmp_path_factory.mktemp("native-api")
    pytest_socket.enable_socket()  # free ports and the device's readiness probe, outside a test
    try:
        base = free_port_block(2)
        device = DemoDevice(
            name="truth-probe", friendly_name="Truth Probe", api_port=base, ota_port=base + 1
        )
        write_configuration(folder, device)
        compile_configuration(folder, device)
        process = DeviceProcess(device, folder=folder, run_dir=folder / "run")
        process.start()
    finally:
        pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        yield folder, device, process
    finally:
        process.stop()


@pytest.mark.e2e
async def test_real_host_device(
    host_device: tuple[Path, DemoDevice, DeviceProcess], socket_enabled: None
) -> None:
    """A real device runs this build; after a rebuild it runs another; stopped, unreachable."""
    folder, device, process = host_device
    data_dir = folder / ".esphome"
    build = await asyncio.to_thread(read_build_identity, data_dir, device.configuration)
    endpoint = await asyncio.to_thread(
        read_api_endpoint, data_dir, device.configuration, device.name, address="127.0.0.1"
    )
    assert build is not None
    assert endpoint == ApiEndpoint(host="127.0.0.1", port=device.api_port)

    truth = await device_truth(endpoint, build)
    assert truth.verdict is Verdict.RUNS_THIS_BUILD, truth.summary
    assert truth.device is not None
    assert truth.device.name == device.name
    check = DeviceRunsBuild(data_dir)
    upload = Job(
        configuration=device.configuration,
        job_type=JobType.UPLOAD,
        lane=Lane.UPLOAD,
        port="127.0.0.1",
    )
    assert await check(upload, None) is SkipReason.DEVICE_CURRENT
    fleet = await survey(
        data_dir, [device.configuration], addresses={device.configuration: "127.0.0.1"}
    )
    assert fleet[device.configuration].runs_build

    await asyncio.to_thread(write_configuration, folder, device, revision=2)
    await asyncio.to_thread(compile_configuration, folder, device)
    rebuilt = await asyncio.to_thread(read_build_identity, data_dir, device.configuration)
    assert rebuilt is not None
    assert rebuilt.build_time_str != build.build_time_str
    other = await device_truth(endpoint, rebuilt)
    assert other.verdict is Verdict.RUNS_OTHER_BUILD
    assert f"(this build: {rebuilt.describe()})" in other.summary
    assert await check(upload, None) is None

    # The real OTA upload of the new build, then the proof that the device took it.
    await asyncio.to_thread(
        esphome, "upload", str(folder / device.configuration), "--device", "127.0.0.1"
    )
    proven = await wait_for_build(endpoint, rebuilt)
    assert proven.verdict is Verdict.RUNS_THIS_BUILD
    assert await check(upload, None) is SkipReason.DEVICE_CURRENT

    await asyncio.to_thread(process.stop)
    assert port_is_free(device.api_port)
    gone = await device_truth(endpoint, rebuilt, wait_seconds=2.0)
    assert gone.verdict is Verdict.UNREACHABLE


async def test_survey(tmp_path: Path) -> None:
    """Every configuration with a build and an API is asked (bounded); others are left out."""
    write_records(tmp_path, "kitchen.yaml", validated={"config": {"api": {}}})
    write_records(tmp_path, "porch.yaml", name="porch", validated={"config": {"logger": {}}})
    write_records(tmp_path, "garage.yaml", name="garage", validated={"config": {"api": {}}})
    asked: list[ApiEndpoint] = []
    running = 0
    most = 0

    async def ask(endpoint: ApiEndpoint, build: BuildIdentity) -> DeviceTruth:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        asked.append(endpoint)
        running -= 1
        return compare(report(name=build.name), build)

    heard: list[SurveyAnswer] = []
    found = await survey(
        tmp_path,
        ["kitchen.yaml", "porch.yaml", "garage.yaml", "unbuilt.yaml", "kitchen.yaml"],
        ask_device=ask,
        addresses={"garage.yaml": "127.0.0.1"},
        concurrency=1,
        on_answer=heard.append,
    )
    assert set(found) == {"kitchen.yaml", "garage.yaml"}
    assert {answer.configuration: answer.truth for answer in heard} == found
    assert {answer.build.name for answer in heard} == {"kitchen", "garage"}
    assert all(truth.runs_build for truth in found.values())
    assert sorted(endpoint.host for endpoint in asked) == ["127.0.0.1", "kitchen.local"]
    assert most == 1
