"""How many threads decode with, chosen from measured step times (a busy machine must not collapse it).

llama.cpp's CPU threads wait for each other at every step, spinning. When other processes take a
core, a descheduled thread holds up the rest, and decoding with every core falls to a tenth of its
speed, below what one thread alone does (a step can then take seconds). The tuner watches windows
of single-token steps (16, or as many as took half a second): their mean time, and how much of
their time the threads were actually running (the process's CPU time over wall time x threads).
Threads that ran well under their time were kept waiting by other processes, whether those were
there before this one started or came later: the tuner then tries one thread fewer and keeps
whichever is faster. While below the maximum and running freely, it tries one more now and then,
less often after each try that lost (its loss at most 5% of the time), so that the engine returns
to every core once the machine is quiet again. On an idle machine the threads run all the time, and
it never leaves the maximum.
"""

from __future__ import annotations

WINDOW = 16  # single-token steps per measurement
WINDOW_SECONDS = 0.5  # ... or fewer, once they took this long: a collapsed step can take seconds
TRIAL = 4  # steps that try another count, ended early once they took longer than the other count's
CONTENDED = 0.75  # threads that ran less than this share of the window's time were kept waiting
FREE = 0.9  # ... and more than this ran freely: a core may be free for one thread more
PROBE_SECONDS = 2.0  # decoding before trying one thread more, while below the maximum
PATIENCE_MOST = 60.0  # seconds between tries at most; a try that lost doubles the wait
LOST_SHARE = 0.05  # ... and waits long enough that its loss is at most this share of the time
_PATIENCE = {-1: 0.0, 1: PROBE_SECONDS}  # fewer threads as soon as they wait; more after a while


class ThreadTuner:
    """Decides the thread count from step times: `observe` each step, use `threads`.

    Counts are compared by their mean step: under contention most steps of several threads are
    as fast as ever and a few take a hundred times as long, so a median would hide the collapse.
    """

    def __init__(self, most: int) -> None:
        self.most = self.threads = most
        self._restart()
        self._last: dict[int, float] = {}  # the latest mean step at each count
        self._trial_from: int | None = None  # the count a trial of another count will be compared with
        self._since = 0.0  # seconds decoded since the last trial
        self._patience = dict(_PATIENCE)  # by direction: seconds before a try of one thread less or more

    def observe(self, seconds: float, cpu_seconds: float) -> int | None:
        """Record one step (its wall time, and the CPU time the whole process spent in it); returns a
        new thread count to switch to, or None to keep this one."""
        self._steps += 1
        self._took += seconds
        self._cpu += cpu_seconds
        steps, took, n = self._steps, self._took, self.threads
        if self._trial_from is not None:
            if steps < TRIAL and took <= TRIAL * self._last[self._trial_from]:
                return None
            self._restart()
            return self._settle(n, took, steps)
        if steps < WINDOW and took < WINDOW_SECONDS:
            return None
        ran = self._cpu / (took * n)
        self._restart()
        self._last[n] = took / steps
        self._since += took
        step = -1 if ran < CONTENDED else 1 if ran > FREE else 0
        if step and 1 <= n + step <= self.most and self._since >= self._patience[step]:
            self._trial_from, self._since = n, 0.0
            self.threads = n + step
            return self.threads
        return None

    def _restart(self) -> None:
        """Begin a new window or trial: its steps, their wall seconds, the process's CPU seconds."""
        self._steps, self._took, self._cpu = 0, 0.0, 0.0

    def _settle(self, n: int, took: float, steps: int) -> int | None:
        """After a trial of `steps` steps at n: keep n if it beat the count it came from, else go back
        and wait longer before the next try."""
        came_from = self._trial_from
        assert came_from is not None
        self._trial_from = None
        if steps == TRIAL and took / steps < self._last[came_from]:
            self._last[n] = took / steps
            self._patience = dict(_PATIENCE)
            return None
        lost = took - steps * self._last[came_from]
        step = n - came_from
        wait = max(2 * self._patience[step], lost / LOST_SHARE)
        self._patience[step] = min(wait, PATIENCE_MOST)
        self.threads = came_from
        return came_from
