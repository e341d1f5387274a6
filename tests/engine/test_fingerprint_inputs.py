"""The fingerprint covers every local input, and its two cache layers never hide a change."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
import time

import pytest

from custom_components.esphome_pipeline.engine import fingerprint_cache
from custom_components.esphome_pipeline.engine.fingerprint import Fingerprinter, read_node
from custom_components.esphome_pipeline.engine.fingerprint_cache import (
    CACHE_FILE_NAME,
    ContentHashCache,
    default_cache_file,
    stamp_of,
)

VERSION = "2026.10.0"
AN_HOUR_NS = 3600 * 1_000_000_000
PINNED = "0123456789abcdef0123456789abcdef01234567"


def write(folder: Path, name: str, content: str | bytes) -> Path:
    """Write a file (text or bytes), creating folders."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def settle(root: Path, *, age_ns: int = AN_HOUR_NS) -> None:
    """Move every mtime below `root` into the past, as in a folder nobody is editing."""
    past = time.time_ns() - age_ns
    for folder, _dirs, files in os.walk(root):
        for entry in [Path(folder), *(Path(folder) / name for name in files)]:
            os.utime(entry, ns=(past, past))


def fingerprint(folder: Path, name: str = "node.yaml", **options: str) -> str:
    """The uncached fingerprint of one configuration."""
    node = read_node(folder, name, esphome_version=VERSION, build_options=options or None)
    assert node is not None
    return node.fingerprint


def unverifiable(folder: Path, name: str = "node.yaml") -> tuple[str, ...]:
    """Why the configuration's fingerprint cannot vouch for its inputs."""
    node = read_node(folder, name, esphome_version=VERSION)
    assert node is not None
    return node.unverifiable


def assert_each_change_counts(folder: Path, changes: list[tuple[str, str | bytes]]) -> None:
    """Every change in `changes`, applied in turn, gives a new fingerprint."""
    seen = {fingerprint(folder)}
    for name, content in changes:
        write(folder, name, content)
        current = fingerprint(folder)
        assert current not in seen, name
        seen.add(current)


def test_local_external_components(tmp_path: Path) -> None:
    """Every file below a local external component counts, in both spellings."""
    write(
        tmp_path,
        "node.yaml",
        "esphome:\n  name: n\nexternal_components:\n"
        "  - source:\n      type: local\n      path: my_components\n"
        "  - source: other_components\n    components: [thing]\n",
    )
    write(tmp_path, "my_components/widget/__init__.py", "A = 1\n")
    write(tmp_path, "other_components/thing/thing.h", "int a;\n")
    assert not unverifiable(tmp_path)
    assert_each_change_counts(
        tmp_path,
        [
            ("my_components/widget/__init__.py", "A = 2\n"),
            ("my_components/widget/widget.cpp", "int b;\n"),  # a new file
            ("other_components/thing/thing.h", "int c;\n"),
        ],
    )
    before = fingerprint(tmp_path)
    write(tmp_path, "my_components/.git/HEAD", "ref\n")
    write(tmp_path, "my_components/widget/.cache", "x\n")
    assert fingerprint(tmp_path) == before  # hidden entries do not count


def test_files_named_by_any_key(tmp_path: Path) -> None:
    """Fonts, images, animations, audio, partitions and web_server files count."""
    write(
        tmp_path,
        "node.yaml",
        """
esphome:
  name: n
esp32:
  partitions: partitions.csv
packages:
  display: !include packages/display.yaml
audio_file:
  - id: chime
    file:
      type: local
      path: sounds/chime.wav
web_server:
  css_include: web/custom.css
""",
    )
    # Paths in a package resolve beside the package, and from the folder (as ESPHome does).
    write(
        tmp_path,
        "packages/display.yaml",
        "font:\n  - file: fonts/small.ttf\n    id: f\n"
        "image:\n  - file: logo.png\n    id: logo\n"
        "animation:\n  - file: anim/spinner.gif\n    id: a\n",
    )
    files: list[tuple[str, str | bytes]] = [
        ("partitions.csv", "nvs, data, nvs, , 0x6000,\n"),
        ("sounds/chime.wav", b"RIFF1"),
        ("web/custom.css", "body {}\n"),
        ("fonts/small.ttf", b"\x00\x01"),
        ("packages/logo.png", b"\x89PNG1"),
        ("anim/spinner.gif", b"GIF891"),
    ]
    for name, content in files:
        write(tmp_path, name, content)
    assert_each_change_counts(
        tmp_path,
        [
            (name, content + (b"2" if isinstance(content, bytes) else "#"))
            for name, content in files
        ],
    )


@pytest.mark.parametrize(
    "tag",
    [
        "!include_dir_list",
        "!include_dir_named",
        "!include_dir_merge_list",
        "!include_dir_merge_named",
    ],
)
def test_include_dir_variants(tmp_path: Path, tag: str) -> None:
    """Each `!include_dir_*` variant counts its YAML files, a new one included."""
    write(tmp_path, "node.yaml", f"esphome:\n  name: n\nsensor: {tag} sensors\n")
    write(tmp_path, "sensors/a.yaml", "platform: uptime\n")
    assert_each_change_counts(
        tmp_path,
        [
            ("sensors/a.yaml", "platform: wifi_signal\n"),
            ("sensors/deeper/b.yml", "platform: adc\n"),
            ("sensors/deeper/b.yml", "platform: adc\npin: 1\n"),
        ],
    )
    before = fingerprint(tmp_path)
    write(tmp_path, "sensors/notes.txt", "not yaml\n")
    assert fingerprint(tmp_path) == before


def test_includes_and_libraries_folders(tmp_path: Path) -> None:
    """`includes:` and local `libraries:` may name folders: every file below counts."""
    write(
        tmp_path,
        "node.yaml",
        "esphome:\n  name: n\n  includes:\n    - src\n"
        "  libraries:\n    - file://libs/mylib\n    - SPI\n",
    )
    write(tmp_path, "src/a.h", "int a;\n")
    write(tmp_path, "libs/mylib/library.json", "{}\n")
    assert_each_change_counts(
        tmp_path,
        [("src/b.cpp", "int b;\n"), ("libs/mylib/src/lib.cpp", "int c;\n")],
    )


def test_missing_named_source_counts_when_created(tmp_path: Path) -> None:
    """A local component folder that does not exist yet changes the fingerprint once made."""
    write(
        tmp_path,
        "node.yaml",
        "esphome:\n  name: n\nexternal_components:\n  - source: {type: local, path: comps}\n",
    )
    before = fingerprint(tmp_path)
    write(tmp_path, "comps/x/__init__.py", "\n")
    assert fingerprint(tmp_path) != before


def test_remote_sources(tmp_path: Path) -> None:
    """Git sources count by reference; only one pinned to a commit can be vouched for."""
    write(
        tmp_path,
        "node.yaml",
        f"""
esphome:
  name: n
packages:
  pinned:
    url: https://github.com/example/pkgs
    ref: {PINNED}
    files: [a.yaml]
  short: github://example/pkgs/b.yaml@{PINNED}
external_components:
  - source: github://example/components@{PINNED}
  - source: {{type: git, url: "https://github.com/example/more", ref: {PINNED}}}
dashboard_import:
  package_import_url: github://example/whatever/x.yaml@main
""",
    )
    assert unverifiable(tmp_path) == ()
    write(
        tmp_path,
        "node.yaml",
        """
esphome:
  name: n
packages:
  - url: https://github.com/example/pkgs
    ref: main
  - github://example/pkgs/b.yaml
external_components:
  - source: github://example/components@v1.2
  - source: git@github.com:example/private.git
""",
    )
    reasons = unverifiable(tmp_path)
    assert len(reasons) == 4
    assert all("not pinned to a commit" in reason for reason in reasons)
    assert any("https://github.com/example/pkgs@main" in reason for reason in reasons)


def test_outside_and_build_folder(tmp_path: Path) -> None:
    """Explicit inputs outside the folder cannot be vouched for; `.esphome` never counts."""
    folder = tmp_path / "config"
    write(tmp_path, "elsewhere/comp/a.h", "int a;\n")
    write(
        folder,
        "node.yaml",
        "esphome:\n  name: n\nexternal_components:\n  - source: ../elsewhere\n"
        "x: .esphome/build/n/build_info.json\ny: /dev/null\nz: ./\n",
    )
    write(folder, ".esphome/build/n/build_info.json", "{}\n")
    reasons = unverifiable(folder)
    assert len(reasons) == 1
    assert "outside the configuration folder" in reasons[0]
    before = fingerprint(folder)
    write(folder, ".esphome/build/n/build_info.json", '{"a": 1}\n')
    write(tmp_path, "elsewhere/comp/a.h", "int b;\n")
    assert fingerprint(folder) == before


def test_build_options_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build options the caller passes and `!env_var` values count."""
    write(
        tmp_path, "node.yaml", "esphome:\n  name: n\nwifi:\n  ssid: !env_var WIFI_SSID fallback\n"
    )
    monkeypatch.setenv("WIFI_SSID", "one")
    base = fingerprint(tmp_path)
    assert fingerprint(tmp_path, toolchain="esp-idf") != base
    monkeypatch.setenv("WIFI_SSID", "two")
    assert fingerprint(tmp_path) != base


def test_file_limit_is_unverifiable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_FILES inputs the fingerprint says it cannot vouch for the rest."""
    from custom_components.esphome_pipeline.engine import fingerprint_inputs

    monkeypatch.setattr(fingerprint_inputs, "MAX_FILES", 3)
    write(tmp_path, "node.yaml", "esphome:\n  name: n\nsensor: !include_dir_list s\n")
    for number in range(4):
        write(tmp_path, f"s/{number}.yaml", "platform: uptime\n")
    assert unverifiable(tmp_path) == ("more than 3 files",)


def test_symlinked_input_is_followed(tmp_path: Path) -> None:
    """An input reached through a symlink inside the folder counts by its target."""
    write(tmp_path, "node.yaml", "esphome:\n  name: n\nfont:\n  - file: current.ttf\n")
    write(tmp_path, "fonts/a.ttf", b"a")
    write(tmp_path, "fonts/b.ttf", b"b")
    (tmp_path / "current.ttf").symlink_to(tmp_path / "fonts" / "a.ttf")
    before = fingerprint(tmp_path)
    (tmp_path / "current.ttf").unlink()
    (tmp_path / "current.ttf").symlink_to(tmp_path / "fonts" / "b.ttf")
    assert fingerprint(tmp_path) != before


def make_folder(root: Path) -> None:
    """A configuration with a package, a font and a secret, settled."""
    write(root, "node.yaml", "esphome:\n  name: n\np: !include pkg.yaml\nfont:\n  - file: f.ttf\n")
    write(root, "pkg.yaml", "wifi:\n  password: !secret pw\n")
    write(root, "f.ttf", b"font-bytes")
    write(root, "secrets.yaml", "pw: one\n")
    settle(root)


def test_warm_check_costs_only_stats(tmp_path: Path) -> None:
    """A repeated check of settled files reads nothing; any change is still seen."""
    make_folder(tmp_path)
    checker = Fingerprinter(tmp_path, esphome_version=VERSION, cache_file=None)
    first = checker.read_node("node.yaml")
    assert first is not None
    reads = checker.files_read
    assert checker.read_node("node.yaml") is first
    assert checker.files_read == reads

    write(tmp_path, "f.ttf", b"font-bytes-2")
    settle(tmp_path, age_ns=AN_HOUR_NS // 2)
    second = checker.read_node("node.yaml")
    assert second is not None
    assert second.fingerprint != first.fingerprint
    assert second.fingerprint == fingerprint(tmp_path)

    write(tmp_path, "secrets.yaml", "pw: two\n")
    settle(tmp_path, age_ns=AN_HOUR_NS // 3)
    third = checker.read_node("node.yaml")
    assert third is not None
    assert third.fingerprint not in {first.fingerprint, second.fingerprint}


def test_fresh_files_are_read_until_settled(tmp_path: Path) -> None:
    """A file written just now may change again within its timestamp tick: not trusted."""
    make_folder(tmp_path)
    write(tmp_path, "f.ttf", b"just-written")
    checker = Fingerprinter(tmp_path, esphome_version=VERSION, cache_file=None)
    checker.read_node("node.yaml")
    reads = checker.files_read
    checker.read_node("node.yaml")
    assert checker.files_read > reads


def test_disk_layer_survives_a_restart(tmp_path: Path) -> None:
    """A new Fingerprinter reads the YAML again but not the other unchanged files."""
    make_folder(tmp_path)
    first = Fingerprinter(tmp_path, esphome_version=VERSION)
    node = first.read_node("node.yaml")
    first.flush()
    cache_file = default_cache_file(tmp_path)
    assert cache_file.name == CACHE_FILE_NAME
    stored = json.loads(cache_file.read_text())
    assert set(stored["files"]) == {"node.yaml", "pkg.yaml", "f.ttf", "secrets.yaml"}

    second = Fingerprinter(tmp_path, esphome_version=VERSION)
    assert second.read_node("node.yaml") == node
    assert second.files_read == 3  # node.yaml, pkg.yaml, secrets.yaml: not f.ttf
    second.flush()  # nothing changed: nothing written
    assert json.loads(cache_file.read_text()) == stored


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"format": 99, "files": {}}',
        '{"format": 1, "files": []}',
        '{"format": 1, "files": {"f.ttf": [1, 2, "short"], "x": "y", "z": [true, 1, "a"]}}',
        "[]",
    ],
)
def test_corrupt_disk_layer_is_rebuilt(tmp_path: Path, content: str) -> None:
    """A corrupt or foreign cache file is ignored and replaced."""
    make_folder(tmp_path)
    cache_file = write(tmp_path, ".esphome/esphome_pipeline/fingerprint-cache.json", content)
    checker = Fingerprinter(tmp_path, esphome_version=VERSION)
    node = checker.read_node("node.yaml")
    assert node is not None
    assert node.fingerprint == fingerprint(tmp_path)
    checker.flush()
    assert json.loads(cache_file.read_text())["format"] == 1


def test_stale_disk_entry_is_not_trusted(tmp_path: Path) -> None:
    """An entry whose stamp no longer matches is hashed again."""
    make_folder(tmp_path)
    Fingerprinter(tmp_path, esphome_version=VERSION).read_node("node.yaml")
    checker = Fingerprinter(tmp_path, esphome_version=VERSION)
    checker.read_node("node.yaml")
    checker.flush()
    write(tmp_path, "f.ttf", b"other-bytes")
    settle(tmp_path, age_ns=AN_HOUR_NS // 2)
    again = Fingerprinter(tmp_path, esphome_version=VERSION)
    node = again.read_node("node.yaml")
    assert node is not None
    assert node.fingerprint == fingerprint(tmp_path)
    assert again.files_read == 4


def test_disk_layer_write_failure_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache that cannot be written costs a warning, never an error."""
    make_folder(tmp_path)
    write(tmp_path, "blocked", "a file where the folder should be\n")
    checker = Fingerprinter(
        tmp_path, esphome_version=VERSION, cache_file=tmp_path / "blocked" / "cache.json"
    )
    checker.read_node("node.yaml")
    with caplog.at_level(logging.WARNING):
        checker.flush()
    assert "Could not save the fingerprint cache" in caplog.text


def test_disk_layer_unreadable_and_write_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreadable cache is ignored; an interrupted write leaves no temporary file."""
    make_folder(tmp_path)
    (tmp_path / "folder-cache").mkdir()
    checker = Fingerprinter(tmp_path, esphome_version=VERSION, cache_file=tmp_path / "folder-cache")
    assert checker.read_node("node.yaml") is not None

    cache = ContentHashCache(tmp_path, tmp_path / "c" / "cache.json")
    path = str(tmp_path / "f.ttf")
    stamp = stamp_of(path)
    assert stamp is not None
    assert cache.digest(path, stamp) is not None

    def broken_dump(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fingerprint_cache.json, "dump", broken_dump)
    cache.flush()
    assert list((tmp_path / "c").iterdir()) == []


def test_large_disk_layer_keeps_only_used_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_DISK_ENTRIES only the entries used by this process are written back."""
    make_folder(tmp_path)
    cache_file = default_cache_file(tmp_path)
    old = {f"gone-{n}": [1, 1, "0" * 64] for n in range(5)}
    write(
        tmp_path,
        ".esphome/esphome_pipeline/fingerprint-cache.json",
        json.dumps({"format": 1, "files": old}),
    )
    monkeypatch.setattr(fingerprint_cache, "MAX_DISK_ENTRIES", 3)
    checker = Fingerprinter(tmp_path, esphome_version=VERSION)
    checker.read_node("node.yaml")
    checker.flush()
    assert not any(key.startswith("gone-") for key in json.loads(cache_file.read_text())["files"])


def test_unreadable_file_hashes_to_none(tmp_path: Path) -> None:
    """A file that vanished between stat and read has no digest."""
    path = write(tmp_path, "x.bin", b"x")
    stamp = stamp_of(str(path))
    assert stamp is not None
    path.unlink()
    assert ContentHashCache(tmp_path, None).digest(str(path), stamp) is None
    assert stamp_of(str(path)) is None
    assert stamp_of("bad\0path") is None


def test_odd_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated folders, `..` paths, lambdas, odd sources and unlistable folders are harmless."""
    write(
        tmp_path,
        "node.yaml",
        """
esphome:
  name: n
  includes: [42]
a: !include_dir_list s
b: !include_dir_named s
c: !include_dir_list missing
d: !include sub/..
e: !lambda 'return "f.ttf";'
f: sub/../f.ttf
g: /
h: [!secret pw, !secret pw]
external_components:
  - source: {type: local, path: 7}
  - source: 12
  - not-a-mapping
packages: not-a-mapping
""",
    )
    write(tmp_path, "s/a.yaml", "x: 1\n")
    write(tmp_path, "sub/keep", "x\n")
    write(tmp_path, "f.ttf", b"f")
    before = fingerprint(tmp_path)
    write(tmp_path, "f.ttf", b"g")
    assert fingerprint(tmp_path) != before  # `sub/../f.ttf` names it, not the lambda
    original = os.scandir

    def scandir(path: str) -> object:
        if str(path).endswith("/s"):
            raise PermissionError("denied")
        return original(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert fingerprint(tmp_path) != before


def test_cache_edges(tmp_path: Path) -> None:
    """A path outside the root keeps its full key; an unsettled rewrite drops a stored entry."""
    outside = write(tmp_path, "outside.bin", b"x")
    settle(tmp_path)
    cache = ContentHashCache(tmp_path / "root", None)
    stamp = stamp_of(str(outside))
    assert stamp is not None
    assert cache.digest(str(outside), stamp) is not None
    assert cache.digest(str(outside), stamp) is not None  # from memory now
    assert cache.reads == 1
    write(tmp_path, "outside.bin", b"yy")
    fresh = stamp_of(str(outside))
    assert fresh is not None
    assert cache.digest(str(outside), fresh) is not None
    assert cache.digest(str(outside), fresh) is not None
    assert cache.reads == 3  # not settled: read every time


def test_substitutions_in_paths(tmp_path: Path) -> None:
    """Include paths and file paths built from substitutions are followed."""
    write(
        tmp_path,
        "node.yaml",
        "substitutions:\n  dev: kitchen\n  fonts: assets/fonts\n"
        "esphome:\n  name: $dev\n"
        "packages:\n  own: !include devices/${dev}.yaml\n"
        "font:\n  - file: ${fonts}/a.ttf\n",
    )
    write(tmp_path, "devices/kitchen.yaml", "logger:\n")
    write(tmp_path, "assets/fonts/a.ttf", b"a")
    assert not unverifiable(tmp_path)
    assert_each_change_counts(
        tmp_path,
        [("devices/kitchen.yaml", "logger:\n  level: INFO\n"), ("assets/fonts/a.ttf", b"b")],
    )
    write(tmp_path, "node.yaml", "esphome:\n  name: n\np: !include devices/${elsewhere}.yaml\n")
    assert unverifiable(tmp_path) == (
        "include path devices/${elsewhere}.yaml uses a substitution that is not known here",
    )


def test_warm_check_sees_every_kind_of_change(tmp_path: Path) -> None:
    """With settled stamps, each change alone is seen: a new file in a folder, a created
    include, a deleted file, a file of another size with the same time."""
    write(
        tmp_path,
        "node.yaml",
        "esphome:\n  name: n\ns: !include_dir_list s\nlater: !include later.yaml\n"
        "font:\n  - file: f.ttf\n",
    )
    write(tmp_path, "s/a.yaml", "x: 1\n")
    write(tmp_path, "f.ttf", b"f")
    settle(tmp_path)
    checker = Fingerprinter(tmp_path, esphome_version=VERSION, cache_file=None)
    first = checker.read_node("node.yaml")
    assert first is not None
    assert checker.read_node("node.yaml") is first  # a warm hit, `later.yaml` still missing
    seen = {first.fingerprint}

    def changed(*paths: Path) -> None:
        past = time.time_ns() - AN_HOUR_NS // 2 - len(seen) * 1_000_000_000
        for path in paths:
            os.utime(path, ns=(past, past))
        node = checker.read_node("node.yaml")
        assert node is not None
        assert node.fingerprint not in seen
        assert node.fingerprint == fingerprint(tmp_path)
        seen.add(node.fingerprint)

    write(tmp_path, "s/b.yaml", "x: 2\n")
    changed(tmp_path / "s" / "b.yaml", tmp_path / "s")
    write(tmp_path, "later.yaml", "y: 1\n")
    changed(tmp_path / "later.yaml")
    (tmp_path / "f.ttf").unlink()
    changed()
    write(tmp_path, "f.ttf", b"g")
    changed(tmp_path / "f.ttf")
    font = tmp_path / "f.ttf"
    before = font.stat().st_mtime_ns
    write(tmp_path, "f.ttf", b"longer")
    os.utime(font, ns=(before, before))
    changed()


def test_warm_check_sees_a_file_becoming_a_folder(tmp_path: Path) -> None:
    """Same mtime, but a folder where the file was: not the same input."""
    make_folder(tmp_path)
    checker = Fingerprinter(tmp_path, esphome_version=VERSION, cache_file=None)
    first = checker.read_node("node.yaml")
    assert first is not None
    font = tmp_path / "f.ttf"
    stamp = font.stat()
    font.unlink()
    font.mkdir()
    os.utime(font, ns=(stamp.st_mtime_ns, stamp.st_mtime_ns))
    assert checker.read_node("node.yaml") != first
    font.rmdir()
    write(tmp_path, "f.ttf", b"y" * stamp.st_size)  # same size, same time, other bytes
    os.utime(font, ns=(stamp.st_mtime_ns, stamp.st_mtime_ns))
    # Indistinguishable by stamp: the documented limit of any (size, mtime) cache.
    assert checker.read_node("node.yaml") is not None


def test_code_is_never_probed_as_a_path(tmp_path: Path) -> None:
    """Lambdas (tagged or not) and template text are not taken for file names."""
    write(
        tmp_path,
        "node.yaml",
        "esphome:\n  name: n\nsensor:\n  - platform: template\n    lambda: return 4.0;\n"
        "    on_value_lambda: x.png\n    name: id(x).state\n",
    )
    write(tmp_path, "x.png", b"png")
    checker = Fingerprinter(tmp_path, esphome_version=VERSION, cache_file=None)
    checker.read_node("node.yaml")
    record = checker._records.get("node.yaml")
    assert record is None or [path for path, _stamp in record.stamps] == [
        str(tmp_path / "node.yaml")
    ]
    before = fingerprint(tmp_path)
    write(tmp_path, "x.png", b"other")
    assert fingerprint(tmp_path) == before


def test_both_resolutions_of_a_relative_path_count(tmp_path: Path) -> None:
    """A name in a package that exists beside the package and in the folder: both count."""
    write(tmp_path, "node.yaml", "esphome:\n  name: n\np: !include pkg/p.yaml\n")
    write(tmp_path, "pkg/p.yaml", "image:\n  - file: logo.png\n")
    write(tmp_path, "pkg/logo.png", b"a")
    write(tmp_path, "logo.png", b"b")
    assert_each_change_counts(tmp_path, [("pkg/logo.png", b"c"), ("logo.png", b"d")])
