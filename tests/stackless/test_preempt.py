import sys

import pytest
import stackless


def spinner(state):
    while True:
        state[0] += 1


def test_run_timeout_interrupts_and_returns_the_tasklet():
    state = [0]
    t = stackless.tasklet(spinner)(state)
    other = []
    stackless.tasklet(other.append)("ran")
    got = stackless.run(100)
    assert got is t and t.alive and t.paused and not t.scheduled
    assert stackless.getcurrent() is stackless.getmain()
    assert other == []                       # t was first in the queue
    before = state[0]
    assert before > 0
    t.insert()
    assert stackless.run(100) is t
    assert state[0] > before                 # it went on where it stopped
    stackless.run()
    assert other == ["ran"]
    t.kill()
    assert not t.alive


def test_tracing_works_after_an_interrupt():
    t = stackless.tasklet(spinner)([0])
    assert stackless.run(50) is t
    events = []

    def tracer(frame, event, arg):
        events.append((frame.f_code.co_name, event))
        return None

    def probe():
        pass
    sys.settrace(tracer)
    try:
        probe()
    finally:
        sys.settrace(None)
    assert ("probe", "call") in events       # the thread is not left "inside a trace function"
    t.kill()


def test_no_timeout_installs_no_trace_function():
    seen = []
    stackless.tasklet(lambda: seen.append(sys.gettrace()))()
    stackless.run()
    assert seen == [None]


def test_user_trace_function_is_restored():
    def mine(frame, event, arg):
        return None
    sys.settrace(mine)
    try:
        t = stackless.tasklet(spinner)([0])
        assert stackless.run(50) is t
        assert sys.gettrace() is mine
    finally:
        sys.settrace(None)
    t.kill()


def test_atomic_blocks_preemption():
    log = []

    def f():
        with stackless.atomic():
            n = 0
            for i in range(2000):
                n += i
            log.append("atomic done")
        while True:
            pass
    t = stackless.tasklet(f)()
    assert stackless.run(50) is t
    assert log == ["atomic done"]
    t.kill()


def test_tasklets_that_switch_in_time_are_not_interrupted():
    log = []

    def polite(name):
        for i in range(50):
            stackless.schedule()
        log.append(name)
    stackless.tasklet(polite)("a")
    stackless.tasklet(polite)("b")
    assert stackless.run(20) is None
    assert log == ["a", "b"]


def test_totaltimeout_counts_the_whole_run():
    def polite():
        for i in range(200):
            stackless.schedule()
    a = stackless.tasklet(polite)()
    b = stackless.tasklet(polite)()
    got = stackless.run(100, totaltimeout=True)
    assert got in (a, b) and got.paused
    got.insert()
    assert stackless.run() is None
    assert not a.alive and not b.alive


def test_soft_timeout_ends_the_run_at_the_next_switch():
    log = []

    def worker(name):
        for i in range(5):
            x = 0
            for j in range(30):
                x += j
            log.append(name)
            stackless.schedule()
    a = stackless.tasklet(worker)("a")
    b = stackless.tasklet(worker)("b")
    assert stackless.run(20, soft=True) is None
    assert len(log) < 10
    assert a.scheduled and b.scheduled       # nobody was taken out of the queue
    stackless.run()
    assert log.count("a") == 5 and log.count("b") == 5


def test_preempted_tasklet_started_before_the_timed_run():
    state = [0]

    def f():
        stackless.schedule_remove()
        spinner(state)
    t = stackless.tasklet(f)()
    stackless.run()
    t.insert()
    assert stackless.run(100) is t
    t.kill()


def test_nested_run_only_outer_timeout_counts():
    inner = []

    def parent():
        stackless.tasklet(spinner)([0])
        inner.append(stackless.run())       # no timeout of its own
    p = stackless.tasklet(parent)()
    got = stackless.run(200)
    assert got is not None and got is not p
    assert inner == []
    for t in (got, p):
        t.kill()


@pytest.mark.parametrize("timeout", [None, "a", 1.5])
def test_timeout_must_be_an_int(timeout):
    log = []
    stackless.tasklet(log.append)(1)
    with pytest.raises(TypeError, match="run\\(\\) argument 'timeout' must be int, not " + type(timeout).__name__):
        stackless.run(timeout)
    assert log == [] and stackless.getruncount() == 2     # nothing ran, the tasklet stays queued
