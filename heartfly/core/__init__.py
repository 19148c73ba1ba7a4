"""The pure core: the config, schedules, the state machine, ping parsing, units and the views of
a check. Nothing here does I/O beyond reading the config file, and time comes in as an argument."""
