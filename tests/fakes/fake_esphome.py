"""A fake ESPHome CLI for tests: a real process that behaves like `esphome` without building.

Run it as `[sys.executable, "-S", fake_esphome.py, ...]`. Standard library only, so it runs
on any Python, without site-packages. It accepts the subcommands and options the engine may
pass to the real CLI (`[--dashboard] version | config <yaml> | compile <yaml> |
upload <yaml> [--device P] [--file BIN] | clean <yaml> | clean-all <dir>... |
bundle <yaml> [-o OUT]`) and rejects
anything else with exit 2, so a test fails when the engine passes an option the real CLI
would refuse.

Outputs land where ESPHome puts them, under `<config_dir>/.esphome`:

- compile: `build/<name>/.pioenvs/<name>/firmware.bin` (derived from the YAML bytes, so a
  changed configuration gives a different image), `build/<name>/build_info.json` (rewritten
  only when the config hash changes, like ESPHome) and `storage/<yaml>.json`.
- upload: fails when the image is missing; otherwise "flashes" by appending a record to
  `<config_dir>/.fake_esphome_flashed.jsonl`.
- clean: deletes that build's `.pioenvs`, `.piolibdeps` and `dependencies.lock`.
- clean-all: empties `<dir>/.esphome` except `storage/` and top-level `.json` files.
- bundle: a gzip tar like ESPHome's (`manifest.json`, the YAML, and `secrets.yaml` when the
  YAML uses `!secret`) at `-o OUT`, default `<config_dir>/<stem>.esphomebundle.tar.gz`.

Behaviour per configuration comes from `<config_dir>/.fake_esphome.json`:
`{"<yaml> | default": {"<subcommand>": {behaviour}}}`; the configuration's entry overrides
`default`. Behaviour keys: `duration` (seconds spread over the output lines), `lines` (output;
a line ending in `\\r` is written without a newline, like a progress redraw), `exit_code`,
`fail_message`, `ignore_sigterm`, `grandchild_holds_pipe` (a grandchild in the same session
inherits stdout and sleeps), `grandchild_own_group` (that grandchild gets its own process group,
as ninja does with compilers), `grandchild_own_session` (that grandchild calls setsid, leaving
the job's session), `grandchild_ignore_sigterm`, `grandchild_closes_output` (that grandchild
does not hold the pipe: its output goes to /dev/null), `wait_for_file` (a path relative to
config_dir; the process blocks until it exists), `flash_first` (upload: "flash" before any
output, like an OTA that completes before the success line is printed) and
`exit_on_broken_pipe` (a write to a stdout nobody reads any more ends the process with exit
code 1, as the real CLI does; its `end` event says `broken_pipe: true`) and `fail_first`
(a number N: only the first N invocations of the subcommand for the configuration behave as
configured; later ones behave as by default, for a retry that succeeds).

Every invocation appends JSON lines to `<config_dir>/.fake_esphome_calls.jsonl`: a `start`
event written before any waiting (so a test knows the process runs), a `grandchild` event when
one was spawned, a `grandchild_ready` event from the grandchild itself once it ignores SIGTERM
(if asked to), and an `end` event with `exit_code` (`-15` when SIGTERM ended it). `version`
has no configuration; it uses `$FAKE_ESPHOME_CONFIG_DIR` when set, else logs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

VERSION = "2026.10.0"
BEHAVIOUR_FILE = ".fake_esphome.json"
CALLS_FILE = ".fake_esphome_calls.jsonl"
FLASHED_FILE = ".fake_esphome_flashed.jsonl"
CONFIG_DIR_ENV = "FAKE_ESPHOME_CONFIG_DIR"
WAIT_FOR_FILE_LIMIT = 120.0
GRANDCHILD_SLEEP = 600

SUBCOMMANDS = ("version", "config", "compile", "upload", "clean", "clean-all", "bundle")
# Options the real CLI accepts per subcommand: name -> takes a value.
OPTIONS: dict[str, dict[str, bool]] = {
    "version": {},
    "config": {"--show-secrets": False},
    "compile": {"--only-generate": False},
    "upload": {
        "--device": True,
        "--file": True,
        "--upload_speed": True,
        "--mdns-address-cache": True,
        "--dns-address-cache": True,
    },
    "clean": {},
    "clean-all": {},
    "bundle": {"-o": True, "--output": True, "--list-only": False},
}
GLOBAL_FLAGS = ("--dashboard", "--verbose", "-v", "--quiet", "-q")


class UsageError(Exception):
    """The command line is one the real CLI would reject."""


class Invocation:
    """One run of the fake: parsed arguments, its config dir and its behaviour."""

    def __init__(self, argv: list[str]) -> None:
        args = list(argv)
        while args and args[0] in GLOBAL_FLAGS:
            args.pop(0)
        if not args or args[0] not in SUBCOMMANDS:
            raise UsageError(f"Error: No such command {args[0] if args else ''!r}.")
        self.argv = argv
        self.subcommand = args.pop(0)
        self.positional: list[str] = []
        self.options: dict[str, str | None] = {}
        accepted = OPTIONS[self.subcommand]
        while args:
            arg = args.pop(0)
            if arg.startswith("-"):
                if arg not in accepted:
                    raise UsageError(f"Error: No such option: {arg}")
                if accepted[arg]:
                    if not args:
                        raise UsageError(f"Error: Option '{arg}' requires an argument.")
                    self.options[arg] = args.pop(0)
                else:
                    self.options[arg] = None
            else:
                self.positional.append(arg)
        self.configuration = ""
        self.yaml_path: Path | None = None
        self.config_dir: Path | None = None
        if self.subcommand == "version":
            if self.positional:
                raise UsageError("Error: Got unexpected extra argument")
            env_dir = os.environ.get(CONFIG_DIR_ENV)
            self.config_dir = Path(env_dir) if env_dir else None
        elif self.subcommand == "clean-all":
            if not self.positional:
                raise UsageError("Error: Missing argument 'CONFIGURATION...'.")
            self.config_dir = Path(self.positional[0]).absolute()
        else:
            if len(self.positional) != 1:
                raise UsageError("Error: expected exactly one configuration file")
            self.yaml_path = Path(self.positional[0]).absolute()
            self.configuration = self.yaml_path.name
            self.config_dir = self.yaml_path.parent
        self.port = (self.options.get("--device") or "OTA") if self.subcommand == "upload" else None
        self.behaviour = self._load_behaviour()

    def _load_behaviour(self) -> dict[str, Any]:
        behaviour = self._configured_behaviour()
        fail_first = behaviour.get("fail_first")
        if fail_first is not None and self._earlier_invocations() >= int(fail_first):
            return {}
        return behaviour

    def _earlier_invocations(self) -> int:
        """How many invocations of this subcommand for this configuration started before."""
        try:
            lines = (self.config_dir or Path()).joinpath(CALLS_FILE).read_text("utf-8")
        except FileNotFoundError:
            return 0
        return sum(
            1
            for line in lines.splitlines()
            if (call := json.loads(line))["event"] == "start"
            and call["subcommand"] == self.subcommand
            and call["configuration"] == self.configuration
        )

    def _configured_behaviour(self) -> dict[str, Any]:
        if self.config_dir is None:
            return {}
        try:
            table = json.loads((self.config_dir / BEHAVIOUR_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        merged: dict[str, Any] = dict(table.get("default", {}).get(self.subcommand, {}))
        if self.configuration:
            merged.update(table.get(self.configuration, {}).get(self.subcommand, {}))
        return merged

    def log(self, event: str, **fields: Any) -> None:
        """Append one event to the calls file with a single O_APPEND write."""
        if self.config_dir is None:
            return
        record = {
            "event": event,
            "subcommand": self.subcommand,
            "configuration": self.configuration,
            "port": self.port,
            "pid": os.getpid(),
            "sid": os.getsid(0),
            "argv": self.argv,
            "time": time.time(),
            **fields,
        }
        append_line(self.config_dir / CALLS_FILE, record)


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append a JSON line atomically (one write on an O_APPEND descriptor)."""
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def out(text: str) -> None:
    """Write raw text to stdout and flush, so the reader sees it at once."""
    sys.stdout.buffer.write(text.encode())
    sys.stdout.buffer.flush()


def device_names(yaml_path: Path) -> tuple[str, str | None]:
    """Return (name, friendly_name) from the `esphome:` block; the name defaults to the stem."""
    name: str | None = None
    friendly: str | None = None
    in_block = False
    for raw in yaml_path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            in_block = line == "esphome:"
            continue
        if in_block:
            key, _, value = line.strip().partition(":")
            value = value.strip().strip("'\"")
            if key == "name" and value:
                name = value
            elif key == "friendly_name" and value:
                friendly = value
    return name or yaml_path.stem, friendly


def fnv1a_32(data: bytes) -> int:
    """Return the 32-bit FNV-1a hash (ESPHome's config hash uses the same function)."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def firmware_image(name: str, yaml_bytes: bytes) -> bytes:
    """Return a deterministic image that changes whenever the configuration changes."""
    return b"FAKE-ESPHOME-FIRMWARE\0" + name.encode() + b"\0" + hashlib.sha256(yaml_bytes).digest()


def build_dir(config_dir: Path, name: str) -> Path:
    """Return ESPHome's build folder for a device name."""
    return config_dir / ".esphome" / "build" / name


def default_lines(inv: Invocation, name: str) -> list[str]:
    """Return realistic output for a subcommand, progress lines included."""
    if inv.subcommand == "version":
        return [f"Version: {VERSION}"]
    header = [f"INFO ESPHome {VERSION}", f"INFO Reading configuration {inv.positional[0]}..."]
    if inv.subcommand == "compile":
        build = build_dir(inv.config_dir or Path(), name)
        return [
            *header,
            "INFO Generating C++ source...",
            f"INFO Compiling app... Build path: {build}",
            "[1/120] Compiling src/esphome/core/application.cpp.o",
            "[40/120] Compiling src/esphome/core/component.cpp.o",
            "[80/120] Compiling src/main.cpp.o",
            "[120/120] Linking .pioenvs/firmware",
            "RAM:   [=         ]  10.2% (used 33412 bytes from 327680 bytes)",
            "\x1b[32mINFO Successfully compiled program.\x1b[0m",
        ]
    if inv.subcommand == "upload":
        return [
            *header,
            f"INFO Connecting to {inv.port} port 3232...",
            f"INFO Connected to {inv.port}",
            "INFO Uploading firmware.bin (1024 bytes)",
            "Uploading: [=====                                   ] 12% \r",
            "Uploading: [====================                    ] 50% \r",
            "Uploading: [========================================] 100% Done...",
            "INFO Upload took 0.01 seconds, waiting for result...",
            "INFO OTA successful",
        ]
    if inv.subcommand == "config":
        return [*header, "INFO Configuration is valid!"]
    if inv.subcommand == "bundle":
        return header
    return [*header, f"INFO Done cleaning {name}"]


def write_if_changed(path: Path, data: bytes) -> None:
    """Write only when the content differs, keeping the mtime of unchanged files."""
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def do_compile(inv: Invocation, name: str, friendly: str | None) -> int:
    assert inv.yaml_path is not None
    assert inv.config_dir is not None
    yaml_bytes = inv.yaml_path.read_bytes()
    build = build_dir(inv.config_dir, name)
    firmware = build / ".pioenvs" / name / "firmware.bin"
    write_if_changed(firmware, firmware_image(name, yaml_bytes))
    config_hash = fnv1a_32(yaml_bytes)
    info_path = build / "build_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        info = {}
    if info.get("config_hash") != config_hash or info.get("esphome_version") != VERSION:
        now = time.time()
        info = {
            "config_hash": config_hash,
            "build_time": int(now),
            "build_time_str": time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(now)),
            "esphome_version": VERSION,
        }
        info_path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    storage = {
        "storage_version": 1,
        "name": name,
        "friendly_name": friendly,
        "comment": None,
        "esphome_version": VERSION,
        "src_version": 1,
        "address": f"{name}.local",
        "web_port": None,
        "esp_platform": "ESP32",
        "build_path": str(build),
        "firmware_bin_path": str(firmware),
        "loaded_integrations": ["api", "esphome", "ota"],
        "loaded_platforms": [],
        "no_mdns": False,
        "framework": "esp-idf",
        "core_platform": "esp32",
    }
    write_if_changed(
        inv.config_dir / ".esphome" / "storage" / f"{inv.configuration}.json",
        json.dumps(storage, indent=2).encode(),
    )
    return 0


def do_upload(inv: Invocation, name: str) -> int:
    assert inv.config_dir is not None
    given = inv.options.get("--file")
    firmware = (
        Path(given).absolute()
        if given
        else build_dir(inv.config_dir, name) / ".pioenvs" / name / "firmware.bin"
    )
    if not firmware.is_file():
        out(f"ERROR Firmware {firmware} not found. Compile {inv.configuration} first.\n")
        return 1
    image = firmware.read_bytes()
    append_line(
        inv.config_dir / FLASHED_FILE,
        {
            "configuration": inv.configuration,
            "name": name,
            "port": inv.port,
            "firmware": str(firmware),
            "sha256": hashlib.sha256(image).hexdigest(),
            "pid": os.getpid(),
            "time": time.time(),
        },
    )
    return 0


def do_clean(inv: Invocation, name: str) -> int:
    assert inv.config_dir is not None
    build = build_dir(inv.config_dir, name)
    for leaf in (".pioenvs", ".piolibdeps"):
        shutil.rmtree(build / leaf, ignore_errors=True)
    (build / "dependencies.lock").unlink(missing_ok=True)
    return 0


def do_bundle(inv: Invocation) -> int:
    assert inv.yaml_path is not None
    assert inv.config_dir is not None
    import io
    import tarfile

    yaml_bytes = inv.yaml_path.read_bytes()
    files = {inv.configuration: yaml_bytes}
    secrets = inv.config_dir / "secrets.yaml"
    if b"!secret" in yaml_bytes and secrets.is_file():
        files["secrets.yaml"] = secrets.read_bytes()
    manifest = {
        "manifest_version": 1,
        "esphome_version": VERSION,
        "config_filename": inv.configuration,
        "config_dir": str(inv.config_dir),
        "files": sorted(files),
        "has_secrets": "secrets.yaml" in files,
    }
    given = inv.options.get("-o") or inv.options.get("--output")
    stem = inv.configuration.rsplit(".", 1)[0]
    target = Path(given).absolute() if given else inv.config_dir / f"{stem}.esphomebundle.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in [("manifest.json", json.dumps(manifest).encode()), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target.write_bytes(buffer.getvalue())
    out(f"INFO Bundle created: {target} ({len(files)} files)\n")
    return 0


def do_clean_all(inv: Invocation) -> int:
    for folder in inv.positional:
        data_dir = Path(folder) / ".esphome"
        if not data_dir.is_dir():
            continue
        for entry in data_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                if entry.name != "storage":
                    shutil.rmtree(entry)
            elif entry.suffix != ".json":
                entry.unlink()
        out(f"INFO Done cleaning {data_dir}\n")
    return 0


def spawn_grandchild(inv: Invocation) -> None:
    """Start a sleeper that inherits stdout, in this session (optionally its own group or
    its own session, optionally with its output on /dev/null)."""
    ignore = bool(inv.behaviour.get("grandchild_ignore_sigterm"))
    code = (
        "import json, os, signal, time\n"
        + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore else "")
        + ready_code(inv)
        + f"time.sleep({GRANDCHILD_SLEEP})\n"
    )
    output = subprocess.DEVNULL if inv.behaviour.get("grandchild_closes_output") else None
    child = subprocess.Popen(
        [sys.executable, "-S", "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        process_group=0 if inv.behaviour.get("grandchild_own_group") else None,
        start_new_session=bool(inv.behaviour.get("grandchild_own_session")),
    )
    inv.log("grandchild", grandchild_pid=child.pid)


def ready_code(inv: Invocation) -> str:
    """Code for the grandchild: log `grandchild_ready` once its signal set-up is done."""
    if inv.config_dir is None:
        return ""
    base = {
        "event": "grandchild_ready",
        "subcommand": inv.subcommand,
        "configuration": inv.configuration,
        "port": inv.port,
        "argv": inv.argv,
    }
    return (
        f"record = {{**json.loads({json.dumps(base)!r}), 'pid': os.getpid(), "
        "'sid': os.getsid(0), 'time': time.time()}\n"
        f"fd = os.open({str(inv.config_dir / CALLS_FILE)!r}, "
        "os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)\n"
        "os.write(fd, (json.dumps(record) + '\\n').encode())\n"
        "os.close(fd)\n"
    )


def seconds_since_launch() -> float:
    """Return how long ago this process was started, or 0.0 when that cannot be read.

    The kernel's start time (/proc/self/stat, field 22) counts whole clock ticks since boot;
    taking the end of its tick errs towards a process that lives a little longer, never
    shorter, than its `duration`.
    """
    try:
        fields = Path("/proc/self/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        started = (int(fields[19]) + 1) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)


def wait_for_release(inv: Invocation) -> bool:
    """Block until the behaviour's `wait_for_file` exists; False when the safety limit ran out."""
    relative = inv.behaviour.get("wait_for_file")
    if not relative or inv.config_dir is None:
        return True
    target = inv.config_dir / relative
    deadline = time.monotonic() + WAIT_FOR_FILE_LIMIT
    while not target.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run(inv: Invocation) -> int:
    """Do the work of one invocation and return its exit code."""
    if inv.yaml_path is not None and not inv.yaml_path.is_file():
        out(f"ERROR Error reading file {inv.yaml_path}: No such file or directory\n")
        return 2
    name, friendly = device_names(inv.yaml_path) if inv.yaml_path is not None else ("", None)
    if inv.behaviour.get("grandchild_holds_pipe"):
        spawn_grandchild(inv)
    held = inv.behaviour.get("wait_for_file")
    if not wait_for_release(inv):
        out("ERROR fake_esphome: wait_for_file was never released\n")
        return 3
    if inv.subcommand == "upload" and inv.behaviour.get("flash_first"):
        flashed = do_upload(inv, name)
        if flashed:
            return flashed
    lines = inv.behaviour.get("lines")
    if lines is None:
        lines = default_lines(inv, name)
    duration = float(inv.behaviour.get("duration", 0.05))
    pause = duration / max(len(lines), 1)
    # A compile of `duration` seconds is a process that lives that long: the clock starts at
    # the launch (the interpreter's own start-up is part of it, unless a hold came first), and
    # the lines are paced against it rather than by sleeping `pause` after each one. Late
    # wake-ups and a start-up slowed by a busy machine otherwise stretched a 1.0 s compile to
    # 1.05-1.15 s, which the benchmarks counted as the pipeline's own overhead.
    began = time.monotonic() - (seconds_since_launch() if held is None else 0.0)
    for number, line in enumerate(lines, start=1):
        out(line if line.endswith("\r") else line + "\n")
        time.sleep(max(0.0, began + number * pause - time.monotonic()))
    if not lines:
        time.sleep(max(0.0, began + duration - time.monotonic()))
    exit_code = int(inv.behaviour.get("exit_code", 0))
    if exit_code:
        message = inv.behaviour.get("fail_message", f"fake {inv.subcommand} failed")
        sys.stderr.write(f"ERROR {message}\n")
        sys.stderr.flush()
        return exit_code
    if inv.subcommand == "compile":
        return do_compile(inv, name, friendly)
    if inv.subcommand == "upload":
        return 0 if inv.behaviour.get("flash_first") else do_upload(inv, name)
    if inv.subcommand == "clean":
        return do_clean(inv, name)
    if inv.subcommand == "clean-all":
        return do_clean_all(inv)
    if inv.subcommand == "bundle":
        return do_bundle(inv)
    return 0


def main(argv: list[str]) -> int:
    """Parse, log start, run, log end."""
    try:
        inv = Invocation(argv)
    except UsageError as err:
        sys.stderr.write(f"Usage: esphome [OPTIONS] COMMAND [ARGS]...\n{err}\n")
        return 2

    def on_sigterm(signum: int, _frame: FrameType | None) -> None:
        # Record the end, then die by the signal so the parent sees a signal exit.
        inv.log("end", exit_code=-signum)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    if inv.behaviour.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_sigterm)
    inv.log(
        "start",
        cwd=str(Path.cwd()),
        env={
            key: os.environ.get(key)
            for key in ("PYTHONUNBUFFERED", "PYTHONUTF8", "PYTHONIOENCODING", "NO_COLOR")
        },
    )
    try:
        exit_code = run(inv)
    except BrokenPipeError:
        if not inv.behaviour.get("exit_on_broken_pipe"):
            raise
        inv.log("end", exit_code=1, broken_pipe=True)
        # Nobody reads stdout any more: keep Python's final flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    inv.log("end", exit_code=exit_code)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
