"""How many threads decode with, chosen from measured step times (a busy machine must not collapse it).

llama.cpp's CPU threads wait for each other at every step, spinning. When other processes take a
core, a descheduled thread holds up the rest, and decoding with every core falls to a tenth of its
speed, below what one thread alone does (a step can then take seconds). The tuner watches windows
of steps (16, or as many as took half a second): their time, and how much of it the threads were
actually running (the process's CPU time over wall time x threads). Threads that ran well under
their time were kept waiting by other processes, whether those were there before this one started
or came later: the tuner then tries one thread fewer and keeps whichever is faster. While below the
maximum and running freely, it tries one more now and then, less often after each try that lost
(its loss at most 5% of the time), so that the engine returns to every core once the machine is
quiet again. On an idle machine the threads run all the time, and it never leaves the maximum.

Steps are compared only with steps of their own kind, since another shape of batch takes another
time: single-token steps (the parallel engine's: so many sequences at once) and prompt chunks
(PROMPT). A step counts as the work it holds in plain steps of its kind: a verification of drafts
as what its rows were measured to cost (StepCosts), where copying a text nearly every step is one;
a prompt chunk by its tokens, so that a long prompt is tuned while it is evaluated.
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
PROMPT = -1  # the kind of steps evaluating prompt chunks ...
PROMPT_ROWS = 64  # ... each this many tokens worth one step: fewer are not watched


class ThreadTuner:
    """Decides the thread count from step times: `observe` each step, use `threads`.

    Counts are compared by their mean step: under contention most steps of several threads are
    as fast as ever and a few take a hundred times as long, so a median would hide the collapse.
    """

    def __init__(self, most: int) -> None:
        self.most = self.threads = most
        self._restart()
        self._last: dict[tuple[int, int], float] = {}  # (kind, count) -> the latest seconds per plain step
        self._trial_from: int | None = None  # the count a trial of another count will be compared with
        self._since = 0.0  # seconds decoded since the last trial
        self._patience = dict(_PATIENCE)  # by direction: seconds before a try of one thread less or more

    def observe(self, seconds: float, cpu_seconds: float, kind: int = 0, work: float = 1.0) -> int | None:
        """Record one step (its wall time, and the CPU time the whole process spent in it) of a kind,
        worth `work` plain steps of that kind; returns a new thread count to switch to, or None to keep
        this one. A trial meeting a step of a kind it cannot be compared on goes back, unjudged."""
        n = self.threads
        self._took += seconds
        if (came_from := self._trial_from) is not None:
            reference = self._last.get((kind, came_from))
            if reference is None:
                self._restart()
                self._trial_from, self.threads = None, came_from
                return came_from
            self._steps += work
            self._before += reference * work
            steps, took, before = self._steps, self._took, self._before
            if steps < TRIAL and took <= before * TRIAL / steps:
                return None
            self._restart()
            return self._settle(n, took, before)
        self._steps += work
        self._cpu += cpu_seconds
        work_took = self._kinds.setdefault(kind, [0.0, 0.0])
        work_took[0] += work
        work_took[1] += seconds
        steps, took = self._steps, self._took
        if steps < WINDOW and took < WINDOW_SECONDS:
            return None
        ran = self._cpu / (took * n)
        for k, (w, t) in self._kinds.items():
            self._last[(k, n)] = t / w
        self._restart()
        self._since += took
        step = -1 if ran < CONTENDED else 1 if ran > FREE else 0
        if step and 1 <= n + step <= self.most and self._since >= self._patience[step]:
            self._trial_from, self._since = n, 0.0
            self.threads = n + step
            return self.threads
        return None

    def _restart(self) -> None:
        """Begin a new window or trial: its work in plain steps, their wall seconds, the process's CPU
        seconds, a window's work and seconds by kind, and what a trial's steps took at the other count."""
        self._steps, self._took, self._cpu, self._before = 0.0, 0.0, 0.0, 0.0
        self._kinds: dict[int, list[float]] = {}

    def _settle(self, n: int, took: float, before: float) -> int | None:
        """After a trial at n that took `took` seconds for steps that took `before` at the count it came
        from: keep n if it was faster, else go back and wait longer before the next try."""
        came_from = self._trial_from
        assert came_from is not None
        self._trial_from = None
        if took < before:
            self._patience = dict(_PATIENCE)
            return None
        step = n - came_from
        wait = max(2 * self._patience[step], (took - before) / LOST_SHARE)
        self._patience[step] = min(wait, PATIENCE_MOST)
        self.threads = came_from
        return came_from
