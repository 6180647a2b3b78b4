"""What a long-running process settles once it has started (`serve`, `worker`): the
collector's view of the heap and how often a thread hands the GIL over.
"""

from __future__ import annotations

import gc
import sys

#: Seconds a thread may hold the GIL while another waits for it (Python's default is 5 ms):
#: the Python half of a long read, in a thread of its own, then holds up the event loop,
#: and with it every write's answer, for at most this long at a time.
GIL_SWITCH_S = 0.001


def settle_heap(threshold: int) -> None:
    """Once a process has started: move everything built so far (modules, the app, its
    database) out of the collector's sight, and let it run after `threshold` allocations
    (JOBPULSE_GC_THRESHOLD). Each collection then walks only what the work since made
    (requests, deliveries). And hand the GIL over sooner (GIL_SWITCH_S).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, *gc.get_threshold()[1:])
    sys.setswitchinterval(GIL_SWITCH_S)
