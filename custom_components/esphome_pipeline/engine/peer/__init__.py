"""Remote builds on ESPHome Device Builder peers: the offloader side of the peer link.

A Device Builder started with `--remote-build-only` (or its desktop app with "Receive builds"
on) is a build peer. This package speaks its protocol, in pure asyncio and without Home
Assistant: our identity and the pin a user compares (`identity`), the Noise channel over a
WebSocket (`transport`), the wire vocabulary (`wire`), pairing and the persistent link
(`client`, `link`), the hostile-until-checked artifact tarball (`artifacts`) and the executor
that runs one compile on a peer (`executor`).
"""
