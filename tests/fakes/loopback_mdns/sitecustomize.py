"""Keeps the mDNS of a receiver started by the tests on the loopback interface.

The real Device Builder receiver advertises itself with zeroconf on every interface and has
no switch to turn that off. Tests run it with this folder on PYTHONPATH: Python imports this
module at start-up, and every zeroconf instance it creates binds to 127.0.0.1 only, so no
multicast packet leaves this machine.
"""

from __future__ import annotations

from typing import Any

import zeroconf

_original_init = zeroconf.Zeroconf.__init__


def _loopback_only(self: zeroconf.Zeroconf, *args: Any, **kwargs: Any) -> None:
    # Positional arguments are (interfaces, unicast, ip_version, apple_p2p): keep the others.
    names = ("interfaces", "unicast", "ip_version", "apple_p2p")
    kwargs.update(zip(names, args, strict=False))
    kwargs["interfaces"] = ["127.0.0.1"]
    kwargs["ip_version"] = zeroconf.IPVersion.V4Only
    _original_init(self, **kwargs)


zeroconf.Zeroconf.__init__ = _loopback_only  # type: ignore[method-assign]
