"""Which build a device runs, in our terms (device_runs.py): the rules one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
import os
from pathlib import Path
import time

from custom_components.esphome_pipeline.device_runs import (
    RunningBuild,
    data_folder_fingerprint,
    readable_time,
    running_build,
)
from custom_components.esphome_pipeline.engine.device.build_records import (
    BuildIdentity,
    read_build_identity,
)
from custom_components.esphome_pipeline.engine.device.native_api import (
    DeviceReport,
    DeviceTruth,
    Verdict,
    compare,
)
from custom_components.esphome_pipeline.engine.device.survey import SurveyAnswer
from custom_components.esphome_pipeline.engine.fingerprint import read_node
from custom_components.esphome_pipeline.engine.skip import BuildRecord

VERSION = "2026.10.0"
BUILT = "2026-11-27 16:14:49 +0000"
OLDER = "2026-11-01 08:00:00 +0000"


def identity(build_info: Path = Path("build_info.json"), **changes: str) -> BuildIdentity:
    """A build of `kitchen` in the data folder."""
    values: dict[str, object] = {
        "name": "kitchen",
        "esphome_version": VERSION,
        "build_time_str": BUILT,
        "config_hash": "1",
        "firmware": None,
        "build_info": build_info,
    }
    values.update(changes)
    return BuildIdentity(**values)  # type: ignore[arg-type]


def answer(**device: str) -> SurveyAnswer:
    """The device's answer, compared with the folder's build."""
    report = DeviceReport(
        **{"name": "kitchen", "esphome_version": VERSION, "compilation_time": BUILT, **device}
    )
    build = identity()
    return SurveyAnswer(configuration="kitchen.yaml", build=build, truth=compare(report, build))


def test_readable_times() -> None:
    """ESPHome's format becomes UTC to the minute; anything else is shown as it is."""
    assert readable_time("2026-11-27 16:14:49 +0100") == "2026-11-27 15:14 UTC"
    assert readable_time(" Nov 27 2026, 16:14:49 ") == "Nov 27 2026, 16:14:49"
    assert readable_time(None) is None
    old = RunningBuild(esphome_version="2024.1.0", compilation_time="Nov 27 2026", fingerprint=None)
    assert old.built_at is None
    assert RunningBuild(
        esphome_version=VERSION, compilation_time=BUILT, fingerprint="f"
    ).built_at == ("2026-11-27T16:14:49+00:00")


def test_running_build_rules() -> None:
    """The folder's build with a known fingerprint, else the recorded install, else another."""
    runs = running_build(
        answer(), folder_fingerprint="aaaa", installed="bbbb", installed_build=None
    )
    assert runs == RunningBuild(
        esphome_version=VERSION, compilation_time=BUILT, fingerprint="aaaa", folder_build_time=BUILT
    )
    unknown = running_build(answer(), folder_fingerprint=None, installed=None, installed_build=None)
    assert unknown is not None
    assert unknown.fingerprint is None

    recorded = {"fingerprint": "bbbb", "esphome_version": "2026.9.0", "compilation_time": OLDER}
    older = answer(esphome_version="2026.9.0", compilation_time=OLDER)
    confirmed = running_build(
        older, folder_fingerprint="aaaa", installed="bbbb", installed_build=recorded
    )
    assert confirmed is not None
    assert confirmed.fingerprint == "bbbb"
    for build in (None, {**recorded, "fingerprint": "cccc"}, {"fingerprint": "bbbb"}):
        other = running_build(
            older, folder_fingerprint=None, installed="bbbb", installed_build=build
        )
        assert other is not None
        assert other.fingerprint is None
    assert (
        running_build(
            answer(name="porch"), folder_fingerprint="aaaa", installed=None, installed_build=None
        )
        is None
    )
    silent = SurveyAnswer(
        configuration="kitchen.yaml",
        build=identity(),
        truth=DeviceTruth(verdict=Verdict.UNREACHABLE, summary="the device is unreachable"),
    )
    assert (
        running_build(silent, folder_fingerprint="a", installed=None, installed_build=None) is None
    )


def write_build(config_dir: Path, *, built: datetime, version: str = VERSION) -> BuildIdentity:
    """kitchen.yaml and its build records, the sources generated at `built`."""
    data_dir = config_dir / ".esphome"
    (data_dir / "storage").mkdir(parents=True, exist_ok=True)
    (data_dir / "build" / "kitchen").mkdir(parents=True, exist_ok=True)
    (data_dir / "storage" / "kitchen.yaml.json").write_text(json.dumps({"name": "kitchen"}))
    info = {
        "build_time": int(built.timestamp()),
        "build_time_str": built.strftime("%Y-%m-%d %H:%M:%S %z"),
        "esphome_version": version,
    }
    (data_dir / "build" / "kitchen" / "build_info.json").write_text(json.dumps(info))
    build = read_build_identity(data_dir, "kitchen.yaml")
    assert build is not None
    return build


def age(path: Path, seconds: float) -> None:
    """Make `path` look last changed `seconds` ago."""
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def test_folder_build_fingerprint(tmp_path: Path) -> None:
    """Our last build when build_info.json predates its end; else the current configuration
    when every input predates the build's sources; else unknown."""
    yaml_path = tmp_path / "kitchen.yaml"
    yaml_path.write_text(
        "esphome:\n  name: kitchen\n  comment: !include common.yaml\nfont:\n  - file: gone.ttf\n"
    )
    (tmp_path / "common.yaml").write_text("kitchen\n")
    for path in (yaml_path, tmp_path / "common.yaml"):
        age(path, 3600)
    build = write_build(tmp_path, built=datetime.now(UTC) - timedelta(minutes=30))
    node = read_node(tmp_path, "kitchen.yaml", esphome_version=VERSION)
    assert node is not None

    def fingerprint(last: BuildRecord | None = None, version: str = VERSION) -> str | None:
        return data_folder_fingerprint(
            tmp_path, "kitchen.yaml", build, last_build=last, esphome_version=version
        )

    # Rule 2: nothing changed since the sources were generated (a missing name is no input).
    assert fingerprint() == node.fingerprint
    assert fingerprint(version="2026.11.0") is None

    # Rule 1: ESPHome Pipeline's last build, when the folder's build is not newer than it.
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    ours = BuildRecord(
        configuration="kitchen.yaml", fingerprint="ours", job_id="j", finished_at=later
    )
    assert fingerprint(ours) == "ours"
    earlier = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    rebuilt_since = BuildRecord(
        configuration="kitchen.yaml", fingerprint="ours", job_id="j", finished_at=earlier
    )
    assert fingerprint(rebuilt_since) == node.fingerprint
    odd = BuildRecord(configuration="kitchen.yaml", fingerprint="ours", job_id="j", finished_at="?")
    assert fingerprint(odd) == node.fingerprint

    # An included file changed after the build: not provably this configuration.
    (tmp_path / "common.yaml").write_text("kitchen, edited\n")
    assert fingerprint() is None
    age(tmp_path / "common.yaml", 3600)
    edited = read_node(tmp_path, "kitchen.yaml", esphome_version=VERSION)
    assert edited is not None
    assert fingerprint() == edited.fingerprint

    # Cannot be vouched for, unreadable, or no usable build time: unknown.
    yaml_path.write_text(
        "esphome:\n  name: kitchen\nexternal_components:\n  - source: github://esphome/esphome\n"
    )
    age(yaml_path, 3600)
    assert fingerprint() is None
    yaml_path.write_text("esphome: [unclosed\n")
    age(yaml_path, 3600)
    assert fingerprint() is None
    yaml_path.write_text("logger:\n")
    age(yaml_path, 3600)
    assert fingerprint() is None
    yaml_path.unlink()
    assert fingerprint() is None
    assert (
        data_folder_fingerprint(
            tmp_path,
            "kitchen.yaml",
            identity(build.build_info, build_time_str="Nov 27 2026"),
            last_build=None,
            esphome_version=VERSION,
        )
        is None
    )
    build.build_info.unlink()
    assert fingerprint(ours) is None
