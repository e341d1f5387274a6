"""Artifact tarballs materialised directly: chip layouts, receiver path flavours, odd folders."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
import tarfile

import pytest

from custom_components.esphome_pipeline.engine.peer.artifacts import (
    MAX_MEMBERS,
    ArtifactError,
    async_materialise,
    check_member_name,
    firmware_relative_path,
    materialise,
)
from tests.fakes.artifact_tarballs import (
    ESP32_IMAGES,
    chip_tarball,
    file_member,
    render,
    storage_document,
)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "artifacts.tar.gz"
    path.write_bytes(data)
    return path


async def test_esp32_layout_lands_where_esphome_upload_looks(tmp_path: Path) -> None:
    data_dir = tmp_path / "config" / ".esphome"
    tarball = write(tmp_path, chip_tarball("esp32", "kitchen"))
    build = await async_materialise(
        tarball, configuration="kitchen.yaml", data_dir=data_dir, staging=tmp_path / "stage"
    )
    pioenvs = data_dir / "build" / "kitchen" / ".pioenvs" / "kitchen"
    assert build.firmware_path == pioenvs / "firmware.bin"
    assert build.firmware_path.read_bytes() == b"esp32 firmware of kitchen"
    for image in ESP32_IMAGES:
        assert (pioenvs / image).read_bytes() == image.encode()
    assert (data_dir / "build" / "kitchen" / "platformio.ini").is_file()
    assert (data_dir / "build" / "kitchen" / "build_info.json").is_file()
    storage = json.loads((data_dir / "storage" / "kitchen.yaml.json").read_text())
    assert storage["build_path"] == str(data_dir / "build" / "kitchen")
    assert storage["firmware_bin_path"] == str(build.firmware_path)
    idedata = json.loads((data_dir / "idedata" / "kitchen.json").read_text())
    assert idedata["prog_path"] == str(pioenvs / "firmware.elf")
    assert {image["path"]: image["offset"] for image in idedata["extra"]["flash_images"]} == {
        str(pioenvs / name): offset for name, offset in ESP32_IMAGES.items()
    }
    assert "cc_path" not in idedata
    assert not (tmp_path / "stage").exists()


def test_esp8266_layout_and_a_second_build_over_the_first(tmp_path: Path) -> None:
    data_dir = tmp_path / ".esphome"
    for _ in range(2):
        build = materialise(
            write(tmp_path, chip_tarball("esp8266", "plug")),
            configuration="plug.yml",
            data_dir=data_dir,
            staging=tmp_path / "stage",
        )
    assert build.firmware_path.read_bytes() == b"esp8266 firmware of plug"
    assert build.files == 6


def test_a_windows_receiver(tmp_path: Path) -> None:
    build_path = "C:\\Users\\me\\.esphome\\build\\desk"
    storage = storage_document("desk", build_path, build_path + "\\.pioenvs\\desk\\firmware.bin")
    tarball = render(
        [
            file_member("storage.json", json.dumps(storage).encode()),
            file_member(".pioenvs/desk/firmware.bin", b"fw"),
        ]
    )
    build = materialise(
        write(tmp_path, tarball),
        configuration="desk.yaml",
        data_dir=tmp_path / ".esphome",
        staging=tmp_path / "stage",
    )
    assert build.firmware_path.read_bytes() == b"fw"


def test_a_link_in_the_build_folder_is_not_followed(tmp_path: Path) -> None:
    data_dir = tmp_path / ".esphome"
    outside = tmp_path / "outside"
    outside.mkdir()
    (data_dir / "build" / "kitchen").mkdir(parents=True)
    (data_dir / "build" / "kitchen" / ".pioenvs").symlink_to(outside)
    with pytest.raises(ArtifactError, match="link or a file where a folder goes"):
        materialise(
            write(tmp_path, chip_tarball("esp32", "kitchen")),
            configuration="kitchen.yaml",
            data_dir=data_dir,
            staging=tmp_path / "stage",
        )
    assert list(outside.iterdir()) == []


def test_a_folder_where_the_firmware_goes(tmp_path: Path) -> None:
    data_dir = tmp_path / ".esphome"
    (data_dir / "build" / "plug" / ".pioenvs" / "plug" / "firmware.bin").mkdir(parents=True)
    with pytest.raises(ArtifactError, match="link or a folder at"):
        materialise(
            write(tmp_path, chip_tarball("esp8266", "plug")),
            configuration="plug.yaml",
            data_dir=data_dir,
            staging=tmp_path / "stage",
        )


def test_a_bad_configuration_name(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a configuration file name"):
        materialise(
            write(tmp_path, chip_tarball("esp8266", "plug")),
            configuration="../plug.yaml",
            data_dir=tmp_path,
            staging=tmp_path / "stage",
        )


def test_too_many_members(tmp_path: Path) -> None:
    members = [file_member(f"f{i}", b"") for i in range(MAX_MEMBERS + 1)]
    with pytest.raises(ArtifactError, match=f"more than {MAX_MEMBERS} files"):
        materialise(
            write(tmp_path, render(members)),
            configuration="x.yaml",
            data_dir=tmp_path,
            staging=tmp_path / "stage",
        )


def test_a_member_declaring_less_than_it_holds(tmp_path: Path) -> None:
    # Make the data stream shorter than the header says (the archive ends early).
    info = tarfile.TarInfo("storage.json")
    info.size = 10
    raw = render([(info, b"0123456789")])

    plain = gzip.decompress(raw)
    cut = gzip.compress(plain[: 512 + 5])
    with pytest.raises(ArtifactError):
        materialise(
            write(tmp_path, cut), configuration="x.yaml", data_dir=tmp_path, staging=tmp_path / "s"
        )


@pytest.mark.parametrize(
    "name",
    ["", "a" * 2000, "bad\x01name", "./x", "a//b", "folder/"],
)
def test_names_that_are_refused(name: str) -> None:
    with pytest.raises(ArtifactError):
        check_member_name(name)


def test_storage_paths_that_are_refused() -> None:
    good = storage_document("dev", "/b/dev", "/b/dev/.pioenvs/dev/firmware.bin")
    assert firmware_relative_path(good)[1].as_posix() == ".pioenvs/dev/firmware.bin"
    with pytest.raises(ArtifactError, match="lacks its build or firmware path"):
        firmware_relative_path({**good, "build_path": None})
    with pytest.raises(ArtifactError, match="leaves the build folder"):
        firmware_relative_path({**good, "firmware_bin_path": "/b/dev"})


def test_idedata_paths_must_stay_in_the_build_folder(tmp_path: Path) -> None:
    storage = storage_document("dev", "/b/dev", "/b/dev/.pioenvs/dev/firmware.bin")
    idedata = {"prog_path": "/b/dev/../../etc/x", "extra": {"flash_images": ["junk"]}}
    tarball = render(
        [
            file_member("storage.json", json.dumps(storage).encode()),
            file_member("idedata.json", json.dumps(idedata).encode()),
            file_member(".pioenvs/dev/firmware.bin", b"fw"),
        ]
    )
    with pytest.raises(ArtifactError, match="idedata path"):
        materialise(
            write(tmp_path, tarball),
            configuration="dev.yaml",
            data_dir=tmp_path / ".esphome",
            staging=tmp_path / "stage",
        )
    assert not (tmp_path / ".esphome" / "build").exists()
