"""What a device runs, asked of the device itself: native API, serial flash, build records.

Pure asyncio, no Home Assistant import. Blocking serial and file work runs in executors.
"""
