"""Installing and checking ESPHome environments, with the tools faked as processes.

The fake interpreter (tests/fakes/fake_installer.py) is a real subprocess that prints and exits
like `python -m venv`, pip and uv; these tests drive the provisioner against it, including an
install that fails half-way, one that is cancelled, and environments whose interpreter broke.
The newest-release question and removals are in test_provision_releases.py.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import re
import sys
from typing import Any

from homeassistant.core import HomeAssistant
import pytest

from custom_components.esphome_pipeline.const import (
    MANAGED_ESPHOME_VERSION,
)
from custom_components.esphome_pipeline.provision.installer import (
    Installer,
    InstallError,
    find_installer,
    install_into,
)
from custom_components.esphome_pipeline.provision.layout import (
    ManagedEnvironment,
    environment_for,
    environment_problem,
    is_valid_version,
    make_staging_dir,
    remove_leftovers,
)
from custom_components.esphome_pipeline.provision.manager import (
    EsphomeProvisioner,
)
from tests.fakes.installer import FakeInstaller

from .conftest import installed_folders as _folders

NEWER = "2026.11.0"
PYTHON_NOW = (sys.version_info.major, sys.version_info.minor)


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_script_setup_pins_the_same_version() -> None:
    """The version the flow installs by default is the one the project tests with."""
    setup_script = (Path(__file__).parents[2] / "script" / "setup").read_text(encoding="utf-8")
    assert f'ESPHOME_VERSION="{MANAGED_ESPHOME_VERSION}"' in setup_script


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2026.10.0", True),
        ("2026.11.0b2", True),
        ("1.20.4.post1", True),
        ("", False),
        ("latest", False),
        ("2026.10.0; rm -rf", False),
        ("../2026.10.0", False),
    ],
)
def test_version_check(text: str, valid: bool) -> None:
    """Only plain release numbers become folder names and requirements."""
    assert is_valid_version(text) is valid
    if not valid:
        with pytest.raises(ValueError, match="Not an ESPHome version"):
            environment_for(Path("root"), text)


async def test_install_with_uv(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """uv makes a relocatable environment, installs the pinned version, and it answers."""
    lines: list[str] = []
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION, on_line=lines.append)

    assert env.path == provisioner.root / f"esphome-{MANAGED_ESPHOME_VERSION}"
    assert _folders(provisioner.root) == [f"esphome-{MANAGED_ESPHOME_VERSION}"]
    assert env.command == (str(env.path / "bin" / "python"), "-m", "esphome")
    assert await provisioner.async_problem(env) is None
    commands = fake_installer.commands()
    assert commands[0] == "base: -m uv --version"
    assert re.fullmatch(
        rf"base: -m uv venv --python {re.escape(fake_installer.python)} --relocatable .*/"
        rf"\.esphome-{MANAGED_ESPHOME_VERSION}\.partial-\w+",
        commands[1],
    )
    assert re.fullmatch(
        r"base: -m uv pip install --index-strategy unsafe-first-match --python "
        rf".*\.partial-\w+/bin/python esphome=={MANAGED_ESPHOME_VERSION}",
        commands[2],
    )
    # Checked in the staging folder, then again where it was renamed to.
    assert commands[3:] == ["env: -m esphome version", "env: -m esphome version"]
    assert "  Downloading 100%" in lines
    assert lines[-1] == f"Successfully installed esphome-{MANAGED_ESPHOME_VERSION} " + (
        "esptool-5.4.0 platformio-6.2.0"
    )


async def test_environment_that_stopped_answering_is_reinstalled(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """An environment that looks fine but whose `esphome version` fails is built again."""
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    (env.path / "fake-esphome.json").unlink()

    assert await provisioner.async_install(MANAGED_ESPHOME_VERSION) == env

    assert sum("venv" in command for command in fake_installer.commands()) == 2
    assert _folders(provisioner.root) == [f"esphome-{MANAGED_ESPHOME_VERSION}"]


async def test_install_with_venv_and_pip(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """Without uv, the standard venv module and pip do the same."""
    fake_installer.behave(uv=False)
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)

    assert await provisioner.async_problem(env) is None
    commands = fake_installer.commands()
    assert re.fullmatch(r"base: -m venv .*\.partial-\w+", commands[1])
    assert commands[2] == (
        "env: -m pip install --disable-pip-version-check --no-input --progress-bar off "
        f"esphome=={MANAGED_ESPHOME_VERSION}"
    )


async def test_working_environment_is_reused(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """A second install of the same version only checks that it answers."""
    first = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    before = len(fake_installer.calls())

    again = await provisioner.async_install(MANAGED_ESPHOME_VERSION)

    assert again == first
    assert fake_installer.commands()[before:] == ["env: -m esphome version"]


async def test_failure_half_way_leaves_nothing(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """pip failing in the middle: the error carries its last lines; no folder is left, and an
    installed version beside it is untouched."""
    await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    fake_installer.behave(install_fail_after=3)

    with pytest.raises(InstallError) as caught:
        await provisioner.async_install(NEWER)

    details = caught.value.details
    assert details.startswith(f"Could not install ESPHome {NEWER} (exit code 1)")
    assert "Collecting platformio==6.2.0" in details
    assert details.endswith("[Errno 28] No space left on device")
    assert caught.value.markdown == f"\n\n```\n{details}\n```"
    assert _folders(provisioner.root) == [f"esphome-{MANAGED_ESPHOME_VERSION}"]


async def test_environment_creation_fails(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """A Python without a working venv module: the error says so, nothing is left."""
    fake_installer.behave(uv=False, venv_fails=True)
    with pytest.raises(InstallError, match="Could not create the virtual environment") as caught:
        await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    assert "ensurepip" in caught.value.details
    assert _folders(provisioner.root) == []


async def test_environment_reporting_another_version_is_refused(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """An install whose `esphome version` names another release is not selected."""
    fake_installer.behave(reports_version="2026.9.0")
    with pytest.raises(InstallError, match=f"reports ESPHome 2026.9.0, not {NEWER}"):
        await provisioner.async_install(NEWER)
    assert _folders(provisioner.root) == []


async def test_environment_broken_after_rename_is_removed(
    hass: HomeAssistant,
    fake_installer: FakeInstaller,
    provisioner: EsphomeProvisioner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last check runs where the environment was renamed to; failing it removes it."""
    from custom_components.esphome_pipeline.provision import manager

    real_verify = manager.verify_environment

    async def verify_fails(env: Any) -> str:
        raise InstallError("ESPHome does not answer after the rename")

    # The staging check happens inside install_into; only the final one goes through here.
    monkeypatch.setattr(manager, "verify_environment", verify_fails)
    with pytest.raises(InstallError, match="after the rename"):
        await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    assert _folders(provisioner.root) == []
    monkeypatch.setattr(manager, "verify_environment", real_verify)
    await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    assert _folders(provisioner.root) == [f"esphome-{MANAGED_ESPHOME_VERSION}"]


async def test_cancelled_install_stops_the_installer_and_cleans_up(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """Cancelling (a closed dialog) stops the installer's processes and removes the folder."""
    fake_installer.behave(install_wait_for="go")
    task = hass.async_create_task(provisioner.async_install(MANAGED_ESPHOME_VERSION))
    await fake_installer.wait_for("waiting")
    installer_pid = fake_installer.calls()[-1]["pid"]

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert _process_gone(installer_pid)
    assert _folders(provisioner.root) == []


async def test_install_deadline(
    hass: HomeAssistant, fake_installer: FakeInstaller, tmp_path: Path
) -> None:
    """An install that does not end in time is stopped with a clear error."""
    fake_installer.behave(install_wait_for="never")
    installer = await find_installer(fake_installer.python)
    staging = make_staging_dir(tmp_path / "root", MANAGED_ESPHOME_VERSION)

    with pytest.raises(InstallError, match="did not end within 0.5 seconds"):
        await install_into(installer, staging, MANAGED_ESPHOME_VERSION, timeout=0.5)


async def test_missing_interpreter(hass: HomeAssistant, tmp_path: Path) -> None:
    """An interpreter that does not exist: no uv, and venv cannot start."""
    installer = await find_installer(str(tmp_path / "no-python"))
    assert installer == Installer(str(tmp_path / "no-python"), None)
    staging = make_staging_dir(tmp_path / "root", MANAGED_ESPHOME_VERSION)
    # Every command runs under the job wrapper, which reports a program it cannot start as
    # exit code 127 with the reason in the installer's output.
    with pytest.raises(InstallError, match="Could not create the virtual environment") as raised:
        await install_into(installer, staging, MANAGED_ESPHOME_VERSION)
    assert "no-python" in str(raised.value.details)


async def test_unusable_target_folder(hass: HomeAssistant, tmp_path: Path) -> None:
    """A config folder where nothing can be created gives an InstallError, not a crash."""
    fake_installer = FakeInstaller(tmp_path / "installer")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    provisioner = EsphomeProvisioner(hass, python=fake_installer.python, root=blocker / "root")
    with pytest.raises(InstallError, match="Could not install ESPHome 2026.10.0: "):
        await provisioner.async_install(MANAGED_ESPHOME_VERSION)


async def test_invalid_version_is_refused(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """Nothing runs for a version that is not a release number."""
    with pytest.raises(InstallError, match="Not an ESPHome version"):
        await provisioner.async_install("1.0 --index-url x")
    assert fake_installer.calls() == []


async def test_broken_interpreter_is_detected_and_replaced(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """An environment made for another Python is a problem; installing replaces it."""
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    config = env.path / "pyvenv.cfg"
    config.write_text(config.read_text().replace(f"{PYTHON_NOW[0]}.{PYTHON_NOW[1]}.", "3.12."))

    problem = await provisioner.async_problem(env)
    assert problem == (
        f"it was made for Python 3.12, and Home Assistant now runs Python "
        f"{PYTHON_NOW[0]}.{PYTHON_NOW[1]}"
    )

    again = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    assert again == env
    assert await provisioner.async_problem(env) is None
    assert _folders(provisioner.root) == [f"esphome-{MANAGED_ESPHOME_VERSION}"]
    assert sum("venv" in command for command in fake_installer.commands()) == 2


async def test_environment_problems(hass: HomeAssistant, provisioner: EsphomeProvisioner) -> None:
    """Each way an environment can be unusable has its own explanation."""
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    python = env.python

    async def problem(env: ManagedEnvironment = env) -> str | None:
        return await hass.async_add_executor_job(environment_problem, env, PYTHON_NOW)

    # The interpreter it links to is gone (as after a Python upgrade in the container).
    python.unlink()
    python.symlink_to(env.path / "gone" / "python3.13")
    assert await problem() == (
        f"its Python interpreter is gone ({python} -> {env.path}/gone/python3.13)"
    )
    python.unlink()
    assert await problem() == f"its Python interpreter is gone ({python})"

    (env.path / "pyvenv.cfg").write_text("home = /usr\n", encoding="utf-8")
    python.write_text("", encoding="utf-8")
    assert await problem() == f"{env.path}/pyvenv.cfg names no Python version"
    (env.path / "pyvenv.cfg").unlink()
    assert await problem() == f"{env.path} is not a virtual environment (no pyvenv.cfg)"
    other = environment_for(env.path.parent, NEWER)
    assert await problem(other) == f"{other.path} does not exist"


async def test_leftovers_are_removed_before_an_install(
    hass: HomeAssistant, provisioner: EsphomeProvisioner
) -> None:
    """Folders of an install cut off by a restart never linger."""
    provisioner.root.mkdir(parents=True)
    (provisioner.root / ".esphome-2026.9.0.partial-abc").mkdir()
    (provisioner.root / ".esphome-2026.9.0.old-def").mkdir()
    (provisioner.root / "notes.txt").write_text("kept", encoding="utf-8")

    await provisioner.async_install(MANAGED_ESPHOME_VERSION)

    assert _folders(provisioner.root) == [f"esphome-{MANAGED_ESPHOME_VERSION}", "notes.txt"]
    assert remove_leftovers(provisioner.root / "missing") == []
