import subprocess
import sys
import textwrap

import pytest
import stackless
from stackless.policies import Deadline, Priority, RoundRobin


def test_module_attributes():
    import threading
    m = stackless.getmain()
    assert stackless.main is m and stackless.current is m and stackless.runcount == 1
    assert stackless.threads[0] == threading.main_thread().ident
    with pytest.raises(AttributeError):
        stackless.no_such_attribute


def test_threads_lists_every_thread_main_first_before_any_use():
    code = """
        import threading
        import stackless
        release = threading.Event()
        t = threading.Thread(target=release.wait)
        t.start()
        print(stackless.threads == [threading.main_thread().ident, t.ident])
        release.set()
        t.join()
        print(stackless.threads == [threading.main_thread().ident])
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]


def test_run_puts_the_caller_aside():
    counts = []
    stackless.tasklet(lambda: counts.append(stackless.getruncount()))()
    stackless.tasklet(lambda: counts.append(stackless.getruncount()))()
    assert stackless.getruncount() == 3
    stackless.run()
    assert counts == [2, 1]       # main waits outside the queue, as in PyPy and Stackless


def test_run_from_a_tasklet_nests():
    log = []

    def child(n):
        log.append(n)

    def parent():
        stackless.tasklet(child)(1)
        stackless.tasklet(child)(2)
        stackless.run()
        log.append("parent after run")
    stackless.tasklet(parent)()
    stackless.run()
    assert log == [1, 2, "parent after run"]


def test_schedule_remove_returns_value_and_pauses():
    got = []

    def f():
        got.append(stackless.schedule_remove(7))
    t = stackless.tasklet(f)()
    stackless.run()
    assert t.paused and got == []
    t.insert()
    stackless.run()
    assert got == [7]


def test_schedule_remove_of_main_with_nothing_to_run_returns():
    assert stackless.schedule_remove("x") == "x"


def test_exception_goes_to_run_caller_and_scheduler_stays_usable():
    log = []

    def bad():
        log.append("bad")
        raise KeyError("boom")

    def other():
        stackless.schedule()
        log.append("other")
    stackless.tasklet(other)()
    stackless.tasklet(bad)()
    with pytest.raises(KeyError, match="boom"):
        stackless.run()
    assert stackless.getcurrent() is stackless.getmain()
    stackless.run()
    assert log == ["bad", "other"]


def test_exception_reaches_main_blocked_on_a_channel():
    c = stackless.channel()

    def bad():
        raise ValueError("to main")
    stackless.tasklet(bad)()
    with pytest.raises(ValueError, match="to main"):
        c.receive()
    assert c.balance == 0 and not stackless.getmain().blocked


def test_error_handler_receives_and_run_goes_on():
    errors = []
    assert stackless.set_error_handler(lambda t, v, tb: errors.append((t, str(v), tb is not None))) is None
    log = []
    stackless.tasklet(lambda: 1 / 0)()
    stackless.tasklet(log.append)("after")
    stackless.run()
    assert errors == [(ZeroDivisionError, "division by zero", True)] and log == ["after"]
    old = stackless.set_error_handler(None)
    assert old is not None


def test_taskletexit_is_silent():
    def f():
        raise TaskletExit  # noqa: F821
    stackless.tasklet(f)()
    stackless.run()


def test_schedule_callback_sees_every_switch():
    seen = []
    stackless.set_schedule_callback(lambda prev, nxt: seen.append((prev, nxt)))
    m = stackless.getmain()

    def f():
        stackless.schedule()
    a = stackless.tasklet(f)()
    b = stackless.tasklet(f)()
    stackless.run()
    assert seen == [(m, a), (a, b), (b, a), (a, b), (b, m)]


def test_schedule_callback_current_is_next_during_the_call():
    seen = []
    stackless.set_schedule_callback(lambda prev, nxt: seen.append(stackless.getcurrent() in (prev, nxt)))
    stackless.tasklet(lambda: None)()
    stackless.run()
    assert seen and all(seen)


def test_switch_trap_on_every_blocking_path():
    c = stackless.channel()
    t = stackless.tasklet(lambda: None)()
    stackless.switch_trap(1)
    try:
        for op in (stackless.schedule, stackless.schedule_remove, stackless.run, t.run, t.switch,
                   lambda: t.throw(KeyError), c.receive, lambda: c.send(1)):
            with pytest.raises(RuntimeError, match="switch_trap"):
                op()
            assert list(stackless.get_run_queue()) == [t] and c.balance == 0
        t.throw(KeyError, pending=True)       # no switch: allowed
        t.kill(pending=True)
    finally:
        assert stackless.switch_trap(-1) == 1
    stackless.run()
    assert not t.alive


def test_atomic_context_manager_restores():
    cur = stackless.getcurrent()
    cur.set_atomic(True)
    with stackless.atomic():
        assert cur.atomic
    assert cur.atomic
    cur.set_atomic(False)
    with stackless.atomic():
        assert cur.atomic
    assert not cur.atomic


def test_get_thread_info_and_ids():
    import threading
    m = stackless.getmain()
    assert stackless.get_thread_info(threading.get_ident()) == (m, m, 1)
    assert stackless.getcurrentid() == id(m)
    with pytest.raises(ValueError):
        stackless.get_thread_info(-12345)


def test_many_tasklets_round_robin():
    out = []

    def f(i):
        stackless.schedule()
        out.append(i)
    for i in range(1000):
        stackless.tasklet(f)(i)
    stackless.run()
    assert out == list(range(1000))


# -- run-queue policies --

def with_policy(policy, body):
    old = stackless.set_run_queue(policy)
    try:
        body()
    finally:
        assert stackless.set_run_queue(old) is policy


def test_policy_round_robin_is_default():
    assert isinstance(stackless.get_run_queue(), RoundRobin)


def test_priority_policy_runs_highest_first_round_robin_within_a_level():
    log = []

    def f(name, rounds):
        for _ in range(rounds):
            log.append(name)
            stackless.schedule()

    def body():
        for name, prio in (("low", 0), ("hi1", 5), ("hi2", 5), ("mid", 2)):
            t = stackless.tasklet(f)
            t.priority = prio
            t(name, 2)
        stackless.run()
    with_policy(Priority(), body)
    assert log == ["hi1", "hi2", "hi1", "hi2", "mid", "mid", "low", "low"]


def test_deadline_policy_runs_earliest_deadline_first():
    log = []

    def body():
        for name, deadline in (("late", 30), ("none", None), ("soon", 10), ("mid", 20)):
            t = stackless.tasklet(log.append)
            if deadline is not None:
                t.deadline = deadline
            t(name)
        stackless.run()
    with_policy(Deadline(), body)
    assert log == ["soon", "mid", "late", "none"]


def test_set_run_queue_moves_queued_tasklets():
    a = stackless.tasklet(lambda: None)()
    a.priority = 1
    b = stackless.tasklet(lambda: None)()
    b.priority = 9
    old = stackless.set_run_queue(Priority())
    try:
        assert list(stackless.get_run_queue()) == [b, a]
        assert a.scheduled and b.scheduled and stackless.getruncount() == 3
    finally:
        stackless.set_run_queue(old)
    assert set(stackless.get_run_queue()) == {a, b}
    stackless.run()


def test_policies_support_remove_and_channels():
    def body():
        c = stackless.channel()
        got = []
        r = stackless.tasklet(lambda: got.append(c.receive()))
        r.priority = 1
        r()
        t = stackless.tasklet(lambda: None)()
        t.remove()
        assert t not in stackless.get_run_queue() and t.paused
        stackless.run()
        c.send("v")
        assert got == ["v"]
        t.insert()
        stackless.run()
    with_policy(Priority(), body)
    with_policy(Deadline(), body)


@pytest.mark.parametrize("setter, what", [
    (stackless.set_schedule_callback, "schedule callback"),
    (stackless.set_channel_callback, "channel callback"),
    (stackless.set_error_handler, "error handler"),
])
def test_callback_setters_refuse_what_cannot_be_called(setter, what):
    # Stackless checks when the callback is set; otherwise the next switch fails far from the cause.
    with pytest.raises(TypeError, match=what + " must be callable or None"):
        setter(1)
    assert setter(None) is None     # the refused one was not installed


def test_set_run_queue_refuses_an_object_that_is_not_a_policy():
    with pytest.raises(TypeError, match="run-queue policy 'int' lacks push, push_next, pop, remove"):
        stackless.set_run_queue(1)
    assert isinstance(stackless.get_run_queue(), stackless.RoundRobin)
    log = []
    stackless.tasklet(log.append)(1)
    stackless.run()
    assert log == [1]
