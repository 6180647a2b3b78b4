"""How far ahead of its senders a worker claims: enough ready messages to keep them sending
while the next claim runs, and no more than they start within a moment.

A claim under load takes from a few milliseconds to a few tens: its statements wait for the
event loop's turns between the sends. With a fixed four messages a sender, a fast receiver
drained them before the next claim came back, and the senders stood idle for half of a
drain (docs/performance.md). So the worker measures the pace its senders keep and claims
AHEAD_S of sending ahead, within one and MOST times its least; slow receivers keep it at the
least, so that no claimed message waits long for a sender.
"""

from __future__ import annotations

#: The sending the ready messages cover: longer than a claim takes under load.
AHEAD_S = 0.05
#: The most a worker holds, as a multiple of what it holds at the least pace.
MOST = 4
#: The shortest span the pace is measured over (claims come every few milliseconds).
WINDOW_S = 0.02


class ClaimPace:
    """The scale (1 to MOST) of a worker's claims: multiplies the messages it keeps ready
    (`least_ready` at 1) and those it holds per organization and host.
    """

    def __init__(self, least_ready: int, now: float) -> None:
        self.least_ready = least_ready
        self.scale = 1
        self._sent = 0
        self._since = now

    def scaled(self, least: int) -> int:
        """`least`, what is held at the least pace, at the current scale."""
        return least * self.scale

    def sent(self) -> None:
        """A message went out (or was given up)."""
        self._sent += 1

    def measure(self, now: float) -> int:
        """The scale for the claim about to run, from the sends since the last measure (kept
        while too little time has passed to tell).
        """
        elapsed = now - self._since
        if elapsed < WINDOW_S:
            return self.scale
        wanted = self._sent / elapsed * AHEAD_S
        self.scale = max(1, min(MOST, round(wanted / self.least_ready)))
        self._sent, self._since = 0, now
        return self.scale
