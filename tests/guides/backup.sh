#!/bin/sh
# Nightly backup: ping the start URL, do the work, then ping the success or the failure URL.
# From the environment: HB (Heartfly's base URL), START_KEY, SUCCESS_KEY, FAIL_KEY,
# BACKUP_SRC (the folder to back up) and BACKUP_DEST (the archive to write).
set -u

curl -fsS -m 10 --retry 3 -o /dev/null "$HB/api/v1/heartbeat/$START_KEY"

tar -czf "$BACKUP_DEST" -C "$BACKUP_SRC" .
status=$?

if [ "$status" -eq 0 ]; then
    curl -fsS -m 10 --retry 3 -o /dev/null "$HB/api/v1/heartbeat/$SUCCESS_KEY"
else
    curl -fsS -m 10 --retry 3 -o /dev/null "$HB/api/v1/heartbeat/$FAIL_KEY"
fi
exit "$status"
