import builtins
import os
import subprocess
import sys
import weakref

import pytest
import stackless

from conftest import ROOT


def test_seed_example_channel():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "channel.py")],
                         env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "stackless-py")),
                         capture_output=True, text=True, check=True).stdout
    assert out == ("Receiving tasklet started\nSending tasklet started\n"
                   "send from sending_tasklet\nReceiving tasklet finished\n"
                   "Just another tasklet in the scheduler\nsending tasklet finished\n")


def test_taskletexit_is_systemexit_in_builtins():
    assert issubclass(stackless.TaskletExit, SystemExit)
    assert builtins.TaskletExit is stackless.TaskletExit


def test_run_order_and_runcount():
    log = []
    for i in range(3):
        stackless.tasklet(log.append)(i)
    assert stackless.getruncount() == 4
    stackless.run()
    assert log == [0, 1, 2]
    assert stackless.getruncount() == 1


def test_schedule_round_robin_and_retval():
    log = []

    def f(name):
        for i in range(3):
            log.append((name, i))
            assert stackless.schedule(42) == 42
    stackless.tasklet(f)("a")
    stackless.tasklet(f)("b")
    stackless.run()
    assert log == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_schedule_default_retval_is_current():
    got = []
    stackless.tasklet(lambda: got.append(stackless.schedule() is stackless.getcurrent()))()
    stackless.run()
    assert got == [True]


def test_main_and_current():
    m = stackless.getmain()
    assert m is stackless.getcurrent() and m.is_main and m.is_current and m.alive
    assert stackless.getcurrentid() == id(m)
    seen = []
    t = stackless.tasklet(lambda: seen.append((stackless.getcurrent(), stackless.getcurrent().is_main)))()
    stackless.run()
    assert seen == [(t, False)]
    assert stackless.get_thread_info() == (m, m, 1)


def test_states():
    t = stackless.tasklet(lambda: None)
    assert not t.alive and not t.scheduled
    t.bind(lambda: None, ())
    assert t.alive and t.paused and not t.scheduled and t.restorable
    t.insert()
    assert t.scheduled and not t.paused
    t.remove()
    assert t.paused
    t.insert()
    stackless.run()
    assert not t.alive and not t.scheduled
    assert (t.nesting_level, t.recursion_depth, t.cstate) == (0, 0, None)


def test_setup_twice_and_bind_errors():
    t = stackless.tasklet(lambda: None)()
    with pytest.raises(RuntimeError):
        t.setup()
    with pytest.raises(TypeError):
        stackless.tasklet(5)
    with pytest.raises(RuntimeError):
        t.bind(lambda: None)
    stackless.run()
    with pytest.raises(RuntimeError):
        t.insert()


def test_tasklet_call_bind_kwargs():
    got = []
    stackless.tasklet(lambda a, b=0: got.append((a, b)), (1,), {"b": 2}).insert()
    stackless.run()
    assert got == [(1, 2)]


def test_exception_leaves_run_scheduler_usable():
    def bad():
        raise ZeroDivisionError("x")
    log = []
    stackless.tasklet(bad)()
    stackless.tasklet(log.append)(1)
    with pytest.raises(ZeroDivisionError):
        stackless.run()
    stackless.run()
    assert log == [1]


def test_error_handler():
    errors = []
    old = stackless.set_error_handler(lambda *e: errors.append(e[0]))
    assert old is None
    stackless.tasklet(lambda: 1 / 0)()
    stackless.run()
    assert errors == [ZeroDivisionError]


def test_kill_and_pending_kill():
    log = []
    c = stackless.channel()

    def f():
        try:
            c.receive()
        finally:
            log.append("finally")
    t = stackless.tasklet(f)()
    stackless.run()
    assert t.blocked == -1 and c.balance == -1
    t.kill()
    assert log == ["finally"] and not t.alive and c.balance == 0
    t2 = stackless.tasklet(f)()
    stackless.run()
    t2.kill(pending=True)
    assert t2.alive and t2.scheduled and not t2.blocked
    stackless.run()
    assert not t2.alive and log == ["finally", "finally"]


def test_kill_unstarted_never_runs():
    log = []
    t = stackless.tasklet(log.append)(1)
    t.kill()
    assert not t.alive and log == []
    t.kill()  # dead: no-op


def test_raise_exception_and_throw():
    got = []
    c = stackless.channel()

    def f():
        try:
            c.receive()
        except ValueError as e:
            got.append(e.args)
    t = stackless.tasklet(f)()
    stackless.run()
    t.raise_exception(ValueError, 1, 2)
    assert got == [(1, 2)]
    t = stackless.tasklet(f)()
    stackless.run()
    t.throw(ValueError("p"), pending=True)
    assert got == [(1, 2)]
    stackless.run()
    assert got == [(1, 2), ("p",)]
    with pytest.raises(RuntimeError):
        t.raise_exception(ValueError)
    t.throw(stackless.TaskletExit)  # dead + TaskletExit: ignored


def test_tasklet_run_and_switch():
    log = []
    a = stackless.tasklet(lambda: log.append("a"))()
    b = stackless.tasklet(lambda: log.append("b"))()
    b.run()
    assert log == ["b"]
    a.run()
    assert log == ["b", "a"]

    def s():
        log.append("s")
    t = stackless.tasklet(s)()
    t.switch()
    assert log[-1] == "s"


def test_schedule_remove():
    log = []

    def f():
        log.append(1)
        stackless.schedule_remove()
        log.append(2)
    t = stackless.tasklet(f)()
    stackless.run()
    assert log == [1] and t.paused
    t.insert()
    stackless.run()
    assert log == [1, 2]


def test_atomic_and_flags():
    t = stackless.getcurrent()
    assert t.set_atomic(True) is False
    assert t.set_atomic(False) is True
    with stackless.atomic():
        assert t.atomic
    assert not t.atomic
    assert t.set_ignore_nesting(1) is False and t.set_ignore_nesting(0) is True


def test_switch_trap():
    t = stackless.tasklet(lambda: None)()
    assert stackless.switch_trap(1) == 0
    try:
        with pytest.raises(RuntimeError, match="switch_trap"):
            stackless.schedule()
        assert list(stackless.get_run_queue()) == [t]
        with pytest.raises(RuntimeError, match="switch_trap"):
            stackless.run()
        with pytest.raises(RuntimeError, match="switch_trap"):
            t.run()
        assert list(stackless.get_run_queue()) == [t] and t.alive
    finally:
        assert stackless.switch_trap(-1) == 1
    stackless.run()
    assert not t.alive


def test_switch_trap_channels_keep_state():
    c = stackless.channel()
    got = []
    r = stackless.tasklet(lambda: got.append(c.receive()))()
    stackless.run()
    stackless.switch_trap(1)
    try:
        with pytest.raises(RuntimeError, match="switch_trap"):
            c.send(1)
        assert c.balance == -1 and c.queue is r and r.blocked
        with pytest.raises(RuntimeError, match="switch_trap"):
            r.raise_exception(ValueError)
        assert r.blocked and got == []
    finally:
        stackless.switch_trap(-1)
    c.send(2)
    assert got == [2]
    s = stackless.tasklet(lambda: c.send(3))()
    stackless.run()
    stackless.switch_trap(1)
    try:
        assert c.preference == -1    # the receiver continues: no switch, no trap
        assert c.receive() == 3
        with pytest.raises(RuntimeError, match="switch_trap"):
            c.receive()     # would block
        assert c.balance == 0 and c.queue is None
    finally:
        stackless.switch_trap(-1)
    stackless.run()
    assert not s.alive


def test_schedule_callback():
    seen = []
    assert stackless.set_schedule_callback(lambda p, n: seen.append((p, n))) is None
    assert stackless.get_schedule_callback() is not None
    t = stackless.tasklet(lambda: None)()
    stackless.run()
    m = stackless.getmain()
    assert seen[0] == (m, t)


def test_garbage_tasklet_is_killed():
    import gc
    log = []

    def f():
        me = stackless.getcurrent()
        try:
            stackless.schedule_remove()
        finally:
            log.append(("killed", stackless.getcurrent() is me))
    stackless.tasklet(f)()
    stackless.run()
    gc.collect()
    assert log == [("killed", True)]
    assert stackless.getcurrent() is stackless.getmain()


def test_weakref():
    t = stackless.tasklet(lambda: None)
    c = stackless.channel()
    rt, rc = weakref.ref(t), weakref.ref(c)
    del t, c
    import gc
    gc.collect()
    assert rt() is None and rc() is None


def test_softswitch_is_honest():
    assert stackless.enable_softswitch(None) is False
    with pytest.raises(RuntimeError):
        stackless.enable_softswitch(True)


def test_trace_function_attribute():
    t = stackless.tasklet(lambda: None)
    assert t.trace_function is None and t.profile_function is None
