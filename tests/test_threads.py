"""The decode thread tuner, on step times as a busy or an idle machine gives them."""

from __future__ import annotations

import itertools
import math

from llmcli.engine.threads import LOST_SHARE, PROBE_SECONDS, TRIAL, WINDOW, WINDOW_SECONDS, ThreadTuner

# (seconds a step takes, share of that time each thread ran) by thread count, measured on 2 cores.
IDLE = {2: (0.028, 0.98), 1: (0.050, 0.99)}
# Two busy processes already running (the Intel VM: 35.5 t/s idle, 4.1 at 2 threads, 13.5 at 1).
BUSY = {2: (0.240, 0.45), 1: (0.074, 0.70)}


def feed(
    tuner: ThreadTuner, machine: dict[int, tuple[float, float]], steps: int, kind: int = 0, work: float = 1.0
) -> list[int]:
    """Run `steps` steps of a kind, each worth `work` plain ones, where a plain step at n threads takes
    machine[n]; the count each step used."""
    used = []
    for _ in range(steps):
        n = tuner.threads
        seconds, ran = machine[n]
        used.append(n)
        tuner.observe(seconds * work, seconds * work * ran * n, kind, work)
    return used


def test_an_idle_machine_keeps_every_thread() -> None:
    assert set(feed(ThreadTuner(2), IDLE, 100 * WINDOW)) == {2}


def test_a_machine_busy_from_the_start_moves_to_one_thread_at_the_first_window() -> None:
    used = feed(ThreadTuner(2), BUSY, 40 * WINDOW)
    first = math.ceil(WINDOW_SECONDS / BUSY[2][0])  # steps this slow end the window early
    assert used[: first + TRIAL] == [2] * first + [1] * TRIAL
    # Still waiting for its core at one thread, it never tries two again while the load lasts.
    assert set(used[first:]) == {1}


def test_a_collapse_is_left_after_one_step_and_tried_again_for_one_step() -> None:
    # Seen on the Intel VM: two threads beside two busy processes, 2.4 s a step for a whole window.
    collapse = {2: (2.4, 0.50), 1: (0.020, 0.99)}  # one thread runs freely, so it tries two again
    tuner = ThreadTuner(2)
    used = feed(tuner, collapse, 200 * WINDOW)
    assert used[:2] == [2, 1]
    tries = [i for i, (a, b) in enumerate(itertools.pairwise(used)) if a == 1 and b == 2]
    assert all(used[i + 2] == 1 for i in tries)  # each try of two threads ends after its first step


def test_contention_that_comes_and_goes() -> None:
    tuner = ThreadTuner(2)
    feed(tuner, IDLE, 4 * WINDOW)
    assert feed(tuner, BUSY, 2 * WINDOW)[-1] == 1
    after = feed(tuner, IDLE, math.ceil(PROBE_SECONDS / IDLE[1][0]) + 2 * WINDOW)
    assert after[-1] == 2  # the machine is quiet again: the next try of two threads wins


def test_tries_that_lose_come_less_often() -> None:
    # One other busy process: one thread runs freely, two collapse.
    half = {2: (0.150, 0.55), 1: (0.020, 0.99)}
    tuner = ThreadTuner(2)
    used = feed(tuner, half, 400 * WINDOW)
    tries = sum(1 for a, b in itertools.pairwise(used) if a == 1 and b == 2)
    assert tries >= 3
    lost = used.count(2) * (half[2][0] - half[1][0])
    assert lost <= 2 * LOST_SHARE * sum(half[n][0] for n in used)


def test_a_collapse_in_a_few_steps_is_not_hidden_by_the_fast_rest() -> None:
    # The stories model beside two busy processes: 15 steps as fast as idle, then one of half a second.
    tuner = ThreadTuner(2)
    used = []
    for i in range(64 * WINDOW):
        n = tuner.threads
        seconds = (0.5 if i % WINDOW == WINDOW - 1 else 0.0003) if n == 2 else 0.0004
        used.append(n)
        tuner.observe(seconds, seconds * n * (0.5 if n == 2 else 1.0))
    assert used[-1] == 1 and used.count(2) < 2 * WINDOW


def test_a_slower_step_that_is_not_contention_keeps_every_thread() -> None:
    tuner = ThreadTuner(2)
    feed(tuner, IDLE, 2 * WINDOW)
    deeper = {2: (0.045, 0.98), 1: (0.080, 0.99)}  # a longer context: both counts slower
    assert set(feed(tuner, deeper, 20 * WINDOW)) == {2}


def test_a_try_is_not_judged_on_steps_of_another_kind() -> None:
    # One other busy process, and the parallel engine's steps: four sequences, then one sequence left,
    # whose steps take a tenth of the time at either count.
    four = {2: (0.150, 0.55), 1: (0.040, 0.99)}
    one = {2: (0.015, 0.55), 1: (0.004, 0.99)}
    tuner = ThreadTuner(2)
    assert feed(tuner, four, 2 * WINDOW, kind=4)[-1] == 1
    while tuner.threads == 1:  # running freely, one thread tries two after a while
        feed(tuner, four, 1, kind=4)
    # The try's steps decode one sequence: faster than four at one thread, yet no win for two threads.
    used = feed(tuner, one, 20 * WINDOW, kind=1)
    assert used == [2] + [1] * (len(used) - 1)


def test_verifications_count_as_the_plain_steps_they_cost() -> None:
    # Text that copies its input: a try of one thread falls on steps verifying drafts, priced at four
    # plain steps each. Each of them takes longer than a plain step of two threads, but per plain step
    # one thread is three times as fast.
    tuner = ThreadTuner(2)
    assert feed(tuner, BUSY, math.ceil(WINDOW_SECONDS / BUSY[2][0])) == [2, 2, 2] and tuner.threads == 1
    assert set(feed(tuner, BUSY, 4 * WINDOW, work=4.0)) == {1}
    assert set(feed(tuner, BUSY, 4 * WINDOW)) == {1}  # then plain steps: still one thread
