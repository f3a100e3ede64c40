import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import stackless

from conftest import ROOT

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def add(a, b=0, log=None):
    (log if log is not None else []).append(a + b)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unstarted_tasklet_roundtrip(protocol):
    log = []
    t = stackless.tasklet(add, (1,), {"b": 2, "log": log})
    t.set_atomic(True)
    t.block_trap = True
    t.tempval = "tv"
    t2 = pickle.loads(pickle.dumps(t, protocol))
    assert t2 is not t and t2.alive and t2.paused and t2.restorable
    assert t2.atomic and t2.block_trap and t2.tempval == "tv"
    assert t2.func is add
    t2.tempval = None
    t2.insert()
    stackless.run()
    # the unpickled copy has its own (copied) log list
    assert not t2.alive and log == []


def test_finished_tasklet_roundtrip():
    t = stackless.tasklet(add)(1)
    stackless.run()
    t2 = pickle.loads(pickle.dumps(t))
    assert not t2.alive and t2.restorable
    with pytest.raises(RuntimeError):
        t2.insert()


FRAMES = (3, 11) <= sys.version_info[:2] <= (3, 13)
NO_FRAMES = "this is CPython %d.%d" % sys.version_info[:2]


def test_suspended_tasklet_pickles_its_frames_or_refuses_naming_the_version():
    t = stackless.tasklet(stackless.schedule_remove)("back")
    stackless.run()
    if FRAMES:
        assert t.restorable
        t2 = pickle.loads(pickle.dumps(t))
        assert t2 is not t and t2.paused
        t2.insert()
        stackless.run()
        assert not t2.alive
    else:
        assert not t.restorable
        with pytest.raises(NotImplementedError, match=NO_FRAMES):
            pickle.dumps(t)
    t.kill()


@pytest.mark.skipif(not FRAMES, reason="frame pickling needs CPython 3.11-3.13")
def test_suspended_tasklet_roundtrip_resumes():
    log = []

    def f(n):
        got = stackless.schedule_remove(n)
        log.append((n, got))
    t = stackless.tasklet(f)(5)
    stackless.run()
    assert t.restorable
    t2 = pickle.loads(pickle.dumps(t))
    assert t2.alive and t2.paused and t2 is not t
    t2.tempval = "back"
    t2.insert()
    stackless.run()
    assert not t2.alive and t.alive and t.paused
    t.kill()
    assert log == []        # t2 appended to its own copy of the list


def test_current_and_main_refuse():
    with pytest.raises(RuntimeError, match="current"):
        pickle.dumps(stackless.getcurrent())


def test_channel_roundtrip_keeps_flags():
    c = stackless.channel()
    c.preference = 1
    c.schedule_all = True
    c.close()
    c2 = pickle.loads(pickle.dumps(c))
    assert (c2.preference, c2.schedule_all, c2.closing, c2.closed, c2.balance) == (1, True, True, True, 0)


def test_channel_with_blocked_tasklets_pickles_them_or_refuses():
    c = stackless.channel()
    t = stackless.tasklet(c.receive)()
    stackless.run()
    if FRAMES:
        c2 = pickle.loads(pickle.dumps(c))
        assert c2.balance == -1 and c2.queue is not t and c2.queue.blocked == -1
        c2.send("to the copy")
        assert not c2.queue and c2.balance == 0
    else:
        with pytest.raises(NotImplementedError, match=NO_FRAMES):
            pickle.dumps(c)
    c.send(None)


@pytest.mark.skipif(not FRAMES, reason="frame pickling needs CPython 3.11-3.13")
def test_channel_with_blocked_receiver_roundtrip():
    got = []

    def recv(ch):
        got.append(ch.receive())
    c = stackless.channel()
    stackless.tasklet(recv)(c)
    stackless.run()
    c2 = pickle.loads(pickle.dumps(c))
    assert c2.balance == -1 and c2.queue.blocked == -1 and c2.queue is not c.queue
    c2.send("to the copy")
    c.send("to the original")
    stackless.run()
    assert got == ["to the original"]       # the copy appended to its own list
    assert c2.balance == 0 and c.balance == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_channel_queue_state_roundtrip(protocol):
    # A channel's queue restored from its state (as unpickling a channel with
    # blocked tasklets does) pickles again with its queue and senders' values.
    got = []
    c = stackless.channel()
    senders = []
    for i in range(2):
        t = stackless.tasklet(got.append, (i,))
        t.tempval = "value %d" % i
        senders.append(t)
    c.__setstate__((2, (-1, False, False), senders))
    assert c.balance == 2 and c.queue is senders[0] and senders[0].blocked == 1
    c2 = pickle.loads(pickle.dumps(c, protocol))
    assert c2.balance == 2
    q = c2.queue
    assert q.blocked == 1 and q.next.blocked == 1 and q.next.next is None
    assert c2.receive() == "value 0" and c2.receive() == "value 1"
    assert c2.balance == 0
    stackless.run()     # the released copies run their functions (on copied arguments)
    for t in senders:
        t.kill()                # unblocks it: it never ran
    assert c.balance == 0 and not any(t.alive for t in senders)


def test_bomb_pickles():
    try:
        1 / 0
    except ZeroDivisionError:
        b = stackless.bomb(*sys.exc_info())
    b2 = pickle.loads(pickle.dumps(b))
    assert b2.type is ZeroDivisionError and b2.traceback is None
    with pytest.raises(ZeroDivisionError):
        b2.raise_()


def test_pickled_unstarted_tasklet_runs_in_another_process(tmp_path):
    mod = tmp_path / "jobs.py"
    mod.write_text(textwrap.dedent("""
        def greet(name, punctuation="!"):
            print("hello " + name + punctuation)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.path.join(ROOT, "stackless-py")]))
    dump = textwrap.dedent("""
        import pickle, sys, stackless, jobs
        t = stackless.tasklet(jobs.greet, ("world",), {"punctuation": "?"})
        sys.stdout.buffer.write(pickle.dumps(t))
    """)
    data = subprocess.run([sys.executable, "-c", dump], env=env, capture_output=True, check=True).stdout
    load = textwrap.dedent("""
        import pickle, sys, stackless
        t = pickle.loads(sys.stdin.buffer.read())
        assert t.paused
        t.insert()
        stackless.run()
        print("alive", t.alive)
    """)
    out = subprocess.run([sys.executable, "-c", load], env=env, input=data,
                         capture_output=True, check=True).stdout
    assert out == b"hello world?\nalive False\n"


def test_the_frame_pickling_seam_is_one_module():
    from stackless import _pickling
    t = stackless.tasklet(stackless.schedule_remove)()
    stackless.run()
    calls = []
    old = _pickling.reduce_frames
    _pickling.reduce_frames = lambda task: calls.append(task) or "frames"
    try:
        reduced = t.__reduce__()
    finally:
        _pickling.reduce_frames = old
    assert calls == [t] and reduced[2][-1] == "frames"
    t.kill()


def test_function_without_a_module_fails_when_pickled_not_when_loaded():
    # exec() with globals that lack __name__ makes functions whose __module__ is None:
    # their globals cannot be found again, so dumps() must refuse (loads() used to fail
    # inside importlib with an AttributeError).
    ns = {}
    exec("def f(*a):\n    return a", ns)
    t = stackless.tasklet(ns["f"], (1,))
    with pytest.raises(pickle.PicklingError, match="__module__ is None"):
        pickle.dumps(t)


class NamedTasklet(stackless.tasklet):
    def __init__(self, func, name):
        super().__init__(func)
        self.name = name


class NamedChannel(stackless.channel):
    def __init__(self, name):
        super().__init__()
        self.name = name


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_subclasses_whose_init_needs_arguments_load(protocol):
    # Loading must not call __init__ (it needs arguments the pickle does not have).
    t = NamedTasklet(add, "t").bind(None, (1,))
    t2 = pickle.loads(pickle.dumps(t, protocol))
    assert type(t2) is NamedTasklet and t2.paused and t2.func is add
    c = NamedChannel("c")
    c.preference = 1
    c2 = pickle.loads(pickle.dumps(c, protocol))
    assert type(c2) is NamedChannel and c2.preference == 1 and c2.balance == 0
