"""How many threads decode with, chosen from measured step times (a busy machine must not collapse it).

llama.cpp's CPU threads wait for each other at every step, spinning. When other processes take a
core, a descheduled thread holds up the rest, and decoding with every core falls to a tenth of its
speed, below what one thread alone does. The tuner watches the median time of a window of
single-token steps: when it grows well past the best this thread count has shown, it tries one
thread fewer and keeps whichever is faster; while below the maximum it tries one more now and then,
so that the engine returns to every core once the machine is quiet again. On an idle machine it
never leaves the maximum.
"""

from __future__ import annotations

import statistics

WINDOW = 16  # single-token steps per measurement
SLOWER = 1.5  # a window this much slower than the best seen at this count suggests contention
PROBE_EVERY = 8  # windows between tries of one thread more, while below the maximum


class ThreadTuner:
    """Decides the thread count from step times: `observe` each step's seconds, use `threads`."""

    def __init__(self, most: int) -> None:
        self.most = self.threads = most
        self._steps: list[float] = []
        self._best: dict[int, float] = {}  # the fastest window median seen at each count
        self._last: dict[int, float] = {}  # the latest window median at each count
        self._trial_from: int | None = None  # the count a trial of another count will be compared with
        self._windows_below = 0

    def observe(self, seconds: float) -> int | None:
        """Record one step; returns a new thread count to switch to, or None to keep this one."""
        self._steps.append(seconds)
        if len(self._steps) < WINDOW:
            return None
        median = statistics.median(self._steps)
        self._steps.clear()
        n = self.threads
        self._last[n] = median
        self._best[n] = min(median, self._best.get(n, median))
        if self._trial_from is not None:
            return self._settle(n, median)
        if n > 1 and median > SLOWER * self._best[n]:
            return self._try(n - 1)
        if n < self.most:
            self._windows_below += 1
            if self._windows_below >= PROBE_EVERY:
                return self._try(n + 1)
        return None

    def _try(self, n: int) -> int:
        self._trial_from, self._windows_below = self.threads, 0
        self.threads = n
        return n

    def _settle(self, n: int, median: float) -> int | None:
        """After a trial window at n: keep n if it beat the count it came from, else go back."""
        came_from = self._trial_from
        assert came_from is not None
        self._trial_from = None
        if median < self._last[came_from]:
            return None
        # The slowdown was not contention (a deeper context, say): it is the new normal there.
        self._best[came_from] = self._last[came_from]
        self.threads = came_from
        return came_from
