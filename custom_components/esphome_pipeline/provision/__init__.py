"""The ESPHome CLI the integration installs, checks and upgrades itself.

- `layout`: where environments live under Home Assistant's config folder, and their health
  (blocking file work, no Home Assistant import).
- `installer`: the processes that make an environment and ask for the newest release
  (pure asyncio, no Home Assistant import).
- `manager`: the Home Assistant side, one provisioner per Home Assistant, shared by entries.
"""
