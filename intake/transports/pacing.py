"""Pacer: at most N sends per rolling window, so the relay never throttles us (SMTP-4)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Pacer:
    """Blocks before a send until fewer than `limit` sends started in the last `window` seconds.

    `limit` 0 means no limit. `clock` and `sleep` are injectable so tests need no real waiting;
    `clock` must be monotonic (never `time.time`, which jumps with NTP and DST changes).
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must be 0 (no limit) or more")
        if window <= 0:
            raise ValueError("window must be positive")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()

    def wait(self) -> float:
        """The seconds waited (0.0 when a send may start at once); records the send as started.

        Every attempt counts, failed or not: a relay counts the submissions it sees.
        """
        if self.limit == 0:
            return 0.0
        waited = 0.0
        now = self._clock()
        self._forget_before(now - self.window)
        while len(self._starts) >= self.limit:
            delay = self._starts[0] + self.window - now
            if delay > 0:
                self._sleep(delay)
                waited += delay
            now = self._clock()
            self._forget_before(now - self.window)
        self._starts.append(now)
        return waited

    def _forget_before(self, cutoff: float) -> None:
        while self._starts and self._starts[0] <= cutoff:
            self._starts.popleft()
