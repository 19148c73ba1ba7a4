"""The process_* metrics (prometheus_client's ProcessCollector), also under the packaged unit.

Its ProcSubset=pid leaves /proc with the process directories only. The collector reads the boot
time from /proc/stat (to give process_start_time_seconds) and, without it, reports nothing at
all: no resident memory, no open file descriptors, no CPU time. The boot time is then the clock's.
"""

from __future__ import annotations

import time

from prometheus_client.process_collector import ProcessCollector


class ProcessMetrics(ProcessCollector):
    def _boot_time(self) -> float:
        try:
            btime = super()._boot_time()  # type: ignore[no-untyped-call]  # prometheus_client: untyped
        except OSError:  # /proc/stat hidden
            btime = None
        if btime is None:  # hidden, or no btime line in it: now less the time since boot (suspends included)
            return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        return float(btime)
