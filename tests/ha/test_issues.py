"""Repair issues: the dropped-jobs issue (raised, shown, acknowledged, cleared), echoed input."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import DOMAIN
from custom_components.esphome_pipeline.engine.errors import shown
from custom_components.esphome_pipeline.issues import (
    async_clear_dropped_jobs,
    async_report_cli_unavailable,
    async_report_dropped_jobs,
    cli_issue_id,
    dropped_jobs_issue_id,
)
from custom_components.esphome_pipeline.store import storage_key
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, setup_entry


async def test_report_lists_reasons_and_is_persistent(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    """The issue names the count and each reason, most frequent first, echoed safely."""
    async_report_dropped_jobs(
        hass,
        "entry1",
        4,
        {"not an object": 1, "'output' is not an object": 2, "odd\nreason": 1},
    )
    issue = issue_registry.async_get_issue(DOMAIN, dropped_jobs_issue_id("entry1"))
    assert issue is not None
    assert issue.translation_key == "dropped_jobs"
    assert issue.is_fixable
    assert issue.is_persistent
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders == {
        "count": "4",
        "reasons": "- 'output' is not an object (2)\n- not an object (1)\n- odd\\nreason (1)",
    }
    # A later start that drops again replaces it.
    async_report_dropped_jobs(hass, "entry1", 1, {"duplicate job id": 1})
    issue = issue_registry.async_get_issue(DOMAIN, dropped_jobs_issue_id("entry1"))
    assert issue is not None
    assert issue.translation_placeholders == {"count": "1", "reasons": "- duplicate job id (1)"}
    async_clear_dropped_jobs(hass, "entry1")
    assert issue_registry.async_get_issue(DOMAIN, dropped_jobs_issue_id("entry1")) is None


async def test_acknowledging_the_issue_removes_it(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    """Its repair flow is a confirm step showing the reasons; submitting it deletes the issue."""
    assert await async_setup_component(hass, "repairs", {})
    async_report_dropped_jobs(hass, "entry1", 2, {"duplicate job id": 2})
    manager = hass.data["repairs"]["flow_manager"]
    result = await manager.async_init(DOMAIN, data={"issue_id": dropped_jobs_issue_id("entry1")})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"] == {
        "count": "2",
        "reasons": "- duplicate job id (2)",
    }
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert issue_registry.async_get_issue(DOMAIN, dropped_jobs_issue_id("entry1")) is None


async def test_cli_issue_echoes_the_command_line_safely(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry
) -> None:
    """The command line the user typed is shown escaped and short in the CLI issue."""
    command = "/opt/esphome\x1b[2J\n" + "x" * 1000
    async_report_cli_unavailable(hass, "entry1", command, "not found")
    issue = issue_registry.async_get_issue(DOMAIN, cli_issue_id("entry1"))
    assert issue is not None
    assert issue.translation_placeholders == {"command": shown(command), "error": "not found"}
    async_report_cli_unavailable(hass, "entry1", "", "not found")
    issue = issue_registry.async_get_issue(DOMAIN, cli_issue_id("entry1"))
    assert issue is not None
    assert (issue.translation_placeholders or {})["command"] == "(auto-detect)"


async def test_setup_with_unreadable_stored_jobs_raises_the_issue_and_loads(
    hass: HomeAssistant,
    hass_storage: dict[str, object],
    issue_registry: ir.IssueRegistry,
    entry: MockConfigEntry,
    fake: FakeEsphome,
) -> None:
    """Garbage in the stored job list never blocks setup: the entry loads, the issue says why."""
    fake.add_config("kitchen")
    hass_storage[storage_key(entry.entry_id)] = {
        "version": 1,
        "minor_version": 1,
        "key": storage_key(entry.entry_id),
        "data": {
            "jobs": [5, {"job_id": "x", "output": "oops"}],
            "installed": {"kitchen.yaml": "f"},
        },
    }
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    issue = issue_registry.async_get_issue(DOMAIN, dropped_jobs_issue_id(entry.entry_id))
    assert issue is not None
    assert (issue.translation_placeholders or {})["count"] == "2"
    assert coordinator_of(entry).jobs() == []
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_remove(entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, dropped_jobs_issue_id(entry.entry_id)) is None
