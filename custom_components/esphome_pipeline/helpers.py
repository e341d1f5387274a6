"""Helpers the actions and the entity platforms share: errors as Home Assistant shows them.

An `InvalidRequestError` means nothing was queued because of the input: a translated
`ServiceValidationError`. Any other engine error is a translated `HomeAssistantError`. The
engine's English message travels along as the `message` placeholder.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN
from .engine.errors import EngineError, InvalidRequestError, shown


@contextmanager
def engine_errors() -> Iterator[None]:
    """Turn engine errors raised in the block into translated Home Assistant errors."""
    try:
        yield
    except InvalidRequestError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=err.translation_key,
            translation_placeholders={**err.placeholders, "message": str(err)},
        ) from err
    except EngineError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=err.translation_key,
            translation_placeholders={**err.placeholders, "message": str(err)},
        ) from err


def engine_error_handler[**P, T](
    func: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate an action handler or entity method so engine errors become translated ones."""

    @wraps(func)
    async def handler(*args: P.args, **kwargs: P.kwargs) -> T:
        with engine_errors():
            return await func(*args, **kwargs)

    return handler


def invalid_input(key: str, **placeholders: str) -> ServiceValidationError:
    """Return the translated error for bad input that the engine never saw.

    Echoed input is shortened and its control characters escaped (`shown`).
    """
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders={name: shown(value) for name, value in placeholders.items()},
    )
