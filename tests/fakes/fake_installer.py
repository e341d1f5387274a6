"""A fake Python interpreter (with fake `venv`, `pip`, `uv` and `esphome`) for installer tests.

A real process that prints and exits like the real tools, without a network. It is started
through small shell wrappers that `tests.fakes.installer.FakeInstaller` writes:

    <root>/base/bin/python3     the interpreter environments are made from ("base")
    <env>/bin/python            each environment's interpreter ("env"), written by `venv`

each running `<python> -S fake_installer.py <control dir> <role> <own path> <args...>`.
Standard library only, like `fake_esphome.py`.

Understood: `base -m venv DIR`; `base -m uv --version | venv --python P --relocatable DIR |
pip install [--dry-run --no-deps --reinstall] [--index-strategy S] --python ENV_PY REQ`;
`env -m pip install ... esphome==V`; `env -m pip index versions esphome ...`;
`env -m esphome version` (other `esphome` subcommands run `fake_esphome.py`).

Behaviour comes from `<control>/behaviour.json` (all optional):
`uv` (false: `-m uv` says "No module named uv"), `venv_fails`, `install_fail_after` (lines
printed before a failure, leaving files behind), `install_wait_for` (a file name in the
control folder; the install blocks until it exists), `reports_version` (what `esphome version`
says instead of the installed version), `pyvenv_version` (the Python version written into
pyvenv.cfg), `newest` (the newest release; null: the index cannot be reached; "garbled": an
answer without a version), `newest_wait_for` (the question blocks until that file exists).
Every run appends `{"role", "argv", "event"}` to `<control>/calls.jsonl`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import sys
import time
from typing import Any

FAKE_ESPHOME = Path(__file__).with_name("fake_esphome.py")
WAIT_LIMIT = 120.0
STATE_FILE = "fake-esphome.json"
INSTALL_LINES = (
    "Collecting esphome=={version}",
    "  Downloading esphome-{version}-py3-none-any.whl (5.1 MB)",
    "Collecting platformio==6.2.0 (from esphome=={version})",
    "Collecting esptool==5.4.0 (from esphome=={version})",
    "",
    "Installing collected packages: platformio, esptool, esphome",
    "Successfully installed esphome-{version} esptool-5.4.0 platformio-6.2.0",
)


class Fake:
    """One run of the fake: its control folder, behaviour and log."""

    def __init__(self, control: Path, role: str, own_path: str, argv: list[str]) -> None:
        self.control = control
        self.role = role
        self.own_path = Path(own_path)
        self.argv = argv
        try:
            self.behaviour: dict[str, Any] = json.loads(
                (control / "behaviour.json").read_text(encoding="utf-8")
            )
        except FileNotFoundError:
            self.behaviour = {}

    def log(self, event: str, **extra: Any) -> None:
        record = {"role": self.role, "argv": self.argv, "event": event, **extra}
        with (self.control / "calls.jsonl").open("a", encoding="utf-8") as calls:
            calls.write(json.dumps(record) + "\n")

    def say(self, *lines: str) -> None:
        for line in lines:
            print(line, flush=True)

    # ----------------------------------------------------------------------------- dispatch

    def run(self) -> int:
        self.log("start", pid=os.getpid())
        args = self.argv
        if args[:2] == ["-m", "venv"] and self.role == "base":
            return self.make_env(Path(args[2]), made_by="venv")
        if args[:2] == ["-m", "uv"] and self.role == "base":
            return self.uv(args[2:])
        if args[:3] == ["-m", "pip", "install"] and self.role == "env":
            return self.install(self.own_path.parent.parent, args[-1])
        if args[:4] == ["-m", "pip", "index", "versions"] and self.role == "env":
            return self.newest(pip=True)
        if args[:2] == ["-m", "esphome"] and self.role == "env":
            return self.esphome(self.own_path.parent.parent, args[2:])
        self.say(f"fake {self.role}: unsupported {args}")
        return 2

    def uv(self, args: list[str]) -> int:
        if self.behaviour.get("uv", True) is False:
            self.say(f"{self.own_path}: No module named uv")
            return 1
        if args == ["--version"]:
            self.say("uv 0.6.10")
            return 0
        if args[:1] == ["venv"]:
            return self.make_env(Path(args[-1]), made_by="uv")
        if args[:2] == ["pip", "install"]:
            env_dir = Path(args[args.index("--python") + 1]).parent.parent
            if "--dry-run" in args:
                return self.newest(pip=False)
            return self.install(env_dir, args[-1])
        self.say(f"error: unrecognized subcommand {args}")
        return 2

    # ------------------------------------------------------------------------------- tools

    def make_env(self, target: Path, *, made_by: str) -> int:
        if self.behaviour.get("venv_fails"):
            self.say(
                "Error: Command '['python', '-m', 'ensurepip']' returned non-zero exit status 1."
            )
            return 1
        (target / "bin").mkdir(parents=True, exist_ok=True)
        python = target / "bin" / "python"
        python.write_text(
            self.own_path.read_text(encoding="utf-8").replace(" base ", " env "),
            encoding="utf-8",
        )
        python.chmod(0o755)
        version = self.behaviour.get("pyvenv_version") or "{}.{}.{}".format(*sys.version_info[:3])
        key = "version_info" if made_by == "uv" else "version"
        (target / "pyvenv.cfg").write_text(
            f"home = {self.own_path.parent}\n{key} = {version}\n", encoding="utf-8"
        )
        if made_by == "uv":
            self.say(f"Using CPython {version}", f"Creating virtual environment at: {target}")
        return 0

    def install(self, env_dir: Path, requirement: str) -> int:
        version = requirement.partition("==")[2]
        fail_after = self.behaviour.get("install_fail_after")
        for number, line in enumerate(INSTALL_LINES):
            if fail_after is not None and number == fail_after:
                (env_dir / "lib").mkdir(exist_ok=True)
                (env_dir / "lib" / "half-installed").write_text("x", encoding="utf-8")
                self.say(
                    "ERROR: Could not install packages due to an OSError: "
                    "[Errno 28] No space left on device"
                )
                return 1
            self.say(line.format(version=version))
            if number == 1:
                # A progress bar redrawn in place, as pip draws it on a terminal.
                print("  Downloading 40%\r  Downloading 100%\r", end="", flush=True)
            if number == 0 and (wait_for := self.behaviour.get("install_wait_for")):
                self.wait(wait_for)
        (env_dir / STATE_FILE).write_text(json.dumps({"version": version}), encoding="utf-8")
        return 0

    def wait(self, name: str) -> None:
        """Block until `<control>/<name>` exists (logged first, so a test knows)."""
        self.log("waiting", file=name)
        deadline = time.monotonic() + WAIT_LIMIT
        while not (self.control / name).exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def newest(self, *, pip: bool) -> int:
        if wait_for := self.behaviour.get("newest_wait_for"):
            self.wait(wait_for)
        newest = self.behaviour.get("newest")
        if newest == "garbled":
            self.say("Resolved 0 packages", "nothing to see here")
            return 0
        if not newest:
            self.say("error: Failed to fetch: `https://index.invalid/simple/esphome/`")
            return 2 if not pip else 1
        if pip:
            self.say(
                "WARNING: pip index is currently an experimental command.",
                f"esphome ({newest})",
                f"Available versions: {newest}, 2026.10.0",
            )
        else:
            self.say(
                "Resolved 1 package in 5ms",
                "Would install 1 package",
                " - esphome==2026.10.0",
                f" + esphome=={newest}",
            )
        return 0

    def esphome(self, env_dir: Path, args: list[str]) -> int:
        try:
            state = json.loads((env_dir / STATE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.say(f"{self.own_path}: No module named esphome")
            return 1
        if args == ["version"]:
            self.say(f"Version: {self.behaviour.get('reports_version') or state['version']}")
            return 0
        os.execv(sys.executable, [sys.executable, "-S", str(FAKE_ESPHOME), *args])  # noqa: S606, RET503


def main() -> int:
    control, role, own_path, *argv = sys.argv[1:]
    return Fake(Path(control), role, own_path, argv).run()


if __name__ == "__main__":
    sys.exit(main())
