"""The provisioner beyond installing: the newest release (at most once a day, unknown when
offline), removing environments no entry uses, and its defaults. The installer is the fake
interpreter of tests/fakes/fake_installer.py, a real subprocess."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
import sys
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import (
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    CONF_MANAGED_ESPHOME,
    DOMAIN,
    MANAGED_ESPHOME_VERSION,
)
from custom_components.esphome_pipeline.provision.installer import (
    newest_release,
)
from custom_components.esphome_pipeline.provision.manager import (
    STORE_KEY,
    EsphomeProvisioner,
    async_get_provisioner,
    async_remove_unused_environments,
    managed_esphome_version,
)
from tests.fakes.installer import FakeInstaller

from .conftest import installed_folders as _folders

NEWER = "2026.11.0"
PYTHON_NOW = (sys.version_info.major, sys.version_info.minor)


async def test_remove_unused(hass: HomeAssistant, provisioner: EsphomeProvisioner) -> None:
    """Only environments no entry names are removed."""
    assert await async_remove_unused_environments(hass) == []  # nothing there yet
    await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    await provisioner.async_install(NEWER)
    (provisioner.root / "esphome-not-a-version").mkdir()
    MockConfigEntry(
        domain=DOMAIN,
        data={CONF_CONFIG_DIR: "/a", CONF_MANAGED_ESPHOME: NEWER},
        options={CONF_ESPHOME_COMMAND: "/usr/bin/esphome"},
    ).add_to_hass(hass)
    MockConfigEntry(domain=DOMAIN, data={CONF_CONFIG_DIR: "/b"}).add_to_hass(hass)

    assert await async_remove_unused_environments(hass) == [MANAGED_ESPHOME_VERSION]
    assert _folders(provisioner.root) == [f"esphome-{NEWER}", "esphome-not-a-version"]


def test_managed_version_of_an_entry() -> None:
    """The user's own command wins over the installed ESPHome."""
    managed = {CONF_CONFIG_DIR: "/a", CONF_MANAGED_ESPHOME: NEWER}
    assert managed_esphome_version(MockConfigEntry(domain=DOMAIN, data=managed)) == NEWER
    with_command = MockConfigEntry(
        domain=DOMAIN, data=managed, options={CONF_ESPHOME_COMMAND: "esphome"}
    )
    assert managed_esphome_version(with_command) is None
    assert managed_esphome_version(MockConfigEntry(domain=DOMAIN, data={})) is None


async def test_default_provisioner(hass: HomeAssistant) -> None:
    """Home Assistant's provisioner uses its own interpreter and config folder."""
    provisioner = async_get_provisioner(hass)
    assert async_get_provisioner(hass) is provisioner
    assert provisioner.python == sys.executable
    assert provisioner.python_version == PYTHON_NOW
    assert provisioner.root == Path(hass.config.path(".esphome_pipeline"))


@pytest.mark.parametrize("uv", [True, False])
async def test_newest_release_at_most_once_a_day(
    hass: HomeAssistant,
    fake_installer: FakeInstaller,
    provisioner: EsphomeProvisioner,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
    uv: bool,
) -> None:
    """The installer is asked once; the answer is kept (also across a restart) for a day."""
    fake_installer.behave(uv=uv, newest=NEWER)
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)

    def questions() -> int:
        return sum(("index versions" in c or "--dry-run" in c) for c in fake_installer.commands())

    assert await provisioner.async_newest_release(env) == NEWER
    assert questions() == 1
    fake_installer.behave(newest="2026.12.0")
    assert await provisioner.async_newest_release(env) == NEWER
    restarted = EsphomeProvisioner(hass, python=fake_installer.python, root=provisioner.root)
    assert await restarted.async_newest_release(env) == NEWER
    assert questions() == 1
    assert hass_storage[STORE_KEY]["data"]["newest"] == NEWER

    freezer.tick(timedelta(days=1, minutes=1))
    assert await provisioner.async_newest_release(env) == "2026.12.0"
    assert questions() == 2


@pytest.mark.parametrize("answer", [None, "garbled"])
async def test_newest_release_unknown_when_offline(
    hass: HomeAssistant,
    fake_installer: FakeInstaller,
    provisioner: EsphomeProvisioner,
    answer: str | None,
) -> None:
    """No index (or an answer without a version): unknown, no error, not asked again soon."""
    fake_installer.behave(newest=answer)
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    assert await provisioner.async_newest_release(env) is None
    assert await provisioner.async_newest_release(env) is None
    assert sum("--dry-run" in c for c in fake_installer.commands()) == 1


async def test_newest_release_question_has_a_deadline(
    hass: HomeAssistant, fake_installer: FakeInstaller, provisioner: EsphomeProvisioner
) -> None:
    """An index that never answers makes the newest release unknown, not a hang."""
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    fake_installer.behave(newest=NEWER, newest_wait_for="never")
    installer = await provisioner.async_installer()
    assert await newest_release(installer, env.python, timeout=0.5) is None


async def test_stored_answer_that_cannot_be_read_is_ignored(
    hass: HomeAssistant,
    fake_installer: FakeInstaller,
    provisioner: EsphomeProvisioner,
    hass_storage: dict[str, Any],
) -> None:
    """A damaged stored answer means asking again."""
    hass_storage[STORE_KEY] = {"version": 1, "key": STORE_KEY, "data": {"checked_at": "never"}}
    fake_installer.behave(newest=NEWER)
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    assert await provisioner.async_newest_release(env) == NEWER
    hass_storage[STORE_KEY] = {"version": 1, "key": STORE_KEY, "data": ["not", "a", "record"]}
    again = EsphomeProvisioner(hass, python=fake_installer.python, root=provisioner.root)
    assert await again.async_newest_release(env) == NEWER
    assert sum("--dry-run" in c for c in fake_installer.commands()) == 2
