"""The decode thread tuner, on step times as a busy or an idle machine gives them."""

from __future__ import annotations

from llmcli.engine.threads import PROBE_EVERY, WINDOW, ThreadTuner


def feed(tuner: ThreadTuner, speed: dict[int, float], windows: int) -> list[int]:
    """Run `windows` windows where a step at n threads takes speed[n] seconds; the counts used."""
    used = []
    for _ in range(windows * WINDOW):
        used.append(tuner.threads)
        tuner.observe(speed[tuner.threads])
    return used[::WINDOW]


def test_an_idle_machine_keeps_every_thread() -> None:
    tuner = ThreadTuner(2)
    assert set(feed(tuner, {2: 0.028, 1: 0.050}, 40)) == {2}


def test_contention_moves_to_fewer_threads_and_back_when_it_ends() -> None:
    idle, busy = {2: 0.028, 1: 0.050}, {2: 0.240, 1: 0.074}  # measured shape: 35.5 vs 4.1 vs 13.5 t/s
    tuner = ThreadTuner(2)
    feed(tuner, idle, 4)
    under_load = feed(tuner, busy, 4 * PROBE_EVERY)
    assert under_load[:2] == [2, 1]  # one slow window, then the trial of one thread wins
    assert under_load.count(2) <= 1 + 4  # a try of two threads every PROBE_EVERY windows, no more
    assert under_load[-1] == 1
    after = feed(tuner, idle, PROBE_EVERY + 2)
    assert after[-1] == 2  # the next try finds the machine quiet again


def test_a_slower_step_that_is_not_contention_becomes_the_new_normal() -> None:
    tuner = ThreadTuner(2)
    feed(tuner, {2: 0.028, 1: 0.050}, 2)
    deeper = feed(tuner, {2: 0.045, 1: 0.080}, 20)  # a longer context: both counts slower
    assert deeper.count(1) == 1  # tried once, lost, and the slower figure is accepted at 2
