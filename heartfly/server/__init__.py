"""The daemon: the engine that applies pings and fires deadlines, housekeeping, and `heartfly serve`
with its systemd integration."""
