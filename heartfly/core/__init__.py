"""The pure core: the config, schedules, the state machine, ping parsing, units and the views of
a check. Nothing here does I/O beyond reading the config file and the secret files it names
(config_secrets, a step after the pure parse) and syncing a folder (syncdir, for the job side
and the store alike), and time comes in as an argument."""
