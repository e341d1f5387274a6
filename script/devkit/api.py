"""Home Assistant's REST and WebSocket API, as a user drives it: real login, real token.

`fetch_token` walks the REST login flow (login_flow -> authorization code -> /auth/token).
`create_entry` sets ESPHome Pipeline up through the real config-flow API.
`HomeAssistantWebSocket` sends commands and delivers subscribed events into queues; it is
what the end-to-end tests use to call actions and to synchronise on `esphome_pipeline_job`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import itertools
from typing import Any, Self

import aiohttp

DOMAIN = "esphome_pipeline"
JOB_EVENT = "esphome_pipeline_job"


class ApiError(RuntimeError):
    """Home Assistant answered a request with an error."""


def client_id(base_url: str) -> str:
    """The OAuth client id the login flow expects (the UI's own origin)."""
    return f"{base_url}/"


async def fetch_token(
    session: aiohttp.ClientSession, base_url: str, username: str, password: str
) -> str:
    """Log in through the REST login flow and return an access token."""
    cid = client_id(base_url)
    async with session.post(
        f"{base_url}/auth/login_flow",
        json={"client_id": cid, "handler": ["homeassistant", None], "redirect_uri": cid},
    ) as response:
        flow = await _json(response)
    async with session.post(
        f"{base_url}/auth/login_flow/{flow['flow_id']}",
        json={"client_id": cid, "username": username, "password": password},
    ) as response:
        step = await _json(response)
    if step.get("type") != "create_entry":
        raise ApiError(f"login refused: {step}")
    async with session.post(
        f"{base_url}/auth/token",
        data={"grant_type": "authorization_code", "code": step["result"], "client_id": cid},
    ) as response:
        token = await _json(response)
    return str(token["access_token"])


async def list_entries(
    session: aiohttp.ClientSession, base_url: str, token: str
) -> list[dict[str, Any]]:
    """The config entries of ESPHome Pipeline."""
    async with session.get(
        f"{base_url}/api/config/config_entries/entry",
        params={"domain": DOMAIN},
        headers=_auth(token),
    ) as response:
        entries: list[dict[str, Any]] = await _json(response)
    return entries


async def create_entry(
    session: aiohttp.ClientSession,
    base_url: str,
    token: str,
    *,
    config_dir: str,
    esphome_command: str,
) -> dict[str, Any]:
    """Run the user step of the config flow with the folder and command; return the entry."""
    async with session.post(
        f"{base_url}/api/config/config_entries/flow",
        json={"handler": DOMAIN, "show_advanced_options": False},
        headers=_auth(token),
    ) as response:
        form = await _json(response)
    if form.get("type") != "form":
        raise ApiError(f"config flow did not show its form: {form}")
    async with session.post(
        f"{base_url}/api/config/config_entries/flow/{form['flow_id']}",
        json={"config_dir": config_dir, "esphome_command": esphome_command},
        headers=_auth(token),
    ) as response:
        result = await _json(response)
    if result.get("type") != "create_entry":
        raise ApiError(f"config flow did not create the entry: {result}")
    entry: dict[str, Any] = result["result"]
    return entry


async def set_options(
    session: aiohttp.ClientSession,
    base_url: str,
    token: str,
    entry_id: str,
    changes: dict[str, Any],
) -> dict[str, Any]:
    """Run the options flow: keep every current option, apply `changes`; return the options."""
    async with session.post(
        f"{base_url}/api/config/config_entries/options/flow",
        json={"handler": entry_id},
        headers=_auth(token),
    ) as response:
        form = await _json(response)
    current = {
        field["name"]: (field.get("description") or {}).get("suggested_value")
        for field in form["data_schema"]
    }
    answer = {name: value for name, value in current.items() if value is not None} | changes
    async with session.post(
        f"{base_url}/api/config/config_entries/options/flow/{form['flow_id']}",
        json=answer,
        headers=_auth(token),
    ) as response:
        result = await _json(response)
    if result.get("type") != "create_entry":
        raise ApiError(f"options flow did not save: {result}")
    options: dict[str, Any] = result.get("data") or answer
    return options


async def entry_diagnostics(
    session: aiohttp.ClientSession, base_url: str, token: str, entry_id: str
) -> dict[str, Any]:
    """The config entry's diagnostics (what "Download diagnostics" gives a user)."""
    async with session.get(
        f"{base_url}/api/diagnostics/config_entry/{entry_id}", headers=_auth(token)
    ) as response:
        document: dict[str, Any] = await _json(response)
    data: dict[str, Any] = document["data"]
    return data


async def _json(response: aiohttp.ClientResponse) -> Any:
    if response.status >= 400:
        detail = await response.text()
        raise ApiError(f"{response.method} {response.url}: {response.status} {detail}")
    return await response.json()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class HomeAssistantWebSocket:
    """One authenticated WebSocket connection; commands and event subscriptions."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        """Prepare a connection; use `async with` to open and close it."""
        self._session = session
        self._url = f"{base_url.replace('http', 'ws', 1)}/api/websocket"
        self._token = token
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._subscriptions: dict[int, asyncio.Queue[Any]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        """Connect and authenticate."""
        self._ws = await self._session.ws_connect(self._url, max_msg_size=0)
        hello = await self._ws.receive_json()
        if hello.get("type") != "auth_required":
            raise ApiError(f"unexpected greeting: {hello}")
        await self._ws.send_json({"type": "auth", "access_token": self._token})
        answer = await self._ws.receive_json()
        if answer.get("type") != "auth_ok":
            raise ApiError(f"authentication failed: {answer}")
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the connection and stop reading."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def _socket(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None:
            raise ApiError("not connected: use `async with`")
        return self._ws

    async def _read(self) -> None:
        async for message in self._socket():
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            payload = message.json()
            for item in payload if isinstance(payload, list) else [payload]:
                self._dispatch(item)
        error = ApiError("WebSocket closed")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    def _dispatch(self, item: dict[str, Any]) -> None:
        if item.get("type") == "event" and item["id"] in self._subscriptions:
            self._subscriptions[item["id"]].put_nowait(item["event"])
            return
        future = self._pending.pop(item["id"], None)
        if future is not None and not future.done():
            future.set_result(item)

    async def call(self, command: str, **payload: Any) -> Any:
        """Send one command; return its `result` or raise ApiError with Home Assistant's error."""
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._socket().send_json({"id": message_id, "type": command, **payload})
        answer = await future
        if not answer.get("success"):
            raise ApiError(f"{command}: {answer.get('error')}")
        return answer.get("result")

    async def subscribe(self, command: str, **payload: Any) -> asyncio.Queue[Any]:
        """Send a subscription command; every event it yields lands in the returned queue."""
        message_id = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscriptions[message_id] = queue
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._socket().send_json({"id": message_id, "type": command, **payload})
        answer = await future
        if not answer.get("success"):
            raise ApiError(f"{command}: {answer.get('error')}")
        return queue

    async def subscribe_events(self, event_type: str) -> asyncio.Queue[dict[str, Any]]:
        """Subscribe to `event_type`; every event lands in the returned queue, in order."""
        queue: asyncio.Queue[dict[str, Any]] = await self.subscribe(
            "subscribe_events", event_type=event_type
        )
        return queue

    async def entry_states(self) -> asyncio.Queue[list[dict[str, Any]]]:
        """Subscribe to config entry changes: first the current entries, then each change."""
        queue: asyncio.Queue[list[dict[str, Any]]] = await self.subscribe(
            "config_entries/subscribe"
        )
        return queue

    async def wait_entry_loaded(self, entry_id: str) -> None:
        """Return once the config entry is loaded (Home Assistant answers HTTP before its
        integrations are set up, so a fresh start is not yet a working entry)."""
        changes = await self.entry_states()
        while True:
            for change in await changes.get():
                entry = change["entry"]
                if entry["entry_id"] == entry_id and entry["state"] == "loaded":
                    return

    async def call_service(
        self,
        domain: str,
        service: str,
        data: dict[str, Any] | None = None,
        *,
        return_response: bool = False,
    ) -> Any:
        """Call an action; with `return_response`, return its response."""
        payload: dict[str, Any] = {"domain": domain, "service": service}
        if data:
            payload["service_data"] = data
        if return_response:
            payload["return_response"] = True
        result = await self.call("call_service", **payload)
        return result.get("response") if return_response else result

    async def get_jobs(self, **data: Any) -> list[dict[str, Any]]:
        """The `esphome_pipeline.get_jobs` action."""
        response = await self.call_service(DOMAIN, "get_jobs", data, return_response=True)
        jobs: list[dict[str, Any]] = response["jobs"]
        return jobs

    async def entity_registry(self) -> list[dict[str, Any]]:
        """Every entity registry entry."""
        entries: list[dict[str, Any]] = await self.call("config/entity_registry/list")
        return entries

    async def device_registry(self) -> list[dict[str, Any]]:
        """Every device registry entry."""
        devices: list[dict[str, Any]] = await self.call("config/device_registry/list")
        return devices

    async def states(self) -> dict[str, dict[str, Any]]:
        """Every state, by entity id."""
        states: list[dict[str, Any]] = await self.call("get_states")
        return {state["entity_id"]: state for state in states}


@contextlib.asynccontextmanager
async def connect(base_url: str, token: str) -> AsyncIterator[HomeAssistantWebSocket]:
    """A client session and an authenticated WebSocket, closed together."""
    async with (
        aiohttp.ClientSession() as session,
        HomeAssistantWebSocket(session, base_url, token) as websocket,
    ):
        yield websocket
