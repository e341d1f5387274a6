"""The firmware engine: a two-lane job queue for the ESPHome CLI, in pure asyncio.

Nothing in this package imports Home Assistant, so the headless build peer and the
benchmarks use it directly.
"""
